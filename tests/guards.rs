//! Guards on the commands that spend money (issue 13): a pass in the future is refused without
//! `--dry-run`; `renew` pays only inside the current cycle's windows, so the same `renew` twice
//! pays once; `--force --yes` pays anyway, and the auditors' guarantee query flags it. The
//! emulator runs on the wall clock here, and the hosts' expiries are set relative to it, so the
//! tests hold whatever day they run.

mod common;

use chrono::{Duration, Utc};
use common::cloud::Cloud;
use serde_json::json;

fn ecs(t: chrono::DateTime<Utc>) -> String {
    ddh_renewd::domain::time::to_ecs(t)
}

#[test]
fn a_pass_in_the_future_is_refused_without_dry_run() {
    let cloud = Cloud::start();
    let env = cloud.env("");
    let e = Utc::now() + Duration::days(40);
    cloud.add(json!([{"DedicatedHostId": "dh-f", "RegionId": "cn-hangzhou", "ChargeType": "PrePaid", "ExpiredTime": ecs(e)}]));
    env.import(&format!(
        "dedicated_host_id,region_id,expired_time,charge_type,renewal_status\ndh-f,cn-hangzhou,{},PrePaid,AutoRenewal\n",
        ecs(e)
    ));
    let at = ddh_renewd::domain::time::to_db(e - Duration::days(3));
    let r = env.run(&["tick", "--at", &at]).expect(2);
    assert!(
        r.stderr.contains("in the future") && r.stderr.contains("--dry-run"),
        "{}",
        r.stderr
    );
    assert!(cloud.ledger().is_empty());
    let runs = env.json(&["audit", "windows", "--json"]);
    assert!(
        runs.as_array().unwrap().is_empty(),
        "nothing recorded: {runs}"
    );
    // The dry run may look ahead.
    let dry = env.json(&["tick", "--at", &at, "--dry-run", "--json"]);
    assert_eq!(dry["due"], json!(["dh-f"]), "{dry}");
    assert!(cloud.ledger().is_empty());
    // --virtual-clock is for an emulator only.
    let remote = common::Env::with_config("[ecs]\nendpoint = \"https://ecs.example.com\"\n");
    let r = remote
        .run(&["tick", "--virtual-clock", "--at", &at])
        .expect(2);
    assert!(r.stderr.contains("loopback"), "{}", r.stderr);
}

#[test]
fn the_same_renew_twice_pays_once_and_force_is_flagged() {
    let cloud = Cloud::start();
    let env = cloud.env("");
    // Inside its windows now: expires in five days.
    let e = Utc::now() + Duration::days(5);
    cloud.add(json!([{"DedicatedHostId": "dh-r", "RegionId": "cn-hangzhou", "ChargeType": "PrePaid", "ExpiredTime": ecs(e)}]));
    env.import(&format!(
        "dedicated_host_id,region_id,expired_time,charge_type\ndh-r,cn-hangzhou,{},PrePaid\n",
        ecs(e)
    ));
    let renew = [
        "renew",
        "--region",
        "cn-hangzhou",
        "--ids",
        "dh-r",
        "--period",
        "1",
    ];
    env.run(&renew).expect(0);
    assert_eq!(cloud.ledger_of("dh-r").len(), 1);
    // Again: the new cycle has no window open; nothing is paid.
    let r = env.run(&renew).expect(1);
    assert!(
        r.stdout.contains("no window of this cycle is open") && r.stderr.contains("not renewed"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert_eq!(
        cloud.ledger_of("dh-r").len(),
        1,
        "the second renew paid nothing"
    );
    // --force without --yes and without a terminal: refused, nothing paid.
    let mut forced: Vec<&str> = renew.to_vec();
    forced.push("--force");
    let r = env.run(&forced).expect(2);
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    assert_eq!(cloud.ledger_of("dh-r").len(), 1);
    // --force --yes pays, and the guarantee query of docs/audit.md flags it.
    forced.push("--yes");
    env.run(&forced).expect(0);
    assert_eq!(cloud.ledger_of("dh-r").len(), 2);
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/audit.md")).unwrap();
    let q6 = doc
        .split("```sql\n")
        .nth(6)
        .and_then(|b| b.split("```").next())
        .expect("query 6");
    let out = std::process::Command::new("sqlite3")
        .args(["-readonly", "-bail"])
        .arg(&env.db)
        .arg(q6)
        .output()
        .expect("sqlite3 CLI");
    let rows = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && rows.contains("dh-r") && rows.contains("forced"),
        "{rows}"
    );
    assert_eq!(rows.lines().count(), 1, "only the forced payment: {rows}");
}

/// `check-config` only sees that credentials are present; `--online` asks ECS and says what it
/// answered: a wrong secret is a configuration error (exit 2), the right one reports ok.
#[test]
fn check_config_online_tells_a_wrong_secret() {
    let cloud = Cloud::start();
    let mut env = cloud.env("");
    let r = env.run(&["check-config", "--online"]).expect(0);
    assert!(r.stdout.contains("online: ok"), "{}", r.stdout);
    env.set_env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "not-the-secret");
    let r = env.run(&["check-config"]).expect(0);
    assert!(
        r.stdout.contains("credentials: ok"),
        "presence only: {}",
        r.stdout
    );
    let r = env.run(&["check-config", "--online"]).expect(2);
    assert!(r.stderr.contains("SignatureDoesNotMatch"), "{}", r.stderr);
    assert!(!r.stderr.contains("not-the-secret") && !r.stdout.contains("not-the-secret"));
}

/// `tick --dry-run` runs the real pass up to the send: the same hosts, batches and ClientTokens
/// the real pass then sends; `--offline` needs neither the cloud nor credentials; and a dry run
/// creates no database.
#[test]
fn the_dry_run_plans_exactly_what_the_pass_sends() {
    let cloud = Cloud::start();
    let env = cloud.env("batch_size = 2\n");
    let e = Utc::now() + Duration::days(5);
    let mut csv =
        String::from("dedicated_host_id,region_id,expired_time,charge_type,renewal_status\n");
    let mut hosts = Vec::new();
    for i in 0..5 {
        hosts.push(json!({"DedicatedHostId": format!("dh-d{i}"), "RegionId": "cn-hangzhou", "ChargeType": "PrePaid", "ExpiredTime": ecs(e)}));
        csv.push_str(&format!(
            "dh-d{i},cn-hangzhou,{},PrePaid,AutoRenewal\n",
            ecs(e)
        ));
    }
    // One on cloud-side auto-renew: neither run sends for it.
    hosts.push(json!({"DedicatedHostId": "dh-d9", "RegionId": "cn-hangzhou", "ChargeType": "PrePaid", "ExpiredTime": ecs(e), "RenewalStatus": "AutoRenewal"}));
    csv.push_str(&format!(
        "dh-d9,cn-hangzhou,{},PrePaid,AutoRenewal\n",
        ecs(e)
    ));
    cloud.add(serde_json::Value::Array(hosts));
    let missing = env.run(&["tick", "--dry-run"]).expect(2);
    assert!(missing.stderr.contains("no database"), "{}", missing.stderr);
    assert!(!env.db.exists(), "a dry run creates nothing");
    env.import(&csv);
    let dry = env.json(&["tick", "--dry-run", "--json"]);
    let planned: std::collections::BTreeSet<&str> = dry["planned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["client_token"].as_str().unwrap())
        .collect();
    assert_eq!(planned.len(), 3, "5 hosts in batches of 2: {dry}");
    assert_eq!(dry["skipped_double_renew"], json!(["dh-d9"]), "{dry}");
    assert!(cloud.ledger().is_empty(), "the dry run sent nothing");
    let real = env.json(&["tick", "--json"]);
    let sent: std::collections::BTreeSet<&str> = real["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["client_token"].as_str().unwrap())
        .collect();
    assert_eq!(planned, sent, "the same requests, the same tokens");
    assert_eq!(dry["due"], real["due"]);
    // Offline: the database alone, no credentials.
    let r = env
        .command(&["tick", "--dry-run", "--offline"])
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

/// After a crash, the real pass first decides the open attempt (the cloud finished it) and that
/// can free a host at once: renewed by a week, its next cycle is already due. The dry run must
/// choose that host as the real pass will — the same request, the same token.
#[test]
fn the_dry_run_after_a_crash_plans_the_hosts_the_real_pass_frees() {
    let cloud = Cloud::start();
    let env = cloud.env("timeout = \"1s\"\n[schedule]\nin_window_retry = \"20s\"");
    let e = Utc::now() + Duration::hours(12);
    cloud.add(json!([{"DedicatedHostId": "dh-w", "RegionId": "cn-hangzhou", "ChargeType": "PrePaid", "ExpiredTime": ecs(e)}]));
    env.import(&format!(
        "dedicated_host_id,region_id,expired_time,charge_type,renewal_status,duration,period_unit\n\
         dh-w,cn-hangzhou,{},PrePaid,AutoRenewal,1,Week\n",
        ecs(e)
    ));
    cloud.faults(
        1,
        json!([{"action": "RenewDedicatedHosts", "kind": "delay", "ms": 2000, "count": 1}]),
    );
    let mut t = env.spawn(&["tick"]);
    cloud.wait_for("the request to arrive", 30, |c| {
        c.processing("RenewDedicatedHosts") > 0
    });
    t.kill().expect("SIGKILL");
    let _ = t.wait();
    cloud.wait_idle();
    assert_eq!(
        cloud.ledger_of("dh-w").len(),
        1,
        "the cloud finished the request"
    );
    let dry = env.json(&["tick", "--dry-run", "--json"]);
    let planned = dry["planned"].as_array().expect("planned");
    assert_eq!(planned.len(), 1, "the next week is due at once: {dry}");
    let cycle = ddh_renewd::domain::time::parse_instant(&ecs(e)).expect("ECS time");
    let e2 = ddh_renewd::domain::time::to_db(cycle + Duration::weeks(1));
    assert_eq!(planned[0]["hosts"], json!([["dh-w", e2]]), "{dry}");
    assert_eq!(cloud.ledger_of("dh-w").len(), 1, "the dry run sent nothing");
    let real = env.json(&["tick", "--json"]);
    let resolved = real["resolved"].as_array().expect("resolved");
    assert_eq!(resolved.len(), 1, "{real}");
    assert_eq!(resolved[0]["outcome"], "renewed", "{real}");
    let sent: Vec<&str> = real["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["client_token"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        sent,
        [planned[0]["client_token"].as_str().unwrap_or("?")],
        "{real}"
    );
    assert_eq!(
        cloud.ledger_of("dh-w").len(),
        2,
        "two cycles, each paid once"
    );
}
