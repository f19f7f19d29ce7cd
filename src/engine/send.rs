//! Sending a written-ahead attempt: always its recorded parameters and token, re-sent with
//! backoff while no definite answer comes and the window's retry budget lasts; then the hosts
//! are re-read and the protocol decides. An attempt left without a definite answer stays open.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;

use super::pass::PassCtx;
use super::{Engine, EngineError, observe, record};
use crate::domain::HostId;
use crate::domain::protocol::{Answer, AttemptFacts, EventKind, Seen, decide_answered};
use crate::ecs::models::RenewDedicatedHostsResponse;
use crate::store::{AnswerRecord, Attempt, Event};

/// Host groups to retry at once (a definite refusal of a batch), each as a new attempt.
pub(crate) type Retry = Vec<Vec<(HostId, DateTime<Utc>)>>;

/// Sends `attempt` until a definite answer (or the budget runs out), re-reads, decides, records.
pub(crate) async fn execute(
    e: &Engine,
    p: &Arc<PassCtx>,
    attempt: &Attempt,
) -> Result<Retry, EngineError> {
    p.worked_on(attempt.attempt_id);
    let Some((answer, record)) = send_until_definite(e, p, attempt).await? else {
        record::undecided(p, attempt);
        return Ok(Vec::new());
    };
    let ids: Vec<HostId> = attempt.hosts.iter().map(|(id, _)| id.clone()).collect();
    let seen: BTreeMap<HostId, Seen> = match observe::read(
        &e.inner.client,
        p,
        &attempt.region_id,
        &ids,
        false,
    )
    .await
    {
        Ok(s) => s,
        Err(err) => {
            // The answer is recorded as an event; the next pass re-reads and decides.
            tracing::warn!(attempt = attempt.attempt_id, client_token = %attempt.client_token, error = %err,
                    "cannot re-read the hosts after the answer; the attempt stays open until the next pass");
            record::undecided(p, attempt);
            return Ok(Vec::new());
        }
    };
    let facts = AttemptFacts {
        hosts: &attempt.hosts,
        period: attempt.period,
    };
    let decision = decide_answered(&facts, answer, &seen);
    record::apply(e, p, attempt, decision, record).await
}

/// The send loop. `None`: no definite answer in this pass (the attempt stays open).
async fn send_until_definite(
    e: &Engine,
    p: &Arc<PassCtx>,
    attempt: &Attempt,
) -> Result<Option<(Answer, AnswerRecord)>, EngineError> {
    let store = &e.inner.store;
    let mut sends = 0u32;
    loop {
        if p.stopped() || e.stopping() {
            return Ok(None);
        }
        sends += 1;
        store
            .record_event(
                attempt.attempt_id,
                event(EventKind::Sent, &AnswerRecord::default()),
                e.now(),
            )
            .await?;
        tracing::info!(attempt = attempt.attempt_id, client_token = %attempt.client_token,
            hosts = attempt.hosts.len(), region = %attempt.region_id, send = sends, "sending RenewDedicatedHosts");
        let result: Result<RenewDedicatedHostsResponse, _> = e
            .inner
            .client
            .call_once("RenewDedicatedHosts", &attempt.region_id, &attempt.params)
            .await;
        let (answer, rec, kind) = answer_of(&result);
        store
            .record_event(attempt.attempt_id, event(kind, &rec), e.now())
            .await?;
        match answer {
            Answer::Undecided => {
                let wait = backoff(e, sends);
                if Instant::now() + wait >= p.deadline {
                    tracing::warn!(attempt = attempt.attempt_id, client_token = %attempt.client_token,
                        error = rec.message.as_deref().unwrap_or(""),
                        "no definite answer within in_window_retry; the attempt stays open and is resolved with the same ClientToken");
                    return Ok(None);
                }
                tracing::warn!(attempt = attempt.attempt_id, client_token = %attempt.client_token,
                    error = rec.message.as_deref().unwrap_or(""), "no definite answer; re-sending the same request");
                tokio::time::sleep(wait).await;
            }
            Answer::Unauthorized => {
                let why = rec.message.clone().unwrap_or_default();
                let why = if why.starts_with("credentials (") {
                    format!("RenewDedicatedHosts was not sent: {why}")
                } else {
                    format!("RenewDedicatedHosts was refused: {why}")
                };
                record::config_error(e, p, &why).await?;
                return Ok(None);
            }
            definite => {
                if let Some(rid) = &rec.request_id {
                    tracing::info!(attempt = attempt.attempt_id, client_token = %attempt.client_token,
                        request_id = %rid, answer = ?definite, "RenewDedicatedHosts answered");
                }
                return Ok(Some((definite, rec)));
            }
        }
    }
}

/// What one send brought back, as the protocol and the audit trail see it.
fn answer_of(
    result: &Result<RenewDedicatedHostsResponse, crate::ecs::EcsError>,
) -> (Answer, AnswerRecord, EventKind) {
    match result {
        Ok(resp) => (
            Answer::Accepted,
            AnswerRecord {
                http_status: Some(200),
                request_id: Some(resp.request_id.clone()),
                ..AnswerRecord::default()
            },
            EventKind::Answer,
        ),
        Err(err) => {
            let api = err.api();
            let rec = AnswerRecord {
                http_status: api.map(|a| a.status),
                code: api.map(|a| a.code.clone()),
                message: Some(err.to_string()),
                request_id: api.and_then(|a| a.request_id.clone()),
            };
            let kind = if api.is_some() {
                EventKind::Answer
            } else {
                EventKind::NoAnswer
            };
            (err.answer(), rec, kind)
        }
    }
}

fn event(kind: EventKind, r: &AnswerRecord) -> Event<'_> {
    Event {
        kind,
        http_status: r.http_status,
        code: r.code.as_deref(),
        message: r.message.as_deref(),
        request_id: r.request_id.as_deref(),
    }
}

/// Full-jitter exponential backoff for the n-th send (1-based).
fn backoff(e: &Engine, sends: u32) -> Duration {
    let cfg = &e.inner.cfg;
    let exp = cfg
        .backoff_base
        .saturating_mul(1u32 << sends.saturating_sub(1).min(16))
        .min(cfg.backoff_cap);
    let ms = u64::try_from(exp.as_millis()).unwrap_or(u64::MAX).max(2);
    Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
}
