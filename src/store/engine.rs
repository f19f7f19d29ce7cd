//! The engine's SQL: the write-ahead attempt record, its events and outcome, cycle closures,
//! the due set, and window runs. Each write is one transaction; an outcome commits together with
//! the host's new expiry, its history and its notices.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{
    CHUNK, ChangeRow, HostRecord, Source, Store, StoreError, commit, insert_host_changes,
    insert_notices, insert_operation,
};
use crate::domain::time::{parse_instant, to_db};
use crate::domain::{ClientToken, HostId, Period, PeriodUnit, Schedule};
use sqlx::{QueryBuilder, Sqlite};

/// An attempt as written ahead of its request.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub attempt_id: i64,
    pub kind: String,
    pub window_at: DateTime<Utc>,
    pub region_id: String,
    pub period: Period,
    pub client_token: ClientToken,
    pub generation: u32,
    /// Each host with the cycle (expiry) it renews.
    pub hosts: Vec<(HostId, DateTime<Utc>)>,
}

/// What to write ahead.
pub struct NewAttempt<'a> {
    pub kind: &'a str,
    pub window_at: DateTime<Utc>,
    pub region_id: &'a str,
    pub period: Period,
    pub client_token: ClientToken,
    pub params: String,
    pub generation: u32,
    pub parent: Option<i64>,
    pub hosts: Vec<(HostId, DateTime<Utc>)>,
}

/// One recorded send or answer.
pub struct Event<'a> {
    pub kind: &'a str,
    pub http_status: Option<u16>,
    pub code: Option<&'a str>,
    pub message: Option<&'a str>,
    pub request_id: Option<&'a str>,
}

/// The final word on an attempt.
pub struct Outcome<'a> {
    pub outcome: &'a str,
    pub http_status: Option<u16>,
    pub code: Option<&'a str>,
    pub message: Option<&'a str>,
    pub request_id: Option<&'a str>,
}

/// What happened to one host.
#[derive(Debug, Clone)]
pub struct HostResult {
    pub host_id: HostId,
    pub cycle: DateTime<Utc>,
    pub outcome: &'static str,
    pub expiry_after: Option<DateTime<Utc>>,
    /// Close the cycle with this outcome (`renewed`, `lapsed`, `gone`).
    pub close: Option<&'static str>,
    /// A notice to record: (kind, message).
    pub notice: Option<(&'static str, String)>,
}

/// A window pass, as recorded in `window_runs`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WindowRun {
    pub window_at: String,
    pub trigger: String,
    pub started_at: String,
    pub finished_at: String,
    pub due: i64,
    pub renewed: i64,
    pub already_renewed: i64,
    pub failed: i64,
    pub lapsed: i64,
    pub attempts: i64,
    pub result: String,
}

impl Store {
    /// Commits an attempt (hosts, exact parameters, token) before its request may leave.
    pub async fn create_attempt(
        &self,
        a: NewAttempt<'_>,
        now: DateTime<Utc>,
    ) -> Result<Attempt, StoreError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "INSERT INTO attempts (kind, window_at, region_id, period, period_unit, client_token, params,
                                   generation, parent_attempt_id, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING attempt_id",
        )
        .bind(a.kind)
        .bind(to_db(a.window_at))
        .bind(a.region_id)
        .bind(i64::from(a.period.n))
        .bind(a.period.unit.as_str())
        .bind(a.client_token.as_str())
        .bind(&a.params)
        .bind(i64::from(a.generation))
        .bind(a.parent)
        .bind(to_db(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::sql("writing the attempt ahead"))?;
        let attempt_id: i64 = row
            .try_get(0)
            .map_err(StoreError::sql("writing the attempt ahead"))?;
        for (id, cycle) in &a.hosts {
            sqlx::query("INSERT INTO attempt_hosts (attempt_id, host_id, cycle) VALUES (?, ?, ?)")
                .bind(attempt_id)
                .bind(id.as_str())
                .bind(to_db(*cycle))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::sql("writing the attempt's hosts"))?;
        }
        commit(tx).await?;
        Ok(Attempt {
            attempt_id,
            kind: a.kind.to_owned(),
            window_at: a.window_at,
            region_id: a.region_id.to_owned(),
            period: a.period,
            client_token: a.client_token,
            generation: a.generation,
            hosts: a.hosts,
        })
    }

    /// Is there an attempt with this token already (a crash between deciding and writing)?
    pub async fn attempt_by_token(&self, token: &ClientToken) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar("SELECT attempt_id FROM attempts WHERE client_token = ?")
            .bind(token.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::sql("looking up a token"))
    }

    pub async fn record_event(
        &self,
        attempt_id: i64,
        e: Event<'_>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO attempt_events (attempt_id, at, kind, http_status, code, message, request_id)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(attempt_id)
        .bind(to_db(at))
        .bind(e.kind)
        .bind(e.http_status.map(i64::from))
        .bind(e.code)
        .bind(e.message)
        .bind(e.request_id)
        .execute(&self.pool)
        .await
        .map_err(StoreError::sql("recording an attempt event"))?;
        Ok(())
    }

    /// Attempts without an outcome, oldest first.
    pub async fn unresolved_attempts(&self) -> Result<Vec<Attempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.attempt_id, a.kind, a.window_at, a.region_id, a.period, a.period_unit,
                    a.client_token, a.generation
             FROM attempts a LEFT JOIN attempt_outcomes o ON o.attempt_id = a.attempt_id
             WHERE o.attempt_id IS NULL ORDER BY a.attempt_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::sql("reading unresolved attempts"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let attempt_id: i64 = r
                .try_get("attempt_id")
                .map_err(StoreError::sql("decoding an attempt"))?;
            let hosts = sqlx::query(
                "SELECT host_id, cycle FROM attempt_hosts WHERE attempt_id = ? ORDER BY host_id",
            )
            .bind(attempt_id)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::sql("reading an attempt's hosts"))?
            .iter()
            .map(|h| {
                let id: String = h.try_get("host_id").map_err(StoreError::sql("decoding"))?;
                let cycle: String = h.try_get("cycle").map_err(StoreError::sql("decoding"))?;
                Ok((
                    HostId::parse(&id).map_err(|what| StoreError::Corrupt { what })?,
                    instant(&cycle)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
            let get_s = |c: &str| -> Result<String, StoreError> {
                r.try_get(c).map_err(StoreError::sql("decoding an attempt"))
            };
            let n: i64 = r
                .try_get("period")
                .map_err(StoreError::sql("decoding an attempt"))?;
            let unit: PeriodUnit =
                super::parse_col("attempts.period_unit", &get_s("period_unit")?)?;
            let generation: i64 = r
                .try_get("generation")
                .map_err(StoreError::sql("decoding an attempt"))?;
            out.push(Attempt {
                attempt_id,
                kind: get_s("kind")?,
                window_at: instant(&get_s("window_at")?)?,
                region_id: get_s("region_id")?,
                period: Period {
                    n: u32::try_from(n).map_err(|_| StoreError::Corrupt {
                        what: format!("attempts.period {n}"),
                    })?,
                    unit,
                },
                client_token: ClientToken::parse(&get_s("client_token")?).map_err(|e| {
                    StoreError::Corrupt {
                        what: e.to_string(),
                    }
                })?,
                generation: u32::try_from(generation).unwrap_or(0),
                hosts,
            });
        }
        Ok(out)
    }

    /// Records an attempt's outcome (if `attempt` is given), each host's result, cycle closures,
    /// new expiries (with history) and notices — all in one transaction.
    pub async fn finish(
        &self,
        attempt: Option<(i64, Outcome<'_>)>,
        results: &[HostResult],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now_s = to_db(now);
        let day = self.schedule.local_date(now).to_string();
        let mut tx = self.begin().await?;
        let attempt_id = attempt.as_ref().map(|(id, _)| *id);
        if let Some((id, o)) = &attempt {
            sqlx::query(
                "INSERT INTO attempt_outcomes (attempt_id, finished_at, outcome, http_status, code, message, request_id)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(&now_s)
            .bind(o.outcome)
            .bind(o.http_status.map(i64::from))
            .bind(o.code)
            .bind(o.message)
            .bind(o.request_id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::sql("recording the attempt's outcome"))?;
        }
        let mut changes = Vec::new();
        let mut expiry_updates = Vec::new();
        // Multi-row inserts: a batch of 100 hosts is a handful of statements, not hundreds.
        for chunk in results.chunks(CHUNK) {
            if let Some(id) = attempt_id {
                let mut qb = QueryBuilder::<Sqlite>::new(
                    "INSERT INTO host_outcomes (attempt_id, host_id, cycle, outcome, expiry_before, expiry_after, at) ",
                );
                qb.push_values(chunk, |mut b, r| {
                    b.push_bind(id)
                        .push_bind(r.host_id.as_str().to_owned())
                        .push_bind(to_db(r.cycle))
                        .push_bind(r.outcome)
                        .push_bind(to_db(r.cycle))
                        .push_bind(r.expiry_after.map(to_db))
                        .push_bind(now_s.clone());
                });
                qb.build()
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::sql("recording host outcomes"))?;
            }
            let closing: Vec<&HostResult> = chunk.iter().filter(|r| r.close.is_some()).collect();
            if !closing.is_empty() {
                let mut qb = QueryBuilder::<Sqlite>::new(
                    "INSERT INTO cycle_closures (host_id, cycle, outcome, new_expiry, attempt_id, at) ",
                );
                qb.push_values(&closing, |mut b, r| {
                    b.push_bind(r.host_id.as_str().to_owned())
                        .push_bind(to_db(r.cycle))
                        .push_bind(r.close.unwrap_or("renewed"))
                        .push_bind(r.expiry_after.map(to_db))
                        .push_bind(attempt_id)
                        .push_bind(now_s.clone());
                });
                qb.push(" ON CONFLICT (host_id, cycle) DO NOTHING");
                qb.build()
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::sql("closing cycles"))?;
            }
        }
        let notices: Vec<(String, String, &str, &str)> = results
            .iter()
            .filter_map(|r| {
                r.notice
                    .as_ref()
                    .map(|(k, m)| (r.host_id.to_string(), to_db(r.cycle), *k, m.as_str()))
            })
            .collect();
        insert_notices(&mut tx, &notices, &day, &now_s).await?;
        for r in results {
            if let Some(after) = r.expiry_after.filter(|a| *a != r.cycle) {
                expiry_updates.push((r.host_id.clone(), r.cycle, after));
            }
        }
        if !expiry_updates.is_empty() {
            let detail = attempt_id
                .map_or_else(|| "expiry re-read".to_owned(), |id| format!("attempt {id}"));
            let op_id =
                insert_operation(&mut tx, "renewal", Source::Daemon, &detail, &now_s).await?;
            for (id, before, after) in &expiry_updates {
                // Only move the expiry forward from the cycle we renewed; never backwards.
                let (first, last) = windows(&self.schedule, *after);
                let done = sqlx::query(
                    "UPDATE hosts SET expired_time = ?, first_window = ?, last_window = ?, financial_lock = 0, updated_at = ?
                     WHERE host_id = ? AND expired_time = ?",
                )
                .bind(to_db(*after))
                .bind(first)
                .bind(last)
                .bind(&now_s)
                .bind(id.as_str())
                .bind(to_db(*before))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::sql("recording a new expiry"))?;
                if done.rows_affected() == 1 {
                    changes.push(ChangeRow::new(
                        id.as_str(),
                        "updated",
                        Some("expired_time"),
                        Some(to_db(*before)),
                        Some(to_db(*after)),
                    ));
                }
            }
            insert_host_changes(&mut tx, op_id, &changes, Source::Daemon, &now_s).await?;
        }
        commit(tx).await
    }

    /// Records a notice outside an attempt (reminders, config errors).
    pub async fn notice(
        &self,
        host_id: &str,
        cycle: &str,
        kind: &str,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let day = self.schedule.local_date(now).to_string();
        let mut tx = self.begin().await?;
        let row = [(host_id.to_owned(), cycle.to_owned(), kind, message)];
        let new = insert_notices(&mut tx, &row, &day, &to_db(now)).await?;
        commit(tx).await?;
        Ok(new == 1)
    }

    /// Hosts managed here whose open cycle has `window` among its windows and that have no
    /// settled attempt in that window. Hosts of unresolved attempts are excluded.
    pub async fn due_hosts(&self, window: DateTime<Utc>) -> Result<Vec<HostRecord>, StoreError> {
        let w = to_db(window);
        let rows = sqlx::query(concat!(
            rows_select!(),
            " WHERE h.removed_at IS NULL AND h.charge_type = 'PrePaid' AND h.status <> 'Released'
                AND p.renewal_status = 'AutoRenewal'
                AND h.first_window <= ?1 AND ?1 < h.expired_time
                AND NOT EXISTS (SELECT 1 FROM cycle_closures c WHERE c.host_id = h.host_id AND c.cycle = h.expired_time)
                AND NOT EXISTS (
                    SELECT 1 FROM attempt_hosts ah
                    JOIN attempts a ON a.attempt_id = ah.attempt_id
                    LEFT JOIN attempt_outcomes o ON o.attempt_id = ah.attempt_id
                    WHERE ah.host_id = h.host_id AND ah.cycle = h.expired_time
                      AND (o.attempt_id IS NULL
                           OR (a.window_at = ?1 AND a.kind = 'scheduled' AND o.outcome NOT IN ('split', 'superseded'))))
              ORDER BY h.region_id, h.host_id"
        ))
        .bind(&w)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::sql("selecting the due set"))?;
        rows.iter().map(HostRecord::from_row).collect()
    }

    /// Managed hosts whose cycle ended at or before `now` without a closure.
    pub async fn lapsing_hosts(&self, now: DateTime<Utc>) -> Result<Vec<HostRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            rows_select!(),
            " WHERE h.removed_at IS NULL AND h.charge_type = 'PrePaid' AND h.status <> 'Released'
                AND p.renewal_status = 'AutoRenewal' AND h.expired_time <= ?
                AND NOT EXISTS (SELECT 1 FROM cycle_closures c WHERE c.host_id = h.host_id AND c.cycle = h.expired_time)
              ORDER BY h.host_id"
        ))
        .bind(to_db(now))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::sql("selecting lapsing hosts"))?;
        rows.iter().map(HostRecord::from_row).collect()
    }

    /// PrePaid hosts not renewed here (`Normal`/`NotRenewal`) whose cycle is still open.
    pub async fn unmanaged_hosts(&self, now: DateTime<Utc>) -> Result<Vec<HostRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            rows_select!(),
            " WHERE h.removed_at IS NULL AND h.charge_type = 'PrePaid' AND h.status <> 'Released'
                AND COALESCE(p.renewal_status, 'Normal') <> 'AutoRenewal' AND h.expired_time > ?
              ORDER BY h.host_id"
        ))
        .bind(to_db(now))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::sql("selecting unmanaged hosts"))?;
        rows.iter().map(HostRecord::from_row).collect()
    }

    pub async fn record_window_run(&self, run: &WindowRun) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO window_runs (window_at, trigger, started_at, finished_at, due, renewed, already_renewed,
                                      failed, lapsed, attempts, result)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&run.window_at)
        .bind(&run.trigger)
        .bind(&run.started_at)
        .bind(&run.finished_at)
        .bind(run.due)
        .bind(run.renewed)
        .bind(run.already_renewed)
        .bind(run.failed)
        .bind(run.lapsed)
        .bind(run.attempts)
        .bind(&run.result)
        .execute(&self.pool)
        .await
        .map_err(StoreError::sql("recording the window run"))?;
        Ok(())
    }

    /// Was `window` run to completion (any trigger)?
    pub async fn window_was_run(&self, window: DateTime<Utc>) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM window_runs WHERE window_at = ? AND result <> 'interrupted'",
        )
        .bind(to_db(window))
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::sql("reading window runs"))?;
        Ok(n > 0)
    }

    /// Hosts whose current cycle began with a renewal recorded here (for `plan`'s `renewed`).
    pub async fn renewed_into_current_cycle(
        &self,
    ) -> Result<std::collections::HashMap<String, DateTime<Utc>>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.host_id, c.cycle FROM cycle_closures c JOIN hosts h ON h.host_id = c.host_id
             WHERE c.outcome = 'renewed' AND c.new_expiry = h.expired_time",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::sql("reading renewals"))?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("host_id").map_err(StoreError::sql("decoding"))?;
                let cycle: String = r.try_get("cycle").map_err(StoreError::sql("decoding"))?;
                Ok((id, instant(&cycle)?))
            })
            .collect()
    }
}

fn instant(s: &str) -> Result<DateTime<Utc>, StoreError> {
    parse_instant(s).map_err(|_| StoreError::Corrupt {
        what: format!("{s:?} is not an RFC 3339 time"),
    })
}

fn windows(schedule: &Schedule, expiry: DateTime<Utc>) -> (Option<String>, Option<String>) {
    (
        schedule.first_window(expiry).map(to_db),
        schedule.last_window(expiry).map(to_db),
    )
}

/// Which audit view to read.
#[derive(Debug, Clone, Copy)]
pub enum AuditKind {
    Attempts,
    Policies,
    Notices,
    Windows,
}

impl Store {
    /// Rows of an audit view, oldest first, optionally for one host and from an instant.
    /// Returns column names and JSON values (numbers stay numbers).
    pub async fn audit(
        &self,
        kind: AuditKind,
        host: Option<&str>,
        since: Option<&str>,
    ) -> Result<(Vec<String>, Vec<Vec<serde_json::Value>>), StoreError> {
        let sql = match kind {
            AuditKind::Attempts => "SELECT attempt_id, kind, window_at, host_id, cycle, region_id, period, period_unit,
                    client_token, sent_at, sends, finished_at, http_status, code, request_id, outcome,
                    expiry_before, expiry_after, params
                 FROM v_attempts WHERE (?1 IS NULL OR host_id = ?1) AND (?2 IS NULL OR created_at >= ?2)
                 ORDER BY attempt_id, host_id",
            AuditKind::Policies => "SELECT change_id, changed_at, host_id, old_renewal_status, old_duration, old_period_unit,
                    new_renewal_status, new_duration, new_period_unit, source, operation
                 FROM v_policy_changes WHERE (?1 IS NULL OR host_id = ?1) AND (?2 IS NULL OR changed_at >= ?2)
                 ORDER BY change_id",
            AuditKind::Notices => "SELECT notice_id, created_at, day, kind, host_id, cycle, message,
                    delivery_tries, delivered_at
                 FROM v_notices WHERE (?1 IS NULL OR host_id = ?1) AND (?2 IS NULL OR created_at >= ?2)
                 ORDER BY notice_id",
            AuditKind::Windows => "SELECT run_id, window_at, trigger, started_at, finished_at, due, renewed,
                    already_renewed, failed, lapsed, attempts, result
                 FROM v_windows WHERE ?1 IS NULL AND (?2 IS NULL OR window_at >= ?2)
                 ORDER BY run_id",
        };
        let rows = sqlx::query(sql)
            .bind(host)
            .bind(since)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::sql("reading the audit trail"))?;
        let columns: Vec<String> = match rows.first() {
            Some(r) => sqlx::Row::columns(r)
                .iter()
                .map(|c| sqlx::Column::name(c).to_owned())
                .collect(),
            None => sql
                .split("FROM")
                .next()
                .unwrap_or_default()
                .trim_start_matches("SELECT")
                .split(',')
                .map(|c| c.trim().to_owned())
                .collect(),
        };
        let out = rows
            .iter()
            .map(|r| (0..columns.len()).map(|i| any_value(r, i)).collect())
            .collect();
        Ok((columns, out))
    }
}

fn any_value(r: &sqlx::sqlite::SqliteRow, i: usize) -> serde_json::Value {
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
