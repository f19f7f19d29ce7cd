//! What a person should know about a host beyond its state: the engine will skip it, or the
//! inventory will not be refreshed. Shown by `plan` and `hosts list`, warned about by
//! `policy set`, `hosts add` and `hosts import`.

use serde::Serialize;

use crate::config::Config;
use crate::domain::ChargeType;
use crate::domain::policy::double_renew_risk;
use crate::store::HostRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attention {
    /// Managed here with AutoRenewal and AutoRenewal in the cloud too (last sync), without
    /// `[ecs] takeover`: every pass skips it (SPEC §3.5).
    DoubleRenewRisk,
    /// Its region is not in `[ecs] regions`: `sync` never refreshes it (renewals still re-read
    /// it before sending).
    RegionNotSynced,
}

impl Attention {
    /// The short form for a table cell.
    pub fn cell(self) -> &'static str {
        match self {
            Self::DoubleRenewRisk => "double-renew risk: skipped",
            Self::RegionNotSynced => "region not in [ecs] regions",
        }
    }

    /// The sentence for a warning.
    pub fn warning(self, rec: &HostRecord) -> String {
        match self {
            Self::DoubleRenewRisk => format!(
                "{} is AutoRenewal here and, at the last sync, in the cloud too: every pass skips it (double-renew risk) until the cloud side is set to Normal, or [ecs] takeover = true",
                rec.host.id
            ),
            Self::RegionNotSynced => format!(
                "{} is in region {}, which is not in [ecs] regions: sync will not refresh it (renewals still re-read it before sending); add the region to [ecs] regions",
                rec.host.id, rec.host.region_id
            ),
        }
    }
}

/// Everything that applies to `rec` under `config` (removed and released hosts: nothing).
pub fn of(rec: &HostRecord, config: &Config) -> Vec<Attention> {
    let mut out = Vec::new();
    if rec.removed_at.is_some() || rec.host.status.is_released() {
        return out;
    }
    let cloud = rec.cloud_renewal.as_ref().map(|c| c.status.as_str());
    if rec.host.charge_type == ChargeType::PrePaid
        && !config.ecs.takeover
        && double_renew_risk(rec.effective_policy().status, cloud)
    {
        out.push(Attention::DoubleRenewRisk);
    }
    if !config.ecs.regions.iter().any(|r| r == &rec.host.region_id) {
        out.push(Attention::RegionNotSynced);
    }
    out
}

/// The table cell: every attention joined, or `-`.
pub fn cell(list: &[Attention]) -> String {
    if list.is_empty() {
        "-".to_owned()
    } else {
        list.iter().map(|a| a.cell()).collect::<Vec<_>>().join("; ")
    }
}

/// Prints a `warning:` line on stderr for each attention of `records`: at most
/// [`WARN_EACH`] hosts per kind, then a count (`plan` lists them all).
pub fn warn<'a>(records: impl IntoIterator<Item = &'a HostRecord>, config: &Config) {
    let mut w = Warnings::default();
    for rec in records {
        w.add(rec, config);
    }
    w.finish();
}

/// [`warn`] fed a record at a time (an import, chunk by chunk); printed by
/// [`Warnings::finish`], so that an import that fails later warns about nothing.
#[derive(Default)]
pub struct Warnings {
    lines: Vec<String>,
    shown: [usize; 2],
    more: [usize; 2],
}

impl Warnings {
    pub fn add(&mut self, rec: &HostRecord, config: &Config) {
        for a in of(rec, config) {
            let k = a as usize;
            if self.shown[k] < WARN_EACH {
                self.shown[k] += 1;
                self.lines.push(a.warning(rec));
            } else {
                self.more[k] += 1;
            }
        }
    }

    pub fn finish(self) {
        for line in &self.lines {
            eprintln!("warning: {line}");
        }
        for (a, n) in [Attention::DoubleRenewRisk, Attention::RegionNotSynced]
            .into_iter()
            .zip(self.more)
        {
            if n > 0 {
                eprintln!(
                    "warning: and {n} more host{} with \"{}\" (see `ddh-renewd plan`)",
                    if n == 1 { "" } else { "s" },
                    a.cell()
                );
            }
        }
    }
}

/// How many hosts of one kind `warn` names before it only counts.
pub const WARN_EACH: usize = 5;
