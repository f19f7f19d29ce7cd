//! Renewal policies (ModifyDedicatedHostAutoRenewAttribute semantics) and their history.

use super::*;

impl Store {
    /// Policy history, oldest first, optionally for one host.
    pub async fn policy_changes(
        &self,
        host: Option<&HostId>,
    ) -> Result<Vec<PolicyChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT change_id, changed_at, host_id, old_renewal_status, old_duration,
                    old_period_unit, new_renewal_status, new_duration, new_period_unit,
                    source, op_id, operation
             FROM v_policy_changes
             WHERE $1 IS NULL OR host_id = $1
             ORDER BY change_id",
        )
        .bind(host.map(HostId::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::sql("reading policy changes"))?;
        rows.iter().map(PolicyChange::from_row).collect()
    }

    /// Applies a policy call atomically: the hosts are read and validated inside the write
    /// transaction, then every host gets the new policy, or none does.
    pub async fn set_policy(
        &self,
        req: &PolicyRequest,
        source: Source,
        now: DateTime<Utc>,
    ) -> Result<PolicyOutcome, StoreError> {
        let now_s = to_db(now);
        let mut tx = self.begin().await?;
        let mut current: HashMap<HostId, HostRecord> = HashMap::new();
        for raw in &req.ids {
            let Ok(id) = HostId::parse(raw) else { continue };
            if current.contains_key(&id) {
                continue;
            }
            let row = sqlx::query(concat!(
                rows_select!(),
                " WHERE h.host_id = $1 AND h.removed_at IS NULL"
            ))
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::sql("reading a host"))?;
            if let Some(row) = row {
                current.insert(id, HostRecord::from_row(&row)?);
            }
        }
        let (ids, policy) = validate_policy_request(req, |id| current.get(id).map(|r| &r.host))
            .map_err(StoreError::Rejected)?;
        let op_id = insert_operation(&mut tx, "policy_set", source, "", &now_s).await?;
        let mut rows = Vec::new();
        let mut unchanged = Vec::new();
        for id in &ids {
            let old = current.get(id).and_then(|r| r.policy);
            if old == Some(policy) {
                unchanged.push(id.clone());
            } else {
                rows.push((id, policy, old));
            }
        }
        write_policies(&mut tx, op_id, &rows, source, &now_s).await?;
        commit(tx).await?;
        Ok(PolicyOutcome {
            op_id,
            policy,
            changed: rows.into_iter().map(|(id, _, _)| id.clone()).collect(),
            unchanged,
        })
    }
}

/// What `set_policy` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyOutcome {
    pub op_id: i64,
    pub policy: Policy,
    pub changed: Vec<HostId>,
    pub unchanged: Vec<HostId>,
}

pub(super) async fn write_policies(
    tx: &mut Transaction<'static, Any>,
    op_id: i64,
    rows: &[(&HostId, Policy, Option<Policy>)],
    source: Source,
    now: &str,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(JSON_CHUNK) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|(id, p, old)| {
                (
                    id.as_str(),
                    p.status.as_str(),
                    p.period.n,
                    p.period.unit.as_str(),
                    old.map(|o| o.status.as_str()),
                    old.map(|o| o.period.n),
                    old.map(|o| o.period.unit.as_str()),
                )
            })
            .collect();
        let json = json_rows(&rows)?;
        // A host without a policy before has no row in `policies` (the old policy was read
        // through a join on it), so most rows of an import go in by a plain insert.
        let replaces = chunk.iter().any(|(_, _, old)| old.is_some());
        let sql = if replaces {
            "INSERT INTO policies (host_id, renewal_status, duration, period_unit, updated_at)
             SELECT value->>0, value->>1, CAST(value->>2 AS BIGINT), value->>3, $2 FROM jsonb_each($1) WHERE true
             ON CONFLICT (host_id) DO UPDATE SET renewal_status = excluded.renewal_status,
               duration = excluded.duration, period_unit = excluded.period_unit,
               updated_at = excluded.updated_at"
        } else {
            "INSERT INTO policies (host_id, renewal_status, duration, period_unit, updated_at)
             SELECT value->>0, value->>1, CAST(value->>2 AS BIGINT), value->>3, $2 FROM jsonb_each($1)"
        };
        sqlx::query(super::builder::for_conn(tx, sql))
            .bind(&json)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::sql("writing policies"))?;
        sqlx::query(super::builder::for_conn(
            tx,
            "INSERT INTO policy_changes (op_id, host_id, old_renewal_status, old_duration,
               old_period_unit, new_renewal_status, new_duration, new_period_unit, source, changed_at)
             SELECT $2, value->>0, value->>4, CAST(value->>5 AS BIGINT), value->>6, value->>1,
                    CAST(value->>2 AS BIGINT), value->>3, $3, $4
             FROM jsonb_each($1)",
        ))
        .bind(&json)
        .bind(op_id)
        .bind(source.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(StoreError::sql("recording policy changes"))?;
    }
    Ok(())
}
