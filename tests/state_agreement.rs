//! One definition of host state (`domain::plan::plan_host`), four readers: `plan`, the auditors'
//! `v_hosts` view, `/metrics` and the engine's due set. After renewals, a failed renewal, a
//! lapse and a release, all four say the same thing about every host.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, Utc};
use common::cloud::Cloud;
use serde_json::json;

/// Expiry `d` days from now, at 16:00Z (ECS's minute form).
fn in_days(d: i64) -> String {
    (Utc::now() + Duration::days(d))
        .format("%Y-%m-%dT16:00Z")
        .to_string()
}

#[test]
fn plan_v_hosts_metrics_and_the_due_set_agree() {
    let cloud = Cloud::start();
    let fleet = [
        ("dh-renew-a", 3, "AutoRenewal", "PrePaid"),
        ("dh-renew-b", 5, "AutoRenewal", "PrePaid"),
        ("dh-poor", 4, "AutoRenewal", "PrePaid"),
        ("dh-later", 40, "AutoRenewal", "PrePaid"),
        ("dh-manual", 6, "Normal", "PrePaid"),
        ("dh-off", 20, "NotRenewal", "PrePaid"),
        ("dh-lapsed", -2, "AutoRenewal", "PrePaid"),
        ("dh-released", 30, "AutoRenewal", "PrePaid"),
        ("dh-post", 900, "", "PostPaid"),
    ];
    let mut csv = String::from(
        "dedicated_host_id,region_id,expired_time,charge_type,renewal_status,duration,period_unit\n",
    );
    let mut cloud_hosts = Vec::new();
    for (id, d, status, charge) in fleet {
        let e = in_days(d);
        if charge == "PrePaid" {
            csv.push_str(&format!("{id},cn-hangzhou,{e},PrePaid,{status},1,Month\n"));
        } else {
            csv.push_str(&format!("{id},cn-hangzhou,{e},PostPaid,,,\n"));
        }
        if id != "dh-released" {
            let mut h =
                json!({"DedicatedHostId": id, "RegionId": "cn-hangzhou", "ChargeType": charge});
            if charge == "PrePaid" {
                h["ExpiredTime"] = json!(e);
            }
            cloud_hosts.push(h);
        }
    }
    cloud.add(serde_json::Value::Array(cloud_hosts));
    cloud.faults(
        7,
        json!([{"action": "RenewDedicatedHosts", "hosts": ["dh-poor"], "kind": "error",
                "status": 400, "code": "InsufficientBalance"}]),
    );
    let port = common::free_port();
    let env = cloud.env(&format!(
        "[metrics]\nlisten = \"127.0.0.1:{port}\"\n[sync]\nenabled = false\n"
    ));
    env.import(&csv);
    // The release: sync no longer sees dh-released in its region.
    env.run(&["sync"]).expect(0);
    // The engine's due set before the pass is plan's `due`.
    let due_in = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let planned_due: BTreeSet<String> = env
        .json(&["plan", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["state"] == "due")
        .map(|e| e["host_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        planned_due,
        BTreeSet::from(["dh-poor", "dh-renew-a", "dh-renew-b"].map(str::to_owned))
    );
    let dry = env.json(&["tick", "--dry-run", "--json"]);
    assert_eq!(due_in(&dry["due"]), planned_due, "{dry}");
    // A real pass now: the due hosts are renewed, except dh-poor (no balance).
    let pass = env.json(&["tick", "--json"]);
    let renewed: BTreeSet<&str> = pass["renewed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(
        renewed,
        BTreeSet::from(["dh-renew-a", "dh-renew-b"]),
        "{pass}"
    );

    // 1. plan
    let plan: BTreeMap<String, String> = env
        .json(&["plan", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["host_id"].as_str().unwrap().to_owned(),
                e["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = [
        ("dh-renew-a", "renewed"),
        ("dh-renew-b", "renewed"),
        ("dh-poor", "due"),
        ("dh-later", "scheduled"),
        ("dh-manual", "not_managed"),
        ("dh-off", "not_managed"),
        ("dh-lapsed", "lapsed"),
        ("dh-released", "released"),
        ("dh-post", "postpaid"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    assert_eq!(plan, expected, "plan");

    // 2. v_hosts, read as an auditor does
    let rt = tokio::runtime::Runtime::new().unwrap();
    let view: BTreeMap<String, String> = rt.block_on(async {
        let pool = common::auditor(&env.db).await;
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT host_id, state FROM v_hosts")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows.into_iter().collect()
    });
    assert_eq!(view, plan, "v_hosts and plan");

    // 3. the engine's due set after the pass: dh-poor failed definitively in this window, so
    // it waits for tomorrow's; nothing else is due.
    assert_eq!(
        due_in(&pass["failed"]),
        BTreeSet::from(["dh-poor".to_owned()])
    );
    let dry = env.json(&["tick", "--dry-run", "--json"]);
    assert!(due_in(&dry["due"]).is_empty(), "{dry}");
    assert!(dry["planned"].as_array().unwrap().is_empty(), "{dry}");

    // 4. /metrics: the per-state counts are plan's.
    let mut daemon = env.spawn(&["run"]);
    let body = (0..100)
        .find_map(|_| {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                let b = common::http_get(port, "/metrics");
                if b.contains("ddh_renewd_hosts{") {
                    return Some(b);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            None
        })
        .expect("/metrics served within 10 s");
    let _ = daemon.kill();
    let _ = daemon.wait();
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    for state in plan.values() {
        *counted.entry(state.clone()).or_default() += 1;
    }
    let mut metrics: BTreeMap<String, u64> = BTreeMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("ddh_renewd_hosts{state=\"") {
            let (state, n) = rest.split_once("\"} ").unwrap();
            metrics.insert(state.to_owned(), n.parse().unwrap());
        }
        if let Some(rest) = line.strip_prefix("ddh_renewd_host_expiry_timestamp_seconds{host_id=\"")
        {
            let (id, labels) = rest.split_once('"').unwrap();
            assert!(
                labels.contains(&format!("state=\"{}\"", plan[id])),
                "{id}: {line}"
            );
        }
    }
    assert_eq!(metrics, counted, "/metrics and plan");
}
