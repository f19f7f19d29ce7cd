//! The audit trail as auditors read it: the stable views, filtered by host and time.

use futures_util::stream::{BoxStream, StreamExt};
use sqlx::Row;

use super::{Store, StoreError};

/// Which audit view to read.
#[derive(Debug, Clone, Copy)]
pub enum AuditKind {
    Attempts,
    Policies,
    Notices,
    Windows,
}

impl Store {
    /// Rows of an audit view, oldest first, optionally for one host and from an instant: the
    /// column names, and the rows as a stream of JSON values (numbers stay numbers), read one
    /// at a time.
    pub fn audit<'a>(
        &'a self,
        kind: AuditKind,
        host: Option<&'a str>,
        since: Option<&'a str>,
    ) -> (
        Vec<String>,
        BoxStream<'a, Result<Vec<serde_json::Value>, StoreError>>,
    ) {
        let sql = match kind {
            AuditKind::Attempts => "SELECT attempt_id, kind, window_at, host_id, cycle, region_id, period, period_unit,
                    client_token, sent_at, sends, finished_at, http_status, code, request_id, state, outcome,
                    attempt_outcome, blocked_reason, expiry_before, expiry_after, epoch, forced, params
                 FROM v_attempts WHERE ($1 IS NULL OR host_id = $1) AND ($2 IS NULL OR created_at >= $2)
                 ORDER BY attempt_id, host_id",
            AuditKind::Policies => "SELECT change_id, changed_at, host_id, old_renewal_status, old_duration, old_period_unit,
                    new_renewal_status, new_duration, new_period_unit, source, operation
                 FROM v_policy_changes WHERE ($1 IS NULL OR host_id = $1) AND ($2 IS NULL OR changed_at >= $2)
                 ORDER BY change_id",
            AuditKind::Notices => "SELECT notice_id, created_at, day, kind, host_id, cycle, message,
                    delivery_tries, delivered_at
                 FROM v_notices WHERE ($1 IS NULL OR host_id = $1) AND ($2 IS NULL OR created_at >= $2)
                 ORDER BY notice_id",
            AuditKind::Windows => "SELECT run_id, window_at, trigger, started_at, finished_at, due, renewed,
                    already_renewed, failed, lapsed, attempts, result
                 FROM v_windows WHERE $1 IS NULL AND ($2 IS NULL OR window_at >= $2)
                 ORDER BY run_id",
        };
        let columns: Vec<String> = sql
            .split("FROM")
            .next()
            .unwrap_or_default()
            .trim_start_matches("SELECT")
            .split(',')
            .map(|c| c.trim().to_owned())
            .collect();
        let n = columns.len();
        let rows = sqlx::query(sql)
            .bind(host)
            .bind(since)
            .fetch(&self.pool)
            .map(move |r| {
                let r = r.map_err(StoreError::sql("reading the audit trail"))?;
                Ok((0..n).map(|i| any_value(&r, i)).collect())
            })
            .boxed();
        (columns, rows)
    }
}

impl Store {
    /// [`Store::audit`] collected: for small trails (the demo's).
    pub async fn audit_all(
        &self,
        kind: AuditKind,
        host: Option<&str>,
        since: Option<&str>,
    ) -> Result<(Vec<String>, Vec<Vec<serde_json::Value>>), StoreError> {
        let (columns, rows) = self.audit(kind, host, since);
        let rows = rows.collect::<Vec<_>>().await;
        Ok((columns, rows.into_iter().collect::<Result<_, _>>()?))
    }
}

fn any_value(r: &sqlx::any::AnyRow, i: usize) -> serde_json::Value {
    if let Ok(v) = r.try_get::<Option<i64>, _>(i) {
        return v.map_or(serde_json::Value::Null, serde_json::Value::from);
    }
    if let Ok(v) = r.try_get::<Option<String>, _>(i) {
        return v.map_or(serde_json::Value::Null, serde_json::Value::from);
    }
    if let Ok(v) = r.try_get::<Option<f64>, _>(i) {
        return v.map_or(serde_json::Value::Null, serde_json::Value::from);
    }
    serde_json::Value::Null
}

/// What `/metrics` counts from the audit trail.
#[derive(Debug, Clone, Default)]
pub struct TrailCounts {
    /// Host rows of attempts by outcome (`v_attempts.outcome`).
    pub attempt_hosts: Vec<(String, i64)>,
    /// Window passes by trigger and result.
    pub window_runs: Vec<(String, String, i64)>,
    /// Notices by kind.
    pub notices: Vec<(String, i64)>,
    /// The window of the last pass that ended ok.
    pub last_ok_window: Option<String>,
    /// The window of the last pass that ran to its end, whatever its result.
    pub last_window: Option<String>,
    /// Per notice channel: delivery tries that failed, and notices tried but not yet delivered.
    pub deliveries: Vec<(String, i64, i64)>,
}

impl Store {
    pub async fn trail_counts(&self) -> Result<TrailCounts, StoreError> {
        let e = StoreError::sql("counting the audit trail");
        Ok(TrailCounts {
            attempt_hosts: sqlx::query_as(
                "SELECT outcome, count(*) FROM v_attempts GROUP BY outcome ORDER BY outcome",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(&e)?,
            window_runs: sqlx::query_as(
                "SELECT trigger, result, count(*) FROM window_runs GROUP BY trigger, result ORDER BY trigger, result",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(&e)?,
            notices: sqlx::query_as("SELECT kind, count(*) FROM notices GROUP BY kind ORDER BY kind")
                .fetch_all(&self.pool)
                .await
                .map_err(&e)?,
            last_ok_window: sqlx::query_scalar(
                "SELECT max(window_at) FROM window_runs WHERE result = 'ok'",
            )
            .fetch_one(&self.pool)
            .await
            .map_err(&e)?,
            last_window: sqlx::query_scalar(
                "SELECT max(window_at) FROM window_runs WHERE result <> 'interrupted'",
            )
            .fetch_one(&self.pool)
            .await
            .map_err(&e)?,
            deliveries: self.delivery_counts().await?,
        })
    }
}

impl Store {
    /// Records a sync run (`trigger`: `cli` or `daemon`; `ok`, or the error in `detail`).
    pub async fn record_sync_run(
        &self,
        started: chrono::DateTime<chrono::Utc>,
        finished: chrono::DateTime<chrono::Utc>,
        trigger: &str,
        regions: &[String],
        ok: bool,
        detail: &str,
    ) -> Result<(), StoreError> {
        use crate::domain::time::to_db;
        sqlx::query(
            "INSERT INTO sync_runs (started_at, finished_at, trigger, regions, result, detail)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(to_db(started))
        .bind(to_db(finished))
        .bind(trigger)
        .bind(regions.join(","))
        .bind(if ok { "ok" } else { "failed" })
        .bind(detail)
        .execute(&self.pool)
        .await
        .map_err(StoreError::sql("recording the sync run"))?;
        Ok(())
    }

    /// When the last successful sync finished, if ever.
    pub async fn last_sync(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        let t: Option<String> =
            sqlx::query_scalar("SELECT max(finished_at) FROM sync_runs WHERE result = 'ok'")
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::sql("reading sync runs"))?;
        super::rows::opt_instant("sync_runs.finished_at", t.as_deref())
    }
}
