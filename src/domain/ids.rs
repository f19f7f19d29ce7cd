//! Dedicated host ids and the two list syntaxes the API accepts for `DedicatedHostIds`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::{ParseError, Parsed};

/// Longest id we accept; real ids are about 20 characters.
const MAX_ID_LEN: usize = 64;

/// A syntactically valid dedicated host id: `dh-` followed by ASCII letters, digits, `-` or `_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostId(String);

impl HostId {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let q = super::error::quote(raw);
        let bad = |m: String| ParseError::new(Parsed::HostId, m);
        let rest = raw
            .strip_prefix("dh-")
            .ok_or_else(|| bad(format!("{q} is not a dedicated host id (expected dh-…)")))?;
        if rest.is_empty()
            || raw.len() > MAX_ID_LEN
            || !rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad(format!(
                "{q} is not a dedicated host id (dh- then up to {} letters, digits, - or _)",
                MAX_ID_LEN - 3
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HostId {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, ParseError> {
        Self::parse(&value)
    }
}

impl From<HostId> for String {
    fn from(id: HostId) -> String {
        id.0
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest region id accepted (real ones are about 15 characters: `ap-southeast-1`).
pub const MAX_REGION_LEN: usize = 64;

/// A region id: lowercase letters, digits and `-`, at most [`MAX_REGION_LEN`] characters.
pub fn valid_region(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= MAX_REGION_LEN
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Splits a `DedicatedHostIds` value: a JSON array (`["dh-a","dh-b"]`) or a comma list
/// (`dh-a,dh-b`). Whitespace around items is ignored; empty items are dropped. Ids are returned
/// raw (unvalidated) so the caller can attach its own documented error code.
pub fn parse_id_list(raw: &str) -> Result<Vec<String>, ParseError> {
    let trimmed = raw.trim();
    if trimmed.starts_with('[') {
        let items: Vec<String> = serde_json::from_str(trimmed).map_err(|e| {
            ParseError::new(
                Parsed::HostIdList,
                format!("DedicatedHostIds is not a valid JSON array of strings: {e}"),
            )
        })?;
        Ok(items
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect())
    } else {
        Ok(trimmed
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_shapes() {
        assert!(HostId::parse("dh-bp165p6xk2tlw61e0001").is_ok());
        assert!(HostId::parse("dh-demo-007").is_ok());
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "dh-",
            "i-abc",
            "dh-a b",
            "dh-é",
            &format!("dh-{}", "a".repeat(62)),
        ] {
            assert!(HostId::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn both_list_syntaxes() {
        assert_eq!(parse_id_list("dh-a, dh-b").unwrap(), ["dh-a", "dh-b"]);
        assert_eq!(
            parse_id_list(r#"["dh-a", "dh-b"]"#).unwrap(),
            ["dh-a", "dh-b"]
        );
        assert!(parse_id_list("").unwrap().is_empty());
        assert!(parse_id_list("[1,2]").is_err());
    }
}
