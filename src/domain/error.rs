//! The validation error every rule of §2 returns: a documented Alibaba error code, the field it is
//! about, a message a person can act on, and (where there is a closed set) the valid values.

use std::fmt;

/// A request that the API would refuse, with the code the API documents for it.
/// Input quoted in a message: at most 60 characters, with the full size when cut. Bad input may
/// be huge; a message never echoes more than a prefix of it.
pub fn quote(raw: &str) -> String {
    const MAX: usize = 60;
    let n = raw.chars().count();
    if n <= MAX {
        format!("{raw:?}")
    } else {
        let head: String = raw.chars().take(MAX).collect();
        format!("{head:?}… ({} bytes)", raw.len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The documented error code, e.g. `InvalidParameter.Duration`.
    pub code: &'static str,
    /// The request field at fault, e.g. `Duration`.
    pub field: &'static str,
    /// What is wrong, naming the offending value.
    pub message: String,
    /// The accepted values, when they form a short closed set.
    pub valid: Option<String>,
    /// The HTTP status the real API answers with for this code.
    pub http_status: u16,
}

impl ValidationError {
    pub fn new(
        code: &'static str,
        http_status: u16,
        field: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            code,
            field,
            message: message.into(),
            valid: None,
            http_status,
        }
    }

    pub fn with_valid(mut self, valid: impl Into<String>) -> Self {
        self.valid = Some(valid.into());
        self
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (field {}", self.code, self.message, self.field)?;
        if let Some(valid) = &self.valid {
            write!(f, "; valid values: {valid}")?;
        }
        write!(f, ")")
    }
}

impl std::error::Error for ValidationError {}
