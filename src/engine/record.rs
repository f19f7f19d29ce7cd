//! Decisions into the audit trail: each protocol decision becomes one transaction (outcome,
//! host outcomes, closures, expiries, notices), a block with its `needs_attention` notice, or
//! an attempt left open. Notice texts live here.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::pass::{PassCtx, PassReport};
use super::send::Retry;
use super::{Engine, EngineError};
use crate::domain::HostId;
use crate::domain::protocol::{
    AttemptOutcome, BlockReason, Decision, HostDecision, HostOutcome, NoticeKind, WaitReason,
};
use crate::domain::time::to_db;
use crate::store::{AnswerRecord, Attempt, NoticeRow, Verdict};

pub(crate) fn notice(
    host: &HostId,
    cycle: DateTime<Utc>,
    kind: NoticeKind,
    message: String,
) -> NoticeRow {
    NoticeRow {
        host_id: host.to_string(),
        cycle: to_db(cycle),
        kind,
        message,
    }
}

/// The notice a host's outcome raises, if any.
fn outcome_notice(a: &Attempt, h: &HostDecision, code: Option<&str>) -> Option<NoticeRow> {
    let (id, e) = (&h.host, to_db(h.cycle));
    let after = h.expiry_after.map(to_db).unwrap_or_default();
    let (kind, text) = match h.outcome {
        HostOutcome::Renewed => (
            NoticeKind::Renewed,
            format!(
                "{id} renewed: expiry {e} → {after} (ClientToken {})",
                a.client_token
            ),
        ),
        HostOutcome::RenewedElsewhere => (
            NoticeKind::Renewed,
            format!(
                "{id} was renewed elsewhere (by hand or by the cloud): expiry {e} → {after}; not credited to ClientToken {}",
                a.client_token
            ),
        ),
        HostOutcome::Failed => (
            NoticeKind::RenewalFailed,
            format!(
                "{id} was not renewed in the window of {} ({}); next attempt in the next window",
                to_db(a.window_at),
                code.unwrap_or("refused")
            ),
        ),
        HostOutcome::Gone => (
            NoticeKind::RenewalFailed,
            format!(
                "{id} left automatic renewal: the cloud no longer returns it as a PrePaid host"
            ),
        ),
        HostOutcome::Lapsed => (
            NoticeKind::Lapsed,
            format!(
                "{id} expired at {e} without a renewal (the cloud shows it locked); no further attempts for this cycle"
            ),
        ),
        _ => return None,
    };
    Some(notice(id, h.cycle, kind, text))
}

/// Adds decided hosts to the report lists.
pub(crate) fn report_hosts(r: &mut PassReport, hosts: &[HostDecision]) {
    for h in hosts {
        let id = h.host.to_string();
        match h.outcome {
            HostOutcome::Renewed => r.renewed.push(id),
            HostOutcome::RenewedElsewhere => r.already_renewed.push(id),
            HostOutcome::Failed => r.failed.push(id),
            HostOutcome::Lapsed => r.lapsed.push(id),
            HostOutcome::Gone => r.gone.push(id),
            _ => {}
        }
    }
}

pub(crate) fn undecided(p: &PassCtx, a: &Attempt) {
    p.with(|r| {
        r.undecided
            .extend(a.hosts.iter().map(|(id, _)| id.to_string()))
    });
}

/// Records what the protocol decided for `a`; returns host groups to retry at once.
pub(crate) async fn apply(
    e: &Engine,
    p: &Arc<PassCtx>,
    a: &Attempt,
    decision: Decision,
    answer: AnswerRecord,
) -> Result<Retry, EngineError> {
    match decision {
        Decision::Decide {
            outcome,
            hosts,
            retry,
        } => {
            let notices: Vec<NoticeRow> = hosts
                .iter()
                .filter_map(|h| outcome_notice(a, h, answer.code.as_deref()))
                .collect();
            let n = notices.len();
            let verdict = Verdict {
                outcome,
                answer: answer.clone(),
                hosts: &hosts,
                notices,
            };
            if !e.inner.store.decide(a, &verdict, e.now()).await? {
                tracing::warn!(
                    attempt = a.attempt_id,
                    "decided already (settled meanwhile?); nothing recorded"
                );
                return Ok(Vec::new());
            }
            log_decision(a, outcome, &hosts, &answer);
            p.with(|r| {
                report_hosts(r, &hosts);
                r.notices += n;
            });
            if outcome == AttemptOutcome::ConfigError {
                let why = answer
                    .message
                    .unwrap_or_else(|| "the parameters were refused".into());
                config_error(
                    e,
                    p,
                    &format!("RenewDedicatedHosts refused the parameters: {why}"),
                )
                .await?;
            }
            Ok(retry)
        }
        Decision::Block { reason, hosts } => {
            block(e, p, a, reason, &hosts).await?;
            Ok(Vec::new())
        }
        Decision::Wait(WaitReason::AcceptedNotMoved) => {
            let text = format!(
                "attempt {} (ClientToken {}) was accepted but the expiry of {} has not moved yet; it stays undecided and is re-read every pass — check the order in the console if this persists",
                a.attempt_id,
                a.client_token,
                hosts_list(a)
            );
            attention(e, p, a, &text).await?;
            undecided(p, a);
            Ok(Vec::new())
        }
        Decision::Wait(WaitReason::NoDefiniteAnswer) | Decision::Resend => {
            undecided(p, a);
            Ok(Vec::new())
        }
    }
}

/// The decision in the log: one line for the attempt (renewals are news, refusals need a look,
/// refused parameters need a fix), one per host, so that a host's history can be found in the
/// log or the journal by HOST_ID with the ClientToken and RequestId that decided it.
fn log_decision(
    a: &Attempt,
    outcome: AttemptOutcome,
    hosts: &[HostDecision],
    answer: &AnswerRecord,
) {
    let rid = answer.request_id.as_deref().unwrap_or("");
    let code = answer.code.as_deref().unwrap_or("");
    match outcome {
        AttemptOutcome::Failed | AttemptOutcome::Split => tracing::warn!(
            attempt = a.attempt_id, client_token = %a.client_token, request_id = rid,
            code, outcome = %outcome, "attempt refused"),
        AttemptOutcome::ConfigError => tracing::error!(
            attempt = a.attempt_id, client_token = %a.client_token, request_id = rid,
            code, outcome = %outcome, "attempt refused: the parameters are wrong"),
        _ => tracing::info!(attempt = a.attempt_id, client_token = %a.client_token,
            request_id = rid, outcome = %outcome, "attempt decided"),
    }
    for h in hosts {
        let cycle = crate::domain::time::to_db(h.cycle);
        let after = h.expiry_after.map(crate::domain::time::to_db);
        let after = after.as_deref().unwrap_or("");
        match h.outcome {
            HostOutcome::Renewed | HostOutcome::RenewedElsewhere => tracing::info!(
                host_id = %h.host, cycle = %cycle, client_token = %a.client_token,
                request_id = rid, outcome = %h.outcome, expiry_after = after, "host decided"),
            HostOutcome::Retry => {}
            _ => tracing::warn!(
                host_id = %h.host, cycle = %cycle, client_token = %a.client_token,
                request_id = rid, code, outcome = %h.outcome, "host decided"),
        }
    }
}

fn hosts_list(a: &Attempt) -> String {
    a.hosts
        .iter()
        .map(|(id, _)| id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One `needs_attention` notice per host of the attempt.
async fn attention(e: &Engine, p: &PassCtx, a: &Attempt, text: &str) -> Result<(), EngineError> {
    let rows: Vec<NoticeRow> = a
        .hosts
        .iter()
        .map(|(id, cycle)| notice(id, *cycle, NoticeKind::NeedsAttention, text.to_owned()))
        .collect();
    let n = e.inner.store.notices_now(&rows, e.now()).await?;
    p.with(|r| r.notices += n);
    Ok(())
}

/// Blocks `a`: it can be neither re-sent nor replaced until a person settles it (or the cloud
/// closes every host).
pub(crate) async fn block(
    e: &Engine,
    p: &PassCtx,
    a: &Attempt,
    reason: BlockReason,
    why_hosts: &[HostId],
) -> Result<(), EngineError> {
    let named = why_hosts
        .iter()
        .map(HostId::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let detail = match reason {
        BlockReason::PartlyRenewedElsewhere => format!(
            "attempt {} (ClientToken {}) for {} has no definite answer, and {named} were renewed elsewhere meanwhile: \
             re-sending could pay for them again, and a new attempt could pay twice if this one still completes",
            a.attempt_id,
            a.client_token,
            hosts_list(a)
        ),
        BlockReason::TokenMismatch => format!(
            "the cloud holds ClientToken {} (attempt {}) with other parameters: another client used it",
            a.client_token, a.attempt_id
        ),
        BlockReason::ExpiryMovedBackwards => format!(
            "the cloud shows an expiry for {named} earlier than the one read before attempt {} (ClientToken {}) was sent",
            a.attempt_id, a.client_token
        ),
    };
    let text = format!(
        "{detail}. Check in the console or billing whether an order with ClientToken {} exists; if none does and \
         none will, run `ddh-renewd attempts settle {} --not-applied`. (`[ecs] batch_size = 1` avoids partial batches.)",
        a.client_token, a.attempt_id
    );
    let rows: Vec<NoticeRow> = a
        .hosts
        .iter()
        .map(|(id, cycle)| notice(id, *cycle, NoticeKind::NeedsAttention, text.clone()))
        .collect();
    let new = e
        .inner
        .store
        .block(a.attempt_id, reason, why_hosts, &detail, &rows, e.now())
        .await?;
    if new {
        tracing::error!(attempt = a.attempt_id, client_token = %a.client_token, reason = %reason, "{text}");
        p.with(|r| r.notices += rows.len());
    }
    p.with(|r| {
        r.blocked
            .extend(a.hosts.iter().map(|(id, _)| id.to_string()))
    });
    Ok(())
}

/// A configuration-class refusal: nothing more is sent in this pass; one `config_error` notice.
pub(crate) async fn config_error(e: &Engine, p: &PassCtx, why: &str) -> Result<(), EngineError> {
    if p.dry {
        p.halt(why.to_owned());
        return Ok(());
    }
    let text = format!("{why}. Nothing more is sent until the configuration is fixed.");
    tracing::error!("configuration error: {text}");
    let row = NoticeRow {
        host_id: "-".into(),
        cycle: "-".into(),
        kind: NoticeKind::ConfigError,
        message: text,
    };
    let n = e.inner.store.notices_now(&[row], e.now()).await?;
    p.with(|r| r.notices += n);
    p.halt(why.to_owned());
    Ok(())
}
