//! Operating surface: /metrics after a simulated run, /healthz transitions, served over loopback
//! by the same listener the daemon runs.

mod common;

use ddh_renewd::domain::protocol::{PassResult, Trigger};

use std::sync::Arc;

use common::cloud::Cloud;
use ddh_renewd::config::Config;
use ddh_renewd::ecs::{Credentials, EcsClient};
use ddh_renewd::emulator::{TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET};
use ddh_renewd::engine::{Engine, SettableClock};
use ddh_renewd::ops::{Health, OpsState};
use ddh_renewd::store::{HostInput, Source, Store};
use serde_json::{Value, json};

fn get(rt: &tokio::runtime::Runtime, url: &str) -> (u16, String) {
    rt.block_on(async {
        ddh_renewd::ecs::client::install_crypto_provider();
        let r = reqwest::get(url).await.expect("GET");
        (r.status().as_u16(), r.text().await.expect("body"))
    })
}

#[test]
fn metrics_and_health_after_a_simulated_run() {
    let cloud = Cloud::start();
    let rt = &cloud.rt;
    let hosts: Vec<Value> = (0..6)
        .map(|i| json!({"DedicatedHostId": format!("dh-m{i}"), "RegionId": "cn-hangzhou", "ChargeType": "PrePaid", "ExpiredTime": "2026-12-10T16:00Z"}))
        .collect();
    cloud.add(Value::Array(hosts));
    cloud.faults(1, json!([{"action": "RenewDedicatedHosts", "hosts": ["dh-m5"], "kind": "error", "status": 400, "code": "InsufficientBalance"}]));
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.database.path = dir.path().join("ops.db");
    config.ecs.endpoint = cloud.emu().endpoint();
    let start = ddh_renewd::domain::time::parse_instant("2026-12-02T08:00:00+08:00").unwrap();
    cloud.set_clock("2026-12-02T08:00:00+08:00");
    let (store, engine, health, client) = rt.block_on(async {
        let (store, actor) = ddh_renewd::engine::take_database(
            &ddh_renewd::store::Location::Sqlite(config.database.path.clone()),
            config.schedule.schedule(),
        )
        .await
        .unwrap();
        let csv = (0..6)
            .map(|i| format!("dh-m{i},cn-hangzhou,2026-12-10T16:00Z,PrePaid,AutoRenewal\n"))
            .collect::<String>();
        let inputs: Vec<HostInput> = ddh_renewd::import::parse(&format!(
            "dedicated_host_id,region_id,expired_time,charge_type,renewal_status\n{csv}"
        ))
        .unwrap();
        store
            .upsert_hosts(&inputs, "hosts_import", Source::Import, "test", start)
            .await
            .unwrap();
        let client = Arc::new(
            EcsClient::new(
                &ddh_renewd::app::client_options(&config.ecs),
                Credentials::new(TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET),
            )
            .unwrap(),
        );
        let clock = Arc::new(SettableClock::new(start));
        let engine = Engine::new(
            store.clone(),
            client.clone(),
            {
                let mut c = ddh_renewd::app::engine_config(&config);
                c.virtual_clock = true;
                c
            },
            clock,
            Some(actor),
        );
        (store, engine, Arc::new(Health::default()), client)
    });
    let r = rt.block_on(engine.pass(Trigger::Tick, false)).unwrap();
    assert_eq!(r.renewed.len(), 5, "{r:?}");
    // States and health as of a fixed instant after the pass, not today's date.
    let after = Arc::new(SettableClock::new(
        ddh_renewd::domain::time::parse_instant("2026-12-02T09:00:00+08:00").unwrap(),
    ));
    let ops = OpsState {
        store: store.clone(),
        health: health.clone(),
        client: client.clone(),
        schedule: config.schedule.schedule(),
        clock: after,
    };
    let (addr, task) = rt
        .block_on(ddh_renewd::ops::serve("127.0.0.1:0".parse().unwrap(), ops))
        .unwrap();

    let (status, text) = get(rt, &format!("http://{addr}/metrics"));
    assert_eq!(status, 200);
    println!(
        "--- /metrics sample ---\n{}",
        text.lines()
            .filter(|l| !l.starts_with("ddh_renewd_host_"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    for want in [
        // Renewed: 2027-01-10T16:00Z; dh-m5 (never paid) still 2026-12-10T16:00Z.
        "ddh_renewd_host_expiry_timestamp_seconds{host_id=\"dh-m0\",region=\"cn-hangzhou\",state=\"renewed\",policy=\"AutoRenewal\"} 1799596800",
        "ddh_renewd_host_expiry_timestamp_seconds{host_id=\"dh-m5\",region=\"cn-hangzhou\",state=\"due\",policy=\"AutoRenewal\"} 1796918400",
        "ddh_renewd_attempt_hosts_total{outcome=\"renewed\"} 5",
        "ddh_renewd_attempt_hosts_total{outcome=\"failed\"} 1",
        "ddh_renewd_window_runs_total{trigger=\"tick\",result=\"failures\"} 1",
        "ddh_renewd_notices_total{kind=\"renewed\"} 5",
        "ddh_renewd_notices_total{kind=\"renewal_failed\"} 1",
        "ddh_renewd_quota_waits_total 0",
        "# TYPE ddh_renewd_host_next_window_timestamp_seconds gauge",
        "ddh_renewd_hosts{state=\"renewed\"} 5",
        "ddh_renewd_hosts{state=\"due\"} 1",
        "ddh_renewd_healthy 1",
        "ddh_renewd_attempts_undecided{state=\"blocked\"} 0",
        "ddh_renewd_api_requests_total{action=\"RenewDedicatedHosts\"}",
        "ddh_renewd_api_errors_total{action=\"RenewDedicatedHosts\",code=\"InsufficientBalance\"}",
        "ddh_renewd_api_request_duration_seconds_bucket{action=\"DescribeDedicatedHosts\",le=\"+Inf\"}",
        "ddh_renewd_build_info{version=",
        // Every kind and (trigger, result) is written, zero included, so that `increase()` in
        // the shipped alerts sees the first one.
        "ddh_renewd_notices_total{kind=\"lapsed\"} 0",
        "ddh_renewd_window_runs_total{trigger=\"cron\",result=\"config_error\"} 0",
        "ddh_renewd_health_problem{problem=\"config_error\"} 0",
        "ddh_renewd_health_problem{problem=\"blocked_attempt\"} 0",
        "ddh_renewd_last_window_timestamp_seconds 1796169600",
    ] {
        assert!(text.contains(want), "/metrics lacks {want:?}:\n{text}");
    }
    common::promtool_check(&text);
    // dh-m5 is still due: its latest window is today's, 2026-12-02 08:00 UTC+8.
    assert!(
        text.contains(
            "ddh_renewd_host_next_window_timestamp_seconds{host_id=\"dh-m5\",region=\"cn-hangzhou\"} 1796169600"
        ),
        "{text}"
    );

    // Health at 2026-12-02 09:00 UTC+8: the window ran, no configuration error.
    health.record_pass("2026-12-02T00:00:00Z", "failures", None);
    let (status, body) = get(rt, &format!("http://{addr}/healthz"));
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, h["healthy"].clone()), (200, json!(true)), "{h}");
    assert_eq!(h["next_window"], "2026-12-03T00:00:00Z");

    health.set_config_error(Some(
        "SignatureDoesNotMatch (AccessKeyId LTAI5tTestKeyId000000000)".into(),
    ));
    let (status, body) = get(rt, &format!("http://{addr}/healthz"));
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("configuration error: SignatureDoesNotMatch"),
        "{body}"
    );
    let (_, text) = get(rt, &format!("http://{addr}/metrics"));
    for want in [
        "ddh_renewd_healthy 0",
        "ddh_renewd_health_problem{problem=\"config_error\"} 1",
        "ddh_renewd_health_problem{problem=\"missed_window\"} 0",
    ] {
        assert!(text.contains(want), "/metrics lacks {want:?}:\n{text}");
    }
    health.record_pass("2026-12-03T00:00:00Z", "ok", None);
    let (_, body) = get(rt, &format!("http://{addr}/healthz"));
    assert!(
        !body.contains("configuration error"),
        "a clean pass clears it: {body}"
    );
    task.abort();
    rt.block_on(store.close());
}

#[test]
fn a_missed_window_makes_the_daemon_unhealthy_until_it_runs() {
    let cloud = Cloud::start();
    let rt = &cloud.rt;
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    // The window was an hour ago, in UTC.
    let mut config = Config::default();
    config.database.path = dir.path().join("h.db");
    config.schedule.timezone = chrono_tz::UTC;
    config.schedule.time = (now - chrono::Duration::hours(1)).time();
    let schedule = config.schedule.schedule();
    let store = rt
        .block_on(Store::open(&config.database.path, schedule))
        .unwrap();
    let health = Health::default();
    let r = rt.block_on(health.report(&store, &schedule, now));
    assert!(
        !r.healthy && r.reasons[0].starts_with("missed window"),
        "{r:?}"
    );
    assert_eq!(
        r.problems.iter().copied().collect::<Vec<_>>(),
        [ddh_renewd::ops::health::Problem::MissedWindow]
    );
    let window = schedule.window_at_or_before(now);
    rt.block_on(store.record_window_run(&ddh_renewd::store::WindowRun {
        window_at: ddh_renewd::domain::time::to_db(window),
        trigger: Trigger::CatchUp,
        started_at: ddh_renewd::domain::time::to_db(now),
        finished_at: ddh_renewd::domain::time::to_db(now),
        due: 0,
        renewed: 0,
        already_renewed: 0,
        failed: 0,
        lapsed: 0,
        attempts: 0,
        result: PassResult::Ok,
    }))
    .unwrap();
    let r = rt.block_on(health.report(&store, &schedule, now));
    assert!(r.healthy && r.problems.is_empty(), "{r:?}");
    rt.block_on(store.close());
}
