//! `plan`: where every host stands at an instant and when the engine will act next.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use clap::Args;
use serde::Serialize;

use super::attention::{self, Attention};
use super::output::{self, local_short, or_dash, utc, zoned};
use crate::config::Config;
use crate::domain::plan::{HostPlan, HostState, plan_host};
use crate::domain::window::WindowMemo;
use crate::error::Result;
use crate::store::PlannedHost;
use futures_util::StreamExt;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The instant to plan at (RFC 3339 or yyyy-MM-ddTHH:mmZ); default now.
    #[arg(long, value_parser = super::parse_at)]
    pub at: Option<DateTime<Utc>>,
    /// Only hosts with a window within N days of --at (due hosts always show).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub days: Option<u32>,
    /// Print one JSON array.
    #[arg(long)]
    pub json: bool,
}

/// One element of `plan --json`: exactly these keys.
#[derive(Debug, Serialize)]
pub struct PlanEntry {
    pub host_id: String,
    pub region_id: String,
    pub charge_type: String,
    pub expired_time: String,
    pub renewal_status: String,
    pub duration: u32,
    pub period_unit: String,
    pub state: String,
    pub next_window: Option<String>,
    pub last_window: Option<String>,
    /// Whole days from the plan's instant to the expiry (negative once expired); `null` for
    /// released and pay-as-you-go hosts.
    pub days_left: Option<i64>,
    /// What the engine will do differently from the state (`double_renew_risk`: skipped) or
    /// what is not kept fresh (`region_not_synced`).
    pub attention: Vec<Attention>,
}

/// Plan entries of many hosts. Hosts share expiries and windows, so the windows are remembered
/// per expiry and their text per instant: a million hosts cost a few thousand time-zone
/// conversions, not tens of millions.
pub struct Planner<'a> {
    config: &'a Config,
    windows: WindowMemo,
    text: HashMap<DateTime<Utc>, (String, String)>,
}

impl<'a> Planner<'a> {
    pub fn new(config: &'a Config) -> Self {
        Self {
            config,
            windows: WindowMemo::new(config.schedule.schedule()),
            text: HashMap::new(),
        }
    }

    /// An instant as RFC 3339 in UTC and in the schedule's zone.
    fn text(&mut self, t: DateTime<Utc>) -> &(String, String) {
        if self.text.len() >= WindowMemo::LIMIT && !self.text.contains_key(&t) {
            self.text.clear();
        }
        let tz = self.windows.schedule().tz;
        self.text.entry(t).or_insert_with(|| (utc(t), zoned(t, tz)))
    }

    /// The plan entry of one host at `at`; `None` when `horizon` is set and the host has no
    /// window at or before it.
    pub fn entry(
        &mut self,
        ph: &PlannedHost,
        at: DateTime<Utc>,
        horizon: Option<DateTime<Utc>>,
    ) -> Option<PlanEntry> {
        let rec = &ph.record;
        let policy = rec.effective_policy();
        let HostPlan {
            state,
            next_window,
            last_window,
        } = plan_host(&rec.host, &policy, &mut self.windows, at, ph.history);
        if let Some(h) = horizon
            && next_window.is_none_or(|w| w > h)
        {
            return None;
        }
        Some(PlanEntry {
            host_id: rec.host.id.to_string(),
            region_id: rec.host.region_id.clone(),
            charge_type: rec.host.charge_type.to_string(),
            expired_time: self.text(rec.host.expired_time).0.clone(),
            renewal_status: policy.status.to_string(),
            duration: policy.period.n,
            period_unit: policy.period.unit.to_string(),
            state: state.to_string(),
            next_window: next_window.map(|w| self.text(w).1.clone()),
            last_window: last_window.map(|w| self.text(w).1.clone()),
            days_left: (!matches!(state, HostState::Released | HostState::Postpaid))
                .then(|| output::days_left(rec.host.expired_time, at)),
            attention: attention::of(rec, self.config),
        })
    }
}

/// The table for people (JSON is streamed by [`run`]).
fn print_table(entries: &[PlanEntry], tz: chrono_tz::Tz, at: DateTime<Utc>) -> Result<()> {
    let short = |s: &Option<String>| {
        or_dash(
            s.as_deref()
                .and_then(|v| crate::domain::time::parse_instant(v).ok())
                .map(|t| local_short(t, tz)),
        )
    };
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.host_id.clone(),
                e.region_id.clone(),
                e.charge_type.clone(),
                short(&Some(e.expired_time.clone())),
                match (
                    e.days_left,
                    crate::domain::time::parse_instant(&e.expired_time),
                ) {
                    (Some(_), Ok(t)) => output::days_left_cell(t, at),
                    _ => "-".to_owned(),
                },
                format!("{} {} {}", e.renewal_status, e.duration, e.period_unit),
                e.state.clone(),
                short(&e.next_window),
                short(&e.last_window),
                attention::cell(&e.attention),
            ]
        })
        .collect();
    output::table(
        &[
            "HOST",
            "REGION",
            "CHARGE",
            "EXPIRES",
            "DAYS LEFT",
            "POLICY",
            "STATE",
            "NEXT WINDOW",
            "LAST WINDOW",
            "ATTENTION",
        ],
        &rows,
    );
    Ok(())
}

pub async fn run(config: &Config, args: &PlanArgs) -> Result<()> {
    let store = crate::app::store(config).await?;
    let at = args.at.unwrap_or_else(Utc::now);
    let horizon = args.days.map(|d| at + Duration::days(i64::from(d)));
    let mut planner = Planner::new(config);
    let mut rows = store.planned_hosts(false);
    let result = if args.json {
        let mut out = output::JsonArray::stdout();
        while let Some(ph) = rows.next().await {
            if let Some(e) = planner.entry(&ph?, at, horizon) {
                out.push(&e)?;
            }
        }
        out.finish()
    } else {
        let mut entries = Vec::new();
        while let Some(ph) = rows.next().await {
            entries.extend(planner.entry(&ph?, at, horizon));
        }
        print_table(&entries, config.display.timezone, at)
    };
    drop(rows);
    store.close().await;
    result
}
