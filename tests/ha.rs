//! Two nodes, one PostgreSQL database: the active/standby pair of SPEC §5, as real processes.
//! Each round adds hosts that are due now, lets the leader send their renewal (held in flight
//! by the emulator, which finishes it whether or not the client is still there), then takes
//! the leader away — SIGKILL, or its lock session terminated in PostgreSQL — and checks that
//! the standby takes over, resolves the attempt in flight with the same ClientToken and that
//! every cycle is paid exactly once. `DDH_HA_ROUNDS` sets the number of failovers (CI: 100).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cloud::Cloud;
use common::pg::Postgres;
use common::{Env, TEST_KEY_ID, TEST_SECRET, bin, free_port};
use serde_json::{Value, json};

struct Node {
    env: Env,
    port: u16,
    child: Option<Child>,
}

impl Node {
    fn new(cloud: &Cloud, pg: &Postgres) -> Self {
        let port = free_port();
        let env = cloud.env_on_postgres(
            pg,
            "ddh",
            &format!(
                "[metrics]\nlisten = \"127.0.0.1:{port}\"\n[schedule]\nsafety_interval = \"1s\"\n"
            ),
        );
        Self {
            env,
            port,
            child: None,
        }
    }

    fn start(&mut self) {
        let child = Command::new(bin())
            .arg("--config")
            .arg(&self.env.config)
            .arg("run")
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", TEST_KEY_ID)
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", TEST_SECRET)
            .env("PGPASSWORD", common::pg::PASSWORD)
            .env("DDH_RENEWD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn run");
        self.child = Some(child);
    }

    /// `/healthz` as JSON (its role, epoch, last takeover), if the node answers.
    fn get(&self, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        text.split("\r\n\r\n").nth(1).map(str::to_owned)
    }

    fn health(&self) -> Option<Value> {
        serde_json::from_str(&self.get("/healthz")?).ok()
    }

    fn role(&self) -> Option<String> {
        self.health()?["role"].as_str().map(str::to_owned)
    }

    fn wait_role(&self, role: &str, within: Duration) -> Duration {
        let t0 = Instant::now();
        loop {
            if self.role().as_deref() == Some(role) {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < within,
                "node on {} did not become {role}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the node to exit by itself; its exit code and stderr.
    fn exited(&mut self, within: Duration) -> (Option<i32>, String) {
        let mut c = self.child.take().expect("running");
        let t0 = Instant::now();
        loop {
            if let Some(status) = c.try_wait().expect("wait") {
                let mut err = String::new();
                if let Some(mut e) = c.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                return (status.code(), err);
            }
            if t0.elapsed() > within {
                let _ = c.kill();
                let _ = c.wait();
                panic!("node on {} did not exit within {within:?}", self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn sql_count(pg: &Postgres, sql: &str) -> i64 {
    let out = pg.psql("ddh", sql);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a count")
}

/// Hosts due now (they expire in three days), in the cloud and in the inventory.
fn add_due_hosts(cloud: &Cloud, env: &Env, round: usize, n: usize) -> Vec<String> {
    let expiry = (chrono::Utc::now() + chrono::Duration::days(3)).format("%Y-%m-%dT%H:%MZ");
    let ids: Vec<String> = (0..n).map(|i| format!("dh-ha{round:03}-{i}")).collect();
    let hosts: Vec<Value> = ids
        .iter()
        .map(|id| json!({"DedicatedHostId": id, "RegionId": "cn-hangzhou", "ChargeType": "PrePaid", "ExpiredTime": expiry.to_string()}))
        .collect();
    cloud.add(Value::Array(hosts));
    let mut csv =
        String::from("dedicated_host_id,region_id,expired_time,charge_type,renewal_status\n");
    for id in &ids {
        csv.push_str(&format!("{id},cn-hangzhou,{expiry},PrePaid,AutoRenewal\n"));
    }
    env.import(&csv);
    ids
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn failovers_with_requests_in_flight_pay_nothing_twice() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    pg.create_db("ddh");
    let rounds: usize = std::env::var("DDH_HA_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let started = Instant::now();
    let cloud = Cloud::start();
    let mut nodes = [Node::new(&cloud, &pg), Node::new(&cloud, &pg)];
    nodes[0].env.run(&["hosts", "list"]).expect(0);
    nodes[0].start();
    nodes[0].wait_role("leader", Duration::from_secs(30));
    nodes[1].start();
    nodes[1].wait_role("standby", Duration::from_secs(30));
    let mut leader = 0;
    let mut takeovers = Vec::new();
    let mut all_ids = Vec::new();
    let mut partitions = 0;
    let mut standby_kills = 0;
    // The standby reports its role, and the epoch it sees, in /metrics too.
    let metrics = nodes[1].get("/metrics").unwrap_or_default();
    assert!(
        metrics.contains("ddh_renewd_leader 0") && metrics.contains("ddh_renewd_epoch 1"),
        "{metrics}"
    );
    let metrics = nodes[0].get("/metrics").unwrap_or_default();
    assert!(
        metrics.contains("ddh_renewd_leader 1")
            && metrics.contains("ddh_renewd_last_takeover_timestamp_seconds"),
        "{metrics}"
    );
    for round in 0..rounds {
        let standby = 1 - leader;
        // The renewal of this round's hosts stays in flight for 1.5 s at the emulator.
        cloud.faults(
            round as u64,
            json!([{"action": "RenewDedicatedHosts", "kind": "delay", "ms": 1500, "count": 1}]),
        );
        // Every fifth round the standby is killed first and comes back: nothing changes.
        if round % 5 == 4 {
            nodes[standby].kill();
            nodes[standby].start();
            nodes[standby].wait_role("standby", Duration::from_secs(30));
            standby_kills += 1;
        }
        let ids = add_due_hosts(&cloud, &nodes[leader].env, round, 3);
        let sent = format!(
            "SELECT count(*) FROM attempt_events e JOIN attempt_hosts ah ON ah.attempt_id = e.attempt_id
             WHERE e.kind = 'sent' AND ah.host_id LIKE 'dh-ha{round:03}-%'"
        );
        let t0 = Instant::now();
        while sql_count(&pg, &sent) == 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "round {round}: nothing sent"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Every third round all the leader's sessions are terminated (a partition as
        // PostgreSQL sees it); otherwise the leader is killed.
        let partition = round % 3 == 2;
        let gone = Instant::now();
        if partition {
            partitions += 1;
            let pid = nodes[leader].child.as_ref().expect("running").id();
            let cut = pg.psql(
                "ddh",
                &format!(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                     WHERE application_name LIKE 'ddh-renewd%(pid {pid})'"
                ),
            );
            assert!(cut.status.success());
            let n: i64 = String::from_utf8_lossy(&cut.stdout).trim().parse().unwrap();
            assert!(n >= 2, "the lock session and the pool's: {n}");
        } else {
            nodes[leader].kill();
        }
        let took = nodes[standby].wait_role("leader", Duration::from_secs(30));
        takeovers.push(gone.elapsed().max(took));
        if partition {
            let (code, err) = nodes[leader].exited(Duration::from_secs(30));
            assert_eq!(code, Some(1), "{err}");
            assert!(err.contains("lost the lead"), "{err}");
        }
        // The new leader resolves what was in flight: each host renewed once.
        let t1 = Instant::now();
        loop {
            let paid: usize = ids.iter().map(|id| cloud.ledger_of(id).len()).sum();
            let open = sql_count(&pg, "SELECT count(*) FROM attempt_open");
            if paid >= ids.len() && open == 0 {
                break;
            }
            assert!(
                t1.elapsed() < Duration::from_secs(60),
                "round {round}: {paid} paid, {open} open"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        all_ids.extend(ids);
        nodes[leader].start();
        nodes[leader].wait_role("standby", Duration::from_secs(30));
        leader = standby;
    }
    // Every cycle paid exactly once, none blocked, the epochs one per takeover and start.
    for id in &all_ids {
        let paid = cloud.ledger_of(id);
        assert_eq!(paid.len(), 1, "{id} paid once");
        // With the token the first leader wrote ahead: the successor re-sent it, never a new one.
        let out = pg.psql(
            "ddh",
            &format!("SELECT client_token FROM v_attempts WHERE host_id = '{id}' ORDER BY attempt_id LIMIT 1"),
        );
        let first = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert_eq!(paid[0]["ClientToken"], first.as_str(), "{id}");
    }
    assert_eq!(sql_count(&pg, "SELECT count(*) FROM attempt_blocks"), 0);
    let epochs = sql_count(&pg, "SELECT max(epoch) FROM actor_epochs");
    assert_eq!(epochs, rounds as i64 + 1, "one epoch per takeover");
    let twice = sql_count(
        &pg,
        "SELECT count(*) FROM (SELECT host_id, cycle FROM v_attempts WHERE outcome = 'renewed'
         GROUP BY host_id, cycle HAVING count(*) > 1) t",
    );
    assert_eq!(
        twice, 0,
        "the auditors' guarantee query finds no cycle paid twice"
    );
    // Manual commands respect the lead: `tick` on any node is refused while a leader acts.
    let r = nodes[1 - leader].env.run(&["tick", "--dry-run"]);
    assert_eq!(r.code, 0, "a dry run only reads: {}", r.stderr);
    let r = nodes[1 - leader].env.run(&["tick"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("already acting"), "{}", r.stderr);
    takeovers.sort();
    println!(
        "{rounds} failovers ({partitions} by cut sessions, {} by SIGKILL; {standby_kills} standbys killed too) \
         with requests in flight: {} hosts, each paid once; takeover median {:?}, max {:?}; wall {:.1} s",
        rounds - partitions,
        all_ids.len(),
        percentile(&takeovers, 0.5),
        takeovers.last().copied().unwrap_or_default(),
        started.elapsed().as_secs_f64()
    );
}
