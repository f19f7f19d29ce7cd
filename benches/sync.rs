//! Benchmark: `ddh-renewd sync` of 2,500 hosts in 2 regions (every 10th PostPaid) from the
//! emulator over loopback into a fresh SQLite file, through the real binary. Prints wall time and
//! calls by action; asserts nothing about time. Run: `cargo bench --bench sync`.

use std::process::Command;
use std::time::Instant;

use ddh_renewd::emulator::{Emulator, EmulatorConfig, TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET};
use serde_json::{Value, json};

const PER_REGION: usize = 1250;
const RUNS: usize = 5;

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let emu = rt
        .block_on(Emulator::start(
            "127.0.0.1:0".parse().expect("addr"),
            EmulatorConfig::test(),
        ))
        .expect("emulator");
    let mut hosts = Vec::new();
    for region in ["cn-hangzhou", "cn-shanghai"] {
        for i in 0..PER_REGION {
            hosts.push(
                json!({"DedicatedHostId": format!("dh-{region}-{i:05}"), "RegionId": region,
                "ChargeType": if i % 10 == 9 { "PostPaid" } else { "PrePaid" },
                "ExpiredTime": format!("2027-01-{:02}T16:00Z", 1 + i % 28)}),
            );
        }
    }
    emu.add_hosts(&Value::Array(hosts)).expect("seed");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut times = Vec::new();
    let mut calls = Value::Null;
    for run in 0..RUNS {
        let config = dir.path().join(format!("c{run}.toml"));
        let db = dir.path().join(format!("s{run}.db"));
        std::fs::write(&config, format!(
            "[database]\npath = {:?}\n[ecs]\nendpoint = \"{}\"\nregions = [\"cn-hangzhou\", \"cn-shanghai\"]\n",
            db.display().to_string(), emu.endpoint())).expect("config");
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_ddh-renewd"))
            .arg("--config")
            .arg(&config)
            .args(["sync", "--json"])
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", TEST_ACCESS_KEY_SECRET)
            .output()
            .expect("run sync");
        times.push(t.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).expect("json");
        calls = report["calls"].clone();
    }
    times.sort();
    println!(
        "sync: {} hosts in 2 regions into an empty database ({RUNS} runs, whole process)",
        2 * PER_REGION
    );
    println!(
        "  median {:.1} ms   min {:.1} ms   max {:.1} ms",
        times[RUNS / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[RUNS - 1].as_secs_f64() * 1e3
    );
    println!("  calls per sync: {calls}");
    rt.block_on(emu.stop());
}
