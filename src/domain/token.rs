//! `ClientToken`: at most 64 printable ASCII characters, per the idempotence contract of
//! RenewDedicatedHosts. The type cannot hold anything the API would refuse.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::ValidationError;

pub const MAX_TOKEN_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientToken(String);

impl ClientToken {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_TOKEN_LEN
            && raw.bytes().all(|b| (0x20..=0x7e).contains(&b));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValidationError::new(
                "InvalidClientToken.ValueNotSupported",
                400,
                "ClientToken",
                format!(
                    "ClientToken of {} characters is not valid",
                    raw.chars().count()
                ),
            )
            .with_valid(format!("1 to {MAX_TOKEN_LEN} printable ASCII characters")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClientToken {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, ValidationError> {
        Self::parse(&s)
    }
}

impl From<ClientToken> for String {
    fn from(t: ClientToken) -> String {
        t.0
    }
}

impl fmt::Display for ClientToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(ClientToken::parse("123e4567-e89b-12d3-a456-426655440000").is_ok());
        assert!(ClientToken::parse(&"a".repeat(64)).is_ok());
        for bad in [String::new(), "a".repeat(65), "tökén".into(), "a\tb".into()] {
            let e = ClientToken::parse(&bad).unwrap_err();
            assert_eq!(e.code, "InvalidClientToken.ValueNotSupported");
        }
    }
}
