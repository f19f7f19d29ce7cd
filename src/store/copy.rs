//! `db copy`: moves a SQLite database, its whole history included, into an empty PostgreSQL
//! database, and proves the move row for row before it commits.
//!
//! The PostgreSQL schema (migrations/postgres) has the same tables and columns, with the same
//! values: integers as BIGINT, text (times included) as TEXT collated bytewise. So each row goes
//! over as one line of PostgreSQL's COPY text format, and the check is exact: inside the same
//! transaction, each table is read back with `COPY (SELECT … ORDER BY key) TO STDOUT`, and the
//! bytes must hash to what was sent, line count included. Any difference rolls everything back.

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Row};

use super::{PG_MIGRATOR, Store, StoreError};

/// Every table of the schema, parents before children, with the key that orders its rows. A test
/// checks this against the tables SQLite holds, so a new migration cannot be forgotten here.
pub(crate) const TABLES: &[(&str, &str)] = &[
    ("operations", "op_id"),
    ("hosts", "host_id"),
    ("policies", "host_id"),
    ("policy_changes", "change_id"),
    ("host_changes", "change_id"),
    ("meta", "key"),
    ("attempts", "attempt_id"),
    ("attempt_hosts", "attempt_id, host_id"),
    ("attempt_events", "event_id"),
    ("window_runs", "run_id"),
    ("actor", "id"),
    ("actor_epochs", "epoch"),
    ("attempt_open", "attempt_id"),
    ("attempt_blocks", "attempt_id"),
    ("attempt_outcomes", "attempt_id"),
    ("host_outcomes", "attempt_id, host_id"),
    ("cycle_closures", "host_id, cycle"),
    ("notices", "notice_id"),
    ("notice_deliveries", "delivery_id"),
    ("sync_runs", "run_id"),
    ("notice_channels", "channel"),
];

/// Bytes buffered before they are handed to the COPY stream.
const SEND_AT: usize = 1 << 20;

/// One table moved: rows and the SHA-256 of its COPY text, equal on both sides.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableCopied {
    pub table: &'static str,
    pub rows: u64,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("cannot connect to PostgreSQL at {target}: {message}")]
    Connect { target: String, message: String },
    #[error("cannot apply the PostgreSQL schema at {target}: {message}")]
    Migrate { target: String, message: String },
    #[error(
        "{target} already holds ddh-renewd data ({rows} rows in {table}); db copy only fills an empty database, and changed nothing"
    )]
    NotEmpty {
        target: String,
        table: &'static str,
        rows: i64,
    },
    #[error(
        "table {table} has columns {source_cols} here but {target_cols} in PostgreSQL; this version's schemas disagree, nothing was copied"
    )]
    Columns {
        table: &'static str,
        source_cols: String,
        target_cols: String,
    },
    #[error(
        "table {table} read back from PostgreSQL differs from the source ({sent} rows sent, {read} read, hashes {sent_hash} / {read_hash}); nothing was committed"
    )]
    Mismatch {
        table: &'static str,
        sent: u64,
        read: u64,
        sent_hash: String,
        read_hash: String,
    },
    #[error("copying {table}: {message}; nothing was committed")]
    Table {
        table: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Copies every table into the empty PostgreSQL database `target` (creating the schema if it
    /// is not there), checks each row, and commits only if all of it matched.
    pub async fn copy_to_postgres(
        &self,
        target: &PgConnectOptions,
        shown: &str,
    ) -> Result<Vec<TableCopied>, CopyError> {
        let mut pg = PgConnection::connect_with(target)
            .await
            .map_err(|e| CopyError::Connect {
                target: shown.to_owned(),
                message: e.to_string(),
            })?;
        PG_MIGRATOR
            .run(&mut pg)
            .await
            .map_err(|e| CopyError::Migrate {
                target: shown.to_owned(),
                message: e.to_string(),
            })?;
        let mut pg_tx = pg.begin().await.map_err(pg_err("beginning", "-"))?;
        // One snapshot of the source for the whole copy.
        let mut src = self
            .pool
            .begin()
            .await
            .map_err(StoreError::sql("beginning the copy's read"))?;
        let mut copied = Vec::with_capacity(TABLES.len());
        for &(table, key) in TABLES {
            refuse_if_filled(&mut pg_tx, table, shown).await?;
            let cols = same_columns(&mut src, &mut pg_tx, table).await?;
            let sent = send_table(&mut src, &mut pg_tx, table, key, &cols).await?;
            let read = read_back(&mut pg_tx, table, key, &cols).await?;
            if sent != read {
                return Err(CopyError::Mismatch {
                    table,
                    sent: sent.0,
                    read: read.0,
                    sent_hash: sent.1,
                    read_hash: read.1,
                });
            }
            copied.push(TableCopied {
                table,
                rows: sent.0,
                sha256: sent.1,
            });
        }
        restart_identities(&mut pg_tx).await?;
        pg_tx.commit().await.map_err(pg_err("committing", "-"))?;
        src.rollback()
            .await
            .map_err(StoreError::sql("ending the copy's read"))?;
        Ok(copied)
    }
}

fn pg_err(doing: &'static str, table: &'static str) -> impl Fn(sqlx::Error) -> CopyError {
    move |e| CopyError::Table {
        table,
        message: format!("{doing}: {e}"),
    }
}

async fn refuse_if_filled(
    pg: &mut PgConnection,
    table: &'static str,
    shown: &str,
) -> Result<(), CopyError> {
    let rows: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&mut *pg)
            .await
            .map_err(pg_err("counting the target's rows", table))?;
    if rows > 0 {
        return Err(CopyError::NotEmpty {
            target: shown.to_owned(),
            table,
            rows,
        });
    }
    Ok(())
}

/// A column and whether SQLite declares it INTEGER (else TEXT: the tables are STRICT).
struct Column {
    name: String,
    integer: bool,
}

async fn same_columns(
    src: &mut sqlx::AnyConnection,
    pg: &mut PgConnection,
    table: &'static str,
) -> Result<Vec<Column>, CopyError> {
    let rows = sqlx::query("SELECT name, type FROM pragma_table_info(?1) ORDER BY cid")
        .bind(table)
        .fetch_all(&mut *src)
        .await
        .map_err(StoreError::sql("reading the source's columns"))?;
    let mut cols = Vec::with_capacity(rows.len());
    for r in rows {
        let name: String = r
            .try_get("name")
            .map_err(StoreError::sql("reading a column name"))?;
        let ty: String = r
            .try_get("type")
            .map_err(StoreError::sql("reading a column type"))?;
        cols.push(Column {
            name,
            integer: ty.eq_ignore_ascii_case("INTEGER"),
        });
    }
    let mut target: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1",
    )
    .bind(table)
    .fetch_all(&mut *pg)
    .await
    .map_err(pg_err("reading the target's columns", table))?;
    let mut source: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
    source.sort();
    target.sort();
    if source != target {
        return Err(CopyError::Columns {
            table,
            source_cols: source.join(","),
            target_cols: target.join(","),
        });
    }
    Ok(cols)
}

/// Streams the table's rows into `COPY … FROM STDIN`; returns (rows, SHA-256 of the text sent).
async fn send_table(
    src: &mut sqlx::AnyConnection,
    pg: &mut PgConnection,
    table: &'static str,
    key: &str,
    cols: &[Column],
) -> Result<(u64, String), CopyError> {
    let list = column_list(cols);
    let select = format!("SELECT {list} FROM {table} ORDER BY {key}");
    let mut copy_in = pg
        .copy_in_raw(&format!("COPY {table} ({list}) FROM STDIN"))
        .await
        .map_err(pg_err("starting COPY", table))?;
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(select)).fetch(&mut *src);
    let (mut n, mut hash, mut buf) = (0u64, Sha256::new(), Vec::with_capacity(SEND_AT + 4096));
    while let Some(row) = rows.next().await {
        let row = row.map_err(StoreError::sql("reading a row to copy"))?;
        let start = buf.len();
        copy_line(&row, cols, &mut buf).map_err(|message| CopyError::Table { table, message })?;
        hash.update(&buf[start..]);
        n += 1;
        if buf.len() >= SEND_AT {
            copy_in
                .send(std::mem::take(&mut buf))
                .await
                .map_err(pg_err("sending rows", table))?;
            buf.reserve(SEND_AT + 4096);
        }
    }
    drop(rows);
    if !buf.is_empty() {
        copy_in
            .send(buf)
            .await
            .map_err(pg_err("sending rows", table))?;
    }
    let written = copy_in
        .finish()
        .await
        .map_err(pg_err("ending COPY", table))?;
    if written != n {
        return Err(CopyError::Table {
            table,
            message: format!("PostgreSQL took {written} rows of {n}"),
        });
    }
    Ok((n, hex(&hash.finalize())))
}

/// Reads the table back as COPY text in the same order; returns (rows, SHA-256).
async fn read_back(
    pg: &mut PgConnection,
    table: &'static str,
    key: &str,
    cols: &[Column],
) -> Result<(u64, String), CopyError> {
    let list = column_list(cols);
    let mut out = pg
        .copy_out_raw(&format!(
            "COPY (SELECT {list} FROM {table} ORDER BY {key}) TO STDOUT"
        ))
        .await
        .map_err(pg_err("reading back", table))?;
    let (mut n, mut hash) = (0u64, Sha256::new());
    while let Some(chunk) = out.next().await {
        let chunk = chunk.map_err(pg_err("reading back", table))?;
        n += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        hash.update(&chunk);
    }
    Ok((n, hex(&hash.finalize())))
}

/// Identity columns continue after the highest id copied.
async fn restart_identities(pg: &mut PgConnection) -> Result<(), CopyError> {
    let identities: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND is_identity = 'YES'",
    )
    .fetch_all(&mut *pg)
    .await
    .map_err(pg_err("listing identity columns", "-"))?;
    for (table, column) in identities {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                           COALESCE((SELECT max({column}) FROM {table}), 1),
                           (SELECT max({column}) FROM {table}) IS NOT NULL)"
        )))
        .execute(&mut *pg)
        .await
        .map_err(pg_err("moving an identity past the copied ids", "-"))?;
    }
    Ok(())
}

fn column_list(cols: &[Column]) -> String {
    cols.iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One row in COPY's text format: tab-separated, `\N` for NULL, backslash escapes in text.
fn copy_line(row: &AnyRow, cols: &[Column], out: &mut Vec<u8>) -> Result<(), String> {
    for (i, col) in cols.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        if col.integer {
            let v: Option<i64> = row
                .try_get(i)
                .map_err(|e| format!("column {}: {e}", col.name))?;
            match v {
                Some(v) => out.extend_from_slice(v.to_string().as_bytes()),
                None => out.extend_from_slice(b"\\N"),
            }
        } else {
            let v: Option<&str> = row
                .try_get(i)
                .map_err(|e| format!("column {}: {e}", col.name))?;
            match v {
                Some(v) => escape_text(v, out)?,
                None => out.extend_from_slice(b"\\N"),
            }
        }
    }
    out.push(b'\n');
    Ok(())
}

fn escape_text(v: &str, out: &mut Vec<u8>) -> Result<(), String> {
    for &b in v.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            // COPY's text output writes these three as escapes too; so does the input, to match.
            0x08 => out.extend_from_slice(b"\\b"),
            0x0b => out.extend_from_slice(b"\\v"),
            0x0c => out.extend_from_slice(b"\\f"),
            0 => return Err("a text value holds a NUL byte, which PostgreSQL cannot store".into()),
            _ => out.push(b),
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_table_of_the_schema_is_copied() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Default::default())
            .await
            .unwrap();
        let mut tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_schema WHERE type = 'table'
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx_%' ORDER BY name",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap();
        let mut listed: Vec<String> = TABLES.iter().map(|(t, _)| t.to_string()).collect();
        tables.sort();
        listed.sort();
        assert_eq!(tables, listed);
        store.close().await;
    }

    #[test]
    fn text_is_escaped_for_copy() {
        let mut out = Vec::new();
        escape_text("a\\b\tc\nd\re", &mut out).unwrap();
        assert_eq!(out, b"a\\\\b\\tc\\nd\\re");
        assert!(escape_text("nul\0", &mut Vec::new()).is_err());
    }
}
