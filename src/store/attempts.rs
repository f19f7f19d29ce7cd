//! The protocol's SQL: the actor epoch, write-ahead attempts and their events, decisions, blocks
//! and settlements, what each read of the cloud taught the inventory, the candidates of a pass and
//! the facts a decision needs. Each write is one transaction; a decision commits together with
//! the hosts' new expiries, their history, their cycle closures and their notices.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::builder::Statement;

use super::rows::get;
use super::{
    CHUNK, ChangeRow, HostRecord, Source, Store, StoreError, commit, insert_host_changes,
    insert_notices, insert_operation,
};
use crate::domain::protocol::{
    AttemptKind, AttemptOutcome, BlockReason, Closure, CloudHost, CycleFacts, EventKind,
    HostDecision, HostOutcome, NoticeKind, PassResult, Trigger,
};
use crate::domain::time::{from_db, to_db};
use crate::domain::{ClientToken, HostId, Period, PeriodUnit};

/// The epoch an actor claimed: every write-ahead checks it is still the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Epoch(i64);

impl Epoch {
    pub fn get(self) -> i64 {
        self.0
    }
}

/// An attempt as written ahead of its request.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub attempt_id: i64,
    pub kind: AttemptKind,
    pub window_at: DateTime<Utc>,
    pub region_id: String,
    pub period: Period,
    pub client_token: ClientToken,
    /// The exact request parameters, as recorded: a re-send sends these and nothing else.
    pub params: Vec<(String, String)>,
    /// Each host with the cycle (the expiry read just before the first send), in request order.
    pub hosts: Vec<(HostId, DateTime<Utc>)>,
    pub parent: Option<i64>,
    /// Blocked: neither re-sent nor replaced until every host is closed or a person settles it.
    pub blocked: bool,
}

/// What to write ahead.
pub struct NewAttempt<'a> {
    pub kind: AttemptKind,
    pub window_at: DateTime<Utc>,
    pub region_id: &'a str,
    pub period: Period,
    pub client_token: ClientToken,
    pub params: Vec<(String, String)>,
    pub parent: Option<i64>,
    pub hosts: Vec<(HostId, DateTime<Utc>)>,
    /// A person forced it past the guards (`renew --force`).
    pub forced: bool,
}

/// One send and what came back.
pub struct Event<'a> {
    pub kind: EventKind,
    pub http_status: Option<u16>,
    pub code: Option<&'a str>,
    pub message: Option<&'a str>,
    pub request_id: Option<&'a str>,
}

/// The answer a decision rests on, as recorded with its outcome.
#[derive(Debug, Clone, Default)]
pub struct AnswerRecord {
    pub http_status: Option<u16>,
    pub code: Option<String>,
    pub message: Option<String>,
    pub request_id: Option<String>,
}

/// A notice to record (at most once per host, cycle, kind and day).
#[derive(Debug, Clone)]
pub struct NoticeRow {
    pub host_id: String,
    pub cycle: String,
    pub kind: NoticeKind,
    pub message: String,
}

/// A decision to record.
pub struct Verdict<'a> {
    pub outcome: AttemptOutcome,
    pub answer: AnswerRecord,
    pub hosts: &'a [HostDecision],
    pub notices: Vec<NoticeRow>,
}

/// What one read of one host (before a possible attempt) changes.
#[derive(Debug, Clone)]
pub struct Observation {
    pub host_id: HostId,
    /// The host as read; `None` when the cloud did not return it.
    pub read: Option<CloudHost>,
    /// The inventory's expiry becomes the cloud's.
    pub adopt: Option<DateTime<Utc>>,
    /// Cycles that end here, without an attempt.
    pub close: Vec<(DateTime<Utc>, Closure)>,
    pub notices: Vec<NoticeRow>,
}

/// A window pass, as recorded in `window_runs`.
#[derive(Debug, Clone, Serialize)]
pub struct WindowRun {
    pub window_at: String,
    pub trigger: Trigger,
    pub started_at: String,
    pub finished_at: String,
    pub due: i64,
    pub renewed: i64,
    pub already_renewed: i64,
    pub failed: i64,
    pub lapsed: i64,
    pub attempts: i64,
    pub result: PassResult,
}

/// An attempt as a pass report shows it, read back from the audit trail.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptSummary {
    pub attempt_id: i64,
    pub client_token: String,
    pub region_id: String,
    pub period: String,
    pub hosts: Vec<String>,
    pub sends: u32,
    /// The attempt's outcome once decided, else `open` or `blocked`.
    pub outcome: String,
    pub code: Option<String>,
    pub request_id: Option<String>,
}

/// Why a write-ahead was refused.
#[derive(Debug, thiserror::Error)]
pub enum WriteAheadError {
    #[error(
        "this process acts as epoch {mine}, but epoch {current} took the database over: nothing more is sent by this process"
    )]
    Fenced { mine: i64, current: i64 },
    #[error(
        "ClientToken {0} is already recorded for another attempt; nothing was sent (see `ddh-renewd audit attempts`)"
    )]
    TokenInUse(ClientToken),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `settle` did.
#[derive(Debug, Clone, Serialize)]
pub struct Settled {
    pub attempt_id: i64,
    pub client_token: String,
    pub hosts: Vec<String>,
}

/// An attempt without an outcome, for `attempts list`.
#[derive(Debug, Clone, Serialize)]
pub struct UndecidedAttempt {
    pub attempt_id: i64,
    pub kind: String,
    pub window_at: String,
    pub region_id: String,
    pub client_token: String,
    pub hosts: Vec<String>,
    pub sends: i64,
    pub created_at: String,
    /// Set when blocked.
    pub blocked_reason: Option<String>,
    pub blocked_at: Option<String>,
    pub detail: Option<String>,
}

/// Why `settle` refused.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("attempt {0} does not exist")]
    NotFound(i64),
    #[error("attempt {0} is decided already ({1}); there is nothing to settle")]
    Decided(i64, String),
    #[error(
        "attempt {0} is open, not blocked: ddh-renewd still resolves it with the same ClientToken; only a blocked attempt can be settled"
    )]
    NotBlocked(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt { what: what.into() }
}

fn instant(s: &str) -> Result<DateTime<Utc>, StoreError> {
    from_db(s).map_err(|_| corrupt(format!("{s:?} is not an RFC 3339 time")))
}

impl Store {
    // ------------------------------------------------------------------ actor

    /// Takes the database over as a new epoch (the caller holds the actor lock).
    pub async fn claim_epoch(&self, pid: u32, now: DateTime<Utc>) -> Result<Epoch, StoreError> {
        let mut tx = self.begin().await?;
        let epoch: i64 = sqlx::query_scalar(
            "INSERT INTO actor (id, epoch, pid, since) VALUES (1, 1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET epoch = actor.epoch + 1, pid = excluded.pid, since = excluded.since
             RETURNING epoch",
        )
        .bind(i64::from(pid))
        .bind(to_db(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::sql("claiming the actor epoch"))?;
        sqlx::query("INSERT INTO actor_epochs (epoch, pid, at) VALUES ($1, $2, $3)")
            .bind(epoch)
            .bind(i64::from(pid))
            .bind(to_db(now))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::sql("recording the actor epoch"))?;
        commit(tx).await?;
        Ok(Epoch(epoch))
    }

    /// The current actor of the database at `path`, read without migrating or writing
    /// anything (for the message when the lock is held); `None` if it cannot be read.
    pub async fn peek_actor(path: &std::path::Path) -> Option<(i64, i64)> {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .connect()
            .await
            .ok()?;
        let row = sqlx::query("SELECT epoch, pid FROM actor WHERE id = 1")
            .fetch_optional(&mut conn)
            .await
            .ok()
            .flatten();
        let _ = sqlx::Connection::close(conn).await;
        let r = row?;
        Some((r.try_get("epoch").ok()?, r.try_get("pid").ok()?))
    }

    /// The current actor: (epoch, pid), if any ever took the database.
    pub async fn actor(&self) -> Result<Option<(i64, i64)>, StoreError> {
        let row = sqlx::query("SELECT epoch, pid FROM actor WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::sql("reading the actor"))?;
        row.map(|r| Ok((get(&r, "epoch")?, get(&r, "pid")?)))
            .transpose()
    }

    // ------------------------------------------------------------------ write-ahead

    /// Commits an attempt (hosts, exact parameters, token, epoch) before its request may leave.
    /// Refused if another epoch took the database over, or if the token is recorded already (a
    /// token is never reused and never bumped).
    pub async fn write_ahead(
        &self,
        epoch: Epoch,
        a: NewAttempt<'_>,
        now: DateTime<Utc>,
    ) -> Result<Attempt, WriteAheadError> {
        let mut tx = self.begin().await?;
        fence_and_token(&mut tx, epoch, &a.client_token).await?;
        let params = crate::ecs::sign::canonical_query(&a.params);
        let attempt_id: i64 = sqlx::query_scalar(
            "INSERT INTO attempts (kind, window_at, region_id, period, period_unit, client_token, params,
                                   generation, parent_attempt_id, epoch, forced, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10, $11) RETURNING attempt_id",
        )
        .bind(a.kind.as_str())
        .bind(to_db(a.window_at))
        .bind(a.region_id)
        .bind(i64::from(a.period.n))
        .bind(a.period.unit.as_str())
        .bind(a.client_token.as_str())
        .bind(&params)
        .bind(a.parent)
        .bind(epoch.0)
        .bind(i64::from(a.forced))
        .bind(to_db(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::sql("writing the attempt ahead"))?;
        insert_attempt_hosts(&mut tx, attempt_id, &a.hosts).await?;
        sqlx::query("INSERT INTO attempt_open (attempt_id) VALUES ($1)")
            .bind(attempt_id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::sql("opening the attempt"))?;
        commit(tx).await?;
        Ok(Attempt {
            attempt_id,
            kind: a.kind,
            window_at: a.window_at,
            region_id: a.region_id.to_owned(),
            period: a.period,
            client_token: a.client_token,
            params: crate::ecs::sign::parse_canonical_query(&params),
            hosts: a.hosts,
            parent: a.parent,
            blocked: false,
        })
    }

    pub async fn record_event(
        &self,
        attempt_id: i64,
        e: Event<'_>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO attempt_events (attempt_id, at, kind, http_status, code, message, request_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(attempt_id)
        .bind(to_db(at))
        .bind(e.kind.as_str())
        .bind(e.http_status.map(i64::from))
        .bind(e.code)
        .bind(e.message)
        .bind(e.request_id)
        .execute(&self.pool)
        .await
        .map_err(StoreError::sql("recording an attempt event"))?;
        Ok(())
    }

    /// Every attempt without an outcome (open or blocked), oldest first, with its recorded
    /// parameters and hosts in request order.
    pub async fn open_attempts(&self) -> Result<Vec<Attempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.attempt_id, a.kind, a.window_at, a.region_id, a.period, a.period_unit,
                    a.client_token, a.params, a.parent_attempt_id,
                    CASE WHEN EXISTS (SELECT 1 FROM attempt_blocks b WHERE b.attempt_id = a.attempt_id) THEN 1 ELSE 0 END AS blocked
             FROM attempt_open o JOIN attempts a ON a.attempt_id = o.attempt_id
             ORDER BY a.attempt_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::sql("reading open attempts"))?;
        let mut hosts = self
            .attempt_hosts_of(rows.iter().map(|r| r.try_get("attempt_id")))
            .await?;
        rows.iter()
            .map(|r| {
                let id: i64 = get(r, "attempt_id")?;
                attempt_from_row(r, hosts.remove(&id).unwrap_or_default())
            })
            .collect()
    }

    /// The hosts of the given attempts, in request order.
    async fn attempt_hosts_of(
        &self,
        ids: impl Iterator<Item = Result<i64, sqlx::Error>>,
    ) -> Result<HashMap<i64, Vec<(HostId, DateTime<Utc>)>>, StoreError> {
        let ids: Vec<i64> = ids
            .collect::<Result<_, _>>()
            .map_err(StoreError::sql("decoding attempts"))?;
        let mut out: HashMap<i64, Vec<(HostId, DateTime<Utc>)>> = HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            let mut st = Statement::new(
                "SELECT attempt_id, host_id, cycle FROM attempt_hosts WHERE attempt_id IN (",
            );
            st.list(chunk.iter().copied())
                .push(") ORDER BY attempt_id, COALESCE(position, 0), host_id");
            let rows = st
                .query()
                .map_err(StoreError::sql("reading attempts' hosts"))?
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::sql("reading attempts' hosts"))?;
            for r in &rows {
                let id: String = get(r, "host_id")?;
                let cycle: String = get(r, "cycle")?;
                out.entry(get(r, "attempt_id")?)
                    .or_default()
                    .push((HostId::parse(&id).map_err(corrupt)?, instant(&cycle)?));
            }
        }
        Ok(out)
    }

    /// Every attempt without an outcome, with its block (if any), oldest first.
    pub async fn undecided_attempts(&self) -> Result<Vec<UndecidedAttempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.attempt_id, a.kind, a.window_at, a.region_id, a.client_token, a.created_at,
                    (SELECT count(*) FROM attempt_events e WHERE e.attempt_id = a.attempt_id AND e.kind = 'sent') AS sends,
                    b.reason, b.at AS blocked_at, b.detail
             FROM attempt_open o JOIN attempts a ON a.attempt_id = o.attempt_id
             LEFT JOIN attempt_blocks b ON b.attempt_id = a.attempt_id
             ORDER BY a.attempt_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::sql("reading open attempts"))?;
        let mut hosts = self
            .attempt_hosts_of(rows.iter().map(|r| r.try_get("attempt_id")))
            .await?;
        rows.iter()
            .map(|r| {
                let id: i64 = get(r, "attempt_id")?;
                Ok(UndecidedAttempt {
                    attempt_id: id,
                    kind: get(r, "kind")?,
                    window_at: get(r, "window_at")?,
                    region_id: get(r, "region_id")?,
                    client_token: get(r, "client_token")?,
                    hosts: hosts
                        .remove(&id)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(h, _)| h.to_string())
                        .collect(),
                    sends: get(r, "sends")?,
                    created_at: get(r, "created_at")?,
                    blocked_reason: get(r, "reason")?,
                    blocked_at: get(r, "blocked_at")?,
                    detail: get(r, "detail")?,
                })
            })
            .collect()
    }

    // ------------------------------------------------------------------ decisions

    /// Records a decision: the outcome, each host's result, cycle closures, new expiries (with
    /// history) and notices, in one transaction. `Ok(false)` if the attempt was decided already
    /// (nothing is written then).
    pub async fn decide(
        &self,
        attempt: &Attempt,
        v: &Verdict<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        if !self.decide_in(&mut tx, attempt, v, now).await? {
            return Ok(false);
        }
        commit(tx).await?;
        Ok(true)
    }

    /// [`Store::decide`] inside `tx`.
    async fn decide_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        attempt: &Attempt,
        v: &Verdict<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now_s = to_db(now);
        let done = sqlx::query(
            "INSERT INTO attempt_outcomes (attempt_id, finished_at, outcome, http_status, code, message, request_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (attempt_id) DO NOTHING",
        )
        .bind(attempt.attempt_id)
        .bind(&now_s)
        .bind(v.outcome.as_str())
        .bind(v.answer.http_status.map(i64::from))
        .bind(v.answer.code.as_deref())
        .bind(v.answer.message.as_deref())
        .bind(v.answer.request_id.as_deref())
        .execute(&mut **tx)
        .await
        .map_err(StoreError::sql("recording the attempt's outcome"))?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM attempt_open WHERE attempt_id = $1")
            .bind(attempt.attempt_id)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::sql("closing the attempt"))?;
        insert_host_outcomes(tx, attempt.attempt_id, v.hosts, &now_s).await?;
        let closures: Vec<ClosureRow> = v
            .hosts
            .iter()
            .filter_map(|h| {
                h.closure.map(|c| ClosureRow {
                    host: h.host.as_str().to_owned(),
                    cycle: to_db(h.cycle),
                    closure: c,
                    new_expiry: h.expiry_after.map(to_db),
                    attempt: Some(attempt.attempt_id),
                })
            })
            .collect();
        insert_closures(tx, &closures, &now_s).await?;
        let moves: Vec<(HostId, DateTime<Utc>)> = v
            .hosts
            .iter()
            .filter_map(|h| h.expiry_after.map(|t| (h.host.clone(), t)))
            .collect();
        let detail = format!("attempt {}", attempt.attempt_id);
        self.follow_cloud(tx, &moves, "renewal", &detail, &now_s)
            .await?;
        for h in v.hosts.iter().filter(|h| h.outcome == HostOutcome::Lapsed) {
            sqlx::query(
                "UPDATE hosts SET financial_lock = 1 WHERE host_id = $1 AND expired_time = $2",
            )
            .bind(h.host.as_str())
            .bind(to_db(h.cycle))
            .execute(&mut **tx)
            .await
            .map_err(StoreError::sql("recording a lapse"))?;
        }
        self.notices_in(tx, &v.notices, now).await?;
        Ok(true)
    }

    /// Moves the inventory's expiry (and the cloud's last word) to what the cloud showed, never
    /// behind a newer cloud read; every change goes into the host history.
    async fn follow_cloud(
        &self,
        tx: &mut Transaction<'static, Any>,
        moves: &[(HostId, DateTime<Utc>)],
        op_kind: &str,
        detail: &str,
        now_s: &str,
    ) -> Result<(), StoreError> {
        if moves.is_empty() {
            return Ok(());
        }
        let mut changes = Vec::new();
        for (id, after) in moves {
            let old: Option<String> =
                sqlx::query_scalar("SELECT expired_time FROM hosts WHERE host_id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(StoreError::sql("reading a host's expiry"))?;
            let Some(old) = old else { continue };
            let (first, last) = super::engine_windows(&self.schedule, *after);
            sqlx::query(
                "UPDATE hosts SET expired_time = $1, first_window = $2, last_window = $3,
                        cloud_expired_time = $1, cloud_first_window = $2,
                        financial_lock = CASE WHEN expired_time = $1 THEN financial_lock ELSE 0 END,
                        updated_at = $4
                 WHERE host_id = $5",
            )
            .bind(to_db(*after))
            .bind(first)
            .bind(last)
            .bind(now_s)
            .bind(id.as_str())
            .execute(&mut **tx)
            .await
            .map_err(StoreError::sql("recording a new expiry"))?;
            if old != to_db(*after) {
                changes.push(ChangeRow::new(
                    id.as_str(),
                    "updated",
                    Some("expired_time"),
                    Some(old),
                    Some(to_db(*after)),
                ));
            }
        }
        if !changes.is_empty() {
            let op_id = insert_operation(tx, op_kind, Source::Daemon, detail, now_s).await?;
            insert_host_changes(tx, op_id, &changes, Source::Daemon, now_s).await?;
        }
        Ok(())
    }

    async fn notices_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        notices: &[NoticeRow],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let day = self.schedule.local_date(now).to_string();
        let rows: Vec<(String, String, &str, &str)> = notices
            .iter()
            .map(|n| {
                (
                    n.host_id.clone(),
                    n.cycle.clone(),
                    n.kind.as_str(),
                    n.message.as_str(),
                )
            })
            .collect();
        insert_notices(tx, &rows, &day, &to_db(now)).await
    }

    /// Blocks an open attempt (once) with a `needs_attention` notice.
    pub async fn block(
        &self,
        attempt_id: i64,
        reason: BlockReason,
        hosts: &[HostId],
        detail: &str,
        notices: &[NoticeRow],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let list: Vec<&str> = hosts.iter().map(HostId::as_str).collect();
        let done = sqlx::query(
            "INSERT INTO attempt_blocks (attempt_id, at, reason, hosts, detail)
             SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM attempt_open WHERE attempt_id = $1)
             ON CONFLICT (attempt_id) DO NOTHING",
        )
        .bind(attempt_id)
        .bind(to_db(now))
        .bind(reason.as_str())
        .bind(list.join(","))
        .bind(detail)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::sql("blocking an attempt"))?;
        self.notices_in(&mut tx, notices, now).await?;
        commit(tx).await?;
        Ok(done.rows_affected() == 1)
    }

    /// A person's word that a blocked attempt was not applied and will not be: it is decided
    /// `settled`, and its hosts are free to be attempted again (after a fresh read).
    pub async fn settle(
        &self,
        attempt_id: i64,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<Settled, SettleError> {
        let now_s = to_db(now);
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "SELECT a.client_token,
                    (SELECT outcome FROM attempt_outcomes o WHERE o.attempt_id = a.attempt_id) AS outcome,
                    CASE WHEN EXISTS (SELECT 1 FROM attempt_blocks b WHERE b.attempt_id = a.attempt_id) THEN 1 ELSE 0 END AS blocked
             FROM attempts a WHERE a.attempt_id = $1",
        )
        .bind(attempt_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::sql("reading the attempt"))?
        .ok_or(SettleError::NotFound(attempt_id))?;
        if let Some(o) = get::<Option<String>>(&row, "outcome")? {
            return Err(SettleError::Decided(attempt_id, o));
        }
        if get::<i64>(&row, "blocked")? == 0 {
            return Err(SettleError::NotBlocked(attempt_id));
        }
        let token: String = get(&row, "client_token")?;
        let hosts = sqlx::query(
            "SELECT host_id, cycle FROM attempt_hosts WHERE attempt_id = $1 ORDER BY COALESCE(position, 0), host_id",
        )
        .bind(attempt_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::sql("reading the attempt's hosts"))?;
        let mut decisions = Vec::with_capacity(hosts.len());
        for r in &hosts {
            decisions.push(HostDecision {
                host: HostId::parse(&get::<String>(r, "host_id")?).map_err(corrupt)?,
                cycle: instant(&get::<String>(r, "cycle")?)?,
                outcome: HostOutcome::Abandoned,
                expiry_after: None,
                closure: None,
            });
        }
        sqlx::query(
            "INSERT INTO attempt_outcomes (attempt_id, finished_at, outcome, message) VALUES ($1, $2, 'settled', $3)",
        )
        .bind(attempt_id)
        .bind(&now_s)
        .bind(note)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::sql("recording the settlement"))?;
        sqlx::query("DELETE FROM attempt_open WHERE attempt_id = $1")
            .bind(attempt_id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::sql("closing the attempt"))?;
        insert_host_outcomes(&mut tx, attempt_id, &decisions, &now_s).await?;
        commit(tx).await?;
        Ok(Settled {
            attempt_id,
            client_token: token,
            hosts: decisions.iter().map(|d| d.host.to_string()).collect(),
        })
    }

    // ------------------------------------------------------------------ reads and candidates

    /// Records what reads before possible attempts showed: the cloud's last word per host, the
    /// inventory following the cloud, cycles that ended without an attempt, and notices.
    pub async fn apply_observations(
        &self,
        window: DateTime<Utc>,
        obs: &[Observation],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if obs.is_empty() {
            return Ok(());
        }
        let now_s = to_db(now);
        let w = to_db(window);
        let mut tx = self.begin().await?;
        for o in obs {
            match &o.read {
                Some(c) => {
                    let first = self.schedule.first_window(c.expiry).map(to_db);
                    sqlx::query(
                        "UPDATE hosts SET cloud_expired_time = $1, cloud_first_window = $2, cloud_read_window = $3,
                                financial_lock = $4 WHERE host_id = $5",
                    )
                    .bind(to_db(c.expiry))
                    .bind(first)
                    .bind(&w)
                    .bind(i64::from(c.locked))
                    .bind(o.host_id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::sql("recording a read"))?;
                }
                None => {
                    sqlx::query("UPDATE hosts SET cloud_read_window = $1 WHERE host_id = $2")
                        .bind(&w)
                        .bind(o.host_id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::sql("recording a read"))?;
                }
            }
        }
        let moves: Vec<(HostId, DateTime<Utc>)> = obs
            .iter()
            .filter_map(|o| o.adopt.map(|t| (o.host_id.clone(), t)))
            .collect();
        self.follow_cloud(
            &mut tx,
            &moves,
            "reread",
            "expiry re-read from the cloud",
            &now_s,
        )
        .await?;
        let closures: Vec<ClosureRow> = obs
            .iter()
            .flat_map(|o| {
                o.close.iter().map(|(cycle, c)| ClosureRow {
                    host: o.host_id.as_str().to_owned(),
                    cycle: to_db(*cycle),
                    closure: *c,
                    new_expiry: o
                        .read
                        .as_ref()
                        .filter(|_| c.is_renewal())
                        .map(|r| to_db(r.expiry)),
                    attempt: None,
                })
            })
            .collect();
        insert_closures(&mut tx, &closures, &now_s).await?;
        let notices: Vec<NoticeRow> = obs.iter().flat_map(|o| o.notices.clone()).collect();
        self.notices_in(&mut tx, &notices, now).await?;
        commit(tx).await
    }

    /// Managed hosts a pass in `window` must look at: the inventory's cycle is in its windows and
    /// open; or the inventory points at a closed cycle (not re-read in this window yet); or the
    /// cloud last showed another cycle that is in its windows and open. Hosts with an attempt
    /// without an outcome are left to the resolution step. Ordered by region, id.
    pub async fn candidates(&self, window: DateTime<Utc>) -> Result<Vec<HostRecord>, StoreError> {
        candidates_on(&self.pool, window).await
    }

    /// The hosts [`Store::candidates`] would return once these decisions were recorded: they
    /// are applied in a transaction that is rolled back, so nothing is written. A dry run uses
    /// it to choose hosts exactly as the real pass will after deciding the open attempts.
    pub async fn candidates_after(
        &self,
        window: DateTime<Utc>,
        decided: &[(Attempt, AttemptOutcome, Vec<HostDecision>)],
        now: DateTime<Utc>,
    ) -> Result<Vec<HostRecord>, StoreError> {
        let mut tx = self.begin().await?;
        for (attempt, outcome, hosts) in decided {
            let v = Verdict {
                outcome: *outcome,
                answer: AnswerRecord::default(),
                hosts,
                notices: Vec::new(),
            };
            self.decide_in(&mut tx, attempt, &v, now).await?;
        }
        let out = candidates_on(&mut *tx, window).await;
        tx.rollback()
            .await
            .map_err(StoreError::sql("rolling back a dry run's decisions"))?;
        out
    }

    /// For each host: its closed cycles, the cycles that failed definitively in `window`, and the
    /// latest attempt of `window` on each cycle (the lineage of a new attempt's token).
    pub async fn cycle_facts(
        &self,
        hosts: &[&HostRecord],
        window: DateTime<Utc>,
    ) -> Result<HashMap<HostId, (CycleFacts, HashMap<DateTime<Utc>, i64>)>, StoreError> {
        let mut out: HashMap<HostId, (CycleFacts, HashMap<DateTime<Utc>, i64>)> = hosts
            .iter()
            .map(|h| {
                (
                    h.host.id.clone(),
                    (
                        CycleFacts {
                            inventory_expiry: Some(h.host.expired_time),
                            last_cloud_expiry: h.cloud_expired_time,
                            ..CycleFacts::default()
                        },
                        HashMap::new(),
                    ),
                )
            })
            .collect();
        let w = to_db(window);
        for chunk in hosts.chunks(CHUNK) {
            let ids = || chunk.iter().map(|h| h.host.id.as_str().to_owned());
            let mut st = Statement::new(
                "SELECT host_id, cycle, outcome, CAST(NULL AS BIGINT) AS attempt_id, CAST(NULL AS TEXT) AS kind
                 FROM cycle_closures WHERE host_id IN (",
            );
            st.list(ids())
                .push(
                    ") UNION ALL
                     SELECT ho.host_id, ho.cycle, ho.outcome, ho.attempt_id, a.kind FROM host_outcomes ho
                     JOIN attempts a ON a.attempt_id = ho.attempt_id
                     WHERE a.window_at = ",
                )
                .bind(w.clone())
                .push(" AND ho.host_id IN (")
                .list(ids())
                .push(")");
            let rows = st
                .query()
                .map_err(StoreError::sql("reading cycle facts"))?
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::sql("reading cycle facts"))?;
            for r in &rows {
                let id = HostId::parse(&get::<String>(r, "host_id")?).map_err(corrupt)?;
                let cycle = instant(&get::<String>(r, "cycle")?)?;
                let outcome: String = get(r, "outcome")?;
                let Some((facts, lineage)) = out.get_mut(&id) else {
                    continue;
                };
                match get::<Option<i64>>(r, "attempt_id")? {
                    None => {
                        let c: Closure = outcome.parse().map_err(corrupt)?;
                        facts.closures.insert(cycle, c);
                    }
                    Some(attempt) => {
                        let o: HostOutcome = outcome.parse().map_err(corrupt)?;
                        let scheduled = get::<Option<String>>(r, "kind")?.as_deref()
                            == Some(AttemptKind::Scheduled.as_str());
                        if scheduled && is_definite_failure(o) {
                            facts.failed_in_window.insert(cycle);
                        }
                        let e = lineage.entry(cycle).or_insert(attempt);
                        *e = (*e).max(attempt);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Hosts of attempts without an outcome.
    pub async fn hosts_in_open_attempts(&self) -> Result<HashMap<String, (i64, bool)>, StoreError> {
        let rows = sqlx::query(
            "SELECT ah.host_id, ao.attempt_id,
                    CASE WHEN EXISTS (SELECT 1 FROM attempt_blocks b WHERE b.attempt_id = ao.attempt_id) THEN 1 ELSE 0 END AS blocked
             FROM attempt_open ao JOIN attempt_hosts ah ON ah.attempt_id = ao.attempt_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::sql("reading open attempts"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    get::<String>(r, "host_id")?,
                    (get(r, "attempt_id")?, get::<i64>(r, "blocked")? != 0),
                ))
            })
            .collect()
    }

    /// Every attempt without an outcome, with whether it is blocked.
    pub async fn undecided_attempt_ids(&self) -> Result<Vec<(i64, bool)>, StoreError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT ao.attempt_id,
                    CASE WHEN EXISTS (SELECT 1 FROM attempt_blocks b WHERE b.attempt_id = ao.attempt_id)
                         THEN 1 ELSE 0 END
             FROM attempt_open ao ORDER BY ao.attempt_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::sql("reading open attempts"))?;
        Ok(rows.into_iter().map(|(id, b)| (id, b != 0)).collect())
    }

    /// Managed hosts (AutoRenewal, PrePaid, in the inventory) per region.
    pub async fn managed_per_region(&self) -> Result<HashMap<String, usize>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT h.region_id, count(*) FROM hosts h JOIN policies p ON p.host_id = h.host_id
             WHERE h.removed_at IS NULL AND h.charge_type = 'PrePaid' AND h.status <> 'Released'
               AND p.renewal_status = 'AutoRenewal'
             GROUP BY h.region_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::sql("counting managed hosts"))?;
        Ok(rows
            .into_iter()
            .map(|(r, n)| (r, usize::try_from(n).unwrap_or(0)))
            .collect())
    }

    /// Records notices outside a decision; returns how many were new.
    pub async fn notices_now(
        &self,
        notices: &[NoticeRow],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        if notices.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let n = self.notices_in(&mut tx, notices, now).await?;
        commit(tx).await?;
        Ok(n)
    }

    // ------------------------------------------------------------------ window runs and reports

    pub async fn record_window_run(&self, run: &WindowRun) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO window_runs (window_at, trigger, started_at, finished_at, due, renewed, already_renewed,
                                      failed, lapsed, attempts, result)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&run.window_at)
        .bind(run.trigger.as_str())
        .bind(&run.started_at)
        .bind(&run.finished_at)
        .bind(run.due)
        .bind(run.renewed)
        .bind(run.already_renewed)
        .bind(run.failed)
        .bind(run.lapsed)
        .bind(run.attempts)
        .bind(run.result.as_str())
        .execute(&self.pool)
        .await
        .map_err(StoreError::sql("recording the window run"))?;
        Ok(())
    }

    /// Was `window` run to completion (any trigger)?
    pub async fn window_was_run(&self, window: DateTime<Utc>) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM window_runs WHERE window_at = $1 AND result <> 'interrupted'",
        )
        .bind(to_db(window))
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::sql("reading window runs"))?;
        Ok(n > 0)
    }

    /// The given attempts as the audit trail shows them now (sends counted from the events).
    pub async fn attempt_summaries(&self, ids: &[i64]) -> Result<Vec<AttemptSummary>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let mut st = Statement::new(
                "SELECT a.attempt_id, a.client_token, a.region_id, a.period, a.period_unit,
                        (SELECT count(*) FROM attempt_events e WHERE e.attempt_id = a.attempt_id AND e.kind = 'sent') AS sends,
                        COALESCE(o.outcome, CASE WHEN EXISTS (SELECT 1 FROM attempt_blocks b WHERE b.attempt_id = a.attempt_id)
                                                 THEN 'blocked' ELSE 'open' END) AS outcome,
                        COALESCE(o.code, (SELECT e.code FROM attempt_events e WHERE e.attempt_id = a.attempt_id
                                          AND e.code IS NOT NULL ORDER BY e.event_id DESC LIMIT 1)) AS code,
                        COALESCE(o.request_id, (SELECT e.request_id FROM attempt_events e WHERE e.attempt_id = a.attempt_id
                                          AND e.request_id IS NOT NULL ORDER BY e.event_id DESC LIMIT 1)) AS request_id
                 FROM attempts a LEFT JOIN attempt_outcomes o ON o.attempt_id = a.attempt_id
                 WHERE a.attempt_id IN (",
            );
            st.list(chunk.iter().copied())
                .push(") ORDER BY a.attempt_id");
            let rows = st
                .query()
                .map_err(StoreError::sql("reading attempts"))?
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::sql("reading attempts"))?;
            let mut hosts = self
                .attempt_hosts_of(rows.iter().map(|r| r.try_get("attempt_id")))
                .await?;
            for r in &rows {
                let id: i64 = get(r, "attempt_id")?;
                let n: i64 = get(r, "period")?;
                let unit: String = get(r, "period_unit")?;
                out.push(AttemptSummary {
                    attempt_id: id,
                    client_token: get(r, "client_token")?,
                    region_id: get(r, "region_id")?,
                    period: format!("{n} {unit}"),
                    hosts: hosts
                        .remove(&id)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(h, _)| h.to_string())
                        .collect(),
                    sends: u32::try_from(get::<i64>(r, "sends")?).unwrap_or(u32::MAX),
                    outcome: get(r, "outcome")?,
                    code: get(r, "code")?,
                    request_id: get(r, "request_id")?,
                });
            }
        }
        Ok(out)
    }
}

/// A failure that keeps the cycle from another attempt in the same window.
fn is_definite_failure(o: HostOutcome) -> bool {
    matches!(
        o,
        HostOutcome::Failed | HostOutcome::LegacyRetriesExhausted | HostOutcome::LegacyConfigError
    )
}

fn attempt_from_row(
    r: &AnyRow,
    hosts: Vec<(HostId, DateTime<Utc>)>,
) -> Result<Attempt, StoreError> {
    let n: i64 = get(r, "period")?;
    let unit: PeriodUnit =
        super::parse_col("attempts.period_unit", &get::<String>(r, "period_unit")?)?;
    let kind: AttemptKind = get::<String>(r, "kind")?.parse().map_err(corrupt)?;
    let params: String = get(r, "params")?;
    Ok(Attempt {
        attempt_id: get(r, "attempt_id")?,
        kind,
        window_at: instant(&get::<String>(r, "window_at")?)?,
        region_id: get(r, "region_id")?,
        period: Period {
            n: u32::try_from(n).map_err(|_| corrupt(format!("attempts.period {n}")))?,
            unit,
        },
        client_token: ClientToken::parse(&get::<String>(r, "client_token")?)
            .map_err(|e| corrupt(e.to_string()))?,
        params: crate::ecs::sign::parse_canonical_query(&params),
        hosts,
        parent: get(r, "parent_attempt_id")?,
        blocked: get::<i64>(r, "blocked")? != 0,
    })
}

struct ClosureRow {
    host: String,
    cycle: String,
    closure: Closure,
    new_expiry: Option<String>,
    attempt: Option<i64>,
}

/// A cycle closes once: later closures of the same cycle are ignored.
async fn insert_closures(
    tx: &mut Transaction<'static, Any>,
    rows: &[ClosureRow],
    now_s: &str,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(CHUNK) {
        let mut st = Statement::new(
            "INSERT INTO cycle_closures (host_id, cycle, outcome, new_expiry, attempt_id, at) ",
        );
        st.values(chunk, |b, r| {
            b.bind(r.host.clone())
                .bind(r.cycle.clone())
                .bind(r.closure.as_str().to_owned())
                .bind(r.new_expiry.clone())
                .bind(r.attempt)
                .bind(now_s.to_owned());
        })
        .push(" ON CONFLICT (host_id, cycle) DO NOTHING");
        st.query()
            .map_err(StoreError::sql("closing cycles"))?
            .execute(&mut **tx)
            .await
            .map_err(StoreError::sql("closing cycles"))?;
    }
    Ok(())
}

async fn insert_host_outcomes(
    tx: &mut Transaction<'static, Any>,
    attempt_id: i64,
    hosts: &[HostDecision],
    now_s: &str,
) -> Result<(), StoreError> {
    for chunk in hosts.chunks(CHUNK) {
        let mut st = Statement::new(
            "INSERT INTO host_outcomes (attempt_id, host_id, cycle, outcome, expiry_before, expiry_after, at) ",
        );
        st.values(chunk, |b, h| {
            b.bind(attempt_id)
                .bind(h.host.as_str().to_owned())
                .bind(to_db(h.cycle))
                .bind(h.outcome.as_str().to_owned())
                .bind(to_db(h.cycle))
                .bind(h.expiry_after.map(to_db))
                .bind(now_s.to_owned());
        });
        st.query()
            .map_err(StoreError::sql("recording host outcomes"))?
            .execute(&mut **tx)
            .await
            .map_err(StoreError::sql("recording host outcomes"))?;
    }
    Ok(())
}

/// The write-ahead's two refusals, inside its transaction: another epoch took the database
/// over (this actor is fenced off), or the token is recorded already.
async fn fence_and_token(
    tx: &mut Transaction<'static, Any>,
    epoch: Epoch,
    token: &ClientToken,
) -> Result<(), WriteAheadError> {
    let current: Option<i64> = sqlx::query_scalar("SELECT epoch FROM actor WHERE id = 1")
        .fetch_optional(&mut **tx)
        .await
        .map_err(StoreError::sql("checking the actor epoch"))?;
    if current != Some(epoch.0) {
        return Err(WriteAheadError::Fenced {
            mine: epoch.0,
            current: current.unwrap_or(0),
        });
    }
    let taken: Option<i64> =
        sqlx::query_scalar("SELECT attempt_id FROM attempts WHERE client_token = $1")
            .bind(token.as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(StoreError::sql("looking up a token"))?;
    if taken.is_some() {
        return Err(WriteAheadError::TokenInUse(token.clone()));
    }
    Ok(())
}

/// An attempt's hosts with the cycle each is renewed from, in request order.
async fn insert_attempt_hosts(
    tx: &mut Transaction<'static, Any>,
    attempt_id: i64,
    hosts: &[(HostId, DateTime<Utc>)],
) -> Result<(), StoreError> {
    for (base, chunk) in hosts.chunks(CHUNK).enumerate() {
        let mut st =
            Statement::new("INSERT INTO attempt_hosts (attempt_id, host_id, cycle, position) ");
        st.values(chunk.iter().enumerate(), |b, (i, (id, cycle))| {
            b.bind(attempt_id)
                .bind(id.as_str().to_owned())
                .bind(to_db(*cycle))
                .bind(i64::try_from(base * CHUNK + i).unwrap_or(i64::MAX));
        });
        st.query()
            .map_err(StoreError::sql("writing the attempt's hosts"))?
            .execute(&mut **tx)
            .await
            .map_err(StoreError::sql("writing the attempt's hosts"))?;
    }
    Ok(())
}

/// The hosts that may be due in a window `?1`: AutoRenewal PrePaid hosts without an open
/// attempt whose cycle is in its windows and neither closed nor failed definitively in this
/// window, or whose closed cycle the cloud has not been read for in this window, or whose cloud
/// expiry shows another such cycle.
const CANDIDATES: &str = concat!(
            rows_select!(),
            // Each branch of the OR below implies that the host is in one of these three sets,
            // each read from an index (two date ranges and the closures' key), so a pass reads
            // the hosts that may be due, not every host.
            " WHERE h.host_id IN (
                  SELECT host_id FROM hosts WHERE first_window <= $1 AND removed_at IS NULL
                  UNION ALL SELECT host_id FROM cycle_closures
                  UNION ALL SELECT host_id FROM hosts WHERE cloud_first_window <= $1 AND removed_at IS NULL)
                AND h.removed_at IS NULL AND h.charge_type = 'PrePaid' AND h.status <> 'Released'
                AND p.renewal_status = 'AutoRenewal'
                AND NOT EXISTS (SELECT 1 FROM attempt_open ao JOIN attempt_hosts ah ON ah.attempt_id = ao.attempt_id
                                WHERE ah.host_id = h.host_id)
                AND (
                  (h.first_window <= $1
                   AND NOT EXISTS (SELECT 1 FROM cycle_closures c WHERE c.host_id = h.host_id AND c.cycle = h.expired_time)
                   AND NOT EXISTS (", failed_in_window!("h.expired_time"), "))
                  OR (EXISTS (SELECT 1 FROM cycle_closures c WHERE c.host_id = h.host_id AND c.cycle = h.expired_time)
                      AND (h.cloud_read_window IS NULL OR h.cloud_read_window <> $1))
                  OR (h.cloud_first_window <= $1 AND h.cloud_expired_time <> h.expired_time
                   AND NOT EXISTS (SELECT 1 FROM cycle_closures c WHERE c.host_id = h.host_id AND c.cycle = h.cloud_expired_time)
                   AND NOT EXISTS (", failed_in_window!("h.cloud_expired_time"), "))
                )
              ORDER BY h.region_id, h.host_id"
);

/// The candidates query, on the pool or inside a transaction.
async fn candidates_on<'c, E>(exec: E, window: DateTime<Utc>) -> Result<Vec<HostRecord>, StoreError>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let rows = sqlx::query(CANDIDATES)
        .bind(to_db(window))
        .fetch_all(exec)
        .await
        .map_err(StoreError::sql("selecting the hosts to look at"))?;
    rows.iter().map(HostRecord::from_row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::protocol::{AttemptOutcome, BlockReason, Closure, HostOutcome, NoticeKind};

    /// A pass reads the hosts that may be due through the indexes, never every host: the plan
    /// searches `hosts` by key or by a window range and scans only the closures' key.
    #[tokio::test]
    async fn the_due_set_is_read_through_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db"), Default::default())
            .await
            .unwrap();
        let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {CANDIDATES}"
        )))
        .bind("2027-01-01T00:00:00Z")
        .fetch_all(&store.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("detail"))
        .collect();
        let text = plan.join("\n");
        for index in ["hosts_by_first_window", "hosts_by_cloud_first_window"] {
            assert!(text.contains(index), "{index} is used:\n{text}");
        }
        let scans: Vec<&String> = plan.iter().filter(|d| d.starts_with("SCAN")).collect();
        assert!(
            scans
                .iter()
                .all(|d| d.contains("cycle_closures") || d.contains("COVERING INDEX")),
            "no table is scanned but the closures' key:\n{text}"
        );
    }

    /// Every value of the protocol's enums is one the database's CHECK constraints accept, and
    /// every value they accept is one the enums know (the column would not decode otherwise).
    #[tokio::test]
    async fn the_checks_list_exactly_the_enum_values() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db"), Default::default())
            .await
            .unwrap();
        let sql_of = |table: &'static str| {
            let pool = store.pool.clone();
            async move {
                sqlx::query_scalar::<_, String>("SELECT sql FROM sqlite_schema WHERE name = $1")
                    .bind(table)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        let quoted = |sql: &str, column: &str| -> Vec<String> {
            let start = sql.find(&format!("CHECK ({column} IN (")).unwrap();
            let rest = &sql[start..];
            let list = &rest[rest.find("IN (").unwrap() + 4..rest.find("))").unwrap()];
            list.split(',')
                .map(|v| v.trim().trim_matches('\'').to_owned())
                .collect()
        };
        let cases: Vec<(&str, &str, Vec<&str>)> = vec![
            (
                "attempt_outcomes",
                "outcome",
                AttemptOutcome::ALL.iter().map(|v| v.as_str()).collect(),
            ),
            (
                "host_outcomes",
                "outcome",
                HostOutcome::ALL.iter().map(|v| v.as_str()).collect(),
            ),
            (
                "cycle_closures",
                "outcome",
                Closure::ALL.iter().map(|v| v.as_str()).collect(),
            ),
            (
                "notices",
                "kind",
                NoticeKind::ALL.iter().map(|v| v.as_str()).collect(),
            ),
            (
                "attempt_blocks",
                "reason",
                BlockReason::ALL.iter().map(|v| v.as_str()).collect(),
            ),
        ];
        for (table, column, values) in cases {
            let mut allowed = quoted(&sql_of(table).await, column);
            allowed.sort();
            let mut values: Vec<String> = values.into_iter().map(str::to_owned).collect();
            values.sort();
            assert_eq!(allowed, values, "{table}.{column}");
        }
        store.close().await;
    }
}
