//! Manual renewal requests with the meaning of RenewDedicatedHosts (seeds 000–003, SPEC §2.3),
//! validated locally before anything is sent.

use std::collections::BTreeSet;

use super::error::ValidationError;
use super::host::{ChargeType, Host};
use super::ids::{HostId, parse_id_list};
use super::period::{Period, PeriodUnit};
use super::policy::MAX_IDS;
use super::token::ClientToken;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewRequest {
    pub region_id: String,
    pub ids: Vec<HostId>,
    pub period: Period,
    pub client_token: Option<ClientToken>,
}

/// Unvalidated inputs; `ids` is the raw `DedicatedHostIds` value (JSON array or comma list).
#[derive(Debug, Clone, Default)]
pub struct RawRenew<'a> {
    pub region_id: &'a str,
    pub ids: &'a str,
    pub period: Option<i64>,
    pub period_unit: Option<&'a str>,
    pub client_token: Option<&'a str>,
}

/// Validates the request shape (everything but the hosts themselves).
pub fn validate_renew_shape(
    raw: &RawRenew<'_>,
) -> Result<(Vec<String>, Period, Option<ClientToken>), ValidationError> {
    if raw.region_id.trim().is_empty() {
        return Err(ValidationError::new(
            "MissingParameter.RegionId",
            400,
            "RegionId",
            "RegionId is required",
        ));
    }
    let ids = parse_id_list(raw.ids).map_err(|why| {
        ValidationError::new(
            "InvalidDedicatedHostIds.Malformed",
            400,
            "DedicatedHostIds",
            why,
        )
    })?;
    if ids.is_empty() {
        return Err(ValidationError::new(
            "MissingParameter.DedicatedHostIds",
            400,
            "DedicatedHostIds",
            "DedicatedHostIds is required: name at least one host",
        )
        .with_valid(format!(
            "1 to {MAX_IDS} ids, as a JSON array or a comma list"
        )));
    }
    if ids.len() > MAX_IDS {
        return Err(ValidationError::new(
            "InvalidDedicatedHostIds.Malformed",
            400,
            "DedicatedHostIds",
            format!("{} ids given; at most {MAX_IDS} per call", ids.len()),
        )
        .with_valid(format!("1 to {MAX_IDS} ids")));
    }
    let token = raw.client_token.map(ClientToken::parse).transpose()?;
    let unit = raw
        .period_unit
        .map(PeriodUnit::parse)
        .transpose()?
        .unwrap_or_default();
    let n = raw.period.ok_or_else(|| {
        ValidationError::new(
            "MissingParameter.Period",
            400,
            "Period",
            "Period is required",
        )
        .with_valid(super::period::list_values(unit.renew_periods()))
    })?;
    let period = Period::for_renewal(n, unit)?;
    Ok((ids, period, token))
}

/// Validates the whole request against the inventory.
pub fn validate_renew<'h>(
    raw: &RawRenew<'_>,
    lookup: impl Fn(&HostId) -> Option<&'h Host>,
) -> Result<RenewRequest, ValidationError> {
    let (ids, period, client_token) = validate_renew_shape(raw)?;
    let mut out = Vec::with_capacity(ids.len());
    let mut seen = BTreeSet::new();
    for raw_id in &ids {
        let not_found = || {
            ValidationError::new(
                "InvalidDedicatedHostId.NotFound",
                400,
                "DedicatedHostIds",
                format!("{raw_id} does not exist in region {}", raw.region_id),
            )
        };
        let id = HostId::parse(raw_id).map_err(|_| not_found())?;
        let host = lookup(&id)
            .filter(|h| h.region_id == raw.region_id)
            .ok_or_else(not_found)?;
        if host.charge_type == ChargeType::PostPaid {
            return Err(ValidationError::new(
                "ChargeTypeViolation",
                400,
                "DedicatedHostIds",
                format!("{id} is PostPaid (pay-as-you-go) and cannot be renewed"),
            ));
        }
        if host.status.is_released() {
            return Err(ValidationError::new(
                "IncorrectHostStatus",
                403,
                "DedicatedHostIds",
                format!("{id} is {} and cannot be renewed", host.status),
            ));
        }
        if seen.insert(id.clone()) {
            out.push(id);
        }
    }
    Ok(RenewRequest {
        region_id: raw.region_id.to_owned(),
        ids: out,
        period,
        client_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::host::HostStatus;
    use crate::domain::time::parse_instant;

    fn inv() -> Vec<Host> {
        ["dh-a", "dh-b", "dh-post"]
            .iter()
            .map(|id| Host {
                id: HostId::parse(id).unwrap(),
                region_id: "cn-hangzhou".into(),
                zone_id: None,
                charge_type: if *id == "dh-post" {
                    ChargeType::PostPaid
                } else {
                    ChargeType::PrePaid
                },
                status: HostStatus::available(),
                expired_time: parse_instant("2026-12-10T16:00Z").unwrap(),
                sale_cycle: None,
                financial_lock: false,
            })
            .collect()
    }

    fn run(r: RawRenew<'_>) -> Result<RenewRequest, ValidationError> {
        let hosts = inv();
        validate_renew(&r, |id| hosts.iter().find(|h| &h.id == id))
    }

    fn base<'a>() -> RawRenew<'a> {
        RawRenew {
            region_id: "cn-hangzhou",
            ids: "dh-a,dh-b",
            period: Some(1),
            period_unit: None,
            client_token: None,
        }
    }

    #[test]
    fn accepts_both_list_forms() {
        assert_eq!(run(base()).unwrap().ids.len(), 2);
        let r = RawRenew {
            ids: r#"["dh-a","dh-b"]"#,
            ..base()
        };
        let ok = run(r).unwrap();
        assert_eq!(
            ok.period,
            Period {
                n: 1,
                unit: PeriodUnit::Month
            }
        );
    }

    #[test]
    fn documented_codes() {
        let c = |r: RawRenew<'_>| run(r).unwrap_err().code;
        assert_eq!(
            c(RawRenew {
                period: Some(10),
                ..base()
            }),
            "InvalidPeriod"
        );
        assert_eq!(
            c(RawRenew {
                period_unit: Some("Day"),
                ..base()
            }),
            "InvalidPeriodUnit.ValueNotSupported"
        );
        assert_eq!(
            c(RawRenew {
                period_unit: Some("Week"),
                period: Some(5),
                ..base()
            }),
            "InvalidPeriod"
        );
        assert_eq!(
            c(RawRenew {
                client_token: Some(&"x".repeat(65)),
                ..base()
            }),
            "InvalidClientToken.ValueNotSupported"
        );
        assert_eq!(
            c(RawRenew {
                ids: "dh-a,dh-post",
                ..base()
            }),
            "ChargeTypeViolation"
        );
        assert_eq!(
            c(RawRenew {
                ids: "dh-nope",
                ..base()
            }),
            "InvalidDedicatedHostId.NotFound"
        );
        assert_eq!(
            c(RawRenew { ids: "", ..base() }),
            "MissingParameter.DedicatedHostIds"
        );
        assert_eq!(
            c(RawRenew {
                period: None,
                ..base()
            }),
            "MissingParameter.Period"
        );
        let many = (0..101)
            .map(|i| format!("dh-{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            c(RawRenew {
                ids: &many,
                ..base()
            }),
            "InvalidDedicatedHostIds.Malformed"
        );
    }
}
