//! The fault-schedule simulator: the proof of exactly-once (SPEC §3.1, docs/exactly-once.md).
//!
//! Each seed draws a fleet (100–130 hosts, mixed policies, periods and regions, some with
//! cloud-side auto-renew left on) and 30 simulated days of events: passes of the real engine
//! against the real emulator over loopback — many with faults of every kind (including
//! processing that outlives the client), some killed at a random moment, some with the clock
//! jumped either way, some with a slow `sync` or the real binary as a second actor alongside —
//! and between them hand renewals, stale re-imports and cloud-side auto-renew switched on. The
//! checker (`check.rs`) then judges the emulator's ledger.
//!
//! ```text
//! cargo test --test simulate                                   # 200 seeds (what CI runs)
//! cargo test --release --test simulate -- --seeds 10000 --jobs 8
//! cargo test --release --test simulate -- --seed 4242 --verbose  # replay one seed
//! ```
//! Options: `--first N` (first seed, default 0), `--seeds N` (default 200, or
//! `$DDH_SIM_SEEDS`), `--seed N` (just that one), `--days N` (default 30), `--jobs N`
//! (seeds at once, default 6), `--verbose` (print every seed's figures). Exit 1 on a violation;
//! each failing seed prints its schedule and the command that replays it. Timing-dependent
//! interleavings (which await a kill lands on) can differ between runs of one seed.

mod check;
#[path = "../common/mod.rs"]
mod common;
mod schedule;
mod world;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;

struct Args {
    first: u64,
    seeds: u64,
    days: u32,
    jobs: usize,
    verbose: bool,
    /// The two-node mode: the store on PostgreSQL, every kill a takeover by the other node.
    postgres: bool,
}

fn parse() -> Result<Option<Args>, String> {
    let mut a = Args {
        first: 0,
        seeds: std::env::var("DDH_SIM_SEEDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(200),
        days: 30,
        jobs: 6,
        verbose: false,
        postgres: std::env::var_os("DDH_SIM_POSTGRES").is_some(),
    };
    let mut filters = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} takes a number"))
        };
        match arg.as_str() {
            "--first" => a.first = num("--first")?,
            "--seeds" => a.seeds = num("--seeds")?,
            "--seed" => {
                a.first = num("--seed")?;
                a.seeds = 1;
                a.verbose = true;
            }
            "--days" => a.days = u32::try_from(num("--days")?).map_err(|e| e.to_string())?,
            "--jobs" => {
                a.jobs = usize::try_from(num("--jobs")?)
                    .map_err(|e| e.to_string())?
                    .max(1)
            }
            "--verbose" | "-v" => a.verbose = true,
            "--postgres" => a.postgres = true,
            // What cargo's test harness would take: ignored here.
            "--nocapture" | "--quiet" | "-q" | "--test-threads" | "--include-ignored"
            | "--ignored" => {}
            s if s.starts_with("--") => {}
            filter => filters.push(filter.to_owned()),
        }
    }
    // `cargo test <filter>` passes the filter to every test binary: run only if it names us.
    if !filters.is_empty() && !filters.iter().any(|f| "simulate".contains(f.as_str())) {
        return Ok(None);
    }
    Ok(Some(a))
}

struct SeedResult {
    seed: u64,
    violations: Vec<String>,
    stats: world::Stats,
    description: String,
    secs: f64,
}

async fn run_seed(
    seed: u64,
    days: u32,
    bin: String,
    pg: Option<Arc<common::pg::Postgres>>,
) -> SeedResult {
    let t = Instant::now();
    let (setup, events) = schedule::generate(seed, days);
    let mut w = world::World::new(&setup, &bin, pg.as_deref()).await;
    w.seed_inventory(&setup).await;
    for e in &events {
        w.apply(&setup, e).await;
    }
    let facts = w.finish().await;
    let violations = check::check(&setup, &facts);
    let description = if violations.is_empty() {
        String::new()
    } else {
        schedule::describe(&setup, &events)
    };
    SeedResult {
        seed,
        violations,
        stats: facts.stats,
        description,
        secs: t.elapsed().as_secs_f64(),
    }
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("simulate: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("simulate: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bin = env!("CARGO_BIN_EXE_ddh-renewd").to_owned();
    let pg = if args.postgres {
        match common::pg::Postgres::start() {
            Some(pg) => Some(Arc::new(pg)),
            None => {
                eprintln!("simulate: --postgres needs PostgreSQL (apt-get install postgresql)");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let wall = Instant::now();
    println!(
        "simulate: seeds {}..{} ({} simulated days each), {} at a time, store on {}",
        args.first,
        args.first + args.seeds,
        args.days,
        args.jobs,
        if args.postgres {
            "PostgreSQL (two nodes)"
        } else {
            "SQLite"
        }
    );
    let results: Vec<SeedResult> = rt.block_on(async {
        let sem = Arc::new(Semaphore::new(args.jobs));
        let mut tasks = tokio::task::JoinSet::new();
        for seed in args.first..args.first + args.seeds {
            let (sem, bin, pg) = (sem.clone(), bin.clone(), pg.clone());
            let days = args.days;
            tasks.spawn(async move {
                let _p = sem.acquire_owned().await;
                run_seed(seed, days, bin, pg).await
            });
        }
        let mut out = Vec::new();
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(r) => {
                    if args.verbose {
                        println!(
                            "seed {}: {} passes ({} clean, {} killed), {} ledger entries, {} attempts, {} blocked, {:.1} s{}",
                            r.seed,
                            r.stats.passes,
                            r.stats.clean_passes,
                            r.stats.kills,
                            r.stats.ledger,
                            r.stats.attempts,
                            r.stats.blocked,
                            r.secs,
                            if r.violations.is_empty() { "" } else { " — VIOLATIONS" }
                        );
                    }
                    out.push(r);
                }
                Err(e) => eprintln!("simulate: a seed panicked: {e}"),
            }
        }
        out
    });
    let panicked = args.seeds as usize - results.len();
    report(&args, &results, wall.elapsed().as_secs_f64());
    let failing: Vec<&SeedResult> = results
        .iter()
        .filter(|r| !r.violations.is_empty())
        .collect();
    for r in &failing {
        println!("\nseed {} VIOLATES:", r.seed);
        for v in &r.violations {
            println!("  - {v}");
        }
        println!("schedule:\n{}", r.description);
        println!(
            "replay: cargo test --release --test simulate -- --seed {} --days {}",
            r.seed, args.days
        );
    }
    if failing.is_empty() && panicked == 0 {
        println!("simulate: 0 violations");
        ExitCode::SUCCESS
    } else {
        println!(
            "simulate: {} seeds with violations, {panicked} panicked",
            failing.len()
        );
        ExitCode::FAILURE
    }
}

fn report(args: &Args, results: &[SeedResult], wall: f64) {
    let mut faults: BTreeMap<String, u64> = BTreeMap::new();
    let mut t = world::Stats::default();
    for r in results {
        let s = &r.stats;
        t.passes += s.passes;
        t.clean_passes += s.clean_passes;
        t.kills += s.kills;
        t.hand_renewals += s.hand_renewals;
        t.stale_imports += s.stale_imports;
        t.concurrent_syncs += s.concurrent_syncs;
        t.second_actors += s.second_actors;
        t.clock_jumps += s.clock_jumps;
        t.cloud_auto_renew_on += s.cloud_auto_renew_on;
        t.aimed_hand_renewals += s.aimed_hand_renewals;
        t.settled += s.settled;
        t.dry_runs += s.dry_runs;
        t.dry_sends += s.dry_sends;
        t.ledger += s.ledger;
        t.attempts += s.attempts;
        t.blocked += s.blocked;
        t.takeovers_ms.extend(&s.takeovers_ms);
        for (k, n) in &s.faults {
            *faults.entry(k.clone()).or_default() += n;
        }
    }
    println!(
        "simulate: {} seeds × {} days = {} simulated days in {:.0} s",
        results.len(),
        args.days,
        results.len() as u64 * u64::from(args.days),
        wall
    );
    println!(
        "  passes {} (clean {}), kills {}, clock jumps {}, concurrent syncs {}, second actors {}",
        t.passes, t.clean_passes, t.kills, t.clock_jumps, t.concurrent_syncs, t.second_actors
    );
    println!(
        "  hand renewals {} ({} aimed at hosts of open attempts), stale re-imports {}, cloud-side auto-renew switched on {}",
        t.hand_renewals, t.aimed_hand_renewals, t.stale_imports, t.cloud_auto_renew_on
    );
    println!(
        "  ledger entries {}, attempts {}, blocked attempts {} ({} settled by the operator)",
        t.ledger, t.attempts, t.blocked, t.settled
    );
    println!(
        "  dry runs before clean passes {}: {} planned sends, each matched by the real pass",
        t.dry_runs, t.dry_sends
    );
    if args.postgres {
        let mut ms = t.takeovers_ms.clone();
        ms.sort_unstable();
        println!(
            "  two nodes on PostgreSQL: {} failovers with requests in flight (a kill, then the other node takes the lead: session lock, new epoch); from kill to lead: median {} ms, max {} ms",
            ms.len(),
            ms.get(ms.len() / 2).copied().unwrap_or(0),
            ms.last().copied().unwrap_or(0)
        );
    }
    println!(
        "  faults injected: {}",
        faults
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
