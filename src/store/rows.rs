//! Row mapping: SQLite rows into domain types, and the host diff used by the audit trail.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{StoreError, parse_col};
use crate::domain::period::Period;
use crate::domain::time::{from_db, to_db};
use crate::domain::{ChargeType, Host, HostId, HostStatus, Policy};

/// The SELECT every host read uses; the column order is what [`HostRecord::from_row`] reads.
macro_rules! rows_select {
    () => {
        "SELECT h.host_id, h.region_id, h.zone_id, h.charge_type, h.status, h.expired_time,
                h.sale_cycle, h.financial_lock, h.removed_at, h.created_at, h.updated_at,
                h.cloud_renewal_status, h.cloud_renewal_duration, h.cloud_renewal_unit, h.synced_at,
                h.cloud_expired_time, h.row_version, p.renewal_status, p.duration, p.period_unit
         FROM hosts h LEFT JOIN policies p ON p.host_id = h.host_id"
    };
}

/// [`rows_select!`]'s columns, in its order, as one JSON array (see [`RawHost`]).
/// `$p` is the alias the policy columns are read under.
macro_rules! host_json {
    ($p:literal) => {
        concat!(
            "json_array(h.host_id, h.region_id, h.zone_id, h.charge_type, h.status, h.expired_time,
                h.sale_cycle, h.financial_lock, h.removed_at, h.created_at, h.updated_at,
                h.cloud_renewal_status, h.cloud_renewal_duration, h.cloud_renewal_unit, h.synced_at,
                h.cloud_expired_time, h.row_version, ",
            $p,
            "renewal_status, ",
            $p,
            "duration, ",
            $p,
            "period_unit)"
        )
    };
}

/// The condition "this host's cycle `$cycle` failed definitively in a scheduled attempt of the
/// window bound as `?1`" (rows aliased `h`), for the candidate query.
macro_rules! failed_in_window {
    ($cycle:literal) => {
        concat!(
            "SELECT 1 FROM host_outcomes ho JOIN attempts a ON a.attempt_id = ho.attempt_id
             WHERE ho.host_id = h.host_id AND ho.cycle = ",
            $cycle,
            " AND a.window_at = $1 AND a.kind = 'scheduled'
               AND ho.outcome IN ('failed', 'retries_exhausted', 'config_error')"
        )
    };
}

/// A host as stored, with its policy (if one was ever set) and bookkeeping times.
#[derive(Debug, Clone, Serialize)]
pub struct HostRecord {
    pub host: Host,
    pub policy: Option<Policy>,
    pub removed_at: Option<DateTime<Utc>>,
    /// The cloud-side auto-renew attribute as last read by `sync`.
    pub cloud_renewal: Option<CloudRenewal>,
    pub synced_at: Option<DateTime<Utc>>,
    /// The expiry the cloud showed at the last read (sync or engine), if any.
    pub cloud_expired_time: Option<DateTime<Utc>>,
    /// Bumped by every update of the row; `sync` applies a row only if it is unchanged.
    pub row_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl HostRecord {
    /// The effective policy: the stored one, or `Normal, 1 Month` if none was ever set.
    pub fn effective_policy(&self) -> Policy {
        self.policy.unwrap_or_default()
    }

    pub(super) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        RawHost {
            host_id: Cow::Borrowed(get(r, "host_id")?),
            region_id: get(r, "region_id")?,
            zone_id: get(r, "zone_id")?,
            charge_type: Cow::Borrowed(get(r, "charge_type")?),
            status: get(r, "status")?,
            expired_time: Cow::Borrowed(get(r, "expired_time")?),
            sale_cycle: get(r, "sale_cycle")?,
            financial_lock: get(r, "financial_lock")?,
            removed_at: get::<Option<&str>>(r, "removed_at")?.map(Cow::Borrowed),
            created_at: Cow::Borrowed(get(r, "created_at")?),
            updated_at: Cow::Borrowed(get(r, "updated_at")?),
            cloud_renewal_status: get(r, "cloud_renewal_status")?,
            cloud_renewal_duration: get(r, "cloud_renewal_duration")?,
            cloud_renewal_unit: get(r, "cloud_renewal_unit")?,
            synced_at: get::<Option<&str>>(r, "synced_at")?.map(Cow::Borrowed),
            cloud_expired_time: get::<Option<&str>>(r, "cloud_expired_time")?.map(Cow::Borrowed),
            row_version: get(r, "row_version")?,
            renewal_status: get::<Option<&str>>(r, "renewal_status")?.map(Cow::Borrowed),
            duration: get(r, "duration")?,
            period_unit: get::<Option<&str>>(r, "period_unit")?.map(Cow::Borrowed),
        }
        .into_record()
    }
}

/// A host row as stored, before its values are checked: the columns of `rows_select!`, in
/// order. Filled from a row, or deserialised from the JSON array `rows_packed!` selects (one
/// value per row instead of twenty: the driver's cost is per value, and a million rows read
/// one value each stream several times faster). Either way [`RawHost::into_record`] checks
/// every value; none is defaulted.
#[derive(Debug, serde::Deserialize)]
pub(super) struct RawHost<'a> {
    // Values only parsed are borrowed from the packed text (unless they hold an escape).
    #[serde(borrow)]
    pub(super) host_id: Cow<'a, str>,
    region_id: String,
    zone_id: Option<String>,
    #[serde(borrow)]
    charge_type: Cow<'a, str>,
    status: String,
    #[serde(borrow)]
    expired_time: Cow<'a, str>,
    sale_cycle: Option<String>,
    financial_lock: i64,
    #[serde(borrow)]
    removed_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    created_at: Cow<'a, str>,
    #[serde(borrow)]
    updated_at: Cow<'a, str>,
    cloud_renewal_status: Option<String>,
    cloud_renewal_duration: Option<i64>,
    cloud_renewal_unit: Option<String>,
    #[serde(borrow)]
    synced_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    cloud_expired_time: Option<Cow<'a, str>>,
    row_version: i64,
    #[serde(borrow)]
    renewal_status: Option<Cow<'a, str>>,
    duration: Option<i64>,
    #[serde(borrow)]
    period_unit: Option<Cow<'a, str>>,
}

pub(super) fn instant(col: &'static str, s: &str) -> Result<DateTime<Utc>, StoreError> {
    from_db(s).map_err(|_| StoreError::Corrupt {
        what: format!("column {col} holds {s:?}, not an RFC 3339 time"),
    })
}

pub(super) fn opt_instant(
    col: &'static str,
    s: Option<&str>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    s.map(|s| instant(col, s)).transpose()
}

impl RawHost<'_> {
    pub(super) fn into_record(self) -> Result<HostRecord, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt { what };
        let policy = match (self.renewal_status, self.duration, self.period_unit) {
            (None, _, _) => None,
            (Some(status), Some(n), Some(unit)) => Some(Policy {
                status: parse_col("policies.renewal_status", &status)?,
                period: Period {
                    n: u32::try_from(n)
                        .map_err(|_| corrupt(format!("policies.duration holds {n}")))?,
                    unit: parse_col("policies.period_unit", &unit)?,
                },
            }),
            (Some(_), _, _) => {
                return Err(corrupt(format!(
                    "the policy of {} has no duration or period unit",
                    self.host_id
                )));
            }
        };
        let cloud_renewal = match self.cloud_renewal_status {
            None => None,
            Some(status) => Some(CloudRenewal {
                host_id: self.host_id.clone().into_owned(),
                status,
                duration: self.cloud_renewal_duration.unwrap_or_default(),
                unit: self.cloud_renewal_unit.unwrap_or_default(),
            }),
        };
        let financial_lock = match self.financial_lock {
            0 => false,
            1 => true,
            n => return Err(corrupt(format!("hosts.financial_lock holds {n}"))),
        };
        Ok(HostRecord {
            host: Host {
                id: HostId::parse(&self.host_id).map_err(|e| corrupt(e.into()))?,
                region_id: self.region_id,
                zone_id: self.zone_id,
                charge_type: ChargeType::parse(&self.charge_type).ok_or_else(|| {
                    corrupt(format!("hosts.charge_type holds {:?}", self.charge_type))
                })?,
                status: HostStatus(self.status),
                expired_time: instant("expired_time", &self.expired_time)?,
                sale_cycle: self.sale_cycle,
                financial_lock,
            },
            policy,
            removed_at: opt_instant("removed_at", self.removed_at.as_deref())?,
            cloud_renewal,
            synced_at: opt_instant("synced_at", self.synced_at.as_deref())?,
            cloud_expired_time: opt_instant(
                "cloud_expired_time",
                self.cloud_expired_time.as_deref(),
            )?,
            row_version: self.row_version,
            created_at: instant("created_at", &self.created_at)?,
            updated_at: instant("updated_at", &self.updated_at)?,
        })
    }
}

/// A host's auto-renew attribute on the cloud side (DescribeDedicatedHostAutoRenew), as text:
/// the cloud may use values this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloudRenewal {
    pub host_id: String,
    pub status: String,
    pub duration: i64,
    pub unit: String,
}

/// One row of `v_notices`.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub notice_id: i64,
    pub created_at: String,
    pub day: String,
    pub kind: String,
    pub host_id: String,
    pub cycle: String,
    pub message: String,
}

impl Notice {
    pub(super) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            notice_id: get(r, "notice_id")?,
            created_at: get(r, "created_at")?,
            day: get(r, "day")?,
            kind: get(r, "kind")?,
            host_id: get(r, "host_id")?,
            cycle: get(r, "cycle")?,
            message: get(r, "message")?,
        })
    }
}

/// One row of the policy history.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyChange {
    pub change_id: i64,
    pub changed_at: String,
    pub host_id: String,
    pub old_renewal_status: Option<String>,
    pub old_duration: Option<i64>,
    pub old_period_unit: Option<String>,
    pub new_renewal_status: String,
    pub new_duration: i64,
    pub new_period_unit: String,
    pub source: String,
    pub op_id: i64,
    pub operation: String,
}

impl PolicyChange {
    pub(super) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            change_id: get(r, "change_id")?,
            changed_at: get(r, "changed_at")?,
            host_id: get(r, "host_id")?,
            old_renewal_status: get(r, "old_renewal_status")?,
            old_duration: get(r, "old_duration")?,
            old_period_unit: get(r, "old_period_unit")?,
            new_renewal_status: get(r, "new_renewal_status")?,
            new_duration: get(r, "new_duration")?,
            new_period_unit: get(r, "new_period_unit")?,
            source: get(r, "source")?,
            op_id: get(r, "op_id")?,
            operation: get(r, "operation")?,
        })
    }
}

/// One row of the host change history.
#[derive(Debug, Clone, Serialize)]
pub struct HostChange {
    pub change_id: i64,
    pub changed_at: String,
    pub host_id: String,
    pub kind: String,
    pub field: Option<String>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub source: String,
}

impl HostChange {
    pub(super) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            change_id: get(r, "change_id")?,
            changed_at: get(r, "changed_at")?,
            host_id: get(r, "host_id")?,
            kind: get(r, "kind")?,
            field: get(r, "field")?,
            old_value: get(r, "old_value")?,
            new_value: get(r, "new_value")?,
            source: get(r, "source")?,
        })
    }
}

/// The fields that differ between two versions of a host: `(field, old, new)`.
pub(super) fn diff_hosts(old: &Host, new: &Host) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    let mut cmp = |field, a: String, b: String| {
        if a != b {
            out.push((field, a, b));
        }
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    cmp("region_id", old.region_id.clone(), new.region_id.clone());
    cmp("zone_id", opt(&old.zone_id), opt(&new.zone_id));
    cmp(
        "charge_type",
        old.charge_type.to_string(),
        new.charge_type.to_string(),
    );
    cmp("status", old.status.0.clone(), new.status.0.clone());
    cmp(
        "expired_time",
        to_db(old.expired_time),
        to_db(new.expired_time),
    );
    cmp("sale_cycle", opt(&old.sale_cycle), opt(&new.sale_cycle));
    cmp(
        "financial_lock",
        old.financial_lock.to_string(),
        new.financial_lock.to_string(),
    );
    out
}

pub(super) fn get<'r, T>(r: &'r AnyRow, col: &'static str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    r.try_get(col).map_err(StoreError::sql("decoding a row"))
}
