//! Reading the cloud: what the protocol's decisions take as facts. The client refuses answers
//! that are not the documented shape (a missing list, a `TotalCount` above what was returned);
//! a host missing from a well-formed answer needs more proof before it is `Absent`.

use std::collections::BTreeMap;

use super::pass::PassCtx;
use crate::domain::protocol::{CloudHost, Seen};
use crate::domain::{ChargeType, HostId, RenewalStatus};
use crate::ecs::models::DedicatedHost;
use crate::ecs::{EcsClient, EcsError};

/// Reads `ids` in `region`: `DescribeDedicatedHosts`, and with `auto_renew` also
/// `DescribeDedicatedHostAutoRenew` for the PrePaid hosts present. If only the second read
/// fails, the hosts come back with `auto_renew: None` (nothing is sent for them).
///
/// A host is `Absent` only with proof: missing from a complete answer to a query naming it, then
/// missing again when asked for alone — and only while the pass has not seen more of the region
/// disappear than it may believe (`PassCtx::claim_gone`); past that it is `Unproven`, nothing is
/// decided for it, and the pass tells a person.
pub(crate) async fn read(
    client: &EcsClient,
    p: &PassCtx,
    region: &str,
    ids: &[HostId],
    auto_renew: bool,
) -> Result<BTreeMap<HostId, Seen>, EcsError> {
    let mut seen: BTreeMap<HostId, Seen> =
        ids.iter().map(|id| (id.clone(), Seen::Absent)).collect();
    fill(
        &mut seen,
        &client.describe_dedicated_hosts(region, Some(ids)).await?,
    )?;
    let missing: Vec<HostId> = absent(&seen);
    if !missing.is_empty() {
        // Ask again, naming only the missing ones.
        fill(
            &mut seen,
            &client
                .describe_dedicated_hosts(region, Some(&missing))
                .await?,
        )?;
        let missing = absent(&seen);
        if !missing.is_empty() && !p.claim_gone(region, missing.len()) {
            p.suspect(region, missing.len(), ids.len());
            for id in missing {
                seen.insert(id, Seen::Unproven);
            }
        }
    }
    if auto_renew {
        read_auto_renew(client, region, &mut seen).await;
    }
    Ok(seen)
}

fn absent(seen: &BTreeMap<HostId, Seen>) -> Vec<HostId> {
    seen.iter()
        .filter(|(_, s)| **s == Seen::Absent)
        .map(|(id, _)| id.clone())
        .collect()
}

fn fill(seen: &mut BTreeMap<HostId, Seen>, raw: &[DedicatedHost]) -> Result<(), EcsError> {
    for h in raw {
        let host = h.to_host().map_err(|message| EcsError::Decode {
            action: "DescribeDedicatedHosts",
            status: 200,
            message,
        })?;
        if let Some(slot) = seen.get_mut(&host.id) {
            *slot = Seen::Present(CloudHost {
                expiry: host.expired_time,
                prepaid: host.charge_type == ChargeType::PrePaid,
                locked: host.financial_lock,
                auto_renew: None,
            });
        }
    }
    Ok(())
}

async fn read_auto_renew(client: &EcsClient, region: &str, seen: &mut BTreeMap<HostId, Seen>) {
    // PostPaid ids make the whole call fail (ChargeTypeViolation): ask for PrePaid ones only.
    let prepaid: Vec<HostId> = seen
        .iter()
        .filter(|(_, s)| matches!(s, Seen::Present(c) if c.prepaid))
        .map(|(id, _)| id.clone())
        .collect();
    if prepaid.is_empty() {
        return;
    }
    match client.describe_auto_renew(region, &prepaid).await {
        Ok(attrs) => {
            for a in attrs {
                let Ok(id) = HostId::parse(&a.dedicated_host_id) else {
                    continue;
                };
                if let Some(Seen::Present(c)) = seen.get_mut(&id) {
                    c.auto_renew = a.renewal_status.parse::<RenewalStatus>().ok().or(
                        // An unknown status with auto-renew on is treated as on.
                        a.auto_renew_enabled.then_some(RenewalStatus::AutoRenewal),
                    );
                }
            }
        }
        Err(e) => {
            tracing::warn!(region, error = %e, "cannot read cloud-side auto-renew; nothing is sent for these hosts now");
        }
    }
}
