//! `tick`: one window pass as of `--at` (default now), then exit. Also `renew`, the manual
//! renewal through the same engine.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use clap::Args;

use super::output;
use crate::app::{self, Access};
use crate::config::Config;
use crate::domain::HostId;
use crate::domain::protocol::Trigger;
use crate::domain::renew::{RawRenew, validate_renew};
use crate::engine::{Clock, Engine, OffsetClock, PassReport, SystemClock};
use crate::error::{Error, Result};

#[derive(Debug, Args)]
pub struct TickArgs {
    /// The instant the pass runs at (RFC 3339); default now. Signatures still use the real time.
    #[arg(long, value_parser = super::parse_at)]
    pub at: Option<DateTime<Utc>>,
    /// Run the pass up to the send — read the cloud, decide, build the batches and ClientTokens —
    /// and show the requests it would send; write and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: the database alone (no cloud read, no credentials); shows the hosts the
    /// pass would look at, not the requests.
    #[arg(long, requires = "dry_run")]
    pub offline: bool,
    /// The endpoint is an emulator whose clock is set to --at (tests, staging): allow an --at
    /// ahead of the wall clock. Refused unless [ecs] endpoint is on loopback.
    #[arg(long)]
    pub virtual_clock: bool,
    /// Print the pass report as JSON (with the planned requests on a dry run).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    /// The region of every host in --ids (e.g. cn-hangzhou).
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
    /// Pay even when the host's current cycle has no window open (renewed already, or expiring
    /// far ahead) or was renewed since the inventory was read. Shows what will be paid and asks.
    #[arg(long)]
    pub force: bool,
    /// With --force: do not ask (for scripts).
    #[arg(long, requires = "force")]
    pub yes: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The arguments' refusals: a virtual clock off loopback, a real pass in the future, a dry run
/// with no database to read.
fn check_args(config: &Config, args: &TickArgs) -> Result<()> {
    if args.virtual_clock && !loopback_endpoint(config) {
        return Err(Error::Usage(
            "--virtual-clock is for an emulator: [ecs] endpoint must be on loopback (e.g. http://127.0.0.1:18080)".into(),
        ));
    }
    if let Some(at) = args.at
        && at > Utc::now() + chrono::Duration::minutes(1)
        && !args.dry_run
        && !args.virtual_clock
    {
        return Err(Error::Usage(format!(
            "--at {} is in the future: a pass there would pay early and record times that have not happened. Use --dry-run to see what it would do",
            output::zoned(at, config.display.timezone)
        )));
    }
    if args.dry_run && config.database.url.is_none() && !config.database.path.exists() {
        return Err(Error::Usage(format!(
            "no database at {}: nothing to plan (a dry run creates nothing; `hosts import` or `sync` first)",
            config.database.path.display()
        )));
    }
    Ok(())
}

pub async fn tick(config: &Config, args: &TickArgs) -> Result<()> {
    check_args(config, args)?;
    let clock: Arc<dyn Clock> = match args.at {
        Some(at) => Arc::new(OffsetClock::starting_at(at)),
        None => Arc::new(SystemClock),
    };
    if args.offline {
        let engine = app::engine(config, clock, Access::Offline, false).await?;
        let result = engine.plan_offline().await;
        engine.close().await;
        let report = result.map_err(|e| Error::Runtime(e.to_string()))?;
        return print(&report, config, args.json);
    }
    let access = if args.dry_run {
        Access::Read
    } else {
        Access::Act
    };
    let engine = app::engine(config, clock, access, args.virtual_clock).await?;
    let result = engine.pass(Trigger::Tick, args.dry_run).await;
    engine.close().await;
    let report = result.map_err(|e| Error::Runtime(e.to_string()))?;
    print(&report, config, args.json)?;
    match &report.config_error {
        Some(e) => Err(Error::Usage(format!("configuration error: {e}"))),
        None => Ok(()),
    }
}

/// `[ecs] endpoint` names a loopback host (an emulator).
fn loopback_endpoint(config: &Config) -> bool {
    reqwest::Url::parse(&config.ecs.endpoint)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_owned()))
        .is_some_and(|h| crate::net::is_loopback_host(&h))
}

/// `--force` without `--yes`: show what will be paid and ask on the terminal.
async fn confirm_forced(engine: &Engine, args: &RenewArgs) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if args.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(
            "--force pays outside the guards; confirm with --yes (there is no terminal to ask on)"
                .into(),
        ));
    }
    let ids: Vec<HostId> = crate::domain::parse_id_list(&args.ids)
        .unwrap_or_default()
        .iter()
        .filter_map(|i| HostId::parse(i).ok())
        .collect();
    let hosts = engine
        .client()
        .describe_dedicated_hosts(&args.region, Some(&ids))
        .await
        .map_err(|e| Error::Runtime(format!("not sent: cannot read the hosts: {e}")))?;
    println!("--force will pay, outside the usual guards:");
    for h in &hosts {
        println!(
            "  {}  expires {}  + {} {}",
            h.dedicated_host_id,
            h.expired_time,
            args.period,
            args.period_unit.as_deref().unwrap_or("Month")
        );
    }
    print!("Type yes to pay: ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if line.trim() == "yes" {
        Ok(())
    } else {
        Err(Error::Usage("not confirmed; nothing was sent".into()))
    }
}

pub async fn renew(config: &Config, args: &RenewArgs) -> Result<()> {
    let engine = app::engine(config, Arc::new(SystemClock), Access::Act, false).await?;
    if args.force
        && let Err(e) = confirm_forced(&engine, args).await
    {
        engine.close().await;
        return Err(e);
    }
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
        // Renewed elsewhere meanwhile: what was asked for is done (and reported).
        .chain(
            report
                .skipped
                .iter()
                .filter(|s| s.reason != crate::domain::protocol::Skip::RenewedMeanwhile)
                .map(|s| &s.host_id),
        )
        .collect();
    if !not_renewed.is_empty() {
        let list: Vec<&str> = not_renewed.iter().map(|s| s.as_str()).collect();
        return Err(Error::Runtime(format!("not renewed: {}", list.join(", "))));
    }
    Ok(())
}

async fn renew_with(engine: &Engine, args: &RenewArgs) -> Result<PassReport> {
    // Only the named hosts are read; an id that does not parse is reported by validate_renew.
    let named: Vec<crate::domain::HostId> = crate::domain::parse_id_list(&args.ids)
        .unwrap_or_default()
        .iter()
        .filter_map(|id| crate::domain::HostId::parse(id).ok())
        .collect();
    let records: Vec<_> = engine
        .store()
        .hosts_by_ids(&named)
        .await?
        .into_iter()
        .filter(|r| r.removed_at.is_none())
        .collect();
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
        .renew_manual(
            &req.region_id,
            req.ids,
            req.period,
            req.client_token,
            args.force,
        )
        .await
        .map_err(|e| Error::Runtime(e.to_string()))
}

pub fn print(r: &PassReport, config: &Config, json: bool) -> Result<()> {
    if json {
        return output::json(r);
    }
    let window = output::instant_cell(&r.window, config.display.timezone);
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
    print_requests(r);
    print_hosts(r);
    Ok(())
}

/// The requests a pass would send (dry run) or sent, one line each.
fn print_requests(r: &PassReport) {
    for a in &r.planned {
        let hosts: Vec<String> = a.hosts.iter().map(|(h, c)| format!("{h}@{c}")).collect();
        println!(
            "  would send RenewDedicatedHosts {} {} [{}] ClientToken {}",
            a.region_id,
            a.period,
            hosts.join(", "),
            a.client_token
        );
    }
    for a in &r.planned_resends {
        println!(
            "  would re-send attempt {} ClientToken {} [{}] (the recorded request, byte for byte)",
            a.attempt_id,
            a.client_token,
            a.hosts.join(", ")
        );
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
}

/// The hosts that need a reader's attention, by what happened to them.
fn print_hosts(r: &PassReport) {
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
    for s in &r.skipped {
        println!("  not sent: {}: {}", s.host_id, s.detail);
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
}
