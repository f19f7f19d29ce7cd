//! A URL that may hold a token (a robot's webhook): never printed, logged or serialised whole.

use std::fmt;

use serde::Serialize;

/// A URL that may carry a token in its path or query. `Debug`, `Display` and `Serialize` show
/// only scheme and host; [`SecretUrl::expose`] gives the real value to the one caller that sends.
#[derive(Clone, Default)]
pub struct SecretUrl(pub(super) String);

impl SecretUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `https://hooks.example.com/…` — enough to tell which receiver, nothing more.
    pub fn redacted(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        match self.0.split_once("://") {
            Some((scheme, rest)) => {
                let host = rest.split(['/', '?', '#']).next().unwrap_or("");
                // Drop any user:password@ part as well.
                let host = host.rsplit('@').next().unwrap_or(host);
                format!("{scheme}://{host}/…(redacted)")
            }
            None => "(redacted)".to_owned(),
        }
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({:?})", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}
