//! Runs one schedule: the real engine (as a fresh "process" per pass: lock, store, epoch, pass,
//! close) against a real emulator over loopback, with a real SQLite file. A kill drops the pass
//! future wherever it is (every task it spawned is aborted at its next await); the emulator
//! keeps processing what had arrived.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ddh_renewd::config::Config;
use ddh_renewd::domain::protocol::Trigger;
use ddh_renewd::domain::{ChargeType, Host, HostId, HostStatus, Policy, RenewalStatus};
use ddh_renewd::ecs::{Credentials, EcsClient, RetryPolicy};
use ddh_renewd::emulator::state::LedgerEntry;
use ddh_renewd::emulator::{Emulator, EmulatorConfig, TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET};
use ddh_renewd::engine::{Engine, EngineConfig, SettableClock};
use ddh_renewd::store::Location;
use ddh_renewd::store::{HostInput, Source, Store};
use serde_json::{Value, json};

use super::schedule::{Event, PassPlan, REGIONS, Setup, start};

/// A clean pass that completed: when, and every host's cloud expiry and lock at its start.
#[derive(Debug, Clone)]
pub struct CleanPass {
    pub cloud_at: DateTime<Utc>,
    pub expiries: HashMap<String, (DateTime<Utc>, bool)>,
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// PostgreSQL mode: from each kill to the next node's lead (lock taken, epoch claimed).
    pub takeovers_ms: Vec<u64>,
    pub passes: u64,
    pub clean_passes: u64,
    pub kills: u64,
    pub hand_renewals: u64,
    pub stale_imports: u64,
    pub concurrent_syncs: u64,
    pub second_actors: u64,
    pub clock_jumps: u64,
    pub cloud_auto_renew_on: u64,
    pub aimed_hand_renewals: u64,
    pub settled: u64,
    /// Clean passes preceded by a dry run, and the sends they planned (all must match).
    pub dry_runs: u64,
    pub dry_sends: u64,
    pub faults: BTreeMap<String, u64>,
    pub ledger: u64,
    pub attempts: u64,
    pub blocked: u64,
}

/// What the checker needs, read after the run.
pub struct Facts {
    pub ledger: Vec<LedgerEntry>,
    /// ClientToken → host → cycle, from the write-ahead records.
    pub attempts: HashMap<String, HashMap<String, String>>,
    /// (host, kind) of every notice.
    pub notices: Vec<(String, String)>,
    pub clean: Vec<CleanPass>,
    pub violations: Vec<String>,
    pub stats: Stats,
}

fn config(setup: &Setup, db: &Path, endpoint: &str) -> Config {
    let mut c = Config::default();
    c.database.path = db.to_owned();
    c.ecs.endpoint = endpoint.to_owned();
    c.ecs.regions = REGIONS.iter().map(|r| (*r).to_owned()).collect();
    c.ecs.timeout = Duration::from_millis(150);
    c.ecs.batch_size = setup.batch_size;
    c.ecs.takeover = setup.takeover;
    c.schedule.in_window_retry = Duration::from_millis(800);
    c
}

fn client(c: &Config) -> Arc<EcsClient> {
    let mut opts = ddh_renewd::app::client_options(&c.ecs);
    opts.retry = RetryPolicy {
        max_attempts: 5,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(40),
        max_elapsed: Duration::from_secs(5),
    };
    Arc::new(
        EcsClient::new(
            &opts,
            Credentials::new(TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET),
        )
        .expect("client"),
    )
}

fn engine_config(c: &Config) -> EngineConfig {
    let mut e = ddh_renewd::app::engine_config(c);
    e.backoff_base = Duration::from_millis(10);
    e.backoff_cap = Duration::from_millis(100);
    e.virtual_clock = true;
    e
}

fn inventory(setup: &Setup, expiry_of: &HashMap<String, DateTime<Utc>>) -> Vec<HostInput> {
    setup
        .hosts
        .iter()
        .filter(|h| expiry_of.contains_key(&h.id))
        .map(|h| HostInput {
            host: Host {
                id: HostId::parse(&h.id).expect("id"),
                region_id: h.region.to_owned(),
                zone_id: None,
                charge_type: if h.postpaid {
                    ChargeType::PostPaid
                } else {
                    ChargeType::PrePaid
                },
                status: HostStatus::available(),
                expired_time: expiry_of[&h.id],
                sale_cycle: None,
                financial_lock: false,
            },
            policy: (!h.postpaid).then_some(Policy {
                status: h.status,
                period: h.period,
            }),
        })
        .collect()
}

pub struct World {
    emu: Emulator,
    cfg: Config,
    /// The store: the SQLite file, or (`--postgres`) a database of its own on the cluster.
    location: Location,
    /// When the last pass was killed (PostgreSQL mode: the next take is a takeover).
    killed_at: Option<Instant>,
    dir: tempfile::TempDir,
    bin: String,
    stats: Stats,
    clean: Vec<CleanPass>,
    violations: Vec<String>,
}

impl World {
    pub async fn new(setup: &Setup, bin: &str, pg: Option<&crate::common::pg::Postgres>) -> Self {
        let shm = Path::new("/dev/shm");
        let mut dir = if shm.is_dir() {
            tempfile::tempdir_in(shm).expect("tempdir")
        } else {
            tempfile::tempdir().expect("tempdir")
        };
        if std::env::var_os("DDH_SIM_KEEP").is_some() {
            dir.disable_cleanup(true);
            println!(
                "seed {}: database kept in {}",
                setup.seed,
                dir.path().display()
            );
        }
        let emu = Emulator::start("127.0.0.1:0".parse().expect("addr"), EmulatorConfig::test())
            .await
            .expect("emulator");
        let mut cfg = config(setup, &dir.path().join("sim.db"), &emu.endpoint());
        let location = match pg {
            None => Location::Sqlite(cfg.database.path.clone()),
            Some(pg) => {
                let db = format!("sim_{}", setup.seed);
                pg.create_db(&db);
                cfg.database.url = Some(pg.url(&db));
                Location::Postgres {
                    url: pg.url(&db),
                    password: Some(crate::common::pg::PASSWORD.into()),
                }
            }
        };
        let hosts: Vec<Value> = setup
            .hosts
            .iter()
            .map(|h| {
                let mut v = json!({"DedicatedHostId": h.id, "RegionId": h.region,
                    "ChargeType": if h.postpaid { "PostPaid" } else { "PrePaid" }});
                if !h.postpaid {
                    v["ExpiredTime"] = json!(ddh_renewd::domain::time::to_db(h.expiry));
                }
                if h.cloud_auto_renew {
                    v["RenewalStatus"] = json!("AutoRenewal");
                    v["Duration"] = json!(1);
                    v["PeriodUnit"] = json!("Month");
                }
                v
            })
            .collect();
        emu.with_state(|s| s.set_clock(start()));
        emu.add_hosts(&Value::Array(hosts)).expect("hosts");
        let database = match &cfg.database.url {
            Some(url) => format!("url = {url:?}"),
            None => format!("path = {:?}", cfg.database.path.display().to_string()),
        };
        let text = format!(
            "[database]\n{database}\n[ecs]\nendpoint = \"{}\"\nregions = [\"cn-hangzhou\"]\ntimeout = \"1s\"\n",
            emu.endpoint()
        );
        std::fs::write(dir.path().join("sim.toml"), text).expect("config");
        Self {
            emu,
            cfg,
            location,
            killed_at: None,
            dir,
            bin: bin.to_owned(),
            stats: Stats::default(),
            clean: Vec::new(),
            violations: Vec::new(),
        }
    }

    fn schedule(&self) -> ddh_renewd::domain::Schedule {
        self.cfg.schedule.schedule()
    }

    async fn store(&self) -> Store {
        Store::open_at(&self.location, self.schedule())
            .await
            .expect("store")
    }

    /// The inventory before the first pass: a sync (or not), then the policies, by hand.
    pub async fn seed_inventory(&mut self, setup: &Setup) {
        let store = self.store().await;
        let at = start() - chrono::Duration::hours(1);
        if setup.sync_first {
            let c = client(&self.cfg);
            ddh_renewd::engine::sync::sync(&store, &c, &self.cfg.ecs.regions, false, false, || at)
                .await
                .expect("sync");
        }
        let expiry_of: HashMap<String, DateTime<Utc>> = setup
            .hosts
            .iter()
            .map(|h| {
                let e = if h.postpaid {
                    ddh_renewd::domain::time::parse_instant("2999-09-08T16:00Z").expect("t")
                } else {
                    h.expiry
                };
                (h.id.clone(), e)
            })
            .collect();
        store
            .upsert_hosts(
                &inventory(setup, &expiry_of),
                "hosts_import",
                Source::Import,
                "sim",
                at,
            )
            .await
            .expect("import");
        store.close().await;
    }

    /// Waits until nothing is on the wire: every connection closed and every request that
    /// arrived processed (delays and hangs are bounded, so this ends). A killed pass can leave a
    /// request in flight that reaches the emulator only later; the next event starts after it.
    async fn wait_idle(&mut self) {
        let until = Instant::now() + Duration::from_secs(10);
        while !self.emu.quiet() || self.emu.with_state(|s| s.processing("RenewDedicatedHosts")) > 0
        {
            if Instant::now() > until {
                self.violations
                    .push("the emulator never finished a renewal".into());
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn apply(&mut self, setup: &Setup, e: &Event) {
        match e {
            Event::Pass(p) => self.pass(setup, p).await,
            Event::HandRenew {
                host,
                aim_at_open,
                period,
            } => {
                self.wait_idle().await;
                let mut target = host.clone();
                if let Some(pick) = aim_at_open {
                    let store = self.store().await;
                    let mut open: Vec<String> = store
                        .hosts_in_open_attempts()
                        .await
                        .expect("open")
                        .into_keys()
                        .collect();
                    store.close().await;
                    open.sort();
                    if !open.is_empty() {
                        target = open[(*pick % open.len() as u64) as usize].clone();
                        self.stats.aimed_hand_renewals += 1;
                    }
                }
                if self
                    .emu
                    .with_state(|s| s.renew_elsewhere(&target, *period))
                    .is_ok()
                {
                    self.stats.hand_renewals += 1;
                }
            }
            Event::OperatorSettles => self.settle().await,
            Event::StaleImport { hosts } => {
                let store = self.store().await;
                let expiry_of: HashMap<String, DateTime<Utc>> = hosts.iter().cloned().collect();
                let now = self.emu.with_state(|s| s.now());
                store
                    .upsert_hosts(
                        &inventory(setup, &expiry_of),
                        "hosts_import",
                        Source::Import,
                        "stale.csv",
                        now,
                    )
                    .await
                    .expect("stale import");
                store.close().await;
                self.stats.stale_imports += 1;
            }
            Event::CloudAutoRenewOn { host } => {
                let store = self.store().await;
                let busy = store.hosts_in_open_attempts().await.expect("open");
                store.close().await;
                if busy.contains_key(host) {
                    return;
                }
                self.wait_idle().await;
                self.emu.with_state(|s| {
                    let now = s.now();
                    if let Some(h) = s.hosts.get_mut(host) {
                        h.renewal_status = RenewalStatus::AutoRenewal;
                        h.duration = 1;
                        h.period_unit = ddh_renewd::domain::PeriodUnit::Month;
                        h.charged_through = now;
                    }
                });
                self.stats.cloud_auto_renew_on += 1;
            }
        }
    }

    async fn pass(&mut self, setup: &Setup, p: &PassPlan) {
        self.wait_idle().await;
        self.emu.with_state(|s| {
            s.set_clock(p.cloud_at);
            s.charge_cloud_auto_renew();
            s.set_faults(p.fault_seed, p.faults.clone());
        });
        let expiries: HashMap<String, (DateTime<Utc>, bool)> = self.emu.with_state(|s| {
            let now = s.now();
            s.hosts
                .iter()
                .map(|(id, h)| {
                    (
                        id.clone(),
                        (h.host.expired_time, now >= h.host.expired_time),
                    )
                })
                .collect()
        });
        self.stats.passes += 1;
        self.stats.clock_jumps += u64::from(p.skew_minutes != 0);
        let completed = self.run_process(setup, p).await;
        self.emu.with_state(|s| s.set_faults(0, Vec::new()));
        if completed && p.clean() {
            self.stats.clean_passes += 1;
            self.clean.push(CleanPass {
                cloud_at: p.cloud_at,
                expiries,
            });
        }
    }

    /// One "process": take the database, run the pass (maybe killed), with a sync or a second
    /// actor alongside; close. `true` if the pass ran to its end.
    async fn run_process(&mut self, setup: &Setup, p: &PassPlan) -> bool {
        let Some((store, actor)) = self.take().await else {
            return false;
        };
        let daemon_now = p.cloud_at + chrono::Duration::minutes(p.skew_minutes);
        let engine = Engine::new(
            store,
            client(&self.cfg),
            engine_config(&self.cfg),
            Arc::new(SettableClock::new(daemon_now)),
            Some(actor),
        );
        let sync = p.concurrent_sync.then(|| {
            let cfg = self.cfg.clone();
            let schedule = self.schedule();
            let takeover = setup.takeover;
            let location = self.location.clone();
            tokio::spawn(async move {
                let store = Store::open_at(&location, schedule).await.expect("store");
                let c = client(&cfg);
                let r = ddh_renewd::engine::sync::sync(
                    &store,
                    &c,
                    &cfg.ecs.regions,
                    takeover,
                    false,
                    Utc::now,
                )
                .await;
                store.close().await;
                r.map(|_| ()).map_err(|e| e.to_string())
            })
        });
        let second = p.second_actor.then(|| self.second_actor(daemon_now));
        // A dry run first, on a clean pass: it must plan exactly what the real pass sends.
        let planned = if p.clean() && !p.concurrent_sync {
            match engine.pass(Trigger::Tick, true).await {
                Ok(r) => Some(r),
                Err(e) => {
                    self.violations
                        .push(format!("a dry run failed at {}: {e}", p.cloud_at));
                    None
                }
            }
        } else {
            None
        };
        let pass = engine.pass(Trigger::Tick, false);
        let (completed, result) = match p.kill_after_ms {
            Some(ms) => match tokio::time::timeout(Duration::from_millis(ms), pass).await {
                Ok(r) => (true, Some(r)),
                Err(_) => (false, None),
            },
            None => (true, Some(pass.await)),
        };
        if !completed {
            self.stats.kills += 1;
            self.killed_at = Some(Instant::now());
        }
        if let Some(Err(e)) = &result {
            self.violations
                .push(format!("a pass failed at {}: {e}", p.cloud_at));
        }
        if let (Some(dry), Some(Ok(real))) = (&planned, &result) {
            self.compare_dry(p, dry, real);
        }
        if let Some(s) = sync {
            self.stats.concurrent_syncs += 1;
            match s.await {
                Ok(Ok(())) => {}
                // A sync may fail under injected faults; that is not a violation.
                Ok(Err(_)) => {}
                Err(e) => self
                    .violations
                    .push(format!("the concurrent sync panicked: {e}")),
            }
        }
        if let Some(child) = second {
            self.stats.second_actors += 1;
            match child.await {
                Ok((code, stderr)) if code == 1 && stderr.contains("already acting") => {}
                Ok((code, stderr)) => self.violations.push(format!(
                    "a second actor was not refused (exit {code}): {stderr}"
                )),
                Err(e) => self
                    .violations
                    .push(format!("the second actor could not run: {e}")),
            }
        }
        engine.close().await;
        completed
    }

    /// Settles, as `--not-applied`, every blocked attempt whose token the cloud never completed
    /// and is not processing (what a person checking billing would find).
    async fn settle(&mut self) {
        self.wait_idle().await;
        let store = self.store().await;
        let blocked: Vec<(i64, String)> = store
            .undecided_attempts()
            .await
            .expect("undecided")
            .into_iter()
            .filter(|a| a.blocked_reason.is_some())
            .map(|a| (a.attempt_id, a.client_token))
            .collect();
        for (id, token) in blocked {
            let applied = self.emu.with_state(|s| {
                s.tokens
                    .contains_key(&("RenewDedicatedHosts".to_owned(), token.clone()))
            });
            if !applied {
                let now = self.emu.with_state(|s| s.now());
                if store
                    .settle(id, "no order in billing (simulated)", now)
                    .await
                    .is_ok()
                {
                    self.stats.settled += 1;
                }
            }
        }
        store.close().await;
    }

    /// The sends a dry run planned against the ones the real pass made: the same new attempts
    /// (ClientTokens, which name hosts, cycles, period and window) and the same re-sends.
    fn compare_dry(
        &mut self,
        p: &PassPlan,
        dry: &ddh_renewd::engine::PassReport,
        real: &ddh_renewd::engine::PassReport,
    ) {
        let planned: std::collections::BTreeSet<&str> = dry
            .planned
            .iter()
            .map(|a| a.client_token.as_str())
            .collect();
        let sent: std::collections::BTreeSet<&str> = real
            .attempts
            .iter()
            .map(|a| a.client_token.as_str())
            .collect();
        let planned_resends: std::collections::BTreeSet<i64> =
            dry.planned_resends.iter().map(|a| a.attempt_id).collect();
        let resent: std::collections::BTreeSet<i64> =
            real.resolved.iter().map(|a| a.attempt_id).collect();
        self.stats.dry_runs += 1;
        self.stats.dry_sends += (planned.len() + planned_resends.len()) as u64;
        // A re-send's answer cannot be known in advance (the cloud replays what the lost
        // request got: a refusal frees its hosts for a new attempt, an acceptance may make
        // a short period due again). When one went out, the hosts of re-sent attempts may
        // join new attempts the dry run could not plan; every other host must be planned
        // exactly as sent.
        let answered: std::collections::BTreeSet<&str> = real
            .resolved
            .iter()
            .filter(|a| planned_resends.contains(&a.attempt_id))
            .flat_map(|a| a.hosts.iter().map(String::as_str))
            .collect();
        let agree = if answered.is_empty() {
            planned == sent
        } else {
            let planned_hosts: std::collections::BTreeSet<&str> = dry
                .planned
                .iter()
                .flat_map(|a| a.hosts.iter().map(|(h, _)| h.as_str()))
                .collect();
            let sent_hosts: std::collections::BTreeSet<&str> = real
                .attempts
                .iter()
                .flat_map(|a| a.hosts.iter().map(String::as_str))
                .filter(|h| !answered.contains(h))
                .collect();
            planned_hosts == sent_hosts
        };
        if !agree || !planned_resends.is_subset(&resent) {
            let extra: Vec<String> = real
                .attempts
                .iter()
                .filter(|a| !planned.contains(a.client_token.as_str()))
                .map(|a| {
                    format!(
                        "{} {} [{}] {}",
                        a.attempt_id,
                        a.client_token,
                        a.hosts.join(","),
                        a.outcome
                    )
                })
                .collect();
            let resolved: Vec<String> = real
                .resolved
                .iter()
                .map(|a| {
                    format!(
                        "{} [{}] {} sends {}",
                        a.attempt_id,
                        a.hosts.join(","),
                        a.outcome,
                        a.sends
                    )
                })
                .collect();
            self.violations.push(format!(
                "at {}: the dry run planned {planned:?} and re-sends {planned_resends:?}; the real pass sent {sent:?} and worked on {resent:?}; \
                 not planned: {extra:?}; resolved: {resolved:?}; dry skipped {:?}, dry undecided {:?}, dry blocked {:?}",
                p.cloud_at,
                dry.skipped.iter().map(|s| format!("{}: {}", s.host_id, s.detail)).collect::<Vec<_>>(),
                dry.undecided,
                dry.blocked,
            ));
        }
    }

    /// Takes the database as a new process would (the previous one's lock is released when its
    /// last task has gone).
    async fn take(&mut self) -> Option<(Store, ddh_renewd::engine::Actor)> {
        let mut last = String::new();
        for _ in 0..200 {
            match ddh_renewd::engine::take_database(&self.location, self.schedule()).await {
                Ok(x) => {
                    // After a kill, on PostgreSQL: the other node takes the lead (session
                    // lock, new epoch) with the killed pass's requests still in flight.
                    if let (Some(at), Location::Postgres { .. }) =
                        (self.killed_at.take(), &self.location)
                    {
                        self.stats
                            .takeovers_ms
                            .push(at.elapsed().as_millis() as u64);
                    }
                    return Some(x);
                }
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.violations
            .push(format!("could not take the database: {last}"));
        None
    }

    /// The real binary, run against the same database while this process holds it.
    fn second_actor(&self, at: DateTime<Utc>) -> tokio::task::JoinHandle<(i32, String)> {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.arg("--config")
            .arg(self.dir.path().join("sim.toml"))
            .args([
                "tick",
                "--virtual-clock",
                "--at",
                &ddh_renewd::domain::time::to_db(at),
            ])
            .env_remove("DDH_RENEWD_CONFIG")
            .env("PGPASSWORD", crate::common::pg::PASSWORD)
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", TEST_ACCESS_KEY_SECRET);
        tokio::spawn(async move {
            match cmd.output().await {
                Ok(o) => (
                    o.status.code().unwrap_or(-1),
                    String::from_utf8_lossy(&o.stderr).into_owned(),
                ),
                Err(e) => (-1, e.to_string()),
            }
        })
    }

    /// A plain connection to the store, as an auditor would read it (either backend).
    async fn reader(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        let url = match &self.location {
            Location::Sqlite(p) => format!("sqlite://{}?mode=ro", p.display()),
            Location::Postgres { url, .. } => url.replacen(
                "postgres://ddh@",
                &format!("postgres://ddh:{}@", crate::common::pg::PASSWORD),
                1,
            ),
        };
        sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .expect("open the store to read it")
    }

    /// Stops the emulator and reads what the checker needs.
    pub async fn finish(mut self) -> Facts {
        self.wait_idle().await;
        let (ledger, faults) = self.emu.with_state(|s| {
            s.charge_cloud_auto_renew();
            (s.ledger.clone(), s.faults_fired.clone())
        });
        let store = self.reader().await;
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT a.client_token, ah.host_id, ah.cycle FROM attempts a JOIN attempt_hosts ah ON ah.attempt_id = a.attempt_id",
        )
        .fetch_all(&store)
        .await
        .expect("attempts");
        let notices: Vec<(String, String)> = sqlx::query_as("SELECT host_id, kind FROM notices")
            .fetch_all(&store)
            .await
            .expect("notices");
        let blocked: i64 = sqlx::query_scalar("SELECT count(*) FROM attempt_blocks")
            .fetch_one(&store)
            .await
            .expect("blocks");
        let attempts_n: i64 = sqlx::query_scalar("SELECT count(*) FROM attempts")
            .fetch_one(&store)
            .await
            .expect("count");
        store.close().await;
        let mut attempts: HashMap<String, HashMap<String, String>> = HashMap::new();
        for (token, host, cycle) in rows {
            attempts.entry(token).or_default().insert(host, cycle);
        }
        self.emu.stop().await;
        let mut stats = self.stats;
        stats.faults = faults;
        stats.ledger = ledger.len() as u64;
        stats.attempts = attempts_n as u64;
        stats.blocked = blocked as u64;
        Facts {
            ledger,
            attempts,
            notices,
            clean: self.clean,
            violations: self.violations,
            stats,
        }
    }
}
