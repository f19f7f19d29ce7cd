//! The four ECS actions the emulator serves, as functions of the state and the request
//! parameters. Validation reuses the domain rules, so the documented codes and HTTP statuses are
//! the same ones the daemon checks locally.

use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::Value;

use super::state::{EmuHost, LedgerEntry, State};
use crate::domain::ids::parse_id_list;
use crate::domain::policy::{MAX_IDS, PolicyRequest, validate_policy_request};
use crate::domain::renew::{RawRenew, validate_renew};
use crate::domain::time::{to_db, to_ecs};
use crate::domain::{ChargeType, HostId, RenewalStatus, ValidationError};
use crate::ecs::models::{
    DedicatedHost, DedicatedHostRenewAttributes, DedicatedHosts,
    DescribeDedicatedHostAutoRenewResponse, DescribeDedicatedHostsResponse, OperationLock,
    OperationLocks, RenewAttribute, RenewDedicatedHostsResponse, RequestIdOnly,
};

pub const ACTIONS: [&str; 4] = [
    "DescribeDedicatedHosts",
    "DescribeDedicatedHostAutoRenew",
    "RenewDedicatedHosts",
    "ModifyDedicatedHostAutoRenewAttribute",
];

/// An error answer: HTTP status, code, message.
#[derive(Debug, Clone)]
pub struct ApiErr {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiErr {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

impl From<ValidationError> for ApiErr {
    fn from(v: ValidationError) -> Self {
        let mut message = v.message;
        if let Some(valid) = v.valid {
            message.push_str(&format!(" Valid values: {valid}."));
        }
        Self {
            status: v.http_status,
            code: v.code.to_owned(),
            message,
        }
    }
}

pub type ApiResult = Result<Value, ApiErr>;

/// Request parameters (query ∪ form body), first occurrence wins.
pub struct Params<'a>(pub &'a [(String, String)]);

impl Params<'_> {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn int(&self, name: &str, code: &str) -> Result<Option<i64>, ApiErr> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                ApiErr::new(
                    400,
                    code,
                    format!("The specified parameter {name} ({v:?}) is not valid."),
                )
            }),
        }
    }

    fn region(&self, missing_code: &str) -> Result<&str, ApiErr> {
        self.get("RegionId").filter(|r| !r.is_empty()).ok_or_else(|| {
            ApiErr::new(400, missing_code, "The input parameter \"RegionId\" that is mandatory for processing this request is not supplied.")
        })
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> ApiResult {
    serde_json::to_value(v).map_err(|e| ApiErr::new(500, "InternalError", e.to_string()))
}

/// A host as DescribeDedicatedHosts shows it at virtual time `now`.
pub fn host_view(h: &EmuHost, now: DateTime<Utc>) -> DedicatedHost {
    let host = &h.host;
    let prepaid = host.charge_type == ChargeType::PrePaid;
    let locked = host.financial_lock || (prepaid && now >= host.expired_time);
    DedicatedHost {
        dedicated_host_id: host.id.to_string(),
        dedicated_host_name: h.name.clone(),
        dedicated_host_type: "ddh.g6".to_owned(),
        region_id: host.region_id.clone(),
        zone_id: host.zone_id.clone().unwrap_or_default(),
        charge_type: host.charge_type.to_string(),
        sale_cycle: host.sale_cycle.clone().unwrap_or_else(|| {
            if prepaid {
                "Month".into()
            } else {
                String::new()
            }
        }),
        expired_time: to_ecs(host.expired_time),
        creation_time: to_ecs(h.created),
        status: host.status.0.clone(),
        operation_locks: OperationLocks {
            operation_lock: if locked {
                vec![OperationLock {
                    lock_reason: "financial".into(),
                }]
            } else {
                Vec::new()
            },
        },
    }
}

/// Hosts of a region, unreleased, in id order.
fn region_hosts<'s>(state: &'s State, region: &'s str) -> impl Iterator<Item = &'s EmuHost> {
    state
        .hosts
        .values()
        .filter(move |h| h.host.region_id == region && !h.host.status.is_released())
}

pub fn describe_dedicated_hosts(state: &State, p: &Params<'_>, request_id: &str) -> ApiResult {
    let region = p.region("MissingParamter.RegionId")?;
    let now = state.now();
    let ids = requested_ids(p)?;
    let zone = p.get("ZoneId").filter(|z| !z.is_empty());
    let name = p.get("DedicatedHostName").filter(|n| !n.is_empty());
    let status = p.get("Status").filter(|s| !s.is_empty());
    let lock = match p.get("LockReason").filter(|s| !s.is_empty()) {
        None => None,
        Some(r @ ("financial" | "security")) => Some(r),
        Some(other) => {
            return Err(ApiErr::new(
                404,
                "InvalidLockReason.NotFound",
                format!("LockReason {other:?} is not supported."),
            ));
        }
    };
    let matching: Vec<DedicatedHost> = region_hosts(state, region)
        .filter(|h| {
            ids.as_ref()
                .is_none_or(|ids| ids.iter().any(|i| i == h.host.id.as_str()))
        })
        .filter(|h| zone.is_none_or(|z| h.host.zone_id.as_deref() == Some(z)))
        .filter(|h| name.is_none_or(|n| h.name == n))
        .filter(|h| status.is_none_or(|s| h.host.status.0 == s))
        .map(|h| host_view(h, now))
        .filter(|v| {
            lock.is_none_or(|l| {
                v.operation_locks
                    .operation_lock
                    .iter()
                    .any(|o| o.lock_reason == l)
            })
        })
        .collect();
    let total = matching.len();
    let page = Page::of(p, total)?;
    let end = page.offset.saturating_add(page.size).min(total);
    let hosts: Vec<DedicatedHost> = matching
        .into_iter()
        .skip(page.offset)
        .take(end.saturating_sub(page.offset))
        .collect();
    let next_token = if page.by_token && end < total {
        format!("nt{end:x}")
    } else {
        String::new()
    };
    to_value(&DescribeDedicatedHostsResponse {
        request_id: request_id.to_owned(),
        total_count: total as i64,
        page_number: if page.by_token { 1 } else { page.number },
        page_size: page.size as i64,
        next_token,
        dedicated_hosts: DedicatedHosts {
            dedicated_host: hosts,
        },
    })
}

/// `DedicatedHostIds`, if given: at most [`MAX_IDS`].
fn requested_ids(p: &Params<'_>) -> Result<Option<Vec<String>>, ApiErr> {
    let raw = match p.get("DedicatedHostIds") {
        None | Some("") => return Ok(None),
        Some(raw) => raw,
    };
    let ids =
        parse_id_list(raw).map_err(|m| ApiErr::new(400, "InvalidParameter.DedicatedHostIds", m))?;
    if ids.len() > MAX_IDS {
        return Err(ApiErr::new(
            403,
            "InvalidDedicatedHostIds.Malformed",
            format!(
                "The specified DedicatedHostIds has {} ids; at most {MAX_IDS}.",
                ids.len()
            ),
        ));
    }
    Ok(Some(ids))
}

/// Which page a DescribeDedicatedHosts asks for: by NextToken/MaxResults (the default) or by
/// PageNumber/PageSize.
struct Page {
    by_token: bool,
    offset: usize,
    size: usize,
    number: i64,
}

impl Page {
    fn of(p: &Params<'_>, total: usize) -> Result<Self, ApiErr> {
        let by_token = p.get("NextToken").is_some()
            || p.get("MaxResults").is_some()
            || (p.get("PageNumber").is_none() && p.get("PageSize").is_none());
        if by_token {
            let size = p
                .int("MaxResults", "InvalidParameter.MaxResults")?
                .unwrap_or(10);
            if !(1..=100).contains(&size) {
                return Err(ApiErr::new(
                    400,
                    "InvalidParameter.MaxResults",
                    "MaxResults must be from 1 to 100.",
                ));
            }
            let offset = match p.get("NextToken").filter(|t| !t.is_empty()) {
                None => 0,
                Some(t) => t
                    .strip_prefix("nt")
                    .and_then(|n| usize::from_str_radix(n, 16).ok())
                    .filter(|o| *o <= total)
                    .ok_or_else(|| {
                        ApiErr::new(
                            400,
                            "InvalidParameter.NextToken",
                            "The specified NextToken is not valid.",
                        )
                    })?,
            };
            return Ok(Self {
                by_token,
                offset,
                size: size as usize,
                number: 0,
            });
        }
        let size = p
            .int("PageSize", "InvalidParameter.PageSize")?
            .unwrap_or(10);
        let number = p
            .int("PageNumber", "InvalidParameter.PageNumber")?
            .unwrap_or(1);
        if !(1..=100).contains(&size) || number < 1 {
            return Err(ApiErr::new(
                400,
                "InvalidParameter",
                "PageSize must be from 1 to 100 and PageNumber at least 1.",
            ));
        }
        let offset = usize::try_from(number - 1)
            .ok()
            .and_then(|n| n.checked_mul(size as usize))
            .unwrap_or(usize::MAX);
        Ok(Self {
            by_token,
            offset,
            size: size as usize,
            number,
        })
    }
}

/// Looks up hosts for the auto-renew APIs with their documented 403 codes.
fn auto_renew_hosts<'s>(
    state: &'s State,
    region: &str,
    raw: Option<&str>,
) -> Result<Vec<&'s EmuHost>, ApiErr> {
    let ids = parse_id_list(raw.unwrap_or_default())
        .map_err(|m| ApiErr::new(403, "InvalidParameter.InvalidDedicatedHostId", m))?;
    if ids.is_empty() {
        return Err(ApiErr::new(
            403,
            "MissingParameter.DedicatedHostId",
            "DedicatedHostId should not be null.",
        ));
    }
    if ids.len() > MAX_IDS {
        return Err(ApiErr::new(
            403,
            "InvalidParameter.ToManyDedicatedHostIds",
            "DedicatedHostId should be less than 100.",
        ));
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in &ids {
        let h = state
            .hosts
            .get(id)
            .filter(|h| h.host.region_id == region && !h.host.status.is_released())
            .ok_or_else(|| {
                ApiErr::new(
                    403,
                    "InvalidParameter.InvalidDedicatedHostId",
                    format!("{id} does not exist in {region}."),
                )
            })?;
        if h.host.charge_type == ChargeType::PostPaid {
            return Err(ApiErr::new(
                403,
                "ChargeTypeViolation",
                "Pay-As-You-Go dedicated host does not support this operation.",
            ));
        }
        out.push(h);
    }
    Ok(out)
}

pub fn describe_auto_renew(state: &State, p: &Params<'_>, request_id: &str) -> ApiResult {
    let region = p.region("MissingParameter.RegionId")?;
    let hosts = auto_renew_hosts(state, region, p.get("DedicatedHostIds"))?;
    let attrs = hosts
        .iter()
        .map(|h| RenewAttribute {
            dedicated_host_id: h.host.id.to_string(),
            auto_renew_enabled: h.renewal_status == RenewalStatus::AutoRenewal,
            auto_renew_with_ecs: "StopRenewWithEcs".into(),
            duration: if h.renewal_status == RenewalStatus::AutoRenewal {
                i64::from(h.duration)
            } else {
                0
            },
            period_unit: h.period_unit.to_string(),
            renewal_status: h.renewal_status.to_string(),
        })
        .collect();
    to_value(&DescribeDedicatedHostAutoRenewResponse {
        request_id: request_id.to_owned(),
        dedicated_host_renew_attributes: DedicatedHostRenewAttributes {
            dedicated_host_renew_attribute: attrs,
        },
    })
}

/// Validates a renewal without changing anything.
pub fn validate_renewal(
    state: &State,
    p: &Params<'_>,
) -> Result<crate::domain::renew::RenewRequest, ApiErr> {
    let region = p.region("MissingParameter.RegionId")?;
    let period = p.int("Period", "InvalidPeriod")?;
    let raw = RawRenew {
        region_id: region,
        ids: p.get("DedicatedHostIds").unwrap_or_default(),
        period,
        period_unit: p.get("PeriodUnit").filter(|u| !u.is_empty()),
        client_token: p.get("ClientToken"),
    };
    let lookup = |id: &HostId| state.hosts.get(id.as_str()).map(|h| &h.host);
    Ok(validate_renew(&raw, lookup)?)
}

/// Renews: every host's expiry moves by the period on the UTC+8 calendar; one ledger entry each.
pub fn renew(state: &mut State, p: &Params<'_>, request_id: &str) -> ApiResult {
    let req = validate_renewal(state, p)?;
    let now = state.now();
    let token = req.client_token.as_ref().map(|t| t.as_str().to_owned());
    for id in &req.ids {
        let Some(h) = state.hosts.get_mut(id.as_str()) else {
            continue;
        };
        let before = h.host.expired_time;
        let after = req.period.add_to(before).ok_or_else(|| {
            ApiErr::new(400, "InvalidPeriod", "The renewed expiry is out of range.")
        })?;
        h.host.expired_time = after;
        h.host.financial_lock = false;
        state.ledger.push(LedgerEntry {
            dedicated_host_id: id.to_string(),
            client_token: token.clone(),
            period: req.period.n,
            period_unit: req.period.unit.to_string(),
            expired_time_before: to_ecs(before),
            expired_time_after: to_ecs(after),
            request_id: request_id.to_owned(),
            at: to_db(now),
            source: super::state::LedgerSource::Api,
        });
    }
    let order: u64 = rand::rng().random_range(100_000_000_000..999_999_999_999);
    to_value(&RenewDedicatedHostsResponse {
        request_id: request_id.to_owned(),
        order_id: Some(order.to_string()),
    })
}

pub fn modify_auto_renew(state: &mut State, p: &Params<'_>, request_id: &str) -> ApiResult {
    let region = p.region("MissingParameter.RegionId")?;
    let auto_renew = match p.get("AutoRenew").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
        Some(v) => {
            return Err(ApiErr::new(
                400,
                "InvalidParameter.AutoRenew",
                format!("AutoRenew {v:?} is not true or false."),
            ));
        }
    };
    let ids = parse_id_list(p.get("DedicatedHostIds").unwrap_or_default())
        .map_err(|m| ApiErr::new(403, "InvalidParameter.InvalidDedicatedHostId", m))?;
    let duration = match p.get("Duration").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => Some(v.trim().parse::<i64>().map_err(|_| {
            ApiErr::new(
                403,
                "InvalidParameter.Duration",
                format!("Duration {v:?} is not a number."),
            )
        })?),
    };
    let req = PolicyRequest {
        region_id: region.to_owned(),
        ids,
        auto_renew,
        renewal_status: p
            .get("RenewalStatus")
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
        duration,
        period_unit: p
            .get("PeriodUnit")
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
    };
    let (ids, policy) =
        validate_policy_request(&req, |id| state.hosts.get(id.as_str()).map(|h| &h.host))?;
    let now = state.now();
    for id in ids {
        if let Some(h) = state.hosts.get_mut(id.as_str()) {
            if policy.status == RenewalStatus::AutoRenewal && h.renewal_status != policy.status {
                // Cloud-side auto-renew looks at windows from now on.
                h.charged_through = now;
            }
            h.renewal_status = policy.status;
            h.duration = policy.period.n;
            h.period_unit = policy.period.unit;
        }
    }
    to_value(&RequestIdOnly {
        request_id: request_id.to_owned(),
    })
}
