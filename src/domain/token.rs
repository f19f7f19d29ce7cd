//! `ClientToken`: at most 64 printable ASCII characters, per the idempotence contract of
//! RenewDedicatedHosts. The type cannot hold anything the API would refuse.

use std::fmt;

use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::error::ValidationError;
use super::ids::HostId;
use super::period::Period;

pub const MAX_TOKEN_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientToken(String);

impl ClientToken {
    /// The token of an attempt: a deterministic function of what the attempt is — its kind,
    /// region, period, window, hosts with their cycles, and its lineage (the attempt it follows
    /// in the same window: the batch it was split from, or the settled attempt that freed its
    /// hosts; 0 for none). Derived once, when the attempt is written ahead, and stored: every
    /// re-send (after a timeout, a crash, a restart) carries the stored token. A new attempt
    /// (next window, a split, after a settle) differs in one of the inputs, so it gets a new
    /// token. Never random, never bumped. 45 ASCII characters.
    pub fn derive(
        kind: &str,
        region: &str,
        period: Period,
        window: DateTime<Utc>,
        hosts: &[(HostId, DateTime<Utc>)],
        lineage: i64,
    ) -> Self {
        let mut h = Sha256::new();
        h.update(format!(
            "ddh-renewd/1\n{kind}\n{region}\n{} {}\n{}\n{lineage}\n",
            period.n,
            period.unit,
            window.timestamp()
        ));
        let mut sorted: Vec<&(HostId, DateTime<Utc>)> = hosts.iter().collect();
        sorted.sort();
        for (id, cycle) in sorted {
            h.update(format!("{id}@{}\n", cycle.timestamp()));
        }
        let digest = h.finalize();
        let hex: String = digest.iter().take(20).map(|b| format!("{b:02x}")).collect();
        Self(format!("ddh1-{hex}"))
    }

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
    fn derived_tokens_are_stable_and_distinct() {
        use crate::domain::period::PeriodUnit;
        use crate::domain::time::parse_instant;
        let p = Period {
            n: 1,
            unit: PeriodUnit::Month,
        };
        let w = parse_instant("2026-12-02T00:00:00Z").unwrap();
        let e = parse_instant("2026-12-10T16:00Z").unwrap();
        let a = HostId::parse("dh-a").unwrap();
        let b = HostId::parse("dh-b").unwrap();
        let t1 = ClientToken::derive(
            "scheduled",
            "cn-hangzhou",
            p,
            w,
            &[(a.clone(), e), (b.clone(), e)],
            0,
        );
        let t2 = ClientToken::derive(
            "scheduled",
            "cn-hangzhou",
            p,
            w,
            &[(b.clone(), e), (a.clone(), e)],
            0,
        );
        assert_eq!(t1, t2, "host order does not matter");
        assert!(t1.as_str().len() <= MAX_TOKEN_LEN && ClientToken::parse(t1.as_str()).is_ok());
        let next_day = parse_instant("2026-12-03T00:00:00Z").unwrap();
        let others = [
            ClientToken::derive(
                "scheduled",
                "cn-hangzhou",
                p,
                next_day,
                &[(a.clone(), e), (b.clone(), e)],
                0,
            ),
            ClientToken::derive("scheduled", "cn-hangzhou", p, w, &[(a.clone(), e)], 0),
            ClientToken::derive(
                "scheduled",
                "cn-hangzhou",
                p,
                w,
                &[(a.clone(), e), (b.clone(), e)],
                1,
            ),
            ClientToken::derive(
                "scheduled",
                "cn-hangzhou",
                Period {
                    n: 2,
                    unit: PeriodUnit::Month,
                },
                w,
                &[(a, e), (b, e)],
                0,
            ),
        ];
        for o in others {
            assert_ne!(o, t1);
        }
    }

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
