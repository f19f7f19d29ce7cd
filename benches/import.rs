//! Benchmark: `hosts import` of a 10,000-row CSV into a fresh database through the real binary,
//! then a re-import of the same file (all unchanged) and a `plan --json` over the result.
//! Prints figures; asserts nothing about time. Run: `cargo bench --bench import`.

use std::process::Command;
use std::time::Instant;

const ROWS: usize = 10_000;
const RUNS: usize = 5;

fn main() {
    let bin = env!("CARGO_BIN_EXE_ddh-renewd");
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("bulk.csv");
    let mut text = String::from(
        "dedicated_host_id,region_id,expired_time,charge_type,renewal_status,duration,period_unit\n",
    );
    for i in 0..ROWS {
        let region = if i % 2 == 0 {
            "cn-hangzhou"
        } else {
            "cn-shanghai"
        };
        text.push_str(&format!(
            "dh-bench-{i:06},{region},2027-01-{:02}T16:00Z,PrePaid,AutoRenewal,1,Month\n",
            1 + i % 28
        ));
    }
    std::fs::write(&csv, text).expect("write csv");

    let time = |args: &[&str], config: &std::path::Path| {
        let t = Instant::now();
        let out = Command::new(bin)
            .arg("--config")
            .arg(config)
            .args(args)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed()
    };
    let mut fresh = Vec::new();
    let mut again = Vec::new();
    let mut plan = Vec::new();
    for run in 0..RUNS {
        let db = dir.path().join(format!("bench-{run}.db"));
        let config = dir.path().join(format!("bench-{run}.toml"));
        std::fs::write(
            &config,
            format!("[database]\npath = {:?}\n", db.display().to_string()),
        )
        .expect("config");
        let csv_s = csv.to_str().expect("utf-8");
        fresh.push(time(&["hosts", "import", csv_s], &config));
        again.push(time(&["hosts", "import", csv_s], &config));
        plan.push(time(
            &["plan", "--json", "--at", "2026-12-25T00:00:00Z"],
            &config,
        ));
    }
    let report = |name: &str, v: &mut Vec<std::time::Duration>| {
        v.sort();
        println!(
            "{name:<34} median {:>7.1} ms   min {:>7.1} ms   max {:>7.1} ms   ({RUNS} runs, whole process)",
            v[v.len() / 2].as_secs_f64() * 1e3,
            v[0].as_secs_f64() * 1e3,
            v[v.len() - 1].as_secs_f64() * 1e3
        );
    };
    println!("hosts import: {ROWS} rows, fresh SQLite file each run");
    report("import into an empty database", &mut fresh);
    report("re-import (all rows unchanged)", &mut again);
    report("plan --json over 10,000 hosts", &mut plan);
}
