//! A seed becomes a world and a schedule: the fleet (policies, periods, regions, cloud-side
//! auto-renew left on for some), the engine's settings, and a day-by-day list of events —
//! passes (some clean; others with faults, a kill at a random moment, a clock jump, a slow
//! `sync` or a second actor alongside), hand renewals, stale re-imports, cloud-side auto-renew
//! switched on. Everything is drawn from the seed, so a schedule can be printed and replayed.

use chrono::{DateTime, Duration, Utc};
use ddh_renewd::domain::{Period, PeriodUnit, RenewalStatus};
use ddh_renewd::emulator::state::FaultRule;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

pub const REGIONS: [&str; 3] = ["cn-hangzhou", "cn-shanghai", "ap-southeast-1"];

/// The first simulated day, 00:00 UTC+8.
pub fn start() -> DateTime<Utc> {
    ddh_renewd::domain::time::parse_instant("2026-12-01T00:00:00+08:00").expect("start")
}

#[derive(Debug, Clone)]
pub struct SimHost {
    pub id: String,
    pub region: &'static str,
    pub expiry: DateTime<Utc>,
    pub status: RenewalStatus,
    pub period: Period,
    pub postpaid: bool,
    /// Cloud-side auto-renew left on from the start.
    pub cloud_auto_renew: bool,
}

#[derive(Debug, Clone)]
pub struct Setup {
    pub seed: u64,
    pub days: u32,
    pub hosts: Vec<SimHost>,
    pub batch_size: u32,
    pub takeover: bool,
    /// The inventory starts with a `sync` (else hosts are imported by hand only).
    pub sync_first: bool,
}

#[derive(Debug, Clone)]
pub struct PassPlan {
    /// The cloud's virtual time when the pass starts.
    pub cloud_at: DateTime<Utc>,
    /// The daemon's clock minus the cloud's, in minutes (a clock jump when not 0).
    pub skew_minutes: i64,
    pub fault_seed: u64,
    pub faults: Vec<FaultRule>,
    /// The pass is dropped (the process dies) this long after it starts.
    pub kill_after_ms: Option<u64>,
    /// A `sync` runs alongside (it does not take the actor lock).
    pub concurrent_sync: bool,
    /// The real binary tries to act on the same database meanwhile (must be refused).
    pub second_actor: bool,
}

impl PassPlan {
    /// No faults, no kill, the right time: a pass in which the cloud accepts every payment.
    pub fn clean(&self) -> bool {
        self.faults.is_empty() && self.kill_after_ms.is_none() && self.skew_minutes == 0
    }
}

#[derive(Debug, Clone)]
pub enum Event {
    Pass(PassPlan),
    /// Renewed by hand, outside ddh-renewd: a given host, or (as an adversary would aim) a host
    /// of an attempt that has no outcome yet, if there is one (`pick` chooses which).
    HandRenew {
        host: String,
        aim_at_open: Option<u64>,
        period: Period,
    },
    /// A person settles the blocked attempts whose request the cloud never applied (they check
    /// billing: the emulator's token memory) as `--not-applied`.
    OperatorSettles,
    /// An old CSV imported again: these hosts' inventory expiries move backwards.
    StaleImport {
        hosts: Vec<(String, DateTime<Utc>)>,
    },
    /// Someone switches cloud-side auto-renew on.
    CloudAutoRenewOn {
        host: String,
    },
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn fleet(rng: &mut StdRng, days: u32) -> Vec<SimHost> {
    let n = rng.random_range(100..=130);
    let periods = [
        (1, PeriodUnit::Week),
        (2, PeriodUnit::Week),
        (1, PeriodUnit::Month),
        (1, PeriodUnit::Month),
        (3, PeriodUnit::Month),
        (1, PeriodUnit::Year),
    ];
    (0..n)
        .map(|i| {
            let roll: f64 = rng.random();
            let (status, postpaid) = match roll {
                r if r < 0.72 => (RenewalStatus::AutoRenewal, false),
                r if r < 0.84 => (RenewalStatus::Normal, false),
                r if r < 0.93 => (RenewalStatus::NotRenewal, false),
                _ => (RenewalStatus::Normal, true),
            };
            let (n, unit) = *pick(rng, &periods);
            let day = rng.random_range(1..=i64::from(days));
            // Most expire at 00:00 UTC+8, some at 09:00.
            let hour = if rng.random_bool(0.1) { 9 } else { 0 };
            SimHost {
                id: format!("dh-s{i:03}"),
                region: REGIONS[rng.random_range(0..REGIONS.len())],
                expiry: start() + Duration::days(day) + Duration::hours(hour),
                status,
                period: Period { n, unit },
                postpaid,
                cloud_auto_renew: !postpaid && rng.random_bool(0.05),
            }
        })
        .collect()
}

fn rule(v: serde_json::Value) -> FaultRule {
    serde_json::from_value(v).expect("fault rule")
}

/// One to three fault rules for a faulty pass.
fn faults(rng: &mut StdRng, hosts: &[SimHost]) -> Vec<FaultRule> {
    let some_host = |rng: &mut StdRng| pick(rng, hosts).id.clone();
    let mut out = Vec::new();
    for _ in 0..rng.random_range(1..=3) {
        let p: f64 = rng.random_range(0.05..0.45);
        let r = match rng.random_range(0..12) {
            0 => {
                json!({"action": "*", "kind": "error", "probability": p, "status": 503, "code": "ServiceUnavailable"})
            }
            1 => {
                json!({"action": "RenewDedicatedHosts", "kind": "apply_then_error", "probability": p, "status": 503, "code": "ServiceUnavailable"})
            }
            2 => {
                json!({"action": "RenewDedicatedHosts", "kind": "apply_then_drop", "probability": p})
            }
            // Processing that outlives the client's timeout (150 ms).
            3 => {
                json!({"action": "RenewDedicatedHosts", "kind": "delay", "probability": p, "ms": rng.random_range(200..600)})
            }
            4 => {
                json!({"action": "*", "kind": "hang", "probability": p / 2.0, "ms": rng.random_range(200..700)})
            }
            5 => json!({"action": "*", "kind": "reset", "probability": p / 2.0}),
            6 => {
                json!({"action": "*", "kind": "error", "probability": p / 2.0, "status": 400, "code": "Throttling.User"})
            }
            7 => {
                json!({"action": "RenewDedicatedHosts", "kind": "error", "status": 400, "code": "InsufficientBalance",
                        "hosts": [some_host(rng), some_host(rng)], "count": rng.random_range(1..4)})
            }
            8 => {
                json!({"action": "RenewDedicatedHosts", "kind": "error", "status": 403, "code": "IncorrectHostStatus",
                        "hosts": [some_host(rng)], "count": 1})
            }
            9 => {
                json!({"action": "RenewDedicatedHosts", "kind": "apply_then_error", "probability": p / 2.0, "status": 400, "code": "InsufficientBalance"})
            }
            10 => {
                json!({"action": "RenewDedicatedHosts", "kind": "apply_then_error", "probability": p / 2.0, "status": 404, "code": "InvalidDedicatedHostId.NotFound"})
            }
            _ => {
                json!({"action": "RenewDedicatedHosts", "kind": "error", "probability": p, "status": 400, "code": "IdempotentProcessing"})
            }
        };
        out.push(rule(r));
    }
    out
}

fn pass(rng: &mut StdRng, hosts: &[SimHost], cloud_at: DateTime<Utc>) -> PassPlan {
    let clean = rng.random_bool(0.45);
    let mut plan = PassPlan {
        cloud_at,
        skew_minutes: 0,
        fault_seed: rng.random(),
        faults: Vec::new(),
        kill_after_ms: None,
        concurrent_sync: rng.random_bool(0.05),
        second_actor: rng.random_bool(0.02),
    };
    if clean {
        return plan;
    }
    if rng.random_bool(0.75) {
        plan.faults = faults(rng, hosts);
    }
    if rng.random_bool(0.45) {
        // Mostly early: most passes are short.
        let ms: f64 = rng.random_range(0.0f64..1.0).powi(2) * 250.0;
        plan.kill_after_ms = Some(ms as u64);
    }
    if rng.random_bool(0.12) {
        // A jump either way: minutes to two days.
        let m = rng.random_range(5..2880);
        plan.skew_minutes = if rng.random_bool(0.5) { m } else { -m };
    }
    if plan.clean() {
        // Drawn faulty, came out clean: make it faulty for sure.
        plan.faults = faults(rng, hosts);
    }
    plan
}

pub fn generate(seed: u64, days: u32) -> (Setup, Vec<Event>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let hosts = fleet(&mut rng, days);
    let setup = Setup {
        seed,
        days,
        batch_size: *pick(&mut rng, &[1, 2, 5, 10, 100]),
        takeover: rng.random_bool(0.3),
        sync_first: rng.random_bool(0.6),
        hosts,
    };
    let prepaid: Vec<&SimHost> = setup.hosts.iter().filter(|h| !h.postpaid).collect();
    let mut events = Vec::new();
    for d in 0..i64::from(days) {
        let morning = start() + Duration::days(d) + Duration::hours(8);
        let minutes = rng.random_range(0..40);
        let first = pass(&mut rng, &setup.hosts, morning + Duration::minutes(minutes));
        let killed = first.kill_after_ms.is_some();
        events.push(Event::Pass(first));
        if killed && rng.random_bool(0.6) {
            // Right after a crash, a person renews a host by hand: aimed at an undecided attempt.
            let h = pick(&mut rng, &prepaid);
            events.push(Event::HandRenew {
                host: h.id.clone(),
                aim_at_open: Some(rng.random()),
                period: Period {
                    n: 1,
                    unit: PeriodUnit::Year,
                },
            });
        }
        if rng.random_bool(0.2) {
            let h = pick(&mut rng, &prepaid);
            let period = *pick(
                &mut rng,
                &[
                    Period {
                        n: 1,
                        unit: PeriodUnit::Month,
                    },
                    Period {
                        n: 1,
                        unit: PeriodUnit::Year,
                    },
                    Period {
                        n: 2,
                        unit: PeriodUnit::Week,
                    },
                ],
            );
            events.push(Event::HandRenew {
                host: h.id.clone(),
                aim_at_open: rng.random_bool(0.4).then(|| rng.random()),
                period,
            });
        }
        if rng.random_bool(0.08) {
            let stale: Vec<(String, DateTime<Utc>)> = (0..rng.random_range(1..6))
                .map(|_| {
                    let h = pick(&mut rng, &prepaid);
                    (
                        h.id.clone(),
                        h.expiry - Duration::days(rng.random_range(0..20)),
                    )
                })
                .collect();
            events.push(Event::StaleImport { hosts: stale });
        }
        if rng.random_bool(0.5) {
            events.push(Event::OperatorSettles);
        }
        if rng.random_bool(0.03) {
            events.push(Event::CloudAutoRenewOn {
                host: pick(&mut rng, &prepaid).id.clone(),
            });
        }
        if rng.random_bool(0.35) {
            // A later pass the same day (a safety pass, a manual tick).
            let later = morning + Duration::minutes(rng.random_range(60..600));
            events.push(Event::Pass(pass(&mut rng, &setup.hosts, later)));
        }
    }
    (setup, events)
}

/// The schedule in words, for a failing seed.
pub fn describe(setup: &Setup, events: &[Event]) -> String {
    let mut out = format!(
        "seed {}: {} hosts, {} days, batch_size {}, takeover {}, sync first {}\n",
        setup.seed,
        setup.hosts.len(),
        setup.days,
        setup.batch_size,
        setup.takeover,
        setup.sync_first
    );
    for h in &setup.hosts {
        out.push_str(&format!(
            "  host {} {} expires {} {} {} {}{}{}\n",
            h.id,
            h.region,
            ddh_renewd::domain::time::to_db(h.expiry),
            h.status,
            h.period.n,
            h.period.unit,
            if h.postpaid { " PostPaid" } else { "" },
            if h.cloud_auto_renew {
                " cloud-auto-renew"
            } else {
                ""
            }
        ));
    }
    for e in events {
        let line = match e {
            Event::Pass(p) => format!(
                "pass at {} skew {}m kill {:?} sync {} second-actor {} faults(seed {}) {}",
                ddh_renewd::domain::time::to_db(p.cloud_at),
                p.skew_minutes,
                p.kill_after_ms,
                p.concurrent_sync,
                p.second_actor,
                p.fault_seed,
                serde_json::to_string(&p.faults).unwrap_or_default()
            ),
            Event::HandRenew {
                host,
                aim_at_open,
                period,
            } => match aim_at_open {
                Some(pick) => format!(
                    "hand renewal by {period} of a host of an open attempt (pick {pick}), else {host}"
                ),
                None => format!("hand renewal of {host} by {period}"),
            },
            Event::OperatorSettles => {
                "an operator settles blocked attempts that were not applied".to_owned()
            }
            Event::StaleImport { hosts } => format!(
                "stale import {}",
                hosts
                    .iter()
                    .map(|(h, e)| format!("{h}@{}", ddh_renewd::domain::time::to_db(*e)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Event::CloudAutoRenewOn { host } => {
                format!("cloud-side auto-renew switched on for {host}")
            }
        };
        out.push_str("  ");
        out.push_str(&line);
        out.push('\n');
    }
    out
}
