//! One region's sync applied to the inventory: the hosts ECS returned, the ones it no longer
//! returns, the cloud-side auto-renew attributes, and the takeover of double-renew risks.

use super::*;

impl Store {
    /// Applies one region's `sync`: the hosts ECS returned (added or updated), hosts of the
    /// region it no longer returns (marked `Released`, never deleted), the cloud-side renewal
    /// attributes, and `double_renew_risk` notices for hosts renewed both here and by the cloud.
    /// One transaction; every change is in the history under one `sync` operation.
    ///
    /// `snapshot` holds every host's `row_version` as read before the cloud was: a host changed
    /// since (a renewal recorded by the engine, an import) is left as it is — a slow sync never
    /// commits a stale read over newer state — and reported in `changed_meanwhile`.
    pub async fn apply_sync(
        &self,
        region: &str,
        cloud: &[Host],
        renewals: &[CloudRenewal],
        snapshot: &HashMap<String, i64>,
        allow_mass_release: bool,
        now: DateTime<Utc>,
    ) -> Result<SyncApplied, StoreError> {
        let now_s = to_db(now);
        let day = self.schedule.local_date(now).to_string();
        let mut tx = self.begin().await?;
        let existing = read_all(&mut tx).await?;
        let changed = |id: &str| match (existing.get(id), snapshot.get(id)) {
            (Some(rec), Some(v)) => rec.row_version != *v,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let mut changed_meanwhile: Vec<HostId> = cloud
            .iter()
            .filter(|h| changed(h.id.as_str()))
            .map(|h| h.id.clone())
            .collect();
        changed_meanwhile.sort();
        let cloud: Vec<&Host> = cloud.iter().filter(|h| !changed(h.id.as_str())).collect();
        let expiry_moved_back = expiry_moved_back(&existing, &cloud);
        let op_id = insert_operation(&mut tx, "sync", Source::Sync, region, &now_s).await?;
        // The cloud's hosts, with no policy: sync never changes what is renewed here.
        let inputs = cloud.iter().map(|h| HostInput {
            host: (*h).clone(),
            policy: None,
        });
        let inputs = EncodedHosts::new(&self.schedule, inputs.collect())?;
        let upsert = self
            .upsert_in_tx(
                &mut tx,
                &existing,
                &inputs,
                op_id,
                Source::Sync,
                &now_s,
                false,
            )
            .await?;
        let gone = Released::of(&existing, region, &cloud, &changed, allow_mass_release);
        let mut changes = gone.changes(&existing);
        write_released(&mut tx, &gone.released, &now_s).await?;
        let unchanged: Vec<&CloudRenewal> =
            renewals.iter().filter(|r| !changed(&r.host_id)).collect();
        let cloud_changed =
            write_cloud_renewals(&mut tx, &existing, &unchanged, &mut changes).await?;
        insert_host_changes(&mut tx, op_id, &changes, Source::Sync, &now_s).await?;
        self.write_cloud_reads(&mut tx, &cloud, &now_s).await?;
        // Flagged from every answer, changed meanwhile or not: the risk is the cloud's side.
        let all: Vec<&CloudRenewal> = renewals.iter().collect();
        let risk = double_renew_risk(&existing, &all);
        risk_notices(&mut tx, &risk, &cloud, &day, &now_s).await?;
        held_back_notice(&mut tx, region, &gone, &day, &now_s).await?;
        commit(tx).await?;
        Ok(SyncApplied {
            region: region.to_owned(),
            seen: cloud.len(),
            added: upsert.added,
            updated: upsert.updated,
            unchanged: upsert.unchanged,
            released: gone.released,
            cloud_renewal_changed: cloud_changed,
            double_renew_risk: risk,
            released_held_back: gone.held_back,
            changed_meanwhile,
            expiry_moved_back,
        })
    }

    /// Every host's `row_version`, for `apply_sync`'s compare-and-set.
    pub async fn row_versions(&self) -> Result<HashMap<String, i64>, StoreError> {
        let rows = sqlx::query("SELECT host_id, row_version FROM hosts")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::sql("reading row versions"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("host_id").map_err(StoreError::sql("decoding"))?,
                    r.try_get("row_version")
                        .map_err(StoreError::sql("decoding"))?,
                ))
            })
            .collect()
    }

    /// Records that ddh-renewd set the cloud-side renewal of `ids` to `Normal` (takeover).
    pub async fn record_takeover(
        &self,
        region: &str,
        ids: &[HostId],
        request_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now_s = to_db(now);
        let mut tx = self.begin().await?;
        let detail = format!(
            "{region}: RenewalStatus=Normal AutoRenew=false; RequestId {}",
            request_ids.join(",")
        );
        let op_id = insert_operation(&mut tx, "takeover", Source::Daemon, &detail, &now_s).await?;
        let mut changes = Vec::with_capacity(ids.len());
        for id in ids {
            sqlx::query("UPDATE hosts SET cloud_renewal_status = 'Normal', cloud_renewal_duration = 0 WHERE host_id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::sql("recording takeover"))?;
            changes.push(ChangeRow::new(
                id.as_str(),
                "updated",
                Some("cloud_renewal_status"),
                Some("AutoRenewal".into()),
                Some("Normal".into()),
            ));
        }
        insert_host_changes(&mut tx, op_id, &changes, Source::Daemon, &now_s).await?;
        commit(tx).await
    }
}

/// What one region's sync changed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncApplied {
    pub region: String,
    pub seen: usize,
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub released: Vec<HostId>,
    pub cloud_renewal_changed: usize,
    pub double_renew_risk: Vec<HostId>,
    /// Hosts the cloud no longer returned but that were not marked released: too many at once
    /// to believe (`sync --allow-mass-release` confirms).
    pub released_held_back: Vec<HostId>,
    /// Hosts that changed while the sync was reading the cloud: left as they are.
    pub changed_meanwhile: Vec<HostId>,
    /// Hosts whose expiry the cloud shows earlier than the inventory did (recorded).
    pub expiry_moved_back: Vec<HostId>,
}

/// Hosts whose expiry the cloud shows earlier than the inventory (logged; the engine re-reads
/// them before any renewal).
fn expiry_moved_back(existing: &HashMap<String, HostRecord>, cloud: &[&Host]) -> Vec<HostId> {
    let mut out: Vec<HostId> = cloud
        .iter()
        .filter(|h| {
            existing
                .get(h.id.as_str())
                .is_some_and(|e| e.host.expired_time > h.expired_time)
        })
        .map(|h| h.id.clone())
        .collect();
    out.sort();
    for id in &out {
        tracing::warn!(host_id = %id, "sync: the cloud shows an earlier expiry than the inventory; recorded, and re-checked against the cloud before any renewal");
    }
    out
}

/// The hosts of a region the cloud no longer returns: marked released, or held back when so
/// many at once are not believable ([`crate::domain::host::believable_disappearance`]).
struct Released {
    released: Vec<HostId>,
    held_back: Vec<HostId>,
    in_region: usize,
}

impl Released {
    fn of(
        existing: &HashMap<String, HostRecord>,
        region: &str,
        cloud: &[&Host],
        changed: &dyn Fn(&str) -> bool,
        allow_mass_release: bool,
    ) -> Self {
        let seen: HashSet<&str> = cloud.iter().map(|h| h.id.as_str()).collect();
        let live = || {
            existing
                .values()
                .filter(|r| r.host.region_id == region && !r.host.status.is_released())
        };
        let mut missing: Vec<HostId> = live()
            .filter(|r| !seen.contains(r.host.id.as_str()) && !changed(r.host.id.as_str()))
            .map(|r| r.host.id.clone())
            .collect();
        missing.sort();
        let in_region = live().count();
        if allow_mass_release
            || crate::domain::host::believable_disappearance(missing.len(), in_region)
        {
            return Self {
                released: missing,
                held_back: Vec::new(),
                in_region,
            };
        }
        tracing::warn!(
            region,
            missing = missing.len(),
            of = in_region,
            "sync: a mass disappearance is not believed; nothing is marked released"
        );
        Self {
            released: Vec::new(),
            held_back: missing,
            in_region,
        }
    }

    fn changes(&self, existing: &HashMap<String, HostRecord>) -> Vec<ChangeRow> {
        self.released
            .iter()
            .filter_map(|id| existing.get(id.as_str()))
            .map(|rec| {
                ChangeRow::new(
                    rec.host.id.as_str(),
                    "released",
                    Some("status"),
                    Some(rec.host.status.0.clone()),
                    Some(HostStatus::RELEASED.to_owned()),
                )
            })
            .collect()
    }
}

async fn write_released(
    tx: &mut Transaction<'static, Any>,
    released: &[HostId],
    now_s: &str,
) -> Result<(), StoreError> {
    for id in released {
        sqlx::query("UPDATE hosts SET status = 'Released', first_window = NULL, last_window = NULL, updated_at = $1 WHERE host_id = $2")
            .bind(now_s)
            .bind(id.as_str())
            .execute(&mut **tx)
            .await
            .map_err(StoreError::sql("marking a host released"))?;
    }
    Ok(())
}

/// Records the cloud-side auto-renew attributes that changed; returns how many did.
async fn write_cloud_renewals(
    tx: &mut Transaction<'static, Any>,
    existing: &HashMap<String, HostRecord>,
    renewals: &[&CloudRenewal],
    changes: &mut Vec<ChangeRow>,
) -> Result<usize, StoreError> {
    let mut n = 0;
    for r in renewals {
        let id = r.host_id.as_str();
        let old = existing.get(id).and_then(|h| h.cloud_renewal.clone());
        if old.as_ref() == Some(*r) {
            continue;
        }
        n += 1;
        let old_status = old.as_ref().map(|o| o.status.clone());
        if old_status.as_deref() != Some(r.status.as_str()) {
            changes.push(ChangeRow::new(
                id,
                "updated",
                Some("cloud_renewal_status"),
                old_status,
                Some(r.status.clone()),
            ));
        }
        sqlx::query("UPDATE hosts SET cloud_renewal_status = $1, cloud_renewal_duration = $2, cloud_renewal_unit = $3 WHERE host_id = $4")
            .bind(&r.status)
            .bind(r.duration)
            .bind(&r.unit)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::sql("recording cloud-side renewal status"))?;
    }
    Ok(n)
}

/// Hosts in the inventory at double-renew risk ([`crate::domain::policy::double_renew_risk`]).
fn double_renew_risk(
    existing: &HashMap<String, HostRecord>,
    renewals: &[&CloudRenewal],
) -> Vec<HostId> {
    let mut risk: Vec<HostId> = renewals
        .iter()
        .filter_map(|r| existing.get(r.host_id.as_str()).map(|rec| (rec, r)))
        .filter(|(rec, r)| {
            rec.removed_at.is_none()
                && crate::domain::policy::double_renew_risk(
                    rec.effective_policy().status,
                    Some(r.status.as_str()),
                )
        })
        .map(|(rec, _)| rec.host.id.clone())
        .collect();
    risk.sort();
    risk
}

/// A `double_renew_risk` notice per host at risk, once a day.
async fn risk_notices(
    tx: &mut Transaction<'static, Any>,
    risk: &[HostId],
    cloud: &[&Host],
    day: &str,
    now_s: &str,
) -> Result<usize, StoreError> {
    let cycle_of = |id: &HostId| {
        cloud
            .iter()
            .find(|h| &h.id == id)
            .map_or_else(|| "-".to_owned(), |h| to_db(h.expired_time))
    };
    let messages: Vec<(String, String)> = risk
        .iter()
        .map(|id| (cycle_of(id), format!("{id} is set to AutoRenewal here and in the cloud (DescribeDedicatedHostAutoRenew); ddh-renewd skips it until one side is changed, or set [ecs] takeover = true")))
        .collect();
    let notices: Vec<(String, String, &str, &str)> = risk
        .iter()
        .zip(&messages)
        .map(|(id, (cycle, msg))| {
            (
                id.to_string(),
                cycle.clone(),
                "double_renew_risk",
                msg.as_str(),
            )
        })
        .collect();
    insert_notices(tx, &notices, day, now_s).await
}

/// Every host row, keyed by id, read inside a write transaction.
async fn read_all(
    tx: &mut Transaction<'static, Any>,
) -> Result<HashMap<String, HostRecord>, StoreError> {
    sqlx::query(rows_select!())
        .fetch_all(&mut **tx)
        .await
        .map_err(StoreError::sql("reading hosts"))?
        .iter()
        .map(|r| HostRecord::from_row(r).map(|h| (h.host.id.as_str().to_owned(), h)))
        .collect()
}

/// The notice that releases were held back: so many hosts gone at once may be a broken answer.
async fn held_back_notice(
    tx: &mut Transaction<'static, Any>,
    region: &str,
    gone: &Released,
    day: &str,
    now_s: &str,
) -> Result<(), StoreError> {
    if gone.held_back.is_empty() {
        return Ok(());
    }
    let text = format!(
        "sync: {} of {} hosts of {region} are no longer returned by DescribeDedicatedHosts; none was marked released, since so many at once may be a broken answer. If they were released, run `ddh-renewd sync --region {region} --allow-mass-release`",
        gone.held_back.len(),
        gone.in_region
    );
    let row = [(
        "-".to_owned(),
        region.to_owned(),
        "needs_attention",
        text.as_str(),
    )];
    insert_notices(tx, &row, day, now_s).await?;
    Ok(())
}
