//! `tick`: one window pass as of `--at` (default now), then exit. Also `renew`, the manual
//! renewal through the same engine.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::Args;

use super::output::{self, zoned};
use crate::config::Config;
use crate::domain::HostId;
use crate::domain::renew::{RawRenew, validate_renew};
use crate::engine::{ActorLock, Clock, Engine, EngineConfig, OffsetClock, PassReport, SystemClock};
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

/// Builds the engine: config, store, credentials, client, clock.
pub async fn engine(config: &Config, clock: Arc<dyn Clock>) -> Result<Engine> {
    let client = Arc::new(super::sync::client(config)?);
    let store = super::open_store(config).await?;
    Ok(Engine::new(
        store,
        client,
        EngineConfig::from_config(config),
        clock,
    ))
}

fn lock(config: &Config) -> Result<ActorLock> {
    ActorLock::acquire(&config.database.path).map_err(|e| Error::Runtime(e.to_string()))
}

pub async fn tick(config: &Config, args: &TickArgs) -> Result<()> {
    let _lock = if args.dry_run {
        None
    } else {
        Some(lock(config)?)
    };
    let clock: Arc<dyn Clock> = match args.at {
        Some(at) => Arc::new(OffsetClock::starting_at(at)),
        None => Arc::new(SystemClock),
    };
    let engine = engine(config, clock).await?;
    let report = engine
        .pass("tick", args.dry_run)
        .await
        .map_err(|e| Error::Runtime(e.to_string()))?;
    engine.store().clone().close().await;
    print(&report, config, args.json)?;
    match &report.config_error {
        Some(e) => Err(Error::Usage(format!("configuration error: {e}"))),
        None => Ok(()),
    }
}

pub async fn renew(config: &Config, args: &RenewArgs) -> Result<()> {
    let _lock = lock(config)?;
    let engine = engine(config, Arc::new(SystemClock)).await?;
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
    let hosts: Vec<(HostId, DateTime<Utc>)> = req
        .ids
        .iter()
        .filter_map(|id| {
            records
                .iter()
                .find(|r| &r.host.id == id)
                .map(|r| (id.clone(), r.host.expired_time))
        })
        .collect();
    let report = engine
        .renew_manual(&req.region_id, hosts, req.period, req.client_token)
        .await
        .map_err(|e| Error::Runtime(e.to_string()))?;
    engine.store().clone().close().await;
    print(&report, config, args.json)?;
    if let Some(e) = &report.config_error {
        return Err(Error::Usage(e.clone()));
    }
    if !report.failed.is_empty() {
        return Err(Error::Runtime(format!(
            "not renewed: {}",
            report.failed.join(", ")
        )));
    }
    Ok(())
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
    if r.unresolved > 0 {
        println!(
            "  {} attempt(s) left unresolved: resolved first on the next pass",
            r.unresolved
        );
    }
    if let Some(e) = &r.config_error {
        println!("  CONFIGURATION ERROR: {e}");
    }
    Ok(())
}
