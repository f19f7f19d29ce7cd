//! Exactly once under faults and crashes: the emulator's ledger must show each cycle renewed
//! exactly once, and every ledger entry must match a written-ahead attempt with the same token.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cloud::Cloud;
use common::{Env, TEST_KEY_ID, TEST_SECRET, bin};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const AT: &str = "2026-12-03T08:00:00+08:00";

fn fleet(cloud: &Cloud, env: &Env, n: usize) {
    let mut hosts = Vec::new();
    let mut csv =
        String::from("dedicated_host_id,region_id,expired_time,charge_type,renewal_status\n");
    for i in 0..n {
        let id = format!("dh-f{i:04}");
        hosts.push(json!({"DedicatedHostId": id, "RegionId": "cn-hangzhou", "ChargeType": "PrePaid", "ExpiredTime": "2026-12-10T16:00Z"}));
        csv.push_str(&format!(
            "{id},cn-hangzhou,2026-12-10T16:00Z,PrePaid,AutoRenewal\n"
        ));
    }
    cloud.add(Value::Array(hosts));
    env.import(&csv);
}

/// Every host in the ledger exactly once, and each entry's token written ahead in `attempts`.
fn assert_exactly_once(cloud: &Cloud, env: &Env, n: usize) {
    let ledger = cloud.ledger();
    let mut per_host: BTreeMap<String, usize> = BTreeMap::new();
    for e in &ledger {
        *per_host
            .entry(e["DedicatedHostId"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(per_host.len(), n, "every host renewed");
    let twice: Vec<_> = per_host.iter().filter(|(_, c)| **c != 1).collect();
    assert!(twice.is_empty(), "renewed more than once: {twice:?}");
    let attempts = env.json(&["audit", "attempts", "--json"]);
    let tokens: HashSet<&str> = attempts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["client_token"].as_str().unwrap())
        .collect();
    for e in &ledger {
        let t = e["ClientToken"].as_str().expect("ledger entry has a token");
        assert!(tokens.contains(t), "ledger token {t} has no attempt row");
    }
    let unknown = attempts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["outcome"] == "unknown")
        .count();
    assert_eq!(unknown, 0, "every attempt resolved");
}

#[test]
fn exactly_once_under_drops_errors_and_hangs() {
    let cloud = Cloud::start();
    let env = cloud.env("timeout = \"1s\"\nbatch_size = 10\n[schedule]\nin_window_retry = \"2m\"");
    fleet(&cloud, &env, 200);
    cloud.set_clock(AT);
    cloud.faults(11, json!([
        {"action": "RenewDedicatedHosts", "kind": "hang", "count": 3},
        // Only the first matching rule is consulted: after the hangs, these six renewals are
        // applied and their answers dropped (a fixed count, so the test does not depend on how
        // concurrent batches interleave their draws of the seeded generator).
        {"action": "RenewDedicatedHosts", "kind": "apply_then_drop", "count": 6},
        {"action": "*", "kind": "apply_then_error", "probability": 0.3, "status": 503, "code": "ServiceUnavailable"}
    ]));
    let r = env.json(&["tick", "--virtual-clock", "--at", AT, "--json"]);
    let (hangs, drops, errors) = cloud.emu().with_state(|s| {
        let count = |c: &str| s.log.iter().filter(|e| e.code == c).count();
        (
            count("fault:hang"),
            count("fault:apply_then_drop"),
            count("ServiceUnavailable"),
        )
    });
    println!(
        "faults injected: {hangs} hangs, {drops} dropped answers, {errors} errors after apply; {} attempts",
        r["attempts"].as_array().unwrap().len()
    );
    assert_eq!(hangs, 3);
    assert!(
        drops >= 3 && errors >= 3,
        "the faults fired: {drops} drops, {errors} errors"
    );
    assert_eq!(r["renewed"].as_array().unwrap().len(), 200, "{r}");
    assert_exactly_once(&cloud, &env, 200);
    // Re-sends carried the same token: more sends than attempts, no extra ledger entries.
    let sends: u64 = r["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["sends"].as_u64().unwrap())
        .sum();
    assert!(sends > 20, "{sends} sends for 20 batches");
}

#[test]
fn exactly_once_across_fifty_sigkills() {
    let cloud = Cloud::start();
    // One host per batch and 30 ms per call: the window takes seconds, so kills land mid-pass.
    let env = cloud.env("timeout = \"2s\"\nbatch_size = 1\n[schedule]\nin_window_retry = \"5m\"");
    fleet(&cloud, &env, 500);
    cloud.set_clock(AT);
    cloud.faults(
        5,
        json!([{"action": "RenewDedicatedHosts", "kind": "apply_then_drop", "probability": 0.3}]),
    );
    cloud.emu().with_state(|s| s.latency_ms = 30);
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let mut kills = 0;
    let started = Instant::now();
    // Kill at random moments until 50 kills happened; then let a tick finish.
    while kills < 50 {
        assert!(started.elapsed() < Duration::from_secs(240), "bounded");
        let mut child = Command::new(bin())
            .arg("--config")
            .arg(&env.config)
            .args(["tick", "--virtual-clock", "--at", AT])
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", TEST_KEY_ID)
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", TEST_SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tick");
        // Kill at a random moment after this run started sending renewals: that is where a crash
        // can leave an attempt written ahead with no outcome.
        let renews = || {
            cloud.emu().with_state(|s| {
                s.log
                    .iter()
                    .filter(|e| e.action == "RenewDedicatedHosts")
                    .count()
            })
        };
        let before = renews();
        let t_spawn = Instant::now();
        while renews() == before && t_spawn.elapsed() < Duration::from_secs(10) {
            if child.try_wait().expect("try_wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..80)));
        match child.try_wait().expect("try_wait") {
            Some(_) => {
                // Finished before the kill; everything may already be renewed.
                if cloud.ledger().len() >= 500 {
                    break;
                }
            }
            None => {
                child.kill().expect("SIGKILL");
                let _ = child.wait();
                kills += 1;
            }
        }
    }
    let before_final = cloud.ledger().len();
    let t_final = Instant::now();
    let done = env.json(&["tick", "--virtual-clock", "--at", AT, "--json"]);
    println!("final pass took {:?}", t_final.elapsed());
    // Attempts that a killed run left without an outcome and a later run settled.
    let crashed: i64 = cloud.rt.block_on(async {
        let store = ddh_renewd::store::Store::open(&env.db, Default::default())
            .await
            .unwrap();
        let n = sqlx::query_scalar(
            "SELECT count(DISTINCT attempt_id) FROM attempt_events WHERE kind = 'resolve'",
        )
        .fetch_one(&common::auditor(&env.db).await)
        .await
        .unwrap();
        store.close().await;
        n
    });
    println!("{crashed} attempts were left unresolved by a killed run and settled by a later one");
    assert!(crashed >= 10, "the kills hit the write-ahead window");
    let resent = done["resolved"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["sends"].as_u64() > Some(0))
        .count();
    println!(
        "{kills} SIGKILLs; {before_final} ledger entries before the final pass; final pass: {} attempts resolved ({resent} by re-sending the same token), {} renewed, {} already renewed",
        done["resolved"].as_array().unwrap().len(),
        done["renewed"].as_array().unwrap().len(),
        done["already_renewed"].as_array().unwrap().len()
    );
    assert!(kills >= 50, "only {kills} kills happened mid-pass");
    assert_exactly_once(&cloud, &env, 500);
}
