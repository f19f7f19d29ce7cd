//! `sync` through the real binary against the real emulator over loopback, with a real SQLite file.

mod common;

use common::TEST_KEY_ID;
use common::cloud::Cloud;
use ddh_renewd::emulator::state::FaultRule;
use serde_json::{Value, json};

/// `n` hosts per region; every 10th PostPaid, every 7th auto-renewed by the cloud.
fn fleet(n: usize) -> Value {
    let mut v = Vec::new();
    for region in ["cn-hangzhou", "cn-shanghai"] {
        for i in 0..n {
            let mut h = json!({"DedicatedHostId": format!("dh-{region}-{i:05}"), "RegionId": region,
                "ChargeType": if i % 10 == 9 { "PostPaid" } else { "PrePaid" },
                "ExpiredTime": format!("2027-01-{:02}T16:00Z", 1 + i % 28)});
            if i % 7 == 0 && i % 10 != 9 {
                h["RenewalStatus"] = json!("AutoRenewal");
                h["Duration"] = json!(1);
            }
            v.push(h);
        }
    }
    Value::Array(v)
}

#[test]
fn sync_pulls_every_host_of_two_regions_then_tracks_changes() {
    let cloud = Cloud::start();
    cloud.add(fleet(1250));
    let env = cloud.env("");
    let t0 = std::time::Instant::now();
    let report = env.json(&["sync", "--json"]);
    let wall = t0.elapsed();
    let regions = report["regions"].as_array().unwrap();
    let added: u64 = regions.iter().map(|r| r["added"].as_u64().unwrap()).sum();
    assert_eq!(added, 2500);
    let calls = &report["calls"];
    let total: u64 = calls
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    println!(
        "sync of 2,500 hosts in 2 regions: {} ms inside sync, {} ms whole process, {total} calls {calls}",
        report["elapsed_ms"],
        wall.as_millis()
    );
    assert_eq!(
        calls["DescribeDedicatedHosts"], 26,
        "13 pages of 100 per region"
    );
    assert_eq!(
        calls["DescribeDedicatedHostAutoRenew"], 24,
        "1125 PrePaid per region → 12 calls each"
    );
    let listed = env.json(&["hosts", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 2500);
    let one = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"]["id"] == "dh-cn-hangzhou-00007")
        .unwrap();
    assert_eq!(one["cloud_renewal"]["status"], "AutoRenewal");
    assert_eq!(one["host"]["zone_id"], "cn-hangzhou-a");

    // The cloud changes: 10 hosts gone, one renewed elsewhere.
    cloud.emu().with_state(|s| {
        for i in 0..10 {
            s.hosts.remove(&format!("dh-cn-shanghai-{i:05}"));
        }
        if let Some(h) = s.hosts.get_mut("dh-cn-hangzhou-00001") {
            h.host.expired_time =
                ddh_renewd::domain::time::parse_instant("2027-02-02T16:00Z").unwrap();
        }
    });
    let report = env.json(&["sync", "--json"]);
    let sh = report["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == "cn-shanghai")
        .unwrap();
    assert_eq!(sh["released"].as_array().unwrap().len(), 10);
    let hz = report["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == "cn-hangzhou")
        .unwrap();
    assert_eq!(
        (hz["updated"].as_u64(), hz["unchanged"].as_u64()),
        (Some(1), Some(1249))
    );
    // Released hosts stay, with their history.
    let gone = env.json(&["hosts", "show", "dh-cn-shanghai-00003", "--json"]);
    assert_eq!(gone["host"]["status"], "Released");
    let kinds: Vec<(&str, Option<&str>)> = gone["host_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["kind"].as_str().unwrap(), c["field"].as_str()))
        .collect();
    // The first sync also records the first reading of the cloud-side renewal status.
    assert_eq!(
        kinds,
        [
            ("added", None),
            ("updated", Some("cloud_renewal_status")),
            ("released", Some("status"))
        ]
    );
    let moved = env.json(&["hosts", "show", "dh-cn-hangzhou-00001", "--json"]);
    let change = moved["host_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "expired_time")
        .unwrap();
    assert_eq!(
        (
            change["old_value"].as_str(),
            change["new_value"].as_str(),
            change["source"].as_str()
        ),
        (
            Some("2027-01-02T16:00:00Z"),
            Some("2027-02-02T16:00:00Z"),
            Some("sync")
        )
    );
}

#[test]
fn sync_completes_through_half_failing_describes() {
    let cloud = Cloud::start();
    cloud.add(fleet(300));
    cloud.emu().with_state(|s| s.set_faults(42, vec![serde_json::from_value::<FaultRule>(json!(
        {"action": "DescribeDedicatedHosts", "probability": 0.5, "kind": "error", "status": 500, "code": "InternalError"})).unwrap()]));
    let env = cloud.env("");
    let report = env.json(&["sync", "--json"]);
    let added: u64 = report["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["added"].as_u64().unwrap())
        .sum();
    assert_eq!(added, 600);
    let describes = report["calls"]["DescribeDedicatedHosts"].as_u64().unwrap();
    println!("DescribeDedicatedHosts calls with p=0.5 errors: {describes} for 6 pages");
    assert!(describes > 6, "some pages had to be retried");
    let failed = cloud
        .emu()
        .with_state(|s| s.log.iter().filter(|e| e.status == 500).count());
    assert_eq!(
        failed as u64,
        describes - 6,
        "every 500 was retried, nothing else was lost"
    );
}

#[test]
fn wrong_secret_fails_fast_naming_the_key_not_the_secret() {
    let cloud = Cloud::start();
    cloud.add(fleet(5));
    let mut env = cloud.env("");
    env.set_env(
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        "wrong-secret-do-not-print",
    );
    env.set_env("DDH_RENEWD_LOG", "trace");
    let t0 = std::time::Instant::now();
    let r = env.run(&["sync"]).expect(2);
    assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    assert!(
        r.stderr.contains("SignatureDoesNotMatch") && r.stderr.contains(TEST_KEY_ID),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("wrong-secret-do-not-print")
            && !r.stdout.contains("wrong-secret-do-not-print")
    );
    let calls = cloud.emu().with_state(|s| s.log.len());
    assert_eq!(calls, 1, "a configuration error is not retried");
    assert!(
        env.json(&["hosts", "list", "--json"])
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing half-applied"
    );
}

#[test]
fn double_renew_risk_is_flagged_then_taken_over() {
    let cloud = Cloud::start();
    cloud.add(json!([
        {"DedicatedHostId": "dh-both", "RegionId": "cn-hangzhou", "ChargeType": "PrePaid", "ExpiredTime": "2027-01-10T16:00Z", "RenewalStatus": "AutoRenewal", "Duration": 1},
        {"DedicatedHostId": "dh-cloud-only", "RegionId": "cn-hangzhou", "ChargeType": "PrePaid", "ExpiredTime": "2027-01-10T16:00Z", "RenewalStatus": "AutoRenewal", "Duration": 1},
        {"DedicatedHostId": "dh-here-only", "RegionId": "cn-hangzhou", "ChargeType": "PrePaid", "ExpiredTime": "2027-01-10T16:00Z"}
    ]));
    let env = cloud.env("");
    env.import(
        "dedicated_host_id,region_id,expired_time,charge_type,renewal_status
dh-both,cn-hangzhou,2027-01-10T16:00Z,PrePaid,AutoRenewal
dh-here-only,cn-hangzhou,2027-01-10T16:00Z,PrePaid,AutoRenewal
",
    );
    let r = env.run(&["sync"]).expect(0);
    assert!(
        r.stdout.contains("double_renew_risk: dh-both"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("double_renew_risk: dh-cloud-only")
            && !r.stdout.contains("double_renew_risk: dh-here-only")
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let notices_in = |db: &std::path::Path| -> Vec<(String, String)> {
        rt.block_on(async {
            let store = ddh_renewd::store::Store::open(db, Default::default())
                .await
                .unwrap();
            let n = store.notices(None).await.unwrap();
            store.close().await;
            n.into_iter().map(|n| (n.kind, n.host_id)).collect()
        })
    };
    let risk = vec![("double_renew_risk".to_owned(), "dh-both".to_owned())];
    assert_eq!(notices_in(&env.db), risk);
    // Same day again: flagged again, recorded once.
    let r = env.run(&["sync"]).expect(0);
    assert!(
        r.stdout.contains("double_renew_risk: dh-both"),
        "{}",
        r.stdout
    );
    assert_eq!(notices_in(&env.db), risk, "one notice per host and day");

    // Visible where people look, and warned about where it is made.
    let plan = env.json(&["plan", "--json"]);
    let attention = |id: &str| {
        plan.as_array()
            .unwrap()
            .iter()
            .find(|p| p["host_id"] == id)
            .map(|p| p["attention"].clone())
            .unwrap()
    };
    assert_eq!(attention("dh-both"), json!(["double_renew_risk"]));
    assert_eq!(attention("dh-here-only"), json!([]));
    let list = env.run(&["hosts", "list"]).expect(0);
    let line = list
        .stdout
        .lines()
        .find(|l| l.starts_with("dh-both"))
        .unwrap();
    assert!(line.contains("double-renew risk"), "{}", list.stdout);
    let set = env
        .run(&[
            "policy",
            "set",
            "--region",
            "cn-hangzhou",
            "--ids",
            "dh-both,dh-here-only",
            "--renewal-status",
            "AutoRenewal",
            "--duration",
            "2",
        ])
        .expect(0);
    assert!(
        set.stderr.contains("warning: dh-both is AutoRenewal here")
            && !set.stderr.contains("dh-here-only"),
        "{}",
        set.stderr
    );

    // takeover = true: the cloud side is set to Normal, and audited.
    let env2 = cloud.env("takeover = true");
    std::fs::copy(&env.db, &env2.db).unwrap();
    let r = env2.run(&["sync", "--json"]).expect(0);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["taken_over"], json!(["dh-both"]));
    let status = cloud
        .emu()
        .with_state(|s| s.hosts["dh-both"].renewal_status);
    assert_eq!(status, ddh_renewd::domain::RenewalStatus::Normal);
    let show = env2.json(&["hosts", "show", "dh-both", "--json"]);
    assert_eq!(show["cloud_renewal"]["status"], "Normal");
    let change = show["host_changes"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|c| c["field"] == "cloud_renewal_status")
        .unwrap();
    assert_eq!(
        (change["old_value"].as_str(), change["new_value"].as_str()),
        (Some("AutoRenewal"), Some("Normal"))
    );
    let r = env2.run(&["sync"]).expect(0);
    assert!(
        !r.stdout.contains("double_renew_risk: dh-both"),
        "resolved: {}",
        r.stdout
    );
    // The takeover and the syncs after it raise no new notice: the one from before stays alone.
    assert_eq!(notices_in(&env2.db), risk);
}

/// A system without CA certificates (a minimal container): plain http to a loopback endpoint
/// needs none and works; an https endpoint fails at once with the cause and the fix.
#[test]
fn no_ca_certificates_loopback_works_https_says_what_to_install() {
    let cloud = Cloud::start();
    cloud.add(fleet(3));
    let mut env = cloud.env("");
    let empty = env.path("no-certs");
    std::fs::create_dir_all(&empty).unwrap();
    env.set_env("SSL_CERT_FILE", empty.join("none.pem").to_str().unwrap());
    env.set_env("SSL_CERT_DIR", empty.to_str().unwrap());
    let report = env.json(&["sync", "--json"]);
    let added: u64 = report["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["added"].as_u64().unwrap())
        .sum();
    assert_eq!(added, 6, "{report}");

    let cfg = env.write(
        "https.toml",
        &format!(
            "[database]\npath = {:?}\n[ecs]\nendpoint = \"https://ecs.cn-hangzhou.aliyuncs.com\"\nregions = [\"cn-hangzhou\"]\n",
            env.db.display().to_string()
        ),
    );
    let out = std::process::Command::new(common::bin())
        .arg("--config")
        .arg(&cfg)
        .arg("sync")
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", TEST_KEY_ID)
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", common::TEST_SECRET)
        .env("SSL_CERT_FILE", empty.join("none.pem"))
        .env("SSL_CERT_DIR", &empty)
        .output()
        .unwrap();
    let run = common::Run::from_output(out);
    assert_eq!(run.code, 2, "a setup problem: {}", run.stderr);
    assert!(
        run.stderr.contains("no usable CA certificates")
            && run.stderr.contains("apt-get install ca-certificates")
            && run.stderr.contains("SSL_CERT_FILE"),
        "{}",
        run.stderr
    );
}
