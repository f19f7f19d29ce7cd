//! Store errors, phrased for an operator: which database, what went wrong, what to do.

use std::path::{Path, PathBuf};

use crate::domain::{HostId, ValidationError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("cannot migrate database {path}: {message}")]
    Migrate { path: PathBuf, message: String },
    #[error("database error while {context}: {message}")]
    Sql {
        context: &'static str,
        message: String,
    },
    #[error(
        "{path} is not a ddh-renewd database: {why}; nothing was changed in it. Point [database] path at a new file, or url at an empty database (or at a ddh-renewd database)"
    )]
    NotOurs { path: PathBuf, why: String },
    #[error("the database holds a value this version cannot read: {what}")]
    Corrupt { what: String },
    #[error("InvalidDedicatedHostId.NotFound: {0} is not in the inventory")]
    HostNotFound(HostId),
    #[error(transparent)]
    Rejected(ValidationError),
}

impl StoreError {
    pub(super) fn open(path: &Path, e: &sqlx::Error) -> Self {
        Self::Open {
            path: path.to_owned(),
            message: explain(e),
        }
    }

    /// A `map_err` adapter naming what was being done.
    pub(super) fn sql(context: &'static str) -> impl Fn(sqlx::Error) -> Self {
        move |e| Self::Sql {
            context,
            message: explain(&e),
        }
    }
}

/// Turns SQLite's result codes into advice; falls back to the driver's text.
fn explain(e: &sqlx::Error) -> String {
    let text = e.to_string();
    let code = e
        .as_database_error()
        .and_then(|d| d.code().map(|c| c.into_owned()));
    // Primary result code = extended code & 0xff.
    let primary = code
        .as_deref()
        .and_then(|c| c.parse::<i64>().ok())
        .map(|c| c & 0xff);
    let advice = match primary {
        Some(5) | Some(6) => {
            Some("the database is locked by another process; retry, or stop the other writer")
        }
        Some(8) => {
            Some("the database or its directory is read-only; check file permissions and the mount")
        }
        Some(13) => Some("the disk is full; free space and retry (nothing was half-written)"),
        Some(10) if code.as_deref() == Some("4874") => Some(
            "the disk is full (the shared-memory file cannot grow); free space and retry (nothing was half-written)",
        ),
        Some(10) => Some(
            "a disk I/O error: the disk may be full or failing; free space, check the disk, and retry (nothing was half-written)",
        ),
        Some(14) => {
            Some("the file cannot be opened; check that the directory exists and is writable")
        }
        Some(26) => Some("the file is not an SQLite database"),
        _ => None,
    };
    match advice {
        Some(a) => format!("{a} ({text})"),
        None => text,
    }
}
