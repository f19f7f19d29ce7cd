//! `/metrics` in the Prometheus text format (prometheus-client), computed from the database at
//! scrape time so the figures are exactly what the audit trail says.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sqlx::Row;

use super::OpsState;
use crate::domain::plan::{HostHistory, plan_host};
use crate::store::StoreError;

type Labels = Vec<(String, String)>;
type FGauge = Gauge<f64, AtomicU64>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn sql_err(e: sqlx::Error) -> StoreError {
    StoreError::Sql {
        context: "metrics",
        message: e.to_string(),
    }
}

/// A counter family from a `GROUP BY` query: `label_cols` name the grouping columns (used as
/// labels), `n` is the count.
async fn counted(
    pool: &sqlx::SqlitePool,
    sql: &'static str,
    label_cols: &[&str],
) -> Result<Family<Labels, Counter>, StoreError> {
    let family = Family::<Labels, Counter>::default();
    for row in sqlx::query(sql).fetch_all(pool).await.map_err(sql_err)? {
        let mut l = Labels::with_capacity(label_cols.len());
        for c in label_cols {
            l.push((
                (*c).to_owned(),
                row.try_get::<String, _>(*c).map_err(sql_err)?,
            ));
        }
        let n: i64 = row.try_get("n").map_err(sql_err)?;
        family
            .get_or_create(&l)
            .inc_by(u64::try_from(n).unwrap_or(0));
    }
    Ok(family)
}

pub async fn render(s: &OpsState) -> Result<String, StoreError> {
    let now = s.clock.now();
    let mut reg = Registry::with_prefix("ddh_renewd");

    let expiry = Family::<Labels, FGauge>::default();
    let next = Family::<Labels, FGauge>::default();
    let hosts_by_state = Family::<Labels, Gauge>::default();
    let records = s.store.hosts(false).await?;
    let renewed = s.store.renewed_into_current_cycle().await?;
    let open = s.store.hosts_in_open_attempts().await?;
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
            HostHistory {
                recently_renewed: renewed.contains_key(id),
                open_attempt: open.get(id).map(|(_, blocked)| *blocked),
            },
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
    let undecided = Family::<Labels, Gauge>::default();
    for state in ["open", "blocked"] {
        let _ = undecided.get_or_create(&labels(&[("state", state)]));
    }
    let mut seen_attempts = std::collections::HashSet::new();
    for (attempt, blocked) in open.values() {
        if seen_attempts.insert(*attempt) {
            let state = if *blocked { "blocked" } else { "open" };
            undecided.get_or_create(&labels(&[("state", state)])).inc();
        }
    }
    reg.register(
        "attempts_undecided",
        "Renewal attempts without an outcome: open (resolved with their own ClientToken) or blocked (a person must settle them)",
        undecided,
    );

    let pool = s.store.pool();
    reg.register(
        "attempt_hosts",
        "Hosts of renewal attempts by outcome",
        counted(
            pool,
            "SELECT outcome, count(*) AS n FROM v_attempts GROUP BY outcome",
            &["outcome"],
        )
        .await?,
    );
    reg.register(
        "window_runs",
        "Window passes by trigger and result",
        counted(
            pool,
            "SELECT trigger, result, count(*) AS n FROM window_runs GROUP BY trigger, result",
            &["trigger", "result"],
        )
        .await?,
    );
    reg.register(
        "notices",
        "Notices recorded by kind",
        counted(
            pool,
            "SELECT kind, count(*) AS n FROM notices GROUP BY kind",
            &["kind"],
        )
        .await?,
    );
    let last_ok: Option<String> =
        sqlx::query_scalar("SELECT max(window_at) FROM window_runs WHERE result = 'ok'")
            .fetch_one(pool)
            .await
            .map_err(sql_err)?;
    let last_ok_g = FGauge::default();
    last_ok_g.set(
        last_ok
            .and_then(|t| crate::domain::time::parse_instant(&t).ok())
            .map_or(0.0, |t| t.timestamp() as f64),
    );
    reg.register(
        "last_successful_window_timestamp_seconds",
        "Window of the last pass that ended ok (Unix time; 0 if none)",
        last_ok_g,
    );

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
