//! Benchmark: one window pass with 10,000 due hosts in one region, the emulator adding 50 ms to
//! every call, default quota. Prints wall time, calls by action, and the ratio to the floor
//! (renew calls + describe calls) × 50 ms ÷ concurrency. Run: `cargo bench --bench engine`.

use std::sync::Arc;
use std::time::Instant;

use ddh_renewd::config::Config;
use ddh_renewd::domain::time::parse_instant;
use ddh_renewd::domain::{
    ChargeType, Host, HostId, HostStatus, Period, PeriodUnit, Policy, RenewalStatus,
};
use ddh_renewd::ecs::{Credentials, EcsClient};
use ddh_renewd::emulator::{Emulator, EmulatorConfig, TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET};
use ddh_renewd::engine::{Engine, OffsetClock};
use ddh_renewd::store::{HostInput, Source};
use serde_json::{Value, json};

const HOSTS: usize = 10_000;
const LATENCY_MS: u64 = 50;

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(bench());
}

async fn bench() {
    let emu = Emulator::start("127.0.0.1:0".parse().expect("addr"), EmulatorConfig::test())
        .await
        .expect("emulator");
    let expiry = "2026-12-10T16:00Z";
    let at = parse_instant("2026-12-03T08:00:00+08:00").expect("at");
    let hosts: Vec<Value> = (0..HOSTS)
        .map(|i| json!({"DedicatedHostId": format!("dh-bench-{i:05}"), "RegionId": "cn-hangzhou", "ChargeType": "PrePaid", "ExpiredTime": expiry}))
        .collect();
    emu.add_hosts(&Value::Array(hosts)).expect("seed");
    emu.with_state(|s| {
        s.clock_offset = at - chrono::Utc::now();
        s.latency_ms = LATENCY_MS;
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.database.path = dir.path().join("bench.db");
    config.ecs.endpoint = emu.endpoint();
    let (store, actor) = ddh_renewd::engine::take_database(
        &ddh_renewd::store::Location::Sqlite(config.database.path.clone()),
        config.schedule.schedule(),
    )
    .await
    .expect("store");
    let inputs: Vec<HostInput> = (0..HOSTS)
        .map(|i| HostInput {
            host: Host {
                id: HostId::parse(&format!("dh-bench-{i:05}")).expect("id"),
                region_id: "cn-hangzhou".into(),
                zone_id: None,
                charge_type: ChargeType::PrePaid,
                status: HostStatus::available(),
                expired_time: parse_instant(expiry).expect("expiry"),
                sale_cycle: None,
                financial_lock: false,
            },
            policy: Some(Policy {
                status: RenewalStatus::AutoRenewal,
                period: Period {
                    n: 1,
                    unit: PeriodUnit::Month,
                },
            }),
        })
        .collect();
    store
        .upsert_hosts(&inputs, "hosts_import", Source::Import, "bench", at)
        .await
        .expect("import");

    let client = Arc::new(
        EcsClient::new(
            &ddh_renewd::app::client_options(&config.ecs),
            Credentials::new(TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET),
        )
        .expect("client"),
    );
    let mut engine_cfg = ddh_renewd::app::engine_config(&config);
    engine_cfg.virtual_clock = true;
    let concurrency = engine_cfg.concurrency;
    let engine = Engine::new(
        store.clone(),
        client.clone(),
        engine_cfg,
        Arc::new(OffsetClock::starting_at(at)),
        Some(actor),
    );
    let t = Instant::now();
    let report = engine
        .pass(ddh_renewd::domain::protocol::Trigger::Tick, false)
        .await
        .expect("pass");
    let wall = t.elapsed();
    let calls = client.calls();
    let renew = calls.get("RenewDedicatedHosts").copied().unwrap_or(0);
    let describe = calls.get("DescribeDedicatedHosts").copied().unwrap_or(0);
    let auto_renew = calls
        .get("DescribeDedicatedHostAutoRenew")
        .copied()
        .unwrap_or(0);
    let floor_ms = (renew + describe + auto_renew) as f64 * LATENCY_MS as f64 / concurrency as f64;
    let ledger = emu.with_state(|s| s.ledger.len());
    println!(
        "engine pass: {HOSTS} due hosts, one region, {LATENCY_MS} ms per call, quota 1000/min, batch 100, concurrency {concurrency}"
    );
    println!(
        "  renewed {} (ledger {ledger}), failed {}",
        report.renewed.len(),
        report.failed.len()
    );
    println!("  wall time {:.2} s", wall.as_secs_f64());
    println!(
        "  calls: {calls:?}; quota waits: {:?}",
        client.quota_waits()
    );
    println!(
        "  floor = ({renew} renew + {describe} describe + {auto_renew} auto-renew reads) x {LATENCY_MS} ms / {concurrency} = {:.2} s; wall / floor = {:.2}",
        floor_ms / 1e3,
        wall.as_secs_f64() * 1e3 / floor_ms
    );
    engine.close().await;
    emu.stop().await;
}
