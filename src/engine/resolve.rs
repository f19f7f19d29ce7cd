//! Step 1 of a pass: every attempt without an outcome is re-read before anything else touches
//! its hosts. The protocol decides it, blocks it, or has it re-sent — the recorded bytes, the
//! same token — if nothing moved and cloud-side auto-renew is off. Blocked attempts are only
//! re-read (they decide themselves once the cloud closes every host).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::pass::PassCtx;
use super::{Engine, EngineError, due, observe, record, send};
use crate::domain::protocol::{
    AttemptFacts, Decision, EventKind, NoticeKind, Seen, decide_unanswered,
};
use crate::domain::{HostId, RenewalStatus};
use crate::store::{AnswerRecord, Attempt, Event};

/// Resolves every open attempt (or, with `only`, those touching these hosts).
pub(crate) async fn run(e: &Engine, p: &Arc<PassCtx>) -> Result<(), EngineError> {
    let open = e.inner.store.open_attempts().await?;
    resolve(e, p, open).await
}

pub(crate) async fn resolve(
    e: &Engine,
    p: &Arc<PassCtx>,
    open: Vec<Attempt>,
) -> Result<(), EngineError> {
    if open.is_empty() {
        return Ok(());
    }
    let mut by_region: BTreeMap<String, Vec<Attempt>> = BTreeMap::new();
    for a in open {
        by_region.entry(a.region_id.clone()).or_default().push(a);
    }
    let sem = Arc::new(Semaphore::new(e.inner.cfg.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (region, attempts) in by_region {
        let mut ids: Vec<HostId> = attempts
            .iter()
            .flat_map(|a| a.hosts.iter().map(|(id, _)| id.clone()))
            .collect();
        ids.sort();
        ids.dedup();
        let seen = match observe::read(&e.inner.client, p, &region, &ids, true).await {
            Ok(s) => Arc::new(s),
            Err(err) => {
                due::unreadable(e, p, &region, &err).await?;
                for a in &attempts {
                    p.worked_on(a.attempt_id);
                    record::undecided(p, a);
                }
                continue;
            }
        };
        for a in attempts {
            if e.inner.cfg.concurrency <= 1 {
                // One at a time, in order (a repeatable order of requests).
                one(e, p, a, &seen).await?;
                continue;
            }
            let (e, p, sem, seen) = (e.clone(), p.clone(), sem.clone(), seen.clone());
            tasks.spawn(async move {
                let _permit = sem.acquire_owned().await;
                one(&e, &p, a, &seen).await
            });
        }
    }
    due::join_all(tasks).await
}

/// One open attempt, with its hosts as just read.
async fn one(
    e: &Engine,
    p: &Arc<PassCtx>,
    a: Attempt,
    seen: &BTreeMap<HostId, Seen>,
) -> Result<(), EngineError> {
    p.worked_on(a.attempt_id);
    let facts = AttemptFacts {
        hosts: &a.hosts,
        period: a.period,
    };
    let decision = decide_unanswered(&facts, seen);
    tracing::debug!(attempt = a.attempt_id, client_token = %a.client_token, ?decision, "resolving an open attempt");
    if p.dry {
        if let Decision::Decide { outcome, hosts, .. } = &decision {
            p.dry_decided((a.clone(), *outcome, hosts.clone()));
        }
        if decision == Decision::Resend && !a.blocked && may_resend(e, p, &a, seen).await? {
            p.with(|r| {
                r.planned_resends.push(crate::engine::pass::PlannedResend {
                    attempt_id: a.attempt_id,
                    client_token: a.client_token.to_string(),
                    hosts: a.hosts.iter().map(|(h, _)| h.to_string()).collect(),
                })
            });
        }
        return Ok(());
    }
    let what = match &decision {
        Decision::Decide { .. } => "re-read: the cloud closed every host",
        Decision::Resend => "re-read: nothing moved; the recorded request goes again",
        Decision::Block { .. } => {
            "re-read: some hosts renewed elsewhere, or the cloud contradicts itself"
        }
        Decision::Wait(_) => "re-read: nothing to decide",
    };
    e.inner
        .store
        .record_event(
            a.attempt_id,
            Event {
                kind: EventKind::Resolve,
                http_status: None,
                code: None,
                message: Some(what),
                request_id: None,
            },
            e.now(),
        )
        .await?;
    let retry = match decision {
        Decision::Resend if a.blocked => {
            p.with(|r| {
                r.blocked
                    .extend(a.hosts.iter().map(|(id, _)| id.to_string()))
            });
            Vec::new()
        }
        Decision::Resend => {
            if !may_resend(e, p, &a, seen).await? {
                record::undecided(p, &a);
                return Ok(());
            }
            send::execute(e, p, &a).await?
        }
        Decision::Block { reason, hosts } => {
            record::block(e, p, &a, reason, &hosts).await?;
            Vec::new()
        }
        other => record::apply(e, p, &a, other, AnswerRecord::default()).await?,
    };
    due::retry(e, p, &a, retry).await
}

/// A re-send pays if the request never arrived: it is allowed only when the cloud-side
/// auto-renew of every host is known and off (with `takeover`, it is switched off first and the
/// re-send waits for the next pass's fresh read).
async fn may_resend(
    e: &Engine,
    p: &Arc<PassCtx>,
    a: &Attempt,
    seen: &BTreeMap<HostId, Seen>,
) -> Result<bool, EngineError> {
    if p.stopped() || e.stopping() {
        return Ok(false);
    }
    let mut unknown = Vec::new();
    let mut on = Vec::new();
    for (id, _) in &a.hosts {
        match seen.get(id) {
            Some(Seen::Present(c)) if c.prepaid => match c.auto_renew {
                Some(RenewalStatus::AutoRenewal) => on.push(id.clone()),
                Some(_) => {}
                None => unknown.push(id.clone()),
            },
            _ => {}
        }
    }
    if !unknown.is_empty() {
        return Ok(false);
    }
    if on.is_empty() {
        return Ok(true);
    }
    if e.inner.cfg.takeover {
        if !p.dry {
            due::take_over(e, &a.region_id, &on).await?;
        }
        return Ok(false);
    }
    let text = format!(
        "attempt {} (ClientToken {}) is undecided and cloud-side auto-renew is on for {}: it is not re-sent while both could pay; \
         switch cloud-side auto-renew off (or set [ecs] takeover = true)",
        a.attempt_id,
        a.client_token,
        on.iter().map(HostId::as_str).collect::<Vec<_>>().join(", ")
    );
    let held: HashSet<&HostId> = on.iter().collect();
    let rows: Vec<_> = a
        .hosts
        .iter()
        .filter(|(id, _)| held.contains(id))
        .map(|(id, cycle)| record::notice(id, *cycle, NoticeKind::DoubleRenewRisk, text.clone()))
        .collect();
    let n = if p.dry {
        0
    } else {
        e.inner.store.notices_now(&rows, e.now()).await?
    };
    p.with(|r| {
        r.notices += n;
        r.skipped_double_renew
            .extend(on.iter().map(ToString::to_string));
    });
    Ok(false)
}
