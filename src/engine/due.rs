//! Step 2 of a pass: the hosts to look at, in batches of one region and period. Each batch is
//! read (expiry and cloud-side auto-renew) right before it is written ahead; the protocol
//! decides per host; what the read taught is recorded; the hosts to send for become one
//! attempt, written ahead with its token and sent. A definite refusal of a batch retries its
//! hosts in smaller attempts in the same window.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;

use super::pass::PassCtx;
use super::send::{self, Retry};
use super::{Engine, EngineError, observe, record};
use crate::domain::protocol::{
    AttemptKind, Closure, CycleFacts, ManualGuard, NoticeKind, PreSend, PreSendDecision, Seen,
    Skip, decide_manual, decide_pre_send,
};
use crate::domain::time::to_db;
use crate::domain::{ClientToken, HostId, Period, RenewalStatus};
use crate::ecs::client::MAX_PER_CALL;
use crate::ecs::{EcsClient, EcsError, ErrorClass};
use crate::store::{Attempt, HostRecord, NewAttempt, NoticeRow, Observation, WriteAheadError};

/// Hosts to look at together: one region, one period, at most `batch_size`.
pub(crate) struct Batch {
    pub(crate) kind: AttemptKind,
    pub(crate) window: DateTime<Utc>,
    pub(crate) region: String,
    pub(crate) period: Period,
    pub(crate) hosts: Vec<HostRecord>,
    /// The attempt this batch follows in the same window (a split), for the token's lineage.
    pub(crate) parent: Option<i64>,
    /// A caller-chosen token (`renew --client-token`), used as given.
    pub(crate) token: Option<ClientToken>,
    /// `renew --force`: a person lifted the window guards (recorded on the attempt).
    pub(crate) force: bool,
}

pub(crate) async fn run(e: &Engine, p: &Arc<PassCtx>) -> Result<(), EngineError> {
    let decided = if p.dry {
        p.take_dry_decided()
    } else {
        Vec::new()
    };
    let candidates = if decided.is_empty() {
        e.inner.store.candidates(p.window).await?
    } else {
        // What step 1 of the real pass records frees hosts (a cycle renewed may leave the next
        // one due at once): choose them as it will.
        e.inner
            .store
            .candidates_after(p.window, &decided, e.now())
            .await?
    };
    let mut groups: BTreeMap<(String, Period), Vec<HostRecord>> = BTreeMap::new();
    for h in candidates {
        let period = h.effective_policy().period;
        groups
            .entry((h.host.region_id.clone(), period))
            .or_default()
            .push(h);
    }
    let size = e.inner.cfg.batch_size.clamp(1, MAX_PER_CALL);
    let mut batches = Vec::new();
    for ((region, period), mut hosts) in groups {
        while !hosts.is_empty() {
            let rest = hosts.split_off(hosts.len().min(size));
            batches.push(Batch {
                kind: AttemptKind::Scheduled,
                window: p.window,
                region: region.clone(),
                period,
                hosts,
                parent: None,
                token: None,
                force: false,
            });
            hosts = rest;
        }
    }
    if e.inner.cfg.concurrency <= 1 {
        // One at a time, in order: a pass whose requests come in a repeatable order.
        for b in batches {
            work(e, p, b).await?;
        }
        return Ok(());
    }
    let sem = Arc::new(Semaphore::new(e.inner.cfg.concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for batch in batches {
        let (e, p, sem) = (e.clone(), p.clone(), sem.clone());
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            work(&e, &p, batch).await
        });
    }
    join_all(tasks).await
}

/// A batch and the retries it leads to, one after another.
pub(crate) async fn work(e: &Engine, p: &Arc<PassCtx>, first: Batch) -> Result<(), EngineError> {
    let mut queue = VecDeque::from([first]);
    while let Some(b) = queue.pop_front() {
        if p.stopped() || e.stopping() {
            break;
        }
        let Some(attempt) = prepare(e, p, &b).await? else {
            continue;
        };
        let retry = send::execute(e, p, &attempt).await?;
        queue.extend(retry_batches(e, &attempt, retry).await?);
    }
    Ok(())
}

/// Runs the retries a decision asked for (after an attempt resolved outside [`work`]).
pub(crate) async fn retry(
    e: &Engine,
    p: &Arc<PassCtx>,
    a: &Attempt,
    groups: Retry,
) -> Result<(), EngineError> {
    for b in retry_batches(e, a, groups).await? {
        work(e, p, b).await?;
    }
    Ok(())
}

async fn retry_batches(e: &Engine, a: &Attempt, groups: Retry) -> Result<Vec<Batch>, EngineError> {
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let ids: Vec<HostId> = g.into_iter().map(|(id, _)| id).collect();
        let hosts = e.inner.store.hosts_by_ids(&ids).await?;
        if hosts.is_empty() {
            continue;
        }
        out.push(Batch {
            kind: a.kind,
            window: a.window_at,
            region: a.region_id.clone(),
            period: a.period,
            hosts,
            parent: Some(a.attempt_id),
            token: None,
            force: false,
        });
    }
    Ok(out)
}

/// Reads the batch, records what the read taught, and writes ahead the attempt for the hosts
/// the protocol says to send for. `None` when there is nothing to send.
async fn prepare(e: &Engine, p: &Arc<PassCtx>, b: &Batch) -> Result<Option<Attempt>, EngineError> {
    let ids: Vec<HostId> = b.hosts.iter().map(|h| h.host.id.clone()).collect();
    let seen = match observe::read(&e.inner.client, p, &b.region, &ids, true).await {
        Ok(s) => s,
        Err(err) => {
            if b.kind == AttemptKind::Manual {
                return Err(EngineError::Unreadable(err.to_string()));
            }
            unreadable(e, p, &b.region, &err).await?;
            return Ok(None);
        }
    };
    let refs: Vec<&HostRecord> = b.hosts.iter().collect();
    let facts = e.inner.store.cycle_facts(&refs, b.window).await?;
    let (mut sends, takeovers) = decide_batch(e, p, b, &seen, &facts, true).await?;
    if p.dry {
        // Taken over first, then read again and sent: planned as sends for the cycle read now.
        for id in &takeovers {
            if let Some(Seen::Present(c)) = seen.get(id) {
                sends.push((id.clone(), c.expiry));
            }
        }
    } else if !takeovers.is_empty() {
        // Cloud-side auto-renew switched off first; then read again before paying.
        take_over(e, &b.region, &takeovers).await?;
        let again = observe::read(&e.inner.client, p, &b.region, &takeovers, true)
            .await
            .map_err(|err| EngineError::Unreadable(err.to_string()));
        if let Ok(again) = again {
            let sub = Batch {
                kind: b.kind,
                window: b.window,
                region: b.region.clone(),
                period: b.period,
                hosts: b
                    .hosts
                    .iter()
                    .filter(|h| takeovers.contains(&h.host.id))
                    .cloned()
                    .collect(),
                parent: b.parent,
                token: None,
                force: b.force,
            };
            let (more, _) = decide_batch(e, p, &sub, &again, &facts, false).await?;
            sends.extend(more);
        }
    }
    if sends.is_empty() || p.stopped() || e.stopping() {
        return Ok(None);
    }
    sends.sort();
    write_ahead(e, p, b, sends, &facts).await
}

type Facts = HashMap<HostId, (CycleFacts, HashMap<DateTime<Utc>, i64>)>;

/// The protocol's decision for every host of the batch, recorded; returns the hosts to send for
/// (with their cycles) and, if `allow_takeover`, the hosts whose cloud-side auto-renew must be
/// switched off first.
async fn decide_batch(
    e: &Engine,
    p: &Arc<PassCtx>,
    b: &Batch,
    seen: &BTreeMap<HostId, Seen>,
    facts: &Facts,
    allow_takeover: bool,
) -> Result<(Vec<(HostId, DateTime<Utc>)>, Vec<HostId>), EngineError> {
    let cfg = &e.inner.cfg;
    let mut obs = Vec::with_capacity(b.hosts.len());
    let mut sends = Vec::new();
    let mut takeovers = Vec::new();
    for h in &b.hosts {
        let id = &h.host.id;
        let s = seen.get(id).cloned().unwrap_or(Seen::Unproven);
        if s == Seen::Unproven {
            // Not proven gone, not seen: nothing to record or decide; read again next pass.
            continue;
        }
        let f = facts.get(id).map(|(f, _)| f.clone()).unwrap_or_default();
        let takeover = cfg.takeover && allow_takeover;
        let d = match b.kind {
            AttemptKind::Scheduled => decide_pre_send(&f, &s, b.window, &cfg.schedule, takeover),
            AttemptKind::Manual => decide_manual(
                &f,
                &s,
                ManualGuard {
                    now: e.now(),
                    schedule: &cfg.schedule,
                    takeover,
                    force: b.force,
                },
            ),
        };
        let o = observation(p, h, &s, &d);
        match d.action {
            PreSend::Send(cycle) => sends.push((id.clone(), cycle)),
            PreSend::TakeOver(_) => takeovers.push(id.clone()),
            _ => {}
        }
        obs.push(o);
    }
    if !p.dry {
        let n: usize = obs.iter().map(|o| o.notices.len()).sum();
        e.inner
            .store
            .apply_observations(b.window, &obs, e.now())
            .await?;
        p.with(|r| r.notices += n);
    }
    Ok((sends, takeovers))
}

/// What one host's decision records and reports.
fn observation(p: &PassCtx, h: &HostRecord, s: &Seen, d: &PreSendDecision) -> Observation {
    let id = &h.host.id;
    let read = match s {
        Seen::Present(c) => Some(c.clone()),
        Seen::Absent | Seen::Unproven => None,
    };
    let mut close = Vec::new();
    let mut notices = Vec::new();
    if let (Some(old), Some(c)) = (d.close_inventory_cycle, &read) {
        close.push((old, Closure::RenewedElsewhere));
        notices.push(record::notice(
            id,
            old,
            NoticeKind::Renewed,
            format!(
                "{id} was already renewed (by hand or by the cloud): expiry {} → {}; nothing sent",
                to_db(old),
                to_db(c.expiry)
            ),
        ));
        p.with(|r| r.already_renewed.push(id.to_string()));
    }
    match &d.action {
        PreSend::Close(cycle, closure) => {
            close.push((*cycle, *closure));
            notices.push(closed_notice(id, *cycle, *closure));
            p.with(|r| match closure {
                Closure::Lapsed => r.lapsed.push(id.to_string()),
                _ => r.gone.push(id.to_string()),
            });
        }
        PreSend::Skip(reason) => {
            let cycle = read.as_ref().map_or(h.host.expired_time, |c| c.expiry);
            notices.extend(skipped_for(p, id, *reason, cycle));
        }
        _ => {}
    }
    Observation {
        host_id: id.clone(),
        read,
        adopt: d.adopt,
        close,
        notices,
    }
}

/// The notice of a cycle closed without a renewal here.
fn closed_notice(id: &HostId, cycle: DateTime<Utc>, closure: Closure) -> NoticeRow {
    let (kind, text) = match closure {
        Closure::Lapsed => (
            NoticeKind::Lapsed,
            format!(
                "{id} expired at {} without a renewal (the cloud shows it locked); no further attempts for this cycle",
                to_db(cycle)
            ),
        ),
        _ => (
            NoticeKind::RenewalFailed,
            format!(
                "{id} left automatic renewal: the cloud no longer returns it as a PrePaid host"
            ),
        ),
    };
    record::notice(id, cycle, kind, text)
}

/// Reports a host not sent for `reason` (the cloud's cycle is `cycle`); the notice it deserves,
/// if any.
fn skipped_for(p: &PassCtx, id: &HostId, reason: Skip, cycle: DateTime<Utc>) -> Option<NoticeRow> {
    let mut notice = None;
    match reason {
        Skip::DoubleRenewRisk => {
            notice = Some(record::notice(
                id,
                cycle,
                NoticeKind::DoubleRenewRisk,
                format!(
                    "{id} is AutoRenewal here and in the cloud (DescribeDedicatedHostAutoRenew); skipped to avoid paying twice (set [ecs] takeover = true, or switch one side off)"
                ),
            ));
            p.with(|r| r.skipped_double_renew.push(id.to_string()));
        }
        Skip::StaleRead => {
            notice = Some(record::notice(
                id,
                cycle,
                NoticeKind::NeedsAttention,
                format!(
                    "the cloud shows {id} expiring at {}, a cycle already recorded as renewed: a stale answer; nothing is sent or changed, and it is read again next pass",
                    to_db(cycle)
                ),
            ));
            skipped(
                p,
                id,
                Skip::StaleRead,
                "the cloud showed a cycle already recorded as renewed".into(),
            );
        }
        Skip::AutoRenewUnknown => {
            tracing::warn!(host_id = %id, "cloud-side auto-renew unknown; not sent now");
            skipped(
                p,
                id,
                Skip::AutoRenewUnknown,
                "the cloud-side auto-renew status could not be read".into(),
            );
        }
        Skip::NotInWindow => {
            skipped(
                p,
                id,
                Skip::NotInWindow,
                format!(
                    "expires {}: no window of this cycle is open yet (it was renewed already, or expires far ahead); --force pays anyway",
                    to_db(cycle)
                ),
            );
        }
        Skip::RenewedMeanwhile => {
            skipped(
                p,
                id,
                Skip::RenewedMeanwhile,
                format!(
                    "renewed elsewhere since the inventory was read: it now expires {}; run renew again (or --force) to pay for that cycle",
                    to_db(cycle)
                ),
            );
        }
        _ => {}
    }
    notice
}

fn skipped(p: &PassCtx, id: &HostId, reason: Skip, detail: String) {
    p.with(|r| {
        r.skipped.push(crate::engine::pass::SkippedHost {
            host_id: id.to_string(),
            reason,
            detail,
        })
    });
}

async fn write_ahead(
    e: &Engine,
    p: &Arc<PassCtx>,
    b: &Batch,
    sends: Vec<(HostId, DateTime<Utc>)>,
    facts: &Facts,
) -> Result<Option<Attempt>, EngineError> {
    // Lineage: the split parent, else the latest attempt of this window on these cycles (a
    // settled one), so that a new attempt never reuses a token.
    let lineage = b.parent.unwrap_or_else(|| {
        sends
            .iter()
            .filter_map(|(id, c)| facts.get(id).and_then(|(_, l)| l.get(c)).copied())
            .max()
            .unwrap_or(0)
    });
    let token = b.token.clone().unwrap_or_else(|| {
        ClientToken::derive(
            b.kind.as_str(),
            &b.region,
            b.period,
            b.window,
            &sends,
            lineage,
        )
    });
    let ids: Vec<HostId> = sends.iter().map(|(id, _)| id.clone()).collect();
    if p.dry {
        planned(p, b, &sends, &ids, &token);
        return Ok(None);
    }
    let Some(actor) = &e.inner.actor else {
        return Ok(None);
    };
    let new = NewAttempt {
        kind: b.kind,
        window_at: b.window,
        region_id: &b.region,
        period: b.period,
        client_token: token.clone(),
        params: EcsClient::renew_params(&b.region, &ids, b.period, Some(&token)),
        parent: b.parent.or((lineage > 0).then_some(lineage)),
        hosts: sends,
        forced: b.force,
    };
    match e.inner.store.write_ahead(actor.epoch(), new, e.now()).await {
        Ok(a) => {
            p.written(a.attempt_id);
            p.with(|r| r.due.extend(ids.iter().map(ToString::to_string)));
            Ok(Some(a))
        }
        Err(WriteAheadError::Fenced { mine, current }) => {
            let why = format!("epoch {mine} was fenced out by epoch {current}");
            p.halt(why.clone());
            Err(EngineError::Fenced(why))
        }
        Err(WriteAheadError::TokenInUse(t)) if b.token.is_some() => {
            Err(EngineError::Refused(format!(
                "ClientToken {t} was used by an earlier attempt; see `ddh-renewd audit attempts`"
            )))
        }
        Err(WriteAheadError::TokenInUse(t)) => {
            token_in_use(e, p, &ids, &t).await?;
            Ok(None)
        }
        Err(WriteAheadError::Store(s)) => Err(s.into()),
    }
}

/// A dry run's record of the request the real pass would write ahead and send.
fn planned(
    p: &PassCtx,
    b: &Batch,
    sends: &[(HostId, DateTime<Utc>)],
    ids: &[HostId],
    token: &ClientToken,
) {
    let params = EcsClient::renew_params(&b.region, ids, b.period, Some(token));
    p.with(|r| {
        r.due.extend(ids.iter().map(ToString::to_string));
        r.planned.push(crate::engine::pass::PlannedAttempt {
            region_id: b.region.clone(),
            period: b.period.to_string(),
            hosts: sends
                .iter()
                .map(|(h, c)| (h.to_string(), to_db(*c)))
                .collect(),
            client_token: token.to_string(),
            params: crate::ecs::sign::canonical_query(&params),
        })
    });
}

/// A derived token an earlier attempt already holds: nothing is sent, and a person is told.
async fn token_in_use(
    e: &Engine,
    p: &PassCtx,
    ids: &[HostId],
    t: &ClientToken,
) -> Result<(), EngineError> {
    let text = format!(
        "a new attempt for {} would reuse ClientToken {t}, which an earlier attempt holds; nothing was sent — see `ddh-renewd audit attempts`",
        ids.iter()
            .map(HostId::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let rows: Vec<NoticeRow> = ids
        .iter()
        .map(|id| NoticeRow {
            host_id: id.to_string(),
            cycle: "-".into(),
            kind: NoticeKind::NeedsAttention,
            message: text.clone(),
        })
        .collect();
    let n = e.inner.store.notices_now(&rows, e.now()).await?;
    p.with(|r| r.notices += n);
    Ok(())
}

/// Switches cloud-side auto-renew off (`takeover = true`), audited.
pub(crate) async fn take_over(e: &Engine, region: &str, ids: &[HostId]) -> Result<(), EngineError> {
    let mut request_ids = Vec::new();
    for chunk in ids.chunks(MAX_PER_CALL) {
        match e
            .inner
            .client
            .modify_auto_renew(region, chunk, RenewalStatus::Normal, None)
            .await
        {
            Ok(rid) => request_ids.push(rid),
            Err(err) => {
                tracing::warn!(region, error = %err, "cannot switch cloud-side auto-renew off; these hosts are not sent");
                return Ok(());
            }
        }
    }
    tracing::info!(
        region,
        hosts = ids.len(),
        "took over renewal from cloud-side auto-renew"
    );
    e.inner
        .store
        .record_takeover(region, ids, &request_ids, e.now())
        .await?;
    Ok(())
}

/// A read that failed: nothing is sent or decided for those hosts now; a configuration-class
/// error stops the pass and raises a notice.
pub(crate) async fn unreadable(
    e: &Engine,
    p: &PassCtx,
    region: &str,
    err: &EcsError,
) -> Result<(), EngineError> {
    tracing::warn!(region, error = %err, "cannot read hosts from ECS; nothing is sent for them now");
    if err.class() == ErrorClass::Configuration {
        let why = match err {
            // Nothing was sent: the credentials could not be had.
            EcsError::Credentials(m) => format!("no credentials to sign with: {m}"),
            other => format!("ECS refused the request: {other}"),
        };
        record::config_error(e, p, &why).await?;
    }
    Ok(())
}

/// Waits for every task; the first error wins, a panicked task is logged.
pub(crate) async fn join_all(
    mut tasks: tokio::task::JoinSet<Result<(), EngineError>>,
) -> Result<(), EngineError> {
    let mut first_err = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => tracing::error!(error = %e, "a batch task failed"),
        }
    }
    first_err.map_or(Ok(()), Err)
}
