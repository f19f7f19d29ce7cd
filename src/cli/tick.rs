//! `tick`: one window pass as of `--at` (default now), then exit. Also `renew`, the manual
//! renewal through the same engine.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use clap::Args;

use super::output::{self, zoned};
use crate::config::Config;
use crate::domain::protocol::Trigger;
use crate::domain::renew::{RawRenew, validate_renew};
use crate::engine::{Clock, Engine, EngineConfig, OffsetClock, PassReport, SystemClock};
use crate::error::{Error, Result};

#[derive(Debug, Args)]
pub struct TickArgs {
    /// The instant the pass runs at (RFC 3339); default now. Signatures still use the real time.
    #[arg(long, value_parser = super::parse_at)]
    pub at: Option<DateTime<Utc>>,
    /// Show what is due; send and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    #[arg(long)]
    pub region: String,
    /// Host ids: a comma list or a JSON array (1–100).
    #[arg(long)]
    pub ids: String,
    /// Week 1-4; Month 1-9, 12, 24, 36, 48, 60; Year 1-5.
    #[arg(long, allow_negative_numbers = true)]
    pub period: i64,
    /// Week, Month or Year (default Month).
    #[arg(long)]
    pub period_unit: Option<String>,
    /// Your own ClientToken (≤ 64 printable ASCII); default: derived from the request.
    #[arg(long)]
    pub client_token: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// Builds the engine that acts on the database: the lock on the database file, the store, a
/// new epoch, credentials, the client and the clock. `None` for `actor` builds one that only
/// reads (dry run).
pub async fn engine(config: &Config, clock: Arc<dyn Clock>, act: bool) -> Result<Engine> {
    let client = Arc::new(super::sync::client(config)?);
    let schedule = config.schedule.schedule();
    let (store, actor) = if act {
        let (store, actor) = crate::engine::take_database(&config.database.path, schedule)
            .await
            .map_err(Error::Runtime)?;
        (store, Some(actor))
    } else {
        (super::open_store(config).await?, None)
    };
    Ok(Engine::new(
        store,
        client,
        EngineConfig::from_config(config),
        clock,
        actor,
    ))
}

pub async fn tick(config: &Config, args: &TickArgs) -> Result<()> {
    let clock: Arc<dyn Clock> = match args.at {
        Some(at) => Arc::new(OffsetClock::starting_at(at)),
        None => Arc::new(SystemClock),
    };
    let engine = engine(config, clock, !args.dry_run).await?;
    let result = engine.pass(Trigger::Tick, args.dry_run).await;
    engine.close().await;
    let report = result.map_err(|e| Error::Runtime(e.to_string()))?;
    print(&report, config, args.json)?;
    match &report.config_error {
        Some(e) => Err(Error::Usage(format!("configuration error: {e}"))),
        None => Ok(()),
    }
}

pub async fn renew(config: &Config, args: &RenewArgs) -> Result<()> {
    let engine = engine(config, Arc::new(SystemClock), true).await?;
    let result = renew_with(&engine, args).await;
    engine.close().await;
    let report = result?;
    print(&report, config, args.json)?;
    if let Some(e) = &report.config_error {
        return Err(Error::Usage(e.clone()));
    }
    let not_renewed: Vec<&String> = report
        .failed
        .iter()
        .chain(&report.undecided)
        .chain(&report.blocked)
        .chain(&report.skipped_double_renew)
        .chain(&report.gone)
        .collect();
    if !not_renewed.is_empty() {
        let list: Vec<&str> = not_renewed.iter().map(|s| s.as_str()).collect();
        return Err(Error::Runtime(format!("not renewed: {}", list.join(", "))));
    }
    Ok(())
}

async fn renew_with(engine: &Engine, args: &RenewArgs) -> Result<PassReport> {
    let records = engine.store().hosts(false).await?;
    let raw = RawRenew {
        region_id: &args.region,
        ids: &args.ids,
        period: Some(args.period),
        period_unit: args.period_unit.as_deref(),
        client_token: args.client_token.as_deref(),
    };
    let req = validate_renew(&raw, |id| {
        records.iter().find(|r| &r.host.id == id).map(|r| &r.host)
    })?;
    engine
        .renew_manual(&req.region_id, req.ids, req.period, req.client_token)
        .await
        .map_err(|e| Error::Runtime(e.to_string()))
}

pub fn print(r: &PassReport, config: &Config, json: bool) -> Result<()> {
    if json {
        return output::json(r);
    }
    let tz = config.schedule.timezone;
    let window = crate::domain::time::parse_instant(&r.window)
        .map(|w| zoned(w, tz))
        .unwrap_or_else(|_| r.window.clone());
    println!(
        "window {window} ({}{}): {} due, {} renewed, {} already renewed, {} failed, {} lapsed, {} gone, {} notices",
        r.trigger,
        if r.dry_run { ", dry run" } else { "" },
        r.due.len(),
        r.renewed.len(),
        r.already_renewed.len(),
        r.failed.len(),
        r.lapsed.len(),
        r.gone.len(),
        r.notices
    );
    if r.dry_run && !r.due.is_empty() {
        println!("  due: {}", r.due.join(", "));
    }
    for (label, list) in [("resolved", &r.resolved), ("attempt", &r.attempts)] {
        for a in list {
            println!(
                "  {label} {} {} {} {} [{}] → {}{} ({} send{}){}",
                a.attempt_id,
                a.client_token,
                a.region_id,
                a.period,
                a.hosts.join(","),
                a.outcome,
                a.code
                    .as_deref()
                    .map(|c| format!(" {c}"))
                    .unwrap_or_default(),
                a.sends,
                if a.sends == 1 { "" } else { "s" },
                a.request_id
                    .as_deref()
                    .map(|id| format!(" RequestId {id}"))
                    .unwrap_or_default()
            );
        }
    }
    if !r.already_renewed.is_empty() {
        println!(
            "  already renewed (nothing sent): {}",
            r.already_renewed.join(", ")
        );
    }
    if !r.skipped_double_renew.is_empty() {
        println!(
            "  skipped, double-renew risk: {}",
            r.skipped_double_renew.join(", ")
        );
    }
    if !r.lapsed.is_empty() {
        println!("  lapsed: {}", r.lapsed.join(", "));
    }
    if !r.undecided.is_empty() {
        println!(
            "  undecided (no definite answer yet; resolved first on the next pass with the same ClientToken): {}",
            r.undecided.join(", ")
        );
    }
    if !r.blocked.is_empty() {
        println!(
            "  BLOCKED (see `ddh-renewd attempts list --blocked`): {}",
            r.blocked.join(", ")
        );
    }
    if let Some(e) = &r.config_error {
        println!("  CONFIGURATION ERROR: {e}");
    }
    Ok(())
}
