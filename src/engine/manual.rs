//! `renew`: a person's renewal, validated by the CLI, then through the same machinery as a
//! scheduled one. Attempts without an outcome on the named hosts are resolved first (with their
//! own tokens); hosts that still have one are refused, and so are hosts whose earlier attempt
//! this step just found renewed (run `renew` again to buy another period deliberately).

use std::collections::HashSet;

use chrono::SubsecRound;

use super::due::{self, Batch};
use super::pass::{PassCtx, PassReport};
use super::{Engine, EngineError, resolve};
use crate::domain::protocol::{AttemptKind, Trigger};
use crate::domain::{ClientToken, HostId, Period};
use crate::store::Attempt;

impl Engine {
    pub async fn renew_manual(
        &self,
        region: &str,
        ids: Vec<HostId>,
        period: Period,
        token: Option<ClientToken>,
        force: bool,
    ) -> Result<PassReport, EngineError> {
        self.check_clock()?;
        let now = self.now().trunc_subsecs(0);
        let p = PassCtx::new(self, now, Trigger::Manual, false).await?;
        let store = &self.inner.store;
        let wanted: HashSet<&HostId> = ids.iter().collect();
        let open: Vec<Attempt> = store
            .open_attempts()
            .await?
            .into_iter()
            .filter(|a| a.hosts.iter().any(|(h, _)| wanted.contains(h)))
            .collect();
        let resolved_now: HashSet<HostId> = open
            .iter()
            .flat_map(|a| a.hosts.iter().map(|(h, _)| h.clone()))
            .filter(|h| wanted.contains(h))
            .collect();
        resolve::resolve(self, &p, open).await?;
        let busy = store.hosts_in_open_attempts().await?;
        let mut held: Vec<(String, i64)> = ids
            .iter()
            .filter_map(|id| busy.get(id.as_str()).map(|(a, _)| (id.to_string(), *a)))
            .collect();
        if !held.is_empty() {
            held.sort();
            let hosts: Vec<&str> = held.iter().map(|(h, _)| h.as_str()).collect();
            let mut attempts: Vec<String> = held.iter().map(|(_, a)| a.to_string()).collect();
            attempts.dedup();
            return Err(EngineError::Busy {
                have: if hosts.len() == 1 { "has" } else { "have" },
                hosts: hosts.join(", "),
                attempts: attempts.join(", "),
            });
        }
        let send: Vec<HostId> = ids
            .into_iter()
            .filter(|id| !resolved_now.contains(id))
            .collect();
        if !resolved_now.is_empty() {
            tracing::warn!(hosts = ?resolved_now, "an earlier attempt on these hosts was resolved first; they are not renewed again now");
        }
        if send.is_empty() {
            return p.finish(self).await;
        }
        let hosts = store.hosts_by_ids(&send).await?;
        let batch = Batch {
            kind: AttemptKind::Manual,
            window: now,
            region: region.to_owned(),
            period,
            hosts,
            parent: None,
            token,
            force,
        };
        due::work(self, &p, batch).await?;
        p.finish(self).await
    }
}
