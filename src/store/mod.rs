//! All SQL lives here: SQLite through sqlx, rows in, domain types out.
//!
//! The database runs in WAL mode with `synchronous=FULL` (a committed write-ahead record survives
//! power loss) and foreign keys on. Migrations are embedded and applied at open. Every write that
//! changes the inventory runs in one `BEGIN IMMEDIATE` transaction, so a call applies whole or
//! not at all, and its audit rows commit with it.

mod error;
#[macro_use]
mod rows;
pub mod attempts;
mod audit;
mod builder;
mod copy;
pub mod deliveries;
mod history;
mod hosts;
mod policies;
mod session_lock;
mod sync;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, ConnectOptions, Executor, Row, Transaction};

use crate::domain::policy::{PolicyRequest, validate_policy_request};
use crate::domain::time::to_db;
use crate::domain::{ChargeType, Host, HostId, HostStatus, Policy, Schedule};

pub use attempts::{
    AnswerRecord, Attempt, AttemptSummary, Epoch, Event, NewAttempt, NoticeRow, Observation,
    SettleError, Settled, UndecidedAttempt, Verdict, WindowRun, WriteAheadError,
};
pub use audit::{AuditKind, TrailCounts};
pub use copy::{CopyError, TableCopied};
pub use error::StoreError;
pub(crate) use history::{ChangeRow, insert_host_changes, insert_notices, insert_operation};
pub use hosts::{HostWriter, PlannedHost, WRITE_CHUNK};
pub use policies::PolicyOutcome;
use policies::write_policies;
pub use rows::{CloudRenewal, HostChange, HostRecord, Notice, PolicyChange};
pub use session_lock::SessionLock;
pub use sync::SyncApplied;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
pub(crate) static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL advisory lock every write transaction takes (transaction-scoped): "ddhw".
const WRITERS_LOCK: i64 = 0x6464_6877;

/// Rows per multi-row INSERT: well under SQLite's 32766 bound variables for our widest table.
pub(crate) const CHUNK: usize = 500;

/// Where the store lives: a SQLite file (the default), or a PostgreSQL database shared by the
/// nodes of an active/standby pair (SPEC §5).
#[derive(Debug, Clone)]
pub enum Location {
    Sqlite(std::path::PathBuf),
    Postgres {
        /// `postgres://USER@HOST:PORT/DB`, without a password.
        url: String,
        password: Option<String>,
    },
}

impl Location {
    /// For messages: the file, or the URL (which holds no password).
    pub fn display(&self) -> String {
        match self {
            Self::Sqlite(p) => p.display().to_string(),
            Self::Postgres { url, .. } => url.clone(),
        }
    }
}

/// Who made a change, as recorded in the audit tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cli,
    Import,
    Sync,
    Daemon,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cli => "cli",
            Self::Import => "import",
            Self::Sync => "sync",
            Self::Daemon => "daemon",
        }
    }
}

/// A host to add or replace, with an optional policy to set.
#[derive(Debug, Clone)]
pub struct HostInput {
    pub host: Host,
    pub policy: Option<Policy>,
}

/// What an upsert did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UpsertSummary {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub restored: usize,
    pub policies_changed: usize,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    schedule: Schedule,
    /// PostgreSQL (else SQLite): statements go through [`builder::to_postgres`].
    postgres: bool,
}

impl Store {
    /// Opens (creating if missing) the database at `path`, applies migrations, and brings the
    /// stored windows in line with `schedule`.
    pub async fn open(path: &Path, schedule: Schedule) -> Result<Self, StoreError> {
        let pending = Self::check_ours(path).await?;
        // sqlx's SQLite migrator takes no lock across processes: two commands opening a new or
        // just-upgraded database at once would both apply a migration. Pending migrations run
        // under an exclusive lock on a side file, held only while they run.
        let _migrating = if pending {
            let lock = migration_lock(path).await?;
            // Under the lock: what another opener did meanwhile is done; look again.
            Self::check_ours(path).await?;
            Some(lock)
        } else {
            None
        };
        sqlx::any::install_default_drivers();
        let opts = AnyConnectOptions::from_str(&sqlite_url(path))
            .map_err(|e| StoreError::open(path, &e))?
            // A million-host read is slow by design: sqlx's warning told an operator nothing
            // to act on. Kept at debug level for whoever profiles.
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL (persistent in the file), a commit durable on return, foreign keys,
                    // statement journals in memory, and a wait rather than SQLITE_BUSY.
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
                         PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;
                         PRAGMA busy_timeout = 10000;",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::open(path, &e))?;
        MIGRATOR.run(&pool).await.map_err(|e| StoreError::Migrate {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let store = Self {
            pool,
            schedule,
            postgres: false,
        };
        store.refresh_windows_if_schedule_changed().await?;
        Ok(store)
    }

    /// Refuses, without writing anything, a file that holds another application's database: it
    /// has tables but no migrations of ours, or migrations this version does not know. `true` if
    /// migrations are pending (a new database included).
    async fn check_ours(path: &Path) -> Result<bool, StoreError> {
        use sqlx::ConnectOptions;
        if std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
            return Ok(true);
        }
        let not_ours = |why: String| StoreError::NotOurs {
            path: path.to_owned(),
            why,
        };
        let mut conn = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .connect()
            .await
            .map_err(|e| StoreError::open(path, &e))?;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(&mut conn)
        .await
        .map_err(|e| StoreError::open(path, &e))?;
        let verdict = if tables.is_empty() {
            Ok(true)
        } else if !tables.iter().any(|t| t == "_sqlx_migrations") {
            let shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
            Err(not_ours(format!(
                "it holds tables ({}{}) but no ddh-renewd migrations",
                shown.join(", "),
                if tables.len() > 5 { ", …" } else { "" }
            )))
        } else {
            let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
                .fetch_all(&mut conn)
                .await
                .map_err(|e| StoreError::open(path, &e))?;
            let ours: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
            match versions.iter().find(|v| !ours.contains(v)) {
                Some(v) => Err(not_ours(format!(
                    "it has migration {v}, which this version of ddh-renewd does not know (a newer version, or another application)"
                ))),
                // Another process may be applying the first migration right now: pending.
                None => Ok(versions.len() < ours.len() || !tables.iter().any(|t| t == "hosts")),
            }
        };
        let _ = sqlx::Connection::close(conn).await;
        verdict
    }

    /// A statement in this store's dialect (see [`builder::to_postgres`]).
    pub(crate) fn sql(
        &self,
        sql: &'static str,
    ) -> sqlx::AssertSqlSafe<std::borrow::Cow<'static, str>> {
        builder::for_backend(self.postgres, sql)
    }

    /// Opens the store at `at`.
    pub async fn open_at(at: &Location, schedule: Schedule) -> Result<Self, StoreError> {
        match at {
            Location::Sqlite(path) => Self::open(path, schedule).await,
            Location::Postgres { url, password } => {
                Self::open_postgres(url, password.as_deref(), schedule).await
            }
        }
    }

    /// Opens the PostgreSQL database at `url` (`postgres://USER@HOST:PORT/DB`; the password, if
    /// any, given apart so that it never shows in a URL that is logged), applies the PostgreSQL
    /// migrations and brings the stored windows in line with `schedule`.
    pub async fn open_postgres(
        url: &str,
        password: Option<&str>,
        schedule: Schedule,
    ) -> Result<Self, StoreError> {
        let shown = std::path::PathBuf::from(url);
        let fail = |message: String| StoreError::Open {
            path: shown.clone(),
            message,
        };
        let mut full = reqwest::Url::parse(url).map_err(|e| fail(e.to_string()))?;
        if let Some(p) = password {
            full.set_password(Some(p))
                .map_err(|()| fail("the URL takes no password".into()))?;
        }
        // Named in pg_stat_activity, so that an operator sees which node holds what.
        if !full.query_pairs().any(|(k, _)| k == "application_name") {
            full.query_pairs_mut().append_pair(
                "application_name",
                &format!("ddh-renewd (pid {})", std::process::id()),
            );
        }
        sqlx::any::install_default_drivers();
        let opts = AnyConnectOptions::from_str(full.as_str())
            .map_err(|e| fail(e.to_string()))?
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await
            .map_err(|e| fail(e.to_string()))?;
        refuse_foreign_postgres(&pool, &shown).await?;
        PG_MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate {
                path: shown.clone(),
                message: e.to_string(),
            })?;
        let store = Self {
            pool,
            schedule,
            postgres: true,
        };
        store.refresh_windows_if_schedule_changed().await?;
        Ok(store)
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    pub async fn close(self) {
        self.pool.close().await;
    }

    /// The windows stored per host depend on `[schedule]`; recompute them when it changed.
    async fn refresh_windows_if_schedule_changed(&self) -> Result<(), StoreError> {
        let fingerprint = format!(
            "{} {} {}",
            self.schedule.tz.name(),
            self.schedule.time.format("%H:%M:%S"),
            self.schedule.lead_days
        );
        let current: Option<String> =
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'schedule'")
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::sql("reading the stored schedule"))?;
        if current.as_deref() == Some(fingerprint.as_str()) {
            return Ok(());
        }
        let hosts = self.hosts(true).await?;
        let mut tx = self.begin().await?;
        for rec in &hosts {
            let (first, last) = windows(&self.schedule, &rec.host);
            sqlx::query("UPDATE hosts SET first_window = $1, last_window = $2 WHERE host_id = $3")
                .bind(first)
                .bind(last)
                .bind(rec.host.id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::sql("updating host windows"))?;
        }
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('schedule', $1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(&fingerprint)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::sql("recording the schedule"))?;
        commit(tx).await
    }

    /// A write transaction. Writers are serialized on both backends: SQLite's `BEGIN IMMEDIATE`
    /// takes the database's write lock, and on PostgreSQL every write transaction first takes
    /// one transaction-scoped advisory lock. So no statement's meaning differs between the two.
    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        if !self.postgres {
            return self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(StoreError::sql("starting a write transaction"));
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::sql("starting a write transaction"))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITERS_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::sql("taking the writers' lock"))?;
        Ok(tx)
    }

    // ------------------------------------------------------------------ reads

    /// Every host with its policy, ordered by id. Removed hosts only if `include_removed`.
    pub async fn hosts(&self, include_removed: bool) -> Result<Vec<HostRecord>, StoreError> {
        let sql = if include_removed {
            concat!(rows_select!(), " ORDER BY h.host_id")
        } else {
            concat!(
                rows_select!(),
                " WHERE h.removed_at IS NULL ORDER BY h.host_id"
            )
        };
        let rows = sqlx::query(sql)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::sql("reading hosts"))?;
        rows.iter().map(HostRecord::from_row).collect()
    }

    /// One host (removed or not).
    pub async fn host(&self, id: &HostId) -> Result<Option<HostRecord>, StoreError> {
        let row = sqlx::query(concat!(rows_select!(), " WHERE h.host_id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::sql("reading a host"))?;
        row.as_ref().map(HostRecord::from_row).transpose()
    }

    /// The hosts with these ids (removed or not), in id order.
    pub async fn hosts_by_ids(&self, ids: &[HostId]) -> Result<Vec<HostRecord>, StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(StoreError::sql("reading hosts"))?;
        hosts::records_in(&mut conn, ids.iter()).await
    }

    // ------------------------------------------------------------------ writes

    /// Adds or replaces hosts (and their policies, where given) in one transaction. Every changed
    /// field and policy is appended to the history under one operation. A removed host named
    /// here is restored.
    pub async fn upsert_hosts(
        &self,
        inputs: &[HostInput],
        kind: &str,
        source: Source,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<UpsertSummary, StoreError> {
        let mut w = self.begin_upsert(kind, source, detail, now).await?;
        for chunk in inputs.chunks(hosts::WRITE_CHUNK) {
            w.write(&EncodedHosts::new(&self.schedule, chunk.to_vec())?)
                .await?;
        }
        w.commit().await
    }

    /// The body of an upsert, inside the caller's transaction. With `restore_removed` false a
    /// host marked removed is updated but stays removed (sync must not undo `hosts remove`).
    #[allow(clippy::too_many_arguments)]
    async fn upsert_in_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        existing: &HashMap<String, HostRecord>,
        inputs: &EncodedHosts,
        op_id: i64,
        source: Source,
        now_s: &str,
        restore_removed: bool,
    ) -> Result<UpsertSummary, StoreError> {
        let plan = Upsert::plan(existing, inputs, restore_removed);
        write_hosts(tx, &plan.new_rows, now_s, None).await?;
        write_hosts(tx, &plan.host_rows, now_s, Some(restore_removed)).await?;
        insert_host_changes(tx, op_id, &plan.changes, source, now_s).await?;
        write_policies(tx, op_id, &plan.policy_rows, source, now_s).await?;
        Ok(plan.summary)
    }

    /// The cloud's last word on each host it returned (the read time, the expiry, the first
    /// window of that expiry), which the engine's candidate set also follows.
    async fn write_cloud_reads(
        &self,
        tx: &mut Transaction<'static, Any>,
        cloud: &[&Host],
        now_s: &str,
    ) -> Result<(), StoreError> {
        for h in cloud {
            sqlx::query(
                "UPDATE hosts SET synced_at = $1, cloud_expired_time = $2, cloud_first_window = $3
                 WHERE host_id = $4",
            )
            .bind(now_s)
            .bind(to_db(h.expired_time))
            .bind(self.schedule.first_window(h.expired_time).map(to_db))
            .bind(h.id.as_str())
            .execute(&mut **tx)
            .await
            .map_err(StoreError::sql("recording the cloud's read"))?;
        }
        Ok(())
    }

    /// Marks a host removed (it leaves plans and lists; its history stays). `Ok(false)` if it
    /// was already removed.
    pub async fn remove_host(&self, id: &HostId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let now_s = to_db(now);
        let mut tx = self.begin().await?;
        let removed: Option<Option<String>> =
            sqlx::query_scalar("SELECT removed_at FROM hosts WHERE host_id = $1")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::sql("reading a host"))?;
        match removed {
            None => return Err(StoreError::HostNotFound(id.clone())),
            Some(Some(_)) => return Ok(false),
            Some(None) => {}
        }
        let op_id =
            insert_operation(&mut tx, "hosts_remove", Source::Cli, id.as_str(), &now_s).await?;
        sqlx::query("UPDATE hosts SET removed_at = $1, updated_at = $2 WHERE host_id = $3")
            .bind(&now_s)
            .bind(&now_s)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::sql("removing a host"))?;
        let change = ChangeRow::new(id.as_str(), "removed", None, None, None);
        insert_host_changes(&mut tx, op_id, &[change], Source::Cli, &now_s).await?;
        commit(tx).await?;
        Ok(true)
    }
}

macro_rules! insert_hosts {
    () => {
        "INSERT INTO hosts (host_id, region_id, zone_id, charge_type, status, expired_time,
           sale_cycle, financial_lock, first_window, last_window, removed_at, created_at, updated_at)
         SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6,
                CAST(value->>7 AS BIGINT), value->>8, value->>9, NULL, $2, $2
         FROM jsonb_each($1) WHERE $3 IS NOT NULL"
    };
}

/// New hosts, one JSON array of rows bound as `?1`; `?3` (bound for both statements) only fills
/// the WHERE that the upsert's grammar needs after a SELECT.
const INSERT_HOSTS: &str = insert_hosts!();

/// Hosts added or replaced; `?3`: restore a removed host.
const UPSERT_HOSTS: &str = concat!(
    insert_hosts!(),
    " ON CONFLICT (host_id) DO UPDATE SET region_id = excluded.region_id,
      zone_id = excluded.zone_id, charge_type = excluded.charge_type,
      status = excluded.status, expired_time = excluded.expired_time,
      sale_cycle = excluded.sale_cycle, financial_lock = excluded.financial_lock,
      first_window = excluded.first_window, last_window = excluded.last_window,
      removed_at = CASE WHEN $3 THEN NULL ELSE hosts.removed_at END,
      updated_at = excluded.updated_at"
);

/// Adds these encoded host rows (`upsert` None: they are new, and a row already there is an
/// error) or replaces them (`Some(restore_removed)`: a removed host is restored if true).
async fn write_hosts(
    tx: &mut Transaction<'static, Any>,
    rows: &[&str],
    now_s: &str,
    upsert: Option<bool>,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(JSON_CHUNK) {
        let mut json = String::with_capacity(chunk.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
        json.push('[');
        for (i, r) in chunk.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(r);
        }
        json.push(']');
        let sql = match upsert {
            None => INSERT_HOSTS,
            Some(_) => UPSERT_HOSTS,
        };
        sqlx::query(builder::for_conn(tx, sql))
            .bind(json)
            .bind(now_s)
            .bind(upsert.unwrap_or(false))
            .execute(&mut **tx)
            .await
            .map_err(StoreError::sql("writing hosts"))?;
    }
    Ok(())
}

/// Hosts to write, each with its `hosts` columns already encoded as one JSON array (the windows
/// computed from the schedule). An import encodes a chunk on its parsing thread, so that the
/// database is not kept waiting for it.
pub struct EncodedHosts {
    inputs: Vec<HostInput>,
    rows: Vec<String>,
}

impl EncodedHosts {
    pub fn new(schedule: &Schedule, inputs: Vec<HostInput>) -> Result<Self, StoreError> {
        let rows = inputs
            .iter()
            .map(|i| {
                let h = &i.host;
                let (first, last) = windows(schedule, h);
                serde_json::to_string(&(
                    h.id.as_str(),
                    &h.region_id,
                    &h.zone_id,
                    h.charge_type.as_str(),
                    &h.status.0,
                    to_db(h.expired_time),
                    &h.sale_cycle,
                    i64::from(h.financial_lock),
                    first,
                    last,
                ))
                .map_err(|e| StoreError::Corrupt {
                    what: format!("cannot encode a host row: {e}"),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { inputs, rows })
    }

    pub fn inputs(&self) -> &[HostInput] {
        &self.inputs
    }

    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }
}

/// A host's first and last auto-renew window under `schedule`, as stored (none for PostPaid or
/// released hosts).
fn windows(schedule: &Schedule, host: &Host) -> (Option<String>, Option<String>) {
    if host.charge_type == ChargeType::PostPaid || host.status.is_released() {
        return (None, None);
    }
    engine_windows(schedule, host.expired_time)
}

/// What an upsert writes, decided from the rows as they are: which hosts are added, updated
/// or restored (with a history row per changed field), and which policies change.
struct Upsert<'a> {
    summary: UpsertSummary,
    /// Hosts not in the inventory yet.
    new_rows: Vec<&'a str>,
    /// Hosts replaced (changed or restored).
    host_rows: Vec<&'a str>,
    changes: Vec<ChangeRow>,
    policy_rows: Vec<(&'a HostId, Policy, Option<Policy>)>,
}

impl<'a> Upsert<'a> {
    fn plan(
        existing: &HashMap<String, HostRecord>,
        encoded: &'a EncodedHosts,
        restore_removed: bool,
    ) -> Self {
        let mut summary = UpsertSummary::default();
        let mut new_rows: Vec<&str> = Vec::new();
        let mut host_rows: Vec<&str> = Vec::new();
        let mut changes: Vec<ChangeRow> = Vec::new();
        let mut policy_rows: Vec<(&HostId, Policy, Option<Policy>)> = Vec::new();

        for (input, row) in encoded.inputs.iter().zip(&encoded.rows) {
            let h = &input.host;
            let id = h.id.as_str();
            match existing.get(id) {
                None => {
                    summary.added += 1;
                    new_rows.push(row);
                    changes.push(ChangeRow::new(id, "added", None, None, None));
                }
                Some(old) => {
                    let diffs = rows::diff_hosts(&old.host, h);
                    let restored = restore_removed && old.removed_at.is_some();
                    if restored {
                        summary.restored += 1;
                        changes.push(ChangeRow::new(id, "restored", None, None, None));
                    }
                    if diffs.is_empty() && !restored {
                        summary.unchanged += 1;
                    } else {
                        summary.updated += usize::from(!diffs.is_empty());
                        host_rows.push(row);
                        for (field, o, n) in diffs {
                            changes.push(ChangeRow::new(
                                id,
                                "updated",
                                Some(field),
                                Some(o),
                                Some(n),
                            ));
                        }
                    }
                }
            }
            if let Some(p) = input.policy {
                let old = existing.get(id).and_then(|r| r.policy);
                if old != Some(p) {
                    policy_rows.push((&h.id, p, old));
                }
            }
        }
        summary.policies_changed = policy_rows.len();
        Self {
            summary,
            new_rows,
            host_rows,
            changes,
            policy_rows,
        }
    }
}

pub(crate) async fn commit(tx: Transaction<'static, Any>) -> Result<(), StoreError> {
    tx.commit()
        .await
        .map_err(StoreError::sql("committing the transaction"))
}

/// Rows per statement of the writers that bind one JSON array per statement: a million rows
/// bound value by value cost the driver seconds; as JSON, SQLite unpacks them itself, in the
/// array's order (`json_each` walks an array in order; no ORDER BY, which would sort).
const JSON_CHUNK: usize = 5_000;

/// A chunk of rows as the one JSON array a `json_each(?)` statement reads.
fn json_rows<T: serde::Serialize>(rows: &[T]) -> Result<String, StoreError> {
    serde_json::to_string(rows).map_err(|e| StoreError::Corrupt {
        what: format!("cannot encode rows: {e}"),
    })
}

/// Refuses, before writing anything, a PostgreSQL schema that holds another application's
/// tables (tables, but none of our migrations), as [`Store::open`] does for a SQLite file.
async fn refuse_foreign_postgres(pool: &AnyPool, shown: &Path) -> Result<(), StoreError> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() ORDER BY table_name",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| StoreError::open(shown, &e))?;
    if tables.is_empty() || tables.iter().any(|t| t == "_sqlx_migrations") {
        return Ok(());
    }
    let list: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
    Err(StoreError::NotOurs {
        path: shown.to_owned(),
        why: format!(
            "its schema holds tables ({}{}) but no ddh-renewd migrations",
            list.join(", "),
            if tables.len() > 5 { ", …" } else { "" }
        ),
    })
}

/// The `sqlite://` URL of a file path (percent-encoded: a path may hold `?`, `#` or `%`),
/// created if missing.
fn sqlite_url(path: &Path) -> String {
    use std::fmt::Write;
    let mut url = String::from("sqlite://");
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                url.push(char::from(*b))
            }
            _ => {
                let _ = write!(url, "%{b:02X}");
            }
        }
    }
    url.push_str("?mode=rwc");
    url
}

/// An exclusive lock on `<database>-migrate.lock`, waited for (migrations are quick).
async fn migration_lock(db: &Path) -> Result<std::fs::File, StoreError> {
    let mut name = db.as_os_str().to_owned();
    name.push("-migrate.lock");
    let path = std::path::PathBuf::from(name);
    let io = |e: std::io::Error| StoreError::Open {
        path: path.clone(),
        message: format!("cannot lock for migrations: {e}"),
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|e| io(std::io::Error::other(e.to_string())))?
        .map_err(io)?;
    Ok(file)
}

/// The first and last window of the cycle ending at `expiry`, in storage form.
pub(crate) fn engine_windows(
    schedule: &Schedule,
    expiry: DateTime<Utc>,
) -> (Option<String>, Option<String>) {
    (
        schedule.first_window(expiry).map(to_db),
        schedule.last_window(expiry).map(to_db),
    )
}

/// Parses a stored enum column, reporting the column on failure.
pub(crate) fn parse_col<T: FromStr>(col: &'static str, v: &str) -> Result<T, StoreError> {
    v.parse().map_err(|_| StoreError::Corrupt {
        what: format!("column {col} holds {v:?}"),
    })
}
