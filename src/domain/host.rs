//! A dedicated host as the inventory knows it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::HostId;

/// Billing method. ECS documents `PrePaid`/`PostPaid` but one doc table shows `Prepaid`, so
/// parsing ignores case; the canonical spelling is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChargeType {
    PrePaid,
    PostPaid,
}

impl ChargeType {
    pub const VALID: &'static str = "PrePaid, PostPaid";

    pub fn parse(raw: &str) -> Option<Self> {
        let s = raw.trim();
        if s.eq_ignore_ascii_case("PrePaid") {
            Some(Self::PrePaid)
        } else if s.eq_ignore_ascii_case("PostPaid") {
            Some(Self::PostPaid)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PrePaid => "PrePaid",
            Self::PostPaid => "PostPaid",
        }
    }
}

impl fmt::Display for ChargeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The host's service status as ECS reports it (`Available`, `UnderAssessment`, …) plus
/// `Released`, which the inventory sets for hosts the cloud no longer returns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HostStatus(pub String);

impl HostStatus {
    pub const RELEASED: &'static str = "Released";
    pub const AVAILABLE: &'static str = "Available";

    pub fn available() -> Self {
        Self(Self::AVAILABLE.to_owned())
    }

    pub fn is_released(&self) -> bool {
        self.0.eq_ignore_ascii_case(Self::RELEASED)
    }
}

impl fmt::Display for HostStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    pub id: HostId,
    pub region_id: String,
    pub zone_id: Option<String>,
    pub charge_type: ChargeType,
    pub status: HostStatus,
    pub expired_time: DateTime<Utc>,
    pub sale_cycle: Option<String>,
    /// `OperationLocks` carries `LockReason=financial`: expired and locked for non-payment.
    pub financial_lock: bool,
}

/// Whether a sync may believe that `missing` hosts of a region of `in_region` are gone: more
/// than a fifth of the region (and more than three hosts) at once is a broken answer until a
/// person confirms it (`sync --allow-mass-release`).
pub fn believable_disappearance(missing: usize, in_region: usize) -> bool {
    missing <= (in_region / 5).max(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charge_type_ignores_case() {
        assert_eq!(ChargeType::parse("Prepaid"), Some(ChargeType::PrePaid));
        assert_eq!(ChargeType::parse("POSTPAID"), Some(ChargeType::PostPaid));
        assert_eq!(ChargeType::parse("Spot"), None);
    }
}
