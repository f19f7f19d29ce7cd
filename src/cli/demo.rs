//! `demo`: a self-contained run on embedded defaults. An in-process emulator holds 30 hosts with
//! mixed policies, units and expiries; `sync` pulls them in, policies are set, and the engine
//! runs at 08:00 UTC+8 on each of 15 virtual days with faults on (dropped answers, errors after
//! the charge, one host that never pays, one that fails twice then pays). It prints a timeline
//! and the audit summary, and checks the emulator's ledger: every renewal exactly once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use clap::Args;
use serde_json::{Value, json};

use super::output;
use crate::config::Config;
use crate::domain::policy::PolicyRequest;
use crate::domain::protocol::Trigger;
use crate::ecs::{ClientOptions, Credentials, EcsClient, RetryPolicy};
use crate::emulator::state::FaultRule;
use crate::emulator::{Emulator, EmulatorConfig, TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET};
use crate::engine::sync::sync;
use crate::engine::{Actor, PassReport};
use crate::engine::{Clock, Engine, SettableClock};
use crate::error::{Error, Result};
use crate::store::{AuditKind, Source, Store};

const START: &str = "2026-12-01T08:00:00+08:00";
const DAYS: i64 = 15;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seed for the injected faults: the same seed prints the same output, byte for byte.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Keep the demo's database at this path (a new file) to query it afterwards.
    #[arg(long, value_name = "PATH")]
    pub keep_db: Option<std::path::PathBuf>,
}

fn runtime(e: impl std::fmt::Display) -> Error {
    Error::Runtime(format!("demo: {e}"))
}

/// One host of the fleet: (id, region, expiry, charge, policy status, duration, unit).
type FleetHost = (
    String,
    &'static str,
    String,
    &'static str,
    &'static str,
    i64,
    &'static str,
);

/// The fleet: twenty AutoRenewal hosts over every period unit, hosts renewed by hand or not at
/// all, pay-as-you-go hosts, and two that cannot pay (one never, one twice).
fn fleet() -> Vec<FleetHost> {
    let hz = |id: String, expiry: String, status, n, unit| -> FleetHost {
        (id, "cn-hangzhou", expiry, "PrePaid", status, n, unit)
    };
    let day = |d: usize| format!("2026-12-{d:02}T16:00Z");
    let mut v: Vec<FleetHost> = (0..20).map(auto_host).collect();
    v.extend((0..4).map(|i| {
        hz(
            format!("dh-manual-{i}"),
            day(6 + 2 * i),
            "Normal",
            1,
            "Month",
        )
    }));
    v.extend((0..2).map(|i| {
        hz(
            format!("dh-norenew-{i}"),
            day(8 + i),
            "NotRenewal",
            1,
            "Month",
        )
    }));
    for i in 0..2 {
        let far = "2999-09-08T16:00Z".to_owned();
        v.push((
            format!("dh-payg-{i}"),
            "cn-shanghai",
            far,
            "PostPaid",
            "",
            0,
            "",
        ));
    }
    v.push(hz("dh-broke".into(), day(9), "AutoRenewal", 1, "Month"));
    v.push(hz(
        "dh-late-payer".into(),
        day(12),
        "AutoRenewal",
        1,
        "Month",
    ));
    v
}

/// AutoRenewal host `i`: expiries from Dec 4 to Dec 23 (UTC+8 midnights), one at 09:00 UTC+8;
/// every third in cn-shanghai; the period units in turn.
fn auto_host(i: usize) -> FleetHost {
    const UNITS: [(i64, &str); 6] = [
        (1, "Month"),
        (1, "Year"),
        (2, "Week"),
        (3, "Month"),
        (6, "Month"),
        (1, "Week"),
    ];
    let region = if i.is_multiple_of(3) {
        "cn-shanghai"
    } else {
        "cn-hangzhou"
    };
    let (n, unit) = UNITS[i % UNITS.len()];
    let expiry = if i == 5 {
        "2026-12-11T01:00Z".to_owned()
    } else {
        format!("2026-12-{:02}T16:00Z", 3 + i)
    };
    let id = format!("dh-auto-{i:02}");
    (id, region, expiry, "PrePaid", "AutoRenewal", n, unit)
}

pub async fn run(args: &DemoArgs) -> Result<()> {
    let wall = Instant::now();
    let dir = tempfile::tempdir().map_err(runtime)?;
    let db = match &args.keep_db {
        Some(p) if p.exists() => {
            return Err(Error::Usage(format!(
                "--keep-db {}: the file exists; name a new one",
                p.display()
            )));
        }
        Some(p) => p.clone(),
        None => dir.path().join("demo.db"),
    };
    let emu = Emulator::start(
        "127.0.0.1:0".parse().map_err(runtime)?,
        EmulatorConfig::test(),
    )
    .await
    .map_err(runtime)?;
    let result = demo(&emu, &db, args.seed, wall, args.keep_db.is_some()).await;
    emu.stop().await;
    result
}

async fn demo(
    emu: &Emulator,
    db: &std::path::Path,
    seed: u64,
    wall: Instant,
    kept: bool,
) -> Result<()> {
    let mut config = Config::default();
    config.database.path = db.to_owned();
    config.ecs.endpoint = emu.endpoint();
    config.ecs.regions = vec!["cn-hangzhou".into(), "cn-shanghai".into()];
    config.ecs.timeout = std::time::Duration::from_secs(2);
    config.schedule.in_window_retry = std::time::Duration::from_secs(20);
    let schedule = config.schedule.schedule();
    let start: DateTime<Utc> = crate::domain::time::parse_instant(START).map_err(runtime)?;

    println!(
        "ddh-renewd demo: an in-process ECS emulator on loopback, {}, 15 virtual days.",
        if kept {
            "a database you keep"
        } else {
            "a temporary database"
        }
    );
    println!(
        "Windows at {} {}, from {} days before expiry; faults on (seed {seed}).\n",
        schedule.time.format("%H:%M"),
        schedule.tz,
        schedule.lead_days
    );

    seed_cloud(emu, start, seed)?;

    let (store, actor, client, clock) = inventory(&config, db, start).await?;

    let mut engine_cfg = crate::app::engine_config(&config);
    // The emulator and the engine share the demo's virtual days; one batch at a time, so that a
    // seed always meets its faults in the same order.
    engine_cfg.virtual_clock = true;
    engine_cfg.concurrency = 1;
    let engine = Engine::new(
        store.clone(),
        client.clone(),
        engine_cfg,
        clock.clone(),
        Some(actor),
    );
    println!("{:<23}  what happened", "window");
    for d in 0..DAYS {
        let at = start + Duration::days(d);
        clock.set(at);
        emu.with_state(|s| s.clock_offset = at - Utc::now());
        let r = engine.pass(Trigger::Tick, false).await.map_err(runtime)?;
        println!(
            "{:<23}  {}",
            output::local_short(at, schedule.tz),
            day_line(&r)
        );
    }

    let exactly_once = summary(&store, emu).await?;
    engine.close().await;
    if kept {
        println!(
            "\nQuery it: `sqlite3 -readonly {} 'SELECT * FROM v_attempts'` (or `--config` on it, e.g. `ddh-renewd audit attempts`).",
            db.display()
        );
    } else {
        println!(
            "\nThe database was temporary; `demo --keep-db demo.db` keeps it to query with `sqlite3 -readonly demo.db 'SELECT * FROM v_attempts'`."
        );
    }
    // Timing varies from run to run: on stderr, so that stdout is the same for a seed.
    eprintln!("demo done in {:.1} s", wall.elapsed().as_secs_f64());
    if !exactly_once {
        return Err(Error::Runtime("demo: the exactly-once check failed".into()));
    }
    Ok(())
}

/// The cloud: the fleet, its clock at the demo's start, and the faults of this seed.
fn seed_cloud(emu: &Emulator, start: DateTime<Utc>, seed: u64) -> Result<()> {
    let hosts: Vec<Value> = fleet()
        .iter()
        .map(|(id, region, expiry, charge, _, _, _)| json!({"DedicatedHostId": id, "RegionId": region, "ChargeType": charge, "ExpiredTime": expiry}))
        .collect();
    emu.add_hosts(&Value::Array(hosts)).map_err(runtime)?;
    emu.with_state(|s| s.clock_offset = start - Utc::now());
    let rules: Vec<FaultRule> = serde_json::from_value(json!([
        {"action": "RenewDedicatedHosts", "hosts": ["dh-broke"], "kind": "error", "status": 400, "code": "InsufficientBalance"},
        {"action": "RenewDedicatedHosts", "hosts": ["dh-late-payer"], "kind": "error", "status": 400, "code": "InsufficientBalance", "count": 2},
        {"action": "RenewDedicatedHosts", "kind": "apply_then_drop", "probability": 0.15},
        {"action": "RenewDedicatedHosts", "kind": "error", "probability": 0.15, "status": 503, "code": "ServiceUnavailable"}
    ]))
    .map_err(runtime)?;
    emu.with_state(|s| s.set_faults(seed, rules));

    Ok(())
}

/// The daemon's side: the database taken, a sync, then policies as an operator would set them.
async fn inventory(
    config: &Config,
    db: &std::path::Path,
    start: DateTime<Utc>,
) -> Result<(Store, Actor, Arc<EcsClient>, Arc<SettableClock>)> {
    let schedule = config.schedule.schedule();
    let (store, actor) =
        crate::engine::take_database(&crate::store::Location::Sqlite(db.to_owned()), schedule)
            .await
            .map_err(runtime)?;
    let opts = ClientOptions {
        endpoint: config.ecs.endpoint.clone(),
        timeout: config.ecs.timeout,
        quota_per_minute: config.ecs.quota_per_minute,
        retry: RetryPolicy::default(),
    };
    let client = Arc::new(
        EcsClient::new(
            &opts,
            Credentials::new(TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET),
        )
        .map_err(runtime)?,
    );
    let clock = Arc::new(SettableClock::new(start - Duration::days(1)));
    let report = sync(&store, &client, &config.ecs.regions, false, false, || {
        clock.now()
    })
    .await
    .map_err(runtime)?;
    let pulled: usize = report.regions.iter().map(|r| r.added).sum();
    println!(
        "sync: {pulled} hosts pulled from 2 regions in {} calls",
        report.calls.values().sum::<u64>()
    );
    let mut groups: BTreeMap<(&str, &str, i64, &str), Vec<String>> = BTreeMap::new();
    for (id, region, _, charge, status, n, unit) in fleet() {
        if charge == "PrePaid" {
            groups
                .entry((region, status, n, unit))
                .or_default()
                .push(id);
        }
    }
    for ((region, status, n, unit), ids) in &groups {
        let req = PolicyRequest {
            region_id: (*region).to_owned(),
            ids: ids.clone(),
            renewal_status: Some((*status).to_owned()),
            duration: Some(*n),
            period_unit: Some((*unit).to_owned()),
            ..Default::default()
        };
        store.set_policy(&req, Source::Cli, clock.now()).await?;
    }
    println!(
        "policy set: {} groups (AutoRenewal, Normal, NotRenewal; Week, Month, Year)\n",
        groups.len()
    );

    Ok((store, actor, client, clock))
}

/// What one day's pass did, in a line.
fn day_line(r: &PassReport) -> String {
    let sends: u64 = r
        .attempts
        .iter()
        .chain(&r.resolved)
        .map(|a| u64::from(a.sends))
        .sum();
    let attempts = r.attempts.len() + r.resolved.len();
    let mut parts = Vec::new();
    if !r.renewed.is_empty() {
        parts.push(format!(
            "renewed {} [{}]",
            r.renewed.len(),
            short(&r.renewed)
        ));
    }
    if sends > attempts as u64 {
        parts.push(plural(
            sends - attempts as u64,
            "re-send with the same ClientToken",
            "re-sends with the same ClientToken",
        ));
    }
    let failed: Vec<String> = r
        .attempts
        .iter()
        .filter(|a| a.outcome == "failed")
        .flat_map(|a| {
            a.hosts
                .iter()
                .map(|h| format!("{h} ({})", a.code.as_deref().unwrap_or("?")))
        })
        .collect();
    if !failed.is_empty() {
        parts.push(format!("failed {}", failed.join(", ")));
    }
    let splits = r.attempts.iter().filter(|a| a.outcome == "split").count();
    if splits > 0 {
        parts.push(plural(
            splits as u64,
            "batch split to isolate the failing host",
            "batch splits to isolate the failing host",
        ));
    }
    if !r.already_renewed.is_empty() {
        parts.push(format!("already renewed {}", short(&r.already_renewed)));
    }
    if !r.lapsed.is_empty() {
        parts.push(format!("LAPSED {}", r.lapsed.join(", ")));
    }
    if r.notices > 0 {
        parts.push(plural(r.notices as u64, "notice", "notices"));
    }
    if parts.is_empty() {
        parts.push("nothing due".into());
    }
    parts.join("; ")
}

/// The audit summary, from the views auditors query, and the exactly-once check against the
/// emulator's ledger: `true` if no cycle was paid twice and every paid token was written ahead.
async fn summary(store: &Store, emu: &Emulator) -> Result<bool> {
    println!("\naudit summary (v_attempts, v_notices, v_windows):");
    let (cols, attempts) = store.audit_all(AuditKind::Attempts, None, None).await?;
    let col = |name: &str| cols.iter().position(|c| c == name).unwrap_or(usize::MAX);
    let (outcome_col, token_col) = (col("outcome"), col("client_token"));
    let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
    for row in &attempts {
        if let Some(o) = row.get(outcome_col).and_then(Value::as_str) {
            *by_outcome.entry(o.to_owned()).or_default() += 1;
        }
    }
    let ids: std::collections::BTreeSet<i64> = attempts
        .iter()
        .filter_map(|r| r.first().and_then(Value::as_i64))
        .collect();
    println!(
        "  attempts: {} ({} host rows) — {}",
        ids.len(),
        attempts.len(),
        fmt_counts(&by_outcome)
    );
    let (ncols, notices) = store.audit_all(AuditKind::Notices, None, None).await?;
    let kind_col = ncols.iter().position(|c| c == "kind").unwrap_or(usize::MAX);
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for n in &notices {
        if let Some(k) = n.get(kind_col).and_then(Value::as_str) {
            *kinds.entry(k.to_owned()).or_default() += 1;
        }
    }
    println!("  notices: {}", fmt_counts(&kinds));
    let (_, windows) = store.audit_all(AuditKind::Windows, None, None).await?;
    println!("  window runs: {}", windows.len());
    let (ledger, tokens_ok) = emu.with_state(|s| {
        let tokens: std::collections::HashSet<&str> = attempts
            .iter()
            .filter_map(|r| r.get(token_col).and_then(Value::as_str))
            .collect();
        let ok = s.ledger.iter().all(|e| {
            e.client_token
                .as_deref()
                .is_some_and(|t| tokens.contains(t))
        });
        (s.ledger.clone(), ok)
    });
    // Exactly once per cycle: a host may renew again in a later cycle (weekly periods do).
    let mut per_cycle: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for e in &ledger {
        *per_cycle
            .entry((e.dedicated_host_id.as_str(), e.expired_time_before.as_str()))
            .or_default() += 1;
    }
    let hosts: std::collections::BTreeSet<&str> = per_cycle.keys().map(|(h, _)| *h).collect();
    let twice = per_cycle.values().filter(|c| **c > 1).count();
    println!(
        "  emulator ledger: {} renewals = {} cycles of {} hosts; cycles renewed twice: {twice}; every ledger ClientToken written ahead: {}",
        ledger.len(),
        per_cycle.len(),
        hosts.len(),
        if tokens_ok { "yes" } else { "NO" }
    );
    let requests = emu.with_state(|s| s.log.len());
    println!(
        "  {} API requests, all V3-signed and verified by the emulator",
        requests
    );
    Ok(twice == 0 && tokens_ok)
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn short(ids: &[String]) -> String {
    if ids.len() <= 4 {
        ids.join(", ")
    } else {
        format!("{}, … +{}", ids[..3].join(", "), ids.len() - 3)
    }
}

fn fmt_counts(m: &BTreeMap<String, usize>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
