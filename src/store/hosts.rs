//! Hosts read as streams and by indexed ranges: `plan`, `hosts list` and `/metrics` visit a
//! million hosts one row at a time, and a pass's reminders read only the hosts whose expiry falls
//! on a notice day.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures_util::future::Either;
use futures_util::stream::{self, BoxStream, StreamExt};
use sqlx::{Any, Transaction};
use tokio::sync::mpsc;

use super::rows::RawHost;
use super::{EncodedHosts, HostRecord, Source, Store, StoreError, UpsertSummary};
use crate::domain::HostId;
use crate::domain::plan::HostHistory;
use crate::domain::time::to_db;

/// A host with what its state depends on besides the clock (see [`crate::domain::plan`]).
#[derive(Debug, Clone)]
pub struct PlannedHost {
    pub record: HostRecord,
    pub history: HostHistory,
}

/// Whether a host has an attempt without an outcome: NULL if not, else whether one is blocked.
macro_rules! open_attempt {
    () => {
        "(SELECT max(CASE WHEN EXISTS (SELECT 1 FROM attempt_blocks b WHERE b.attempt_id = ao.attempt_id) THEN 1 ELSE 0 END)
          FROM attempt_hosts ah JOIN attempt_open ao ON ao.attempt_id = ah.attempt_id
          WHERE ah.host_id = h.host_id)"
    };
}

/// One host as a JSON array: its columns (see [`RawHost`]), then the two facts of its history
/// that decide its state: a renewal recorded into the current cycle, and `$open`, an open
/// (possibly blocked) attempt on it ([`open_attempt!`], or NULL when no attempt is open).
macro_rules! planned_json {
    ($p:literal, $open:expr) => {
        concat!(
            "json_array(",
            host_json!($p),
            ",
                CASE WHEN EXISTS (SELECT 1 FROM cycle_closures c
                        WHERE c.host_id = h.host_id AND c.outcome IN ('renewed', 'renewed_elsewhere')
                          AND c.new_expiry = h.expired_time) THEN 1 ELSE 0 END, ",
            $open,
            ")"
        )
    };
}

/// One page of hosts after `?1` in id order, at most `?2`, as one JSON array of
/// [`planned_json!`] values. The driver's cost is per value it hands over, so a million hosts
/// read a page per value stream many times faster than a row each. The page's keys are chosen
/// first, then their rows joined in that order: `CROSS JOIN` keeps the keys as SQLite's outer
/// loop whatever its planner would prefer, and [`Store::planned_hosts`] checks that the ids
/// ascend.
macro_rules! planned_page {
    ($filter:literal, $open:expr) => {
        concat!(
            "SELECT json_group_array(",
            planned_json!("p.", $open),
            "), count(*), max(h.host_id)
             FROM (SELECT k.host_id FROM hosts k WHERE k.host_id > $1 ",
            $filter,
            " ORDER BY k.host_id LIMIT $2) page
             CROSS JOIN hosts h ON h.host_id = page.host_id
             LEFT JOIN policies p ON p.host_id = h.host_id"
        )
    };
}

/// A page's query for each case: without or with an attempt open when the read began (most
/// reads find none, and skip a lookup per host).
type PageSql = [&'static str; 2];

/// Hosts per page of [`Store::planned_hosts`].
const PAGE: usize = 2_000;

type PlannedJson<'a> = (RawHost<'a>, i64, Option<i64>);

fn planned((raw, renewed, open): PlannedJson) -> Result<PlannedHost, StoreError> {
    Ok(PlannedHost {
        record: raw.into_record()?,
        history: HostHistory {
            recently_renewed: renewed != 0,
            open_attempt: open.map(|b| b != 0),
        },
    })
}

fn decode<'a, T: serde::Deserialize<'a>>(j: &'a str) -> Result<T, StoreError> {
    serde_json::from_str(j).map_err(|e| StoreError::Corrupt {
        what: format!("host rows do not decode: {e}"),
    })
}

/// Reads pages of `sql` on one read transaction (every page sees the same snapshot) and
/// sends each page's JSON on `out`, until the last page or until the receiver is gone.
async fn read_pages(
    pool: sqlx::AnyPool,
    sql: PageSql,
    out: mpsc::Sender<Result<String, StoreError>>,
) {
    let begun = async {
        // One snapshot for every page: SQLite's read transaction is one; PostgreSQL's
        // default (read committed) takes a new snapshot per statement.
        let mut tx = pool.begin().await?;
        if tx.backend_name() == super::builder::POSTGRES {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        let open: i64 = sqlx::query_scalar(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM attempt_open) THEN 1 ELSE 0 END",
        )
        .fetch_one(&mut *tx)
        .await?;
        Ok::<_, sqlx::Error>((tx, open != 0))
    };
    let (mut tx, open) = match begun.await {
        Ok(begun) => begun,
        Err(e) => {
            let _ = out.send(Err(StoreError::sql("starting a read")(e))).await;
            return;
        }
    };
    let sql = super::builder::for_conn(&tx, sql[usize::from(open)]).0;
    let mut after = String::new();
    loop {
        let page: Result<(String, i64, Option<String>), _> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(&after)
                .bind(PAGE as i64)
                .fetch_one(&mut *tx)
                .await;
        match page {
            Ok((json, n, last)) => {
                let full = usize::try_from(n).is_ok_and(|n| n == PAGE);
                if out.send(Ok(json)).await.is_err() {
                    return;
                }
                match last {
                    Some(last) if full => after = last,
                    _ => return,
                }
            }
            Err(e) => {
                let _ = out.send(Err(StoreError::sql("reading hosts")(e))).await;
                return;
            }
        }
    }
}

/// Decodes the pages `read_pages` sends, checking that the ids ascend across them.
async fn decode_pages(
    mut pages: mpsc::Receiver<Result<String, StoreError>>,
    out: mpsc::Sender<Result<Vec<PlannedHost>, StoreError>>,
) {
    let mut last = String::new();
    while let Some(page) = pages.recv().await {
        let hosts = page.and_then(|json| {
            let rows: Vec<PlannedJson> = decode(&json)?;
            for (raw, _, _) in &rows {
                if *raw.host_id <= *last {
                    return Err(StoreError::Corrupt {
                        what: format!("host pages out of order: {} after {last}", raw.host_id),
                    });
                }
                last.replace_range(.., &raw.host_id);
            }
            rows.into_iter().map(planned).collect()
        });
        let stop = hosts.is_err();
        if out.send(hosts).await.is_err() || stop {
            return;
        }
    }
}

impl Store {
    /// Every host (removed ones only if `include_removed`) with its history, in id order, a
    /// page at a time from one snapshot. Reading, decoding and the caller's work overlap (two
    /// tasks, two pages in flight each): memory stays flat however large the inventory.
    pub fn planned_hosts(
        &self,
        include_removed: bool,
    ) -> BoxStream<'static, Result<PlannedHost, StoreError>> {
        let sql: PageSql = if include_removed {
            [
                planned_page!("", "NULL"),
                planned_page!("", open_attempt!()),
            ]
        } else {
            [
                planned_page!("AND k.removed_at IS NULL", "NULL"),
                planned_page!("AND k.removed_at IS NULL", open_attempt!()),
            ]
        };
        let (json_tx, json_rx) = mpsc::channel(2);
        let (hosts_tx, hosts_rx) = mpsc::channel(2);
        tokio::spawn(read_pages(self.pool.clone(), sql, json_tx));
        tokio::spawn(decode_pages(json_rx, hosts_tx));
        stream::unfold(hosts_rx, |mut rx| async move {
            let items = match rx.recv().await? {
                Ok(hosts) => Either::Left(stream::iter(hosts.into_iter().map(Ok))),
                Err(e) => Either::Right(stream::iter(std::iter::once(Err(e)))),
            };
            Some((items, rx))
        })
        .flatten()
        .boxed()
    }

    /// One host (removed or not) with its history.
    pub async fn planned_host(&self, id: &HostId) -> Result<Option<PlannedHost>, StoreError> {
        let j: Option<String> = sqlx::query_scalar(self.sql(concat!(
            "SELECT ",
            planned_json!("p.", open_attempt!()),
            " /*text*/ FROM hosts h LEFT JOIN policies p ON p.host_id = h.host_id WHERE h.host_id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::sql("reading a host"))?;
        j.map(|j| planned(decode(&j)?)).transpose()
    }

    /// PrePaid hosts not renewed here (`Normal`/`NotRenewal`), in the inventory and not
    /// released, whose expiry is in `[from, to)`: read through the expiry index.
    pub async fn unmanaged_expiring(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<HostRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            rows_select!(),
            " WHERE h.removed_at IS NULL AND h.expired_time >= $1 AND h.expired_time < $2
                AND h.charge_type = 'PrePaid' AND h.status <> 'Released'
                AND COALESCE(p.renewal_status, 'Normal') <> 'AutoRenewal'
              ORDER BY h.host_id"
        ))
        .bind(to_db(from))
        .bind(to_db(to))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::sql("selecting unmanaged hosts by expiry"))?;
        rows.iter().map(HostRecord::from_row).collect()
    }
}

/// Rows per chunk of an import: each chunk reads its hosts' current rows and writes the changes,
/// so memory holds one chunk, not the inventory.
pub const WRITE_CHUNK: usize = 5_000;

/// Hosts being added or replaced (`hosts import`, `hosts add`): one transaction and one
/// operation in the audit trail, written a chunk at a time. Dropped without
/// [`HostWriter::commit`], nothing is written.
pub struct HostWriter {
    store: Store,
    tx: Transaction<'static, Any>,
    op_id: i64,
    source: Source,
    now_s: String,
    now: DateTime<Utc>,
    summary: UpsertSummary,
    /// Hosts in the inventory when the import began, and hosts written by it so far.
    hosts_before: i64,
    written: i64,
    /// The indexes of `hosts` set aside for a bulk import (name, definition), rebuilt
    /// by [`HostWriter::commit`] in the same transaction.
    set_aside: Vec<(String, String)>,
}

/// An import that has written this many hosts, and at least a quarter of the inventory as it
/// was, sets the indexes of [`set_aside!`] aside and rebuilds them once at commit: a sorted build of an index
/// costs a fraction of a million insertions at random places in it. Smaller imports keep them,
/// since a rebuild reads the whole inventory.
const BULK_ROWS: i64 = 50_000;

/// The indexes of `hosts` keyed by a host's expiry (its first window, the expiry itself): an
/// import writes those keys in no order. The others are not worth a rebuild: `region_id` has a
/// handful of values, and an import leaves the cloud's columns as they were.
macro_rules! set_aside {
    () => {
        "'hosts_by_expiry', 'hosts_by_first_window'"
    };
}

impl Store {
    pub async fn begin_upsert(
        &self,
        kind: &str,
        source: Source,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<HostWriter, StoreError> {
        let now_s = to_db(now);
        let mut tx = self.begin().await?;
        // A large import touches far more pages than the default cache holds; spilling them to
        // the WAL mid-transaction and reading them back costs more than the writes. The cache
        // grows only as pages are used; statement journals stay in memory.
        if !self.postgres {
            sqlx::query("PRAGMA cache_size = -262144")
                .execute(&mut *tx)
                .await
                .map_err(StoreError::sql("sizing the page cache"))?;
        }
        let op_id = super::insert_operation(&mut tx, kind, source, detail, &now_s).await?;
        let hosts_before: i64 = sqlx::query_scalar("SELECT count(*) FROM hosts")
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::sql("counting hosts"))?;
        Ok(HostWriter {
            store: self.clone(),
            tx,
            op_id,
            source,
            now_s,
            now,
            summary: UpsertSummary::default(),
            hosts_before,
            written: 0,
            set_aside: Vec::new(),
        })
    }
}

impl HostWriter {
    /// Adds or replaces these hosts (and their policies); a host marked removed is restored.
    /// Returns the records as written, for warnings: what the import set, with the columns it
    /// leaves alone (the cloud's side, `created_at`, `row_version`) as they were read before.
    pub async fn write(&mut self, chunk: &EncodedHosts) -> Result<Vec<HostRecord>, StoreError> {
        let inputs = chunk.inputs();
        self.written += inputs.len() as i64;
        if self.set_aside.is_empty()
            && !self.store.postgres
            && self.written >= BULK_ROWS
            && self.written.saturating_mul(4) >= self.hosts_before
        {
            self.set_aside = set_indexes_aside(&mut self.tx).await?;
        }
        // Into an inventory that was empty, every host is new (a file names each host once).
        let existing: HashMap<String, HostRecord> = if self.hosts_before == 0 {
            HashMap::new()
        } else {
            records_in(&mut self.tx, inputs.iter().map(|i| &i.host.id))
                .await?
                .into_iter()
                .map(|r| (r.host.id.as_str().to_owned(), r))
                .collect()
        };
        let s = self
            .store
            .upsert_in_tx(
                &mut self.tx,
                &existing,
                chunk,
                self.op_id,
                self.source,
                &self.now_s,
                true,
            )
            .await?;
        self.summary.added += s.added;
        self.summary.updated += s.updated;
        self.summary.unchanged += s.unchanged;
        self.summary.restored += s.restored;
        self.summary.policies_changed += s.policies_changed;
        Ok(inputs
            .iter()
            .map(|i| {
                let old = existing.get(i.host.id.as_str());
                HostRecord {
                    host: i.host.clone(),
                    policy: i.policy.or(old.and_then(|o| o.policy)),
                    removed_at: None,
                    cloud_renewal: old.and_then(|o| o.cloud_renewal.clone()),
                    synced_at: old.and_then(|o| o.synced_at),
                    cloud_expired_time: old.and_then(|o| o.cloud_expired_time),
                    row_version: old.map_or(0, |o| o.row_version),
                    created_at: old.map_or(self.now, |o| o.created_at),
                    updated_at: self.now,
                }
            })
            .collect())
    }

    pub async fn commit(mut self) -> Result<UpsertSummary, StoreError> {
        for (_, definition) in &self.set_aside {
            sqlx::query(sqlx::AssertSqlSafe(definition.as_str()))
                .execute(&mut *self.tx)
                .await
                .map_err(StoreError::sql(
                    "rebuilding an index set aside by the import",
                ))?;
        }
        if !self.store.postgres {
            sqlx::query("PRAGMA cache_size = -2000")
                .execute(&mut *self.tx)
                .await
                .map_err(StoreError::sql("sizing the page cache"))?;
        }
        super::commit(self.tx).await?;
        Ok(self.summary)
    }
}

/// Drops the indexes of [`set_aside!`] inside `tx` and returns their names and definitions, as the migrations
/// wrote them, for the rebuild at commit. The primary key stays: it is what rejects a duplicate
/// host.
async fn set_indexes_aside(
    tx: &mut Transaction<'static, Any>,
) -> Result<Vec<(String, String)>, StoreError> {
    let indexes: Vec<(String, String)> = sqlx::query_as(concat!(
        "SELECT name, sql FROM sqlite_schema
         WHERE type = 'index' AND tbl_name = 'hosts' AND name IN (",
        set_aside!(),
        ") ORDER BY name"
    ))
    .fetch_all(&mut **tx)
    .await
    .map_err(StoreError::sql("reading the indexes of hosts"))?;
    for (name, _) in &indexes {
        // The name comes from the schema, quoted as an identifier.
        let drop = format!("DROP INDEX \"{}\"", name.replace('"', "\"\""));
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(&mut **tx)
            .await
            .map_err(StoreError::sql(
                "setting an index of hosts aside for the import",
            ))?;
    }
    Ok(indexes)
}

/// The stored rows of these hosts (removed or not), in id order, on `conn` (the pool's or a
/// transaction's): the ids bound as one JSON array, each row read as one packed value (see
/// [`RawHost`]).
pub(super) async fn records_in(
    conn: &mut sqlx::AnyConnection,
    ids: impl Iterator<Item = &HostId>,
) -> Result<Vec<HostRecord>, StoreError> {
    let ids: Vec<&str> = ids.map(HostId::as_str).collect();
    let ids = serde_json::to_string(&ids).map_err(|e| StoreError::Corrupt {
        what: format!("cannot encode host ids: {e}"),
    })?;
    let rows: Vec<String> = sqlx::query_scalar(super::builder::for_conn(
        conn,
        concat!(
            "SELECT ",
            host_json!("p."),
            " /*text*/ FROM hosts h LEFT JOIN policies p ON p.host_id = h.host_id
          WHERE h.host_id IN (SELECT value FROM json_each($1)) ORDER BY h.host_id"
        ),
    ))
    .bind(ids)
    .fetch_all(conn)
    .await
    .map_err(StoreError::sql("reading hosts"))?;
    rows.iter()
        .map(|j| decode::<RawHost>(j)?.into_record())
        .collect()
}
