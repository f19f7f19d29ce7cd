//! An in-process emulator for binary-level tests, on its own runtime so the test can stay
//! synchronous while the emulator serves.

use ddh_renewd::emulator::state::FaultRule;
use ddh_renewd::emulator::{Emulator, EmulatorConfig};
use serde_json::Value;

use super::Env;

pub struct Cloud {
    pub rt: tokio::runtime::Runtime,
    emu: Option<Emulator>,
}

impl Cloud {
    pub fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let emu = rt
            .block_on(Emulator::start(
                "127.0.0.1:0".parse().expect("addr"),
                EmulatorConfig::test(),
            ))
            .expect("emulator");
        Self { rt, emu: Some(emu) }
    }

    pub fn emu(&self) -> &Emulator {
        self.emu.as_ref().expect("running")
    }

    /// An Env whose config points at this emulator; `extra` is appended to `[ecs]`.
    pub fn env(&self, extra: &str) -> Env {
        Env::with_config(&self.ecs_toml(extra))
    }

    /// [`Cloud::env`] with the store on PostgreSQL.
    pub fn env_on_postgres(&self, pg: &super::pg::Postgres, db: &str, extra: &str) -> Env {
        Env::on_postgres(pg, db, &self.ecs_toml(extra))
    }

    fn ecs_toml(&self, extra: &str) -> String {
        format!(
            "[ecs]\nendpoint = \"{}\"\nregions = [\"cn-hangzhou\", \"cn-shanghai\"]\n{extra}",
            self.emu().endpoint()
        )
    }

    pub fn add(&self, hosts: Value) {
        self.emu().add_hosts(&hosts).expect("seed hosts");
    }

    pub fn set_clock(&self, at: &str) {
        let t = ddh_renewd::domain::time::parse_instant(at).expect("instant");
        self.emu()
            .with_state(|s| s.clock_offset = t - chrono::Utc::now());
    }

    pub fn faults(&self, seed: u64, rules: Value) {
        let rules: Vec<FaultRule> = serde_json::from_value(rules).expect("rules");
        self.emu().with_state(|s| s.set_faults(seed, rules));
    }

    /// The ledger as the admin API shows it (cloud-side auto-renew charged up to now first).
    pub fn ledger(&self) -> Vec<Value> {
        self.emu()
            .with_state(|s| {
                s.charge_cloud_auto_renew();
                serde_json::to_value(&s.ledger).expect("ledger")
            })
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Ledger entries of one host, in order.
    pub fn ledger_of(&self, host: &str) -> Vec<Value> {
        self.ledger()
            .into_iter()
            .filter(|e| e["DedicatedHostId"] == host)
            .collect()
    }

    /// Renews a host by hand, outside ddh-renewd (ledger source `elsewhere`).
    pub fn renew_elsewhere(&self, host: &str, n: u32, unit: &str) {
        let unit = ddh_renewd::domain::PeriodUnit::parse(unit).expect("unit");
        self.emu()
            .with_state(|s| s.renew_elsewhere(host, ddh_renewd::domain::Period { n, unit }))
            .expect("renew elsewhere");
    }

    /// Requests of `action` being processed by the emulator right now.
    pub fn processing(&self, action: &str) -> u32 {
        self.emu().with_state(|s| s.processing(action))
    }

    /// How many requests of `action` the emulator logged (answered or faulted).
    pub fn logged(&self, action: &str) -> usize {
        self.emu()
            .with_state(|s| s.log.iter().filter(|e| e.action == action).count())
    }

    /// Waits (bounded) until `cond` holds; panics with `what` if it never does.
    pub fn wait_for(&self, what: &str, secs: u64, cond: impl Fn(&Self) -> bool) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while !cond(self) {
            assert!(
                std::time::Instant::now() < until,
                "timed out waiting for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Waits until no RenewDedicatedHosts is being processed.
    pub fn wait_idle(&self) {
        self.wait_for("the emulator to finish processing", 30, |c| {
            c.processing("RenewDedicatedHosts") == 0
        });
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        // The secrets and tokens it issued, for tests/scan-secrets.sh (kept apart from the logs
        // and databases it searches).
        if let (Some(root), Some(emu)) = (std::env::var_os("DDH_TEST_ARTIFACTS"), &self.emu) {
            let issued = emu.with_state(|s| s.sts.issued_secrets.clone());
            if !issued.is_empty() {
                let _ = std::fs::create_dir_all(&root);
                let name = format!(
                    "issued-{}-{:?}.secrets",
                    std::process::id(),
                    std::thread::current().id()
                );
                let name: String = name
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
                    .collect();
                let _ = std::fs::write(
                    std::path::Path::new(&root).join(name),
                    issued.join("\n") + "\n",
                );
            }
        }
        if let Some(emu) = self.emu.take() {
            self.rt.block_on(emu.stop());
        }
    }
}
