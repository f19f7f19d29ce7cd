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

/// What a domain parser was reading when the input did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A dedicated host id (`dh-…`).
    HostId,
    /// A `DedicatedHostIds` list (comma list or JSON array).
    HostIdList,
    /// An instant (ECS form or RFC 3339).
    Instant,
}

/// Input a domain parser refused: what it was reading and a message that names the input and
/// the expected form. Callers turn it into their documented error with [`ParseError::invalid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub what: Parsed,
    pub message: String,
}

impl ParseError {
    pub fn new(what: Parsed, message: String) -> Self {
        Self { what, message }
    }

    /// The documented API error for this input in `field`: host ids and id lists carry
    /// `InvalidParameter.InvalidDedicatedHostId` (the status is the API's for that field);
    /// instants carry `InvalidParameter`.
    pub fn invalid(self, http_status: u16, field: &'static str) -> ValidationError {
        let code = match self.what {
            Parsed::HostId | Parsed::HostIdList => "InvalidParameter.InvalidDedicatedHostId",
            Parsed::Instant => "InvalidParameter",
        };
        ValidationError::new(code, http_status, field, self.message)
    }
}

impl From<ParseError> for String {
    fn from(e: ParseError) -> String {
        e.message
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
