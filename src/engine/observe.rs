//! Reading the cloud: what the protocol's decisions take as facts. A host the answer does not
//! contain is `Absent` only because the client checked the answer is complete (a listing whose
//! `TotalCount` exceeds what it returned is an error, not "gone").

use std::collections::BTreeMap;

use crate::domain::protocol::{CloudHost, Seen};
use crate::domain::{ChargeType, HostId, RenewalStatus};
use crate::ecs::{EcsClient, EcsError};

/// Reads `ids` in `region`: `DescribeDedicatedHosts`, and with `auto_renew` also
/// `DescribeDedicatedHostAutoRenew` for the PrePaid hosts present. If only the second read
/// fails, the hosts come back with `auto_renew: None` (nothing is sent for them).
pub(crate) async fn read(
    client: &EcsClient,
    region: &str,
    ids: &[HostId],
    auto_renew: bool,
) -> Result<BTreeMap<HostId, Seen>, EcsError> {
    let raw = client.describe_dedicated_hosts(region, Some(ids)).await?;
    let mut seen: BTreeMap<HostId, Seen> =
        ids.iter().map(|id| (id.clone(), Seen::Absent)).collect();
    for h in &raw {
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
    if auto_renew {
        read_auto_renew(client, region, &mut seen).await;
    }
    Ok(seen)
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
