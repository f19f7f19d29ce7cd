//! The inventory's audit trail: operations, host changes, and notices.

use super::builder::{self, Statement};
use super::*;

impl Store {
    /// Host change history, oldest first, for one host.
    pub async fn host_changes(&self, host: &HostId) -> Result<Vec<HostChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT change_id, changed_at, host_id, kind, field, old_value, new_value, source
             FROM host_changes WHERE host_id = $1 ORDER BY change_id",
        )
        .bind(host.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::sql("reading host changes"))?;
        rows.iter().map(HostChange::from_row).collect()
    }

    /// Notices, oldest first, optionally for one host.
    pub async fn notices(&self, host: Option<&HostId>) -> Result<Vec<Notice>, StoreError> {
        let rows = sqlx::query(
            "SELECT notice_id, created_at, day, kind, host_id, cycle, message FROM v_notices
             WHERE $1 IS NULL OR host_id = $1 ORDER BY notice_id",
        )
        .bind(host.map(HostId::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::sql("reading notices"))?;
        rows.iter().map(Notice::from_row).collect()
    }
}

/// Records many notices at once, each at most once per (host, cycle, kind, day); logs the new ones.
pub(crate) async fn insert_notices(
    tx: &mut Transaction<'static, Any>,
    notices: &[(String, String, &str, &str)],
    day: &str,
    now: &str,
) -> Result<usize, StoreError> {
    let mut new = 0;
    for chunk in notices.chunks(CHUNK) {
        let mut st =
            Statement::new("INSERT INTO notices (host_id, cycle, kind, day, message, created_at) ");
        st.values(chunk, |b, (host, cycle, kind, message)| {
            b.bind(host.clone())
                .bind(cycle.clone())
                .bind(kind.to_string())
                .bind(day.to_owned())
                .bind(message.to_string())
                .bind(now.to_owned());
        })
        .push(" ON CONFLICT (host_id, cycle, kind, day) DO NOTHING RETURNING host_id, cycle, kind, message");
        let rows = st
            .query()
            .map_err(StoreError::sql("recording notices"))?
            .fetch_all(&mut **tx)
            .await
            .map_err(StoreError::sql("recording notices"))?;
        for r in &rows {
            let host: String = r.try_get(0).map_err(StoreError::sql("recording notices"))?;
            let cycle: String = r.try_get(1).map_err(StoreError::sql("recording notices"))?;
            let kind: String = r.try_get(2).map_err(StoreError::sql("recording notices"))?;
            let message: String = r.try_get(3).map_err(StoreError::sql("recording notices"))?;
            if kind == "renewed" {
                tracing::info!(host_id = %host, cycle = %cycle, kind = %kind, "{message}");
            } else {
                tracing::warn!(host_id = %host, cycle = %cycle, kind = %kind, "{message}");
            }
        }
        new += rows.len();
    }
    Ok(new)
}

pub(crate) async fn insert_operation(
    tx: &mut Transaction<'static, Any>,
    kind: &str,
    source: Source,
    detail: &str,
    now: &str,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO operations (kind, source, detail, at) VALUES ($1, $2, $3, $4) RETURNING op_id",
    )
    .bind(kind)
    .bind(source.as_str())
    .bind(detail)
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .map_err(StoreError::sql("recording the operation"))?;
    row.try_get(0)
        .map_err(StoreError::sql("recording the operation"))
}

pub(crate) struct ChangeRow {
    host_id: String,
    kind: &'static str,
    field: Option<&'static str>,
    old: Option<String>,
    new: Option<String>,
}

impl ChangeRow {
    pub(crate) fn new(
        host_id: &str,
        kind: &'static str,
        field: Option<&'static str>,
        old: Option<String>,
        new: Option<String>,
    ) -> Self {
        Self {
            host_id: host_id.to_owned(),
            kind,
            field,
            old,
            new,
        }
    }
}

pub(crate) async fn insert_host_changes(
    tx: &mut Transaction<'static, Any>,
    op_id: i64,
    changes: &[ChangeRow],
    source: Source,
    now: &str,
) -> Result<(), StoreError> {
    for chunk in changes.chunks(JSON_CHUNK) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|c| (&c.host_id, c.kind, c.field, &c.old, &c.new))
            .collect();
        sqlx::query(builder::for_conn(
            tx,
            "INSERT INTO host_changes (op_id, host_id, kind, field, old_value, new_value, source, changed_at)
             SELECT $2, value->>0, value->>1, value->>2, value->>3, value->>4, $3, $4
             FROM jsonb_each($1)",
        ))
        .bind(json_rows(&rows)?)
        .bind(op_id)
        .bind(source.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(StoreError::sql("recording host changes"))?;
    }
    Ok(())
}
