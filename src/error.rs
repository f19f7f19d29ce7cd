//! The library's top-level error and the exit codes of SPEC §4.1:
//! 0 ok; 1 runtime failure; 2 usage or config error; 3 a validation error from §2.

use crate::config::ConfigError;
use crate::domain::ValidationError;
use crate::import::ImportError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("{file}: {source}")]
    Import { file: String, source: ImportError },
    #[error(transparent)]
    Store(StoreError),
    #[error("{0}")]
    Runtime(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Rejected(v) => Self::Validation(v),
            other => Self::Store(other),
        }
    }
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Config(_) | Self::Usage(_) => 2,
            Self::Validation(_) | Self::Import { .. } => 3,
            Self::Store(StoreError::HostNotFound(_)) => 3,
            Self::Store(_) | Self::Runtime(_) => 1,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
