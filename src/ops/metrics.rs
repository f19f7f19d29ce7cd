//! `/metrics` in the Prometheus text format (prometheus-client), computed from the database at
//! scrape time so the figures are exactly what the audit trail says.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

use chrono::Utc;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sqlx::Row;

use super::OpsState;
use crate::domain::plan::plan_host;
use crate::store::StoreError;

type Labels = Vec<(String, String)>;
type FGauge = Gauge<f64, AtomicU64>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub async fn render(s: &OpsState) -> Result<String, StoreError> {
    let now = Utc::now();
    let mut reg = Registry::with_prefix("ddh_renewd");

    let expiry = Family::<Labels, FGauge>::default();
    let next = Family::<Labels, FGauge>::default();
    let hosts_by_state = Family::<Labels, Gauge>::default();
    let records = s.store.hosts(false).await?;
    let renewed = s.store.renewed_into_current_cycle().await?;
    for r in &records {
        let id = r.host.id.as_str();
        expiry
            .get_or_create(&labels(&[("host_id", id), ("region", &r.host.region_id)]))
            .set(r.host.expired_time.timestamp() as f64);
        let p = plan_host(
            &r.host,
            &r.effective_policy(),
            &s.schedule,
            now,
            renewed.contains_key(id),
        );
        if let Some(w) = p.next_window {
            next.get_or_create(&labels(&[("host_id", id)]))
                .set(w.timestamp() as f64);
        }
        hosts_by_state
            .get_or_create(&labels(&[("state", p.state.as_str())]))
            .inc();
    }
    reg.register(
        "host_expiry_timestamp_seconds",
        "Current expiry of each host (Unix time)",
        expiry,
    );
    reg.register(
        "host_next_window_timestamp_seconds",
        "Next (or due) renewal window of each managed host (Unix time)",
        next,
    );
    reg.register("hosts", "Hosts in the inventory by state", hosts_by_state);

    let pool = s.store.pool();
    let attempts = Family::<Labels, Counter>::default();
    for row in sqlx::query("SELECT outcome, count(*) AS n FROM v_attempts GROUP BY outcome")
        .fetch_all(pool)
        .await
        .map_err(|e| StoreError::Sql {
            context: "metrics",
            message: e.to_string(),
        })?
    {
        let o: String = row.try_get("outcome").unwrap_or_default();
        let n: i64 = row.try_get("n").unwrap_or_default();
        attempts
            .get_or_create(&labels(&[("outcome", &o)]))
            .inc_by(u64::try_from(n).unwrap_or(0));
    }
    reg.register(
        "attempt_hosts",
        "Hosts of renewal attempts by outcome",
        attempts,
    );

    let runs = Family::<Labels, Counter>::default();
    let mut last_ok: Option<i64> = None;
    for row in sqlx::query("SELECT trigger, result, count(*) AS n, max(window_at) AS last FROM window_runs GROUP BY trigger, result")
        .fetch_all(pool)
        .await
        .map_err(|e| StoreError::Sql { context: "metrics", message: e.to_string() })?
    {
        let t: String = row.try_get("trigger").unwrap_or_default();
        let r: String = row.try_get("result").unwrap_or_default();
        let n: i64 = row.try_get("n").unwrap_or_default();
        runs.get_or_create(&labels(&[("trigger", &t), ("result", &r)])).inc_by(u64::try_from(n).unwrap_or(0));
        if r == "ok" {
            let last: String = row.try_get("last").unwrap_or_default();
            if let Ok(t) = crate::domain::time::parse_instant(&last) {
                last_ok = last_ok.max(Some(t.timestamp()));
            }
        }
    }
    reg.register("window_runs", "Window passes by trigger and result", runs);
    let last_ok_g = FGauge::default();
    last_ok_g.set(last_ok.unwrap_or(0) as f64);
    reg.register(
        "last_successful_window_timestamp_seconds",
        "Window of the last pass that ended ok (Unix time; 0 if none)",
        last_ok_g,
    );

    let notices = Family::<Labels, Counter>::default();
    let mut by_kind: HashMap<String, u64> = HashMap::new();
    for row in sqlx::query("SELECT kind, count(*) AS n FROM notices GROUP BY kind")
        .fetch_all(pool)
        .await
        .map_err(|e| StoreError::Sql {
            context: "metrics",
            message: e.to_string(),
        })?
    {
        let k: String = row.try_get("kind").unwrap_or_default();
        let n: i64 = row.try_get("n").unwrap_or_default();
        by_kind.insert(k, u64::try_from(n).unwrap_or(0));
    }
    for (k, n) in &by_kind {
        notices.get_or_create(&labels(&[("kind", k)])).inc_by(*n);
    }
    reg.register("notices", "Notices recorded by kind", notices);

    let q = s.client.quota_waits();
    let waits = Counter::<u64>::default();
    waits.inc_by(q.waits);
    reg.register(
        "quota_waits",
        "Calls that waited for the client-side quota",
        waits,
    );
    let waited = Counter::<f64, AtomicU64>::default();
    waited.inc_by(q.waited_ms as f64 / 1000.0);
    reg.register(
        "quota_wait_seconds",
        "Time spent waiting for the client-side quota",
        waited,
    );

    let healthy = Gauge::<i64>::default();
    healthy.set(i64::from(
        s.health.report(&s.store, &s.schedule, now).await.healthy,
    ));
    reg.register("healthy", "1 if /healthz is ok", healthy);

    let mut out = String::new();
    encode(&mut out, &reg).map_err(|e| StoreError::Sql {
        context: "metrics",
        message: e.to_string(),
    })?;
    Ok(out)
}
