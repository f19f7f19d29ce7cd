//! `run`, the daemon, as a real process: catch-up of a missed window at start, no second run of
//! the same window after a restart, and a clean exit on SIGTERM.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::cloud::Cloud;
use common::{Env, TEST_KEY_ID, TEST_SECRET, bin, free_port, http_get};
use serde_json::{Value, json};

fn start(env: &Env) -> Child {
    start_with(env, &[])
}

fn start_with(env: &Env, vars: &[(&str, std::ffi::OsString)]) -> Child {
    let mut c = Command::new(bin());
    c.arg("--config")
        .arg(&env.config)
        .arg("run")
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", TEST_KEY_ID)
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", TEST_SECRET)
        .env("DDH_RENEWD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        c.env(k, v);
    }
    c.spawn().expect("spawn run")
}

/// The daemon's sd_notify messages, as systemd would receive them: tests wait for what the
/// daemon says it did, not for a guessed time.
struct Notify {
    sock: std::os::unix::net::UnixDatagram,
    path: std::path::PathBuf,
    got: Vec<String>,
}

impl Notify {
    fn bind(env: &Env, name: &str) -> Self {
        let path = env.path(name);
        let sock = std::os::unix::net::UnixDatagram::bind(&path).expect("bind notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        Self {
            sock,
            path,
            got: Vec::new(),
        }
    }

    fn vars(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        vec![("NOTIFY_SOCKET", self.path.clone().into_os_string())]
    }

    /// Receives until a message satisfies `pred` (within `secs`); returns it.
    fn wait_for(&mut self, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.got.push(m.clone());
                if pred(&m) {
                    return m;
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(secs),
                "no {what} within {secs} s; got {:?}",
                self.got
            );
        }
    }

    /// Everything still queued (after the daemon exited).
    fn drain(&mut self) {
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.sock.recv(&mut buf) {
            self.got
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

/// SIGTERM, then wait (bounded) for a clean exit.
fn stop(mut child: Child) -> String {
    let pid = child.id().to_string();
    let ok = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -TERM {pid}");
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            assert!(status.success(), "run exited with {status}: {err}");
            return err;
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("run did not exit within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn windows(env: &Env) -> Vec<Value> {
    env.json(&["audit", "windows", "--json"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_missed_window_runs_at_start_and_only_once() {
    let cloud = Cloud::start();
    let now = Utc::now();
    // The daemon was "down at the window time": today's window was two hours ago.
    let time = (now - chrono::Duration::hours(2))
        .format("%H:%M:%S")
        .to_string();
    let expiry = (now + chrono::Duration::days(3))
        .format("%Y-%m-%dT16:00Z")
        .to_string();
    let mut hosts = Vec::new();
    let mut csv =
        String::from("dedicated_host_id,region_id,expired_time,charge_type,renewal_status\n");
    for i in 0..5 {
        hosts.push(json!({"DedicatedHostId": format!("dh-c{i}"), "RegionId": "cn-hangzhou", "ChargeType": "PrePaid", "ExpiredTime": expiry}));
        csv.push_str(&format!(
            "dh-c{i},cn-hangzhou,{expiry},PrePaid,AutoRenewal\n"
        ));
    }
    cloud.add(Value::Array(hosts));
    let env = cloud.env(&format!(
        "[schedule]\ntimezone = \"UTC\"\ntime = \"{time}\"\nsafety_interval = \"1h\""
    ));
    env.import(&csv);

    let daemon = start(&env);
    let t0 = Instant::now();
    while windows(&env).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the missed window did not run at start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = stop(daemon);
    let w = windows(&env);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0]["trigger"], "catch_up");
    assert_eq!(w[0]["renewed"], 5);
    assert_eq!(cloud.ledger().len(), 5);
    assert!(log.contains("scheduler started"), "{log}");
    assert!(log.contains("metrics and health listening"), "{log}");

    // Started again the same day: the daemon checks the window at start, says it was run, and
    // does not run it again.
    let mut notify = Notify::bind(&env, "notify.sock");
    let daemon = start_with(&env, &notify.vars());
    notify.wait_for("READY", 30, |m| m.contains("READY=1"));
    let status = notify.wait_for("the start-up check", 30, |m| m.contains("STATUS="));
    assert!(status.contains("already run"), "{status}");
    stop(daemon);
    assert_eq!(windows(&env).len(), 1);
    assert_eq!(cloud.ledger().len(), 5);
}

#[test]
fn a_second_daemon_on_the_same_database_exits() {
    let cloud = Cloud::start();
    let env = cloud.env(&format!(
        "[schedule]\ncatch_up = false\n[metrics]\nlisten = \"127.0.0.1:{}\"",
        free_port()
    ));
    env.import("dedicated_host_id,region_id,expired_time,charge_type\ndh-x,cn-hangzhou,2027-06-01T16:00Z,PrePaid\n");
    let mut notify = Notify::bind(&env, "notify.sock");
    let first = start_with(&env, &notify.vars());
    // The first holds the database once it says it is ready.
    notify.wait_for("READY", 30, |m| m.contains("READY=1"));
    let second = Command::new(bin())
        .arg("--config")
        .arg(&env.config)
        .arg("run")
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", TEST_KEY_ID)
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", TEST_SECRET)
        .output()
        .expect("second run");
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("already acting on") && err.contains(&first.id().to_string()),
        "{err}"
    );
    stop(first);
}

#[cfg(unix)]
#[test]
fn sd_notify_ready_status_watchdog_stopping() {
    let cloud = Cloud::start();
    let env = cloud.env(&format!(
        "[schedule]\ncatch_up = true\n[metrics]\nlisten = \"127.0.0.1:{}\"",
        free_port()
    ));
    env.import("dedicated_host_id,region_id,expired_time,charge_type\ndh-x,cn-hangzhou,2027-06-01T16:00Z,PrePaid\n");
    let mut notify = Notify::bind(&env, "notify.sock");
    let mut vars = notify.vars();
    vars.push(("WATCHDOG_USEC", "1000000".into())); // pings every 0.5 s
    let child = start_with(&env, &vars);
    let first = notify.wait_for("READY", 30, |_| true);
    assert!(first.contains("READY=1"), "READY first: {:?}", notify.got);
    notify.wait_for("a STATUS after the catch-up pass", 30, |m| {
        m.contains("STATUS=last window")
    });
    // The loop keeps pinging while idle: three pings after the pass (an event count, not a
    // rate: how fast they come is the watchdog's business, checked under systemd by
    // tests/systemd-nspawn.sh).
    for k in 0..3 {
        notify.wait_for(&format!("watchdog ping {k}"), 30, |m| {
            m.contains("WATCHDOG=1")
        });
    }
    stop(child);
    notify.drain();
    assert!(
        notify.got.last().is_some_and(|m| m.contains("STOPPING=1")),
        "STOPPING last: {:?}",
        notify.got
    );
}

/// The daemon syncs by itself: at start, and every `[sync] interval`; new hosts arrive without a
/// manual `sync`, and `/healthz` says when the inventory was last refreshed.
#[test]
fn the_daemon_syncs_the_inventory_itself() {
    let cloud = Cloud::start();
    let host = |id: &str| json!({"DedicatedHostId": id, "RegionId": "cn-hangzhou", "ChargeType": "PrePaid", "ExpiredTime": "2027-06-01T16:00Z"});
    cloud.add(json!([host("dh-s1"), host("dh-s2")]));
    let port = free_port();
    let env = cloud.env(&format!(
        "[schedule]\ncatch_up = false\n[sync]\ninterval = \"1s\"\n[metrics]\nlisten = \"127.0.0.1:{port}\""
    ));
    let count = |env: &Env| {
        env.json(&["hosts", "list", "--json"])
            .as_array()
            .map_or(0, Vec::len)
    };
    let daemon = start(&env);
    let t0 = Instant::now();
    while count(&env) < 2 {
        if t0.elapsed() > Duration::from_secs(30) {
            let log = stop(daemon);
            panic!("the start-up sync did not happen:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cloud.add(json!([host("dh-s3")]));
    while count(&env) < 3 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the periodic sync did not happen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let health = http_get(port, "/healthz");
    stop(daemon);
    let body = health.split("\r\n\r\n").nth(1).unwrap_or_default();
    let h: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {health}"));
    assert!(h["last_sync"].is_string(), "{h}");
}
