//! Regression tests for the ten ways the engine before the protocol rewrite (commit 6fb6e9b)
//! paid one cycle twice or let a payable cycle lapse, found by driving the release binary
//! against the emulator as an adversary would (issue 8). Each runs the real binary against the
//! real emulator over loopback with a real SQLite file, and judges by the emulator's ledger.
//!
//! `DDH_RENEWD_BIN=/path/to/other/ddh-renewd cargo test --test exactly_once` runs them against
//! another build (that is how each was seen failing on 6fb6e9b).

mod common;

use common::Env;
use common::cloud::Cloud;
use serde_json::{Value, json};

/// Day `d` of December 2026 at `hh:mm` UTC+8.
fn at(d: u32, hhmm: &str) -> String {
    format!("2026-12-{d:02}T{hhmm}:00+08:00")
}

/// Hosts in the cloud and in the inventory: `(id, expiry, policy period, unit)`, AutoRenewal,
/// in cn-hangzhou.
fn fleet(cloud: &Cloud, env: &Env, hosts: &[(&str, &str, u32, &str)]) {
    let mut csv = String::from(
        "dedicated_host_id,region_id,expired_time,charge_type,renewal_status,duration,period_unit\n",
    );
    let mut v = Vec::new();
    for (id, e, n, unit) in hosts {
        v.push(json!({"DedicatedHostId": id, "RegionId": "cn-hangzhou", "ChargeType": "PrePaid", "ExpiredTime": e}));
        csv.push_str(&format!(
            "{id},cn-hangzhou,{e},PrePaid,AutoRenewal,{n},{unit}\n"
        ));
    }
    cloud.add(Value::Array(v));
    env.import(&csv);
}

fn tick(cloud: &Cloud, env: &Env, when: &str) -> Value {
    cloud.set_clock(when);
    env.json(&["tick", "--virtual-clock", "--at", when, "--json"])
}

fn notices(env: &Env, kind: &str, host: &str) -> usize {
    env.json(&["audit", "notices", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == kind && n["host_id"] == host)
        .count()
}

/// The cycles (ExpiredTimeBefore) paid for `host`, in ledger order.
fn cycles_paid(cloud: &Cloud, host: &str) -> Vec<String> {
    cloud
        .ledger_of(host)
        .iter()
        .map(|e| e["ExpiredTimeBefore"].as_str().unwrap().to_owned())
        .collect()
}

/// Kills `child` once `ready` holds (bounded), so that it dies with an attempt in flight.
fn kill_when(cloud: &Cloud, mut child: std::process::Child, ready: impl Fn(&Cloud) -> bool) {
    cloud.wait_for("the request to arrive", 30, ready);
    child.kill().expect("SIGKILL");
    let _ = child.wait();
}

const E: &str = "2026-12-10T16:00Z";

/// 1. An attempt still unknown when `in_window_retry` runs out (the cloud is still processing
///    it) stays open: the next window re-sends the same token instead of a new one.
#[test]
fn class1_unknown_after_the_retry_budget_is_never_replaced() {
    let cloud = Cloud::start();
    let env = cloud.env("timeout = \"1s\"\n[schedule]\nin_window_retry = \"2s\"");
    fleet(&cloud, &env, &[("dh-a", E, 1, "Month")]);
    cloud.faults(
        1,
        json!([{"action": "RenewDedicatedHosts", "kind": "delay", "ms": 6000, "count": 1}]),
    );
    tick(&cloud, &env, &at(3, "08:00"));
    assert!(cloud.ledger().is_empty(), "still processing");
    // The next window, while the first request is still being processed in the cloud.
    tick(&cloud, &env, &at(4, "08:00"));
    cloud.wait_idle();
    tick(&cloud, &env, &at(4, "09:00"));
    assert_eq!(
        cycles_paid(&cloud, "dh-a"),
        ["2026-12-10T16:00Z"],
        "{:?}",
        cloud.ledger()
    );
    let attempts = env.json(&["audit", "attempts", "--host", "dh-a", "--json"]);
    let tokens: std::collections::BTreeSet<&str> = attempts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["client_token"].as_str().unwrap())
        .collect();
    assert_eq!(tokens.len(), 1, "one attempt, one token: {attempts}");
    assert_eq!(attempts[0]["outcome"], "renewed");
}

/// 2. After a crash an unknown attempt is re-sent with its recorded parameters, byte for byte —
///    never rebuilt (another host order would be "other parameters" to the cloud).
#[test]
fn class2_after_a_crash_the_recorded_request_is_resent_not_rebuilt() {
    let cloud = Cloud::start();
    let env = cloud.env("timeout = \"1s\"\n[schedule]\nin_window_retry = \"20s\"");
    fleet(
        &cloud,
        &env,
        &[("dh-b", E, 1, "Month"), ("dh-a", E, 1, "Month")],
    );
    cloud.set_clock(&at(3, "08:00"));
    cloud.faults(
        1,
        json!([{"action": "RenewDedicatedHosts", "kind": "delay", "ms": 4000, "count": 1}]),
    );
    let renew = env.spawn(&[
        "renew",
        "--region",
        "cn-hangzhou",
        "--ids",
        "dh-b,dh-a",
        "--period",
        "1",
    ]);
    kill_when(&cloud, renew, |c| c.processing("RenewDedicatedHosts") > 0);
    // A restart resolves the attempt while the cloud is still processing it.
    tick(&cloud, &env, &at(3, "08:01"));
    cloud.wait_idle();
    tick(&cloud, &env, &at(3, "08:02"));
    for h in ["dh-a", "dh-b"] {
        assert_eq!(
            cycles_paid(&cloud, h),
            ["2026-12-10T16:00Z"],
            "{h}: {:?}",
            cloud.ledger()
        );
    }
    assert_eq!(
        cloud.emu().with_state(|s| s
            .log
            .iter()
            .filter(|e| e.code == "IdempotenceParamNotMatch")
            .count()),
        0,
        "the re-send carried exactly the recorded parameters"
    );
}

/// 3. One actor per database whatever the path: a symlink, a hard link, or a deleted side file
///    cannot let a second process act.
#[test]
fn class3_one_actor_whatever_the_path() {
    let cloud = Cloud::start();
    let env = cloud.env("batch_size = 1");
    let hosts: Vec<(String, &str, u32, &str)> = (0..8)
        .map(|i| (format!("dh-l{i}"), E, 1, "Month"))
        .collect();
    let refs: Vec<(&str, &str, u32, &str)> = hosts
        .iter()
        .map(|(a, b, c, d)| (a.as_str(), *b, *c, *d))
        .collect();
    fleet(&cloud, &env, &refs);
    cloud.set_clock(&at(3, "08:00"));
    // Slow calls: the first pass takes seconds.
    cloud.emu().with_state(|s| s.latency_ms = 250);
    let first = env.spawn(&["tick", "--virtual-clock", "--at", &at(3, "08:00")]);
    cloud.wait_for("the first pass to send", 30, |c| {
        c.logged("RenewDedicatedHosts") > 0
    });
    let link = env.path("link.db");
    std::os::unix::fs::symlink(&env.db, &link).unwrap();
    let hard = env.path("hard.db");
    std::fs::hard_link(&env.db, &hard).unwrap();
    let _ = std::fs::remove_file(env.path("inventory.db.lock"));
    for (name, path) in [
        ("original", env.db.clone()),
        ("symlink", link),
        ("hard link", hard),
    ] {
        let other = env.write(
            &format!("{name}.toml"),
            &format!(
                "[database]\npath = {:?}\n[ecs]\nendpoint = \"{}\"\nregions = [\"cn-hangzhou\"]\n",
                path.display().to_string(),
                cloud.emu().endpoint()
            ),
        );
        let r = common::Run::from_output(
            std::process::Command::new(common::bin())
                .arg("--config")
                .arg(&other)
                .args(["tick", "--virtual-clock", "--at", &at(3, "08:00")])
                .env("ALIBABA_CLOUD_ACCESS_KEY_ID", common::TEST_KEY_ID)
                .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", common::TEST_SECRET)
                .output()
                .unwrap(),
        );
        assert_eq!(
            r.code, 1,
            "{name}: a second actor must not run\n{}{}",
            r.stdout, r.stderr
        );
        assert!(r.stderr.contains("already acting"), "{name}: {}", r.stderr);
    }
    let mut first = first;
    let _ = first.wait();
    for (h, ..) in &refs {
        assert_eq!(cycles_paid(&cloud, h), ["2026-12-10T16:00Z"], "{h}");
    }
}

/// 4. `renew` refuses hosts that have an attempt without an outcome, even when the cloud could
///    not be read to resolve it.
#[test]
fn class4_renew_refuses_hosts_with_an_undecided_attempt() {
    let cloud = Cloud::start();
    let env = cloud.env("timeout = \"1s\"\n[schedule]\nin_window_retry = \"30s\"");
    fleet(&cloud, &env, &[("dh-a", E, 1, "Month")]);
    cloud.set_clock(&at(3, "08:00"));
    cloud.faults(
        1,
        json!([{"action": "RenewDedicatedHosts", "kind": "delay", "ms": 5000, "count": 1}]),
    );
    let t = env.spawn(&["tick", "--virtual-clock", "--at", &at(3, "08:00")]);
    kill_when(&cloud, t, |c| c.processing("RenewDedicatedHosts") > 0);
    // The next read fails (a definite, non-retried error); the one after it would succeed.
    cloud.faults(2, json!([{"action": "DescribeDedicatedHosts", "kind": "error", "status": 400, "code": "UnknownParameter", "count": 1}]));
    let r = env.run(&[
        "renew",
        "--region",
        "cn-hangzhou",
        "--ids",
        "dh-a",
        "--period",
        "1",
    ]);
    assert_eq!(r.code, 1, "refused\n{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not decided"), "{}", r.stderr);
    cloud.wait_idle();
    assert_eq!(cycles_paid(&cloud, "dh-a"), ["2026-12-10T16:00Z"]);
}

/// 5. A host added by hand that is on cloud-side auto-renew is checked at send time
///    (DescribeDedicatedHostAutoRenew with the pre-send read), not only at `sync`.
#[test]
fn class5_cloud_side_auto_renew_is_checked_at_send_time() {
    let cloud = Cloud::start();
    let env = cloud.env("");
    cloud.set_clock(&at(3, "07:59"));
    cloud.add(
        json!([{"DedicatedHostId": "dh-a", "RegionId": "cn-hangzhou", "ChargeType": "PrePaid",
        "ExpiredTime": E, "RenewalStatus": "AutoRenewal", "Duration": 1, "PeriodUnit": "Week"}]),
    );
    env.import("dedicated_host_id,region_id,expired_time,charge_type,renewal_status,duration,period_unit\ndh-a,cn-hangzhou,2026-12-10T16:00Z,PrePaid,AutoRenewal,1,Week\n");
    // The daemon's clock a minute ahead of the cloud's: its 08:00 pass comes before the cloud's own
    // charge.
    env.json(&["tick", "--virtual-clock", "--at", &at(3, "08:00"), "--json"]);
    assert_eq!(notices(&env, "double_renew_risk", "dh-a"), 1);
    cloud.set_clock(&at(3, "08:01"));
    let ledger = cloud.ledger_of("dh-a");
    assert!(
        ledger.iter().all(|e| e["Source"] != "api"),
        "ddh-renewd paid nothing: {ledger:?}"
    );
    assert_eq!(
        cycles_paid(&cloud, "dh-a"),
        ["2026-12-10T16:00Z"],
        "the cloud paid it, once"
    );
}

/// 6a. An old CSV imported again points the inventory at a closed cycle: the host is re-read,
///     follows the cloud, and its next cycle is renewed.
#[test]
fn class6_a_stale_reimport_cannot_hide_the_next_cycle() {
    let cloud = Cloud::start();
    let env = cloud.env("");
    let csv = "dedicated_host_id,region_id,expired_time,charge_type,renewal_status,duration,period_unit\ndh-a,cn-hangzhou,2026-12-10T16:00Z,PrePaid,AutoRenewal,1,Week\n";
    fleet(&cloud, &env, &[("dh-a", E, 1, "Week")]);
    tick(&cloud, &env, &at(2, "08:00"));
    env.import(csv);
    for d in 3..=12 {
        tick(&cloud, &env, &at(d, "08:00"));
    }
    assert_eq!(
        cycles_paid(&cloud, "dh-a"),
        ["2026-12-10T16:00Z", "2026-12-17T16:00Z"],
        "both cycles, each once"
    );
}

/// 6b. A slow `sync` that read the cloud before a concurrent `tick` renewed cannot commit that
///     stale read over the renewal.
#[test]
fn class6_a_slow_sync_cannot_commit_a_stale_read() {
    let cloud = Cloud::start();
    let env = cloud.env("");
    fleet(&cloud, &env, &[("dh-a", E, 1, "Week")]);
    cloud.set_clock(&at(2, "08:00"));
    cloud.faults(1, json!([{"action": "DescribeDedicatedHostAutoRenew", "kind": "delay", "ms": 3000, "count": 1}]));
    let mut sync = env.spawn(&["sync", "--region", "cn-hangzhou"]);
    cloud.wait_for("the sync to read", 30, |c| {
        c.processing("DescribeDedicatedHostAutoRenew") > 0
    });
    env.json(&["tick", "--virtual-clock", "--at", &at(2, "08:00"), "--json"]);
    assert_eq!(cycles_paid(&cloud, "dh-a").len(), 1);
    assert!(sync.wait().unwrap().success());
    let show = env.json(&["hosts", "show", "dh-a", "--json"]);
    assert_eq!(
        show["host"]["expired_time"], "2026-12-17T16:00:00Z",
        "{show}"
    );
    for d in 3..=12 {
        tick(&cloud, &env, &at(d, "08:00"));
    }
    assert_eq!(
        cycles_paid(&cloud, "dh-a"),
        ["2026-12-10T16:00Z", "2026-12-17T16:00Z"]
    );
}

/// 7. An unknown batch in which one host was renewed by hand is blocked — not closed "renewed" —
///    with a notice; once a person settles it, the other hosts are renewed in the same window.
#[test]
fn class7_a_partly_renewed_unknown_batch_blocks_and_can_be_settled() {
    let cloud = Cloud::start();
    let env = cloud.env("timeout = \"1s\"");
    fleet(
        &cloud,
        &env,
        &[
            ("dh-a", E, 1, "Month"),
            ("dh-b", E, 1, "Month"),
            ("dh-c", E, 1, "Month"),
        ],
    );
    // The last window before expiry.
    cloud.set_clock(&at(10, "08:00"));
    cloud.faults(
        1,
        json!([{"action": "RenewDedicatedHosts", "kind": "hang", "ms": 60000, "count": 1}]),
    );
    let t = env.spawn(&["tick", "--virtual-clock", "--at", &at(10, "08:00")]);
    kill_when(&cloud, t, |c| {
        c.emu()
            .with_state(|s| s.log.iter().any(|e| e.code == "fault:hang"))
    });
    cloud.renew_elsewhere("dh-a", 1, "Year");
    let r = tick(&cloud, &env, &at(10, "09:00"));
    assert_eq!(r["blocked"], json!(["dh-a", "dh-b", "dh-c"]), "{r}");
    assert!(notices(&env, "needs_attention", "dh-b") >= 1);
    let plan = env.json(&["plan", "--json", "--at", &at(10, "09:00")]);
    assert!(
        plan.as_array()
            .unwrap()
            .iter()
            .all(|p| p["state"] == "blocked"),
        "{plan}"
    );
    let list = env.json(&["attempts", "list", "--blocked", "--json"]);
    let id = list[0]["attempt_id"]
        .as_i64()
        .expect("a blocked attempt")
        .to_string();
    env.run(&[
        "attempts",
        "settle",
        &id,
        "--not-applied",
        "--note",
        "no order in billing",
    ])
    .expect(0);
    let r = tick(&cloud, &env, &at(10, "10:00"));
    assert_eq!(r["renewed"], json!(["dh-b", "dh-c"]), "{r}");
    for h in ["dh-b", "dh-c"] {
        assert_eq!(cycles_paid(&cloud, h), ["2026-12-10T16:00Z"], "{h}");
    }
    assert_eq!(cloud.ledger_of("dh-a")[0]["Source"], "elsewhere");
    assert_eq!(cloud.ledger_of("dh-a").len(), 1);
}

/// 8. A forward jump of the local clock past the expiry lapses nothing while the cloud shows
///    the host unexpired and unlocked.
#[test]
fn class8_the_local_clock_alone_lapses_nothing() {
    let cloud = Cloud::start();
    let env = cloud.env("");
    fleet(&cloud, &env, &[("dh-a", E, 1, "Month")]);
    cloud.set_clock(&at(10, "08:00"));
    let r = env.json(&[
        "tick",
        "--virtual-clock",
        "--at",
        &at(11, "09:00"),
        "--json",
    ]);
    assert!(r["lapsed"].as_array().unwrap().is_empty(), "{r}");
    // The clock back where it belongs.
    tick(&cloud, &env, &at(10, "08:30"));
    assert_eq!(notices(&env, "lapsed", "dh-a"), 0);
    assert_eq!(cycles_paid(&cloud, "dh-a"), ["2026-12-10T16:00Z"]);
}

/// 9a. A renewal the cloud applied and then answered with a host-gone 4xx is re-read before it
///     is recorded: the host stays managed, and its next cycle is renewed.
#[test]
fn class9_applied_then_host_gone_answer_is_re_read() {
    let cloud = Cloud::start();
    let env = cloud.env("");
    fleet(&cloud, &env, &[("dh-a", E, 1, "Week")]);
    cloud.faults(
        1,
        json!([{"action": "RenewDedicatedHosts", "kind": "apply_then_error", "status": 404,
        "code": "InvalidDedicatedHostId.NotFound", "count": 1}]),
    );
    tick(&cloud, &env, &at(2, "08:00"));
    let a = env.json(&["audit", "attempts", "--host", "dh-a", "--json"]);
    assert_eq!(a[0]["outcome"], "renewed", "{a}");
    for d in 3..=12 {
        tick(&cloud, &env, &at(d, "08:00"));
    }
    assert_eq!(
        cycles_paid(&cloud, "dh-a"),
        ["2026-12-10T16:00Z", "2026-12-17T16:00Z"]
    );
}

/// 9b. … and a paid cycle answered with a definite failure is recorded as renewed, not failed.
#[test]
fn class9_applied_then_definite_failure_is_recorded_as_renewed() {
    let cloud = Cloud::start();
    let env = cloud.env("");
    fleet(&cloud, &env, &[("dh-a", E, 1, "Month")]);
    cloud.faults(
        1,
        json!([{"action": "RenewDedicatedHosts", "kind": "apply_then_error", "status": 400,
        "code": "InsufficientBalance", "count": 1}]),
    );
    let r = tick(&cloud, &env, &at(2, "08:00"));
    assert_eq!(r["renewed"], json!(["dh-a"]), "{r}");
    assert_eq!(notices(&env, "renewal_failed", "dh-a"), 0);
    assert_eq!(cycles_paid(&cloud, "dh-a"), ["2026-12-10T16:00Z"]);
}

/// 10a. With the inventory's expiry ahead of the cloud's, the cloud's real cycle is attempted
///      in its own windows (the host was read before, so its cloud expiry is known).
#[test]
fn class10_the_clouds_cycle_is_attempted_when_the_inventory_is_ahead() {
    let cloud = Cloud::start();
    let env = cloud.env("");
    cloud.set_clock(&at(1, "07:00"));
    cloud.add(json!([{"DedicatedHostId": "dh-a", "RegionId": "cn-hangzhou", "ChargeType": "PrePaid", "ExpiredTime": "2026-12-08T16:00Z"}]));
    env.run(&["sync", "--region", "cn-hangzhou"]).expect(0);
    // A wrong expiry imported by hand, two weeks ahead.
    env.import("dedicated_host_id,region_id,expired_time,charge_type,renewal_status,duration,period_unit\ndh-a,cn-hangzhou,2026-12-22T16:00Z,PrePaid,AutoRenewal,1,Month\n");
    for d in 1..=9 {
        tick(&cloud, &env, &at(d, "08:00"));
    }
    assert_eq!(cycles_paid(&cloud, "dh-a"), ["2026-12-08T16:00Z"]);
    assert_eq!(notices(&env, "lapsed", "dh-a"), 0);
}

/// 10b. … and a renewal that moved the cloud's expiry is recorded as renewed, not as failed
///      because the inventory's expiry was further ahead.
#[test]
fn class10_a_renewal_short_of_the_inventory_is_still_a_renewal() {
    let cloud = Cloud::start();
    let env = cloud.env("");
    fleet(&cloud, &env, &[("dh-a", "2026-12-12T16:00Z", 1, "Week")]);
    env.import("dedicated_host_id,region_id,expired_time,charge_type,renewal_status,duration,period_unit\ndh-a,cn-hangzhou,2026-12-20T16:00Z,PrePaid,AutoRenewal,1,Week\n");
    // The first window of the inventory's cycle, the last one of the cloud's.
    let r = tick(&cloud, &env, &at(12, "08:00"));
    assert_eq!(r["renewed"], json!(["dh-a"]), "{r}");
    assert!(r["failed"].as_array().unwrap().is_empty());
    assert_eq!(notices(&env, "renewal_failed", "dh-a"), 0);
    assert_eq!(cycles_paid(&cloud, "dh-a"), ["2026-12-12T16:00Z"]);
}

/// Audit: a hand renewal made while an attempt is unknown is not credited to the daemon's
/// token, and the pass report agrees with v_attempts on sends.
#[test]
fn audit_a_hand_renewal_is_not_credited_and_reports_match_the_trail() {
    let cloud = Cloud::start();
    let env = cloud.env("timeout = \"1s\"");
    fleet(&cloud, &env, &[("dh-a", E, 1, "Month")]);
    cloud.set_clock(&at(3, "08:00"));
    cloud.faults(
        1,
        json!([{"action": "RenewDedicatedHosts", "kind": "hang", "ms": 60000, "count": 1}]),
    );
    let t = env.spawn(&["tick", "--virtual-clock", "--at", &at(3, "08:00")]);
    kill_when(&cloud, t, |c| {
        c.emu()
            .with_state(|s| s.log.iter().any(|e| e.code == "fault:hang"))
    });
    cloud.renew_elsewhere("dh-a", 1, "Year");
    let r = tick(&cloud, &env, &at(3, "09:00"));
    let a = env.json(&["audit", "attempts", "--host", "dh-a", "--json"]);
    assert_eq!(a.as_array().unwrap().len(), 1, "{a}");
    assert_ne!(a[0]["outcome"], "renewed", "not credited to the token: {a}");
    assert_eq!(a[0]["outcome"], "renewed_elsewhere");
    let resolved = r["resolved"].as_array().unwrap();
    assert_eq!(resolved.len(), 1, "{r}");
    assert_eq!(
        resolved[0]["sends"], a[0]["sends"],
        "report and trail agree: {r} {a}"
    );
    assert_eq!(a[0]["sends"], 1);
}
