//! `sync` (SPEC §3.5, issue "ECS client"): refresh the inventory from DescribeDedicatedHosts and
//! DescribeDedicatedHostAutoRenew, region by region. Each region is read completely before
//! anything is written, then applied in one transaction, so a failure half-way leaves the
//! inventory as it was for that region.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{ChargeType, Host, HostId, RenewalStatus};
use crate::ecs::client::MAX_PER_CALL;
use crate::ecs::{EcsClient, EcsError};
use crate::store::{CloudRenewal, Store, StoreError, SyncApplied};

#[derive(Debug, Serialize)]
pub struct SyncReport {
    pub regions: Vec<SyncApplied>,
    /// Hosts whose cloud-side auto-renew was set to Normal because `takeover = true`.
    pub taken_over: Vec<HostId>,
    /// HTTP requests by action, retries included.
    pub calls: BTreeMap<&'static str, u64>,
    pub elapsed_ms: u128,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("sync {region}: {source} (AccessKeyId {access_key_id})")]
    Ecs {
        region: String,
        access_key_id: String,
        source: EcsError,
    },
    #[error("sync {region}: ECS returned a host this version cannot read: {message}")]
    Malformed { region: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    /// A configuration-class ECS error (bad key, signature, permissions).
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::Ecs { source, .. } if source.class() == crate::ecs::ErrorClass::Configuration)
    }
}

/// Syncs `regions` and records the run (`trigger`: `cli` or `daemon`) in `sync_runs`.
pub async fn sync_and_record(
    store: &Store,
    client: &EcsClient,
    regions: &[String],
    takeover: bool,
    allow_mass_release: bool,
    trigger: &str,
) -> Result<SyncReport, SyncError> {
    let started = chrono::Utc::now();
    let result = sync(
        store,
        client,
        regions,
        takeover,
        allow_mass_release,
        chrono::Utc::now,
    )
    .await;
    let detail = match &result {
        Ok(r) => {
            let seen: usize = r.regions.iter().map(|x| x.seen).sum();
            let added: usize = r.regions.iter().map(|x| x.added).sum();
            let updated: usize = r.regions.iter().map(|x| x.updated).sum();
            format!("{seen} hosts seen, {added} added, {updated} updated")
        }
        Err(e) => e.to_string(),
    };
    store
        .record_sync_run(
            started,
            chrono::Utc::now(),
            trigger,
            regions,
            result.is_ok(),
            &detail,
        )
        .await?;
    result
}

fn ecs_err(client: &EcsClient, region: &str) -> impl Fn(EcsError) -> SyncError {
    let region = region.to_owned();
    let access_key_id = client.access_key_id().to_owned();
    move |source| SyncError::Ecs {
        region: region.clone(),
        access_key_id: access_key_id.clone(),
        source,
    }
}

/// One region as the cloud shows it: its hosts, and the auto-renew attribute of its PrePaid
/// hosts.
async fn read_region(
    client: &EcsClient,
    region: &str,
) -> Result<(Vec<Host>, Vec<CloudRenewal>), SyncError> {
    let raw = client
        .describe_dedicated_hosts(region, None)
        .await
        .map_err(ecs_err(client, region))?;
    let hosts = raw
        .iter()
        .filter(|h| h.region_id == *region)
        .map(|h| h.to_host())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|message| SyncError::Malformed {
            region: region.to_owned(),
            message,
        })?;
    // Never pass PostPaid ids to DescribeDedicatedHostAutoRenew (it answers ChargeTypeViolation).
    let prepaid: Vec<HostId> = hosts
        .iter()
        .filter(|h| h.charge_type == ChargeType::PrePaid && !h.status.is_released())
        .map(|h| h.id.clone())
        .collect();
    let attrs = client
        .describe_auto_renew(region, &prepaid)
        .await
        .map_err(ecs_err(client, region))?;
    let renewals = attrs
        .into_iter()
        .map(|a| CloudRenewal {
            host_id: a.dedicated_host_id,
            status: a.renewal_status,
            duration: a.duration,
            unit: a.period_unit,
        })
        .collect();
    Ok((hosts, renewals))
}

/// Sets these hosts' cloud-side auto-renew to `Normal` (renewal is taken over here), and
/// records it.
async fn take_over(
    store: &Store,
    client: &EcsClient,
    region: &str,
    ids: &[HostId],
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    let mut request_ids = Vec::new();
    for chunk in ids.chunks(MAX_PER_CALL) {
        let rid = client
            .modify_auto_renew(region, chunk, RenewalStatus::Normal, None)
            .await
            .map_err(ecs_err(client, region))?;
        tracing::info!(region = %region, hosts = chunk.len(), request_id = %rid, "took over renewal from cloud-side auto-renew");
        request_ids.push(rid);
    }
    store
        .record_takeover(region, ids, &request_ids, now)
        .await?;
    Ok(())
}

/// Syncs `regions`; with `takeover`, hosts at double-renew risk get their cloud-side auto-renew
/// set to `Normal, AutoRenew=false` first (audited), instead of a notice alone.
pub async fn sync(
    store: &Store,
    client: &EcsClient,
    regions: &[String],
    takeover: bool,
    allow_mass_release: bool,
    now: impl Fn() -> DateTime<Utc>,
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let mut out = Vec::with_capacity(regions.len());
    let mut taken_over = Vec::new();
    for region in regions {
        // Versions before the read: whatever changes meanwhile is newer than this read.
        let snapshot = store.row_versions().await?;
        let (hosts, renewals) = read_region(client, region).await?;
        let mut applied = store
            .apply_sync(
                region,
                &hosts,
                &renewals,
                &snapshot,
                allow_mass_release,
                now(),
            )
            .await?;
        if takeover && !applied.double_renew_risk.is_empty() {
            let ids = std::mem::take(&mut applied.double_renew_risk);
            take_over(store, client, region, &ids, now()).await?;
            taken_over.extend(ids);
        }
        out.push(applied);
    }
    Ok(SyncReport {
        regions: out,
        taken_over,
        calls: client.calls(),
        elapsed_ms: started.elapsed().as_millis(),
    })
}
