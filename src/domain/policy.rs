//! Renewal policy with the meaning of ModifyDedicatedHostAutoRenewAttribute (seed 004, SPEC §2.2).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::ValidationError;
use super::host::{ChargeType, Host};
use super::ids::HostId;
use super::period::{Period, PeriodUnit};

/// Most ids one call may name.
pub const MAX_IDS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum RenewalStatus {
    /// Renewed automatically in the windows before expiry.
    AutoRenewal,
    /// Not renewed automatically; expiry reminders go out so a person renews by hand.
    #[default]
    Normal,
    /// Not renewed and no reminders; one non-renewal notice three days before expiry.
    NotRenewal,
}

impl RenewalStatus {
    pub const VALID: &'static str = "AutoRenewal, Normal, NotRenewal";

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AutoRenewal => "AutoRenewal",
            Self::Normal => "Normal",
            Self::NotRenewal => "NotRenewal",
        }
    }

    /// Effective status: `RenewalStatus` if given, else `AutoRenew` (absent = false).
    pub fn effective(renewal_status: Option<Self>, auto_renew: Option<bool>) -> Self {
        renewal_status.unwrap_or(if auto_renew.unwrap_or(false) {
            Self::AutoRenewal
        } else {
            Self::Normal
        })
    }
}

impl FromStr for RenewalStatus {
    type Err = ValidationError;
    fn from_str(raw: &str) -> Result<Self, ValidationError> {
        match raw {
            "AutoRenewal" => Ok(Self::AutoRenewal),
            "Normal" => Ok(Self::Normal),
            "NotRenewal" => Ok(Self::NotRenewal),
            _ => Err(ValidationError::new(
                "InvalidParameter.RenewalStatus",
                403,
                "RenewalStatus",
                format!("RenewalStatus {raw:?} is not valid"),
            )
            .with_valid(Self::VALID)),
        }
    }
}

impl fmt::Display for RenewalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A host's renewal policy: its effective status and the period an automatic renewal buys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub status: RenewalStatus,
    pub period: Period,
}

impl Default for Policy {
    /// What a host without a recorded policy behaves as: `Normal`, 1 Month.
    fn default() -> Self {
        Self {
            status: RenewalStatus::Normal,
            period: Period {
                n: 1,
                unit: PeriodUnit::Month,
            },
        }
    }
}

/// The inputs of ModifyDedicatedHostAutoRenewAttribute, unvalidated.
#[derive(Debug, Clone, Default)]
pub struct PolicyRequest {
    pub region_id: String,
    pub ids: Vec<String>,
    pub auto_renew: Option<bool>,
    pub renewal_status: Option<String>,
    pub duration: Option<i64>,
    pub period_unit: Option<String>,
}

/// A host at double-renew risk: renewed here automatically and, as the cloud last said
/// (`DescribeDedicatedHostAutoRenew`), by the cloud's own auto-renew too. The engine never
/// pays for such a host (`protocol::decide_pre_send`) unless `[ecs] takeover` first sets the
/// cloud side to Normal.
pub fn double_renew_risk(here: RenewalStatus, cloud: Option<&str>) -> bool {
    here == RenewalStatus::AutoRenewal && cloud == Some(RenewalStatus::AutoRenewal.as_str())
}

/// Parses the policy fields alone (status, unit, duration) with their documented codes. Used by
/// both `policy set` and inventory import.
pub fn parse_policy(
    auto_renew: Option<bool>,
    renewal_status: Option<&str>,
    duration: Option<i64>,
    period_unit: Option<&str>,
) -> Result<Policy, ValidationError> {
    let status = renewal_status.map(RenewalStatus::from_str).transpose()?;
    let unit = match period_unit {
        Some(raw) => PeriodUnit::parse(raw).map_err(|mut e| {
            // This API answers the unit error with 403 (seed 004), RenewDedicatedHosts with 400.
            e.http_status = 403;
            e
        })?,
        None => PeriodUnit::Month,
    };
    let period = Period::for_policy(duration.unwrap_or(1), unit)?;
    Ok(Policy {
        status: RenewalStatus::effective(status, auto_renew),
        period,
    })
}

/// Validates a whole call: all ids first, then all hosts, so the call applies to all or none.
/// `lookup` answers the inventory's view of a host.
pub fn validate_policy_request<'h>(
    req: &PolicyRequest,
    lookup: impl Fn(&HostId) -> Option<&'h Host>,
) -> Result<(Vec<HostId>, Policy), ValidationError> {
    if req.region_id.trim().is_empty() {
        return Err(ValidationError::new(
            "MissingParameter.RegionId",
            400,
            "RegionId",
            "RegionId is required",
        ));
    }
    let ids = check_id_count(&req.ids, "DedicatedHostIds")?;
    let policy = parse_policy(
        req.auto_renew,
        req.renewal_status.as_deref(),
        req.duration,
        req.period_unit.as_deref(),
    )?;
    let mut hosts = Vec::with_capacity(ids.len());
    let mut seen = BTreeSet::new();
    for raw in ids {
        let bad_id = |why: String| {
            ValidationError::new(
                "InvalidParameter.InvalidDedicatedHostId",
                403,
                "DedicatedHostIds",
                why,
            )
        };
        let id = HostId::parse(raw).map_err(|e| bad_id(e.into()))?;
        let host = lookup(&id)
            .filter(|h| h.region_id == req.region_id)
            .ok_or_else(|| {
                bad_id(format!(
                    "{id} is not a dedicated host in region {}",
                    req.region_id
                ))
            })?;
        if host.status.is_released() {
            return Err(ValidationError::new(
                "IncorrectHostStatus",
                403,
                "DedicatedHostIds",
                format!("{id} is {}; its renewal policy cannot change", host.status),
            ));
        }
        if host.charge_type == ChargeType::PostPaid {
            return Err(ValidationError::new(
                "ChargeTypeViolation",
                403,
                "DedicatedHostIds",
                format!("{id} is PostPaid; only PrePaid hosts take a renewal policy"),
            ));
        }
        if seen.insert(id.clone()) {
            hosts.push(id);
        }
    }
    Ok((hosts, policy))
}

/// 1 to 100 ids, else the documented codes of ModifyDedicatedHostAutoRenewAttribute.
fn check_id_count<'a>(
    ids: &'a [String],
    field: &'static str,
) -> Result<&'a [String], ValidationError> {
    if ids.is_empty() {
        return Err(ValidationError::new(
            "MissingParameter.DedicatedHostId",
            403,
            field,
            "DedicatedHostId should not be null: name at least one host",
        )
        .with_valid(format!("1 to {MAX_IDS} ids")));
    }
    if ids.len() > MAX_IDS {
        return Err(ValidationError::new(
            "InvalidParameter.ToManyDedicatedHostIds",
            403,
            field,
            format!("{} ids given; at most {MAX_IDS} per call", ids.len()),
        )
        .with_valid(format!("1 to {MAX_IDS} ids")));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::host::HostStatus;
    use crate::domain::time::parse_instant;
    use std::collections::HashMap;

    fn host(id: &str, charge: ChargeType, status: &str) -> Host {
        Host {
            id: HostId::parse(id).unwrap(),
            region_id: "cn-hangzhou".into(),
            zone_id: None,
            charge_type: charge,
            status: HostStatus(status.into()),
            expired_time: parse_instant("2026-12-10T16:00Z").unwrap(),
            sale_cycle: None,
            financial_lock: false,
        }
    }

    fn inventory() -> HashMap<HostId, Host> {
        [
            host("dh-a", ChargeType::PrePaid, "Available"),
            host("dh-b", ChargeType::PrePaid, "Available"),
            host("dh-post", ChargeType::PostPaid, "Available"),
            host("dh-gone", ChargeType::PrePaid, "Released"),
        ]
        .into_iter()
        .map(|h| (h.id.clone(), h))
        .collect()
    }

    fn req(ids: &[&str]) -> PolicyRequest {
        PolicyRequest {
            region_id: "cn-hangzhou".into(),
            ids: ids.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn code(r: PolicyRequest) -> &'static str {
        let inv = inventory();
        validate_policy_request(&r, |id| inv.get(id))
            .unwrap_err()
            .code
    }

    #[test]
    fn every_row_of_the_error_table() {
        assert_eq!(code(req(&[])), "MissingParameter.DedicatedHostId");
        let many: Vec<String> = (0..101).map(|i| format!("dh-x{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(code(req(&many)), "InvalidParameter.ToManyDedicatedHostIds");
        assert_eq!(
            code(req(&["i-123"])),
            "InvalidParameter.InvalidDedicatedHostId"
        );
        assert_eq!(
            code(req(&["dh-unknown"])),
            "InvalidParameter.InvalidDedicatedHostId"
        );
        assert_eq!(code(req(&["dh-gone"])), "IncorrectHostStatus");
        assert_eq!(code(req(&["dh-post"])), "ChargeTypeViolation");
        let mut r = req(&["dh-a"]);
        r.duration = Some(5);
        assert_eq!(code(r), "InvalidParameter.Duration");
        let mut r = req(&["dh-a"]);
        r.renewal_status = Some("Sometimes".into());
        assert_eq!(code(r), "InvalidParameter.RenewalStatus");
        let mut r = req(&["dh-a"]);
        r.period_unit = Some("Day".into());
        assert_eq!(code(r), "InvalidPeriodUnit.ValueNotSupported");
    }

    #[test]
    fn one_bad_host_fails_the_whole_call() {
        assert_eq!(
            code(req(&["dh-a", "dh-b", "dh-post"])),
            "ChargeTypeViolation"
        );
    }

    #[test]
    fn other_region_is_unknown() {
        let mut r = req(&["dh-a"]);
        r.region_id = "cn-shanghai".into();
        assert_eq!(code(r), "InvalidParameter.InvalidDedicatedHostId");
    }

    #[test]
    fn effective_status_precedence() {
        use RenewalStatus::*;
        assert_eq!(RenewalStatus::effective(None, None), Normal);
        assert_eq!(RenewalStatus::effective(None, Some(true)), AutoRenewal);
        assert_eq!(RenewalStatus::effective(None, Some(false)), Normal);
        assert_eq!(
            RenewalStatus::effective(Some(NotRenewal), Some(true)),
            NotRenewal
        );
        assert_eq!(
            RenewalStatus::effective(Some(AutoRenewal), Some(false)),
            AutoRenewal
        );
    }

    #[test]
    fn valid_call_dedupes_and_defaults() {
        let inv = inventory();
        let mut r = req(&["dh-a", "dh-b", "dh-a"]);
        r.auto_renew = Some(true);
        let (ids, p) = validate_policy_request(&r, |id| inv.get(id)).unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(p.status, RenewalStatus::AutoRenewal);
        assert_eq!(
            p.period,
            Period {
                n: 1,
                unit: PeriodUnit::Month
            }
        );
    }
}
