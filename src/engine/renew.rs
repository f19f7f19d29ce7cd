//! The renewal engine (SPEC §2.4, §2.5, §3): one pass over a window.
//!
//! 1. Resolve every attempt whose outcome is unknown (crash, timeout, dropped answer): re-read the
//!    expiry; if it moved the attempt renewed; if not, re-send the same request with the same
//!    ClientToken.
//! 2. Close cycles whose expiry passed unrenewed (`lapsed`), after one more look at the cloud.
//! 3. Select the due set from the database, re-read the expiries from the cloud, and record hosts
//!    already renewed elsewhere without sending anything.
//! 4. Write each batch ahead (hosts, exact parameters, ClientToken), then send it; transient
//!    failures retry with the same token until `in_window_retry` runs out; a definite error on a
//!    batch of several hosts splits it (new attempts, new tokens) to isolate the host at fault.
//! 5. Reminders for hosts renewed by hand; record the window run.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Serialize;
use tokio::sync::Semaphore;

use super::clock::Clock;
use crate::domain::time::to_db;
use crate::domain::{ChargeType, ClientToken, HostId, Period, RenewalStatus, Schedule};
use crate::ecs::client::MAX_PER_CALL;
use crate::ecs::error::is_idempotence_mismatch;
use crate::ecs::models::DedicatedHost;
use crate::ecs::{EcsClient, EcsError, ErrorClass};
use crate::store::engine::{Attempt, Event, HostResult, NewAttempt, Outcome, WindowRun};
use crate::store::{HostRecord, Store, StoreError};

/// Backoff between re-sends of one attempt within a window.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub schedule: Schedule,
    pub batch_size: usize,
    pub in_window_retry: Duration,
    pub reminder_days: Vec<u32>,
    pub takeover: bool,
    /// Batches in flight at once.
    pub concurrency: usize,
}

impl EngineConfig {
    pub fn from_config(c: &crate::config::Config) -> Self {
        Self {
            schedule: c.schedule.schedule(),
            batch_size: usize::try_from(c.ecs.batch_size)
                .unwrap_or(MAX_PER_CALL)
                .clamp(1, MAX_PER_CALL),
            in_window_retry: c.schedule.in_window_retry,
            reminder_days: c.notify.reminder_days.clone(),
            takeover: c.ecs.takeover,
            concurrency: 8,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One attempt as the pass report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptReport {
    pub attempt_id: i64,
    pub client_token: String,
    pub region_id: String,
    pub period: String,
    pub hosts: Vec<String>,
    pub sends: u32,
    pub outcome: String,
    pub code: Option<String>,
    pub request_id: Option<String>,
}

/// What a pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    pub window: String,
    pub trigger: String,
    pub dry_run: bool,
    pub resolved: Vec<AttemptReport>,
    pub due: Vec<String>,
    pub renewed: Vec<String>,
    pub already_renewed: Vec<String>,
    pub failed: Vec<String>,
    pub lapsed: Vec<String>,
    pub gone: Vec<String>,
    pub skipped_double_renew: Vec<String>,
    pub attempts: Vec<AttemptReport>,
    pub notices: usize,
    pub config_error: Option<String>,
    /// Attempts left unresolved (the cloud could not be read); resolved on the next pass.
    pub unresolved: usize,
}

type Shared = Arc<Mutex<PassReport>>;

fn push(report: &Shared, f: impl FnOnce(&mut PassReport)) {
    f(&mut report.lock().unwrap_or_else(|p| p.into_inner()));
}

pub struct Engine {
    store: Store,
    client: Arc<EcsClient>,
    cfg: EngineConfig,
    clock: Arc<dyn Clock>,
    /// Set on SIGTERM: no new sends; in-flight calls finish and are recorded.
    shutdown: Arc<AtomicBool>,
}

/// The cloud's view of a host, as re-read before and after an attempt.
#[derive(Debug, Clone)]
struct CloudHost {
    expiry: DateTime<Utc>,
    postpaid: bool,
}

impl Engine {
    pub fn new(
        store: Store,
        client: Arc<EcsClient>,
        cfg: EngineConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            client,
            cfg,
            clock,
            shutdown: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The flag that stops new sends (in-flight calls finish and are recorded).
    pub fn shutdown_handle(&self) -> Arc<AtomicBool> {
        self.shutdown.clone()
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn client(&self) -> &EcsClient {
        &self.client
    }

    pub fn client_handle(&self) -> Arc<EcsClient> {
        self.client.clone()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Does the window a pass run now belongs to still need a pass: not run yet, or (for the
    /// safety pass) hosts due in it, attempts unresolved, or cycles lapsing?
    pub async fn needs_pass(&self, only_if_not_run: bool) -> Result<bool, EngineError> {
        let now = self.now();
        let window = self.cfg.schedule.window_at_or_before(now);
        if !self.store.window_was_run(window).await? {
            return Ok(true);
        }
        if only_if_not_run {
            return Ok(false);
        }
        Ok(!self.store.due_hosts(window).await?.is_empty()
            || !self.store.unresolved_attempts().await?.is_empty()
            || !self.store.lapsing_hosts(now).await?.is_empty())
    }

    /// The window a pass run now belongs to.
    pub fn current_window(&self) -> DateTime<Utc> {
        self.cfg.schedule.window_at_or_before(self.now())
    }

    /// Re-reads the hosts from the cloud: id → expiry, charge type; absent ids are gone.
    async fn read_cloud(
        &self,
        region: &str,
        ids: &[HostId],
    ) -> Result<HashMap<String, CloudHost>, EcsError> {
        let hosts: Vec<DedicatedHost> = self
            .client
            .describe_dedicated_hosts(region, Some(ids))
            .await?;
        let mut out = HashMap::with_capacity(hosts.len());
        for h in hosts {
            match h.to_host() {
                Ok(host) => {
                    out.insert(
                        host.id.to_string(),
                        CloudHost {
                            expiry: host.expired_time,
                            postpaid: host.charge_type == ChargeType::PostPaid,
                        },
                    );
                }
                Err(why) => tracing::warn!(region, "ignoring a host ECS returned malformed: {why}"),
            }
        }
        Ok(out)
    }

    /// Runs one pass over the current window. `dry_run` reads and reports, writes and sends nothing.
    pub async fn pass(&self, trigger: &str, dry_run: bool) -> Result<PassReport, EngineError> {
        let started = self.now();
        let window = self.cfg.schedule.window_at_or_before(started);
        let report: Shared = Arc::new(Mutex::new(PassReport {
            window: to_db(window),
            trigger: trigger.to_owned(),
            dry_run,
            ..Default::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));

        if dry_run {
            let due = self.store.due_hosts(window).await?;
            push(&report, |r| {
                r.due = due.iter().map(|h| h.host.id.to_string()).collect()
            });
            let lapsing = self.store.lapsing_hosts(started).await?;
            push(&report, |r| {
                r.lapsed = lapsing.iter().map(|h| h.host.id.to_string()).collect()
            });
            return Ok(take(report));
        }

        self.resolve_unknown(&report, &stop).await?;
        if !stop.load(Ordering::SeqCst) {
            self.close_lapsed(&report).await?;
        }
        if !stop.load(Ordering::SeqCst) {
            self.renew_due(window, &report, &stop).await?;
        }
        self.reminders(window, &report).await?;

        let r = take(report);
        let result = if self.shutdown.load(Ordering::SeqCst) {
            "interrupted"
        } else if r.config_error.is_some() {
            "config_error"
        } else if !r.failed.is_empty() || r.unresolved > 0 {
            "failures"
        } else {
            "ok"
        };
        let run = WindowRun {
            window_at: to_db(window),
            trigger: trigger.to_owned(),
            started_at: to_db(started),
            finished_at: to_db(self.now()),
            due: len(&r.due),
            renewed: len(&r.renewed),
            already_renewed: len(&r.already_renewed),
            failed: len(&r.failed),
            lapsed: len(&r.lapsed),
            attempts: len(&r.attempts),
            result: result.to_owned(),
        };
        self.store.record_window_run(&run).await?;
        tracing::info!(window = %run.window_at, trigger, due = run.due, renewed = run.renewed,
            already_renewed = run.already_renewed, failed = run.failed, lapsed = run.lapsed, result, "window pass done");
        Ok(r)
    }

    /// Step 1: every attempt without an outcome is settled before anything else touches its
    /// hosts. Their hosts are re-read in bulk per region; attempts whose expiry moved (or whose
    /// cycle lapsed, or whose hosts are gone) are settled from that; the rest are re-sent with
    /// their own ClientToken, concurrently.
    async fn resolve_unknown(
        &self,
        report: &Shared,
        stop: &Arc<AtomicBool>,
    ) -> Result<(), EngineError> {
        let unresolved = self.store.unresolved_attempts().await?;
        if unresolved.is_empty() {
            return Ok(());
        }
        let mut by_region: BTreeMap<String, Vec<Attempt>> = BTreeMap::new();
        for a in unresolved {
            by_region.entry(a.region_id.clone()).or_default().push(a);
        }
        let mut resend = Vec::new();
        for (region, attempts) in by_region {
            let mut ids: Vec<HostId> = attempts
                .iter()
                .flat_map(|a| a.hosts.iter().map(|(id, _)| id.clone()))
                .collect();
            ids.sort();
            ids.dedup();
            let cloud = match self.read_cloud(&region, &ids).await {
                Ok(c) => c,
                Err(e) => {
                    self.note_unreadable(&e, report, stop).await?;
                    push(report, |r| r.unresolved += attempts.len());
                    continue;
                }
            };
            let now = self.now();
            for attempt in attempts {
                self.store
                    .record_event(
                        attempt.attempt_id,
                        Event {
                            kind: "resolve",
                            http_status: None,
                            code: None,
                            message: Some("re-read expiry after an unknown outcome"),
                            request_id: None,
                        },
                        now,
                    )
                    .await?;
                let moved = attempt
                    .hosts
                    .iter()
                    .any(|(id, cycle)| cloud.get(id.as_str()).is_some_and(|c| c.expiry > *cycle));
                let all_lapsed = attempt.hosts.iter().all(|(_, cycle)| *cycle <= now);
                let all_gone = attempt
                    .hosts
                    .iter()
                    .all(|(id, _)| !cloud.contains_key(id.as_str()));
                if moved || all_lapsed || all_gone {
                    let results = self.settle(&attempt, &cloud, now, None);
                    let outcome = if moved {
                        "renewed"
                    } else if all_lapsed {
                        "lapsed"
                    } else {
                        "host_gone"
                    };
                    self.finish(
                        &attempt,
                        Outcome {
                            outcome,
                            http_status: None,
                            code: None,
                            message: Some("resolved by re-reading the expiry"),
                            request_id: None,
                        },
                        results,
                        0,
                        report,
                    )
                    .await?;
                    move_last_to_resolved(report);
                } else {
                    resend.push(attempt);
                }
            }
        }
        // Unchanged and not lapsed: the same request with the same token again.
        let deadline = Instant::now() + self.cfg.in_window_retry;
        let sem = Arc::new(Semaphore::new(self.cfg.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for attempt in resend {
            let this = self.clone_handle();
            let (report, stop, sem) = (report.clone(), stop.clone(), sem.clone());
            tasks.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let resolved: Shared = Arc::new(Mutex::new(PassReport::default()));
                let r = this
                    .execute(attempt, resolved.clone(), stop, deadline)
                    .await;
                let sub = take(resolved);
                push(&report, |main| {
                    main.resolved.extend(sub.attempts);
                    main.renewed.extend(sub.renewed);
                    main.failed.extend(sub.failed);
                    main.lapsed.extend(sub.lapsed);
                    main.gone.extend(sub.gone);
                    main.notices += sub.notices;
                    main.unresolved += sub.unresolved;
                    if main.config_error.is_none() {
                        main.config_error = sub.config_error;
                    }
                });
                r
            });
        }
        join_all(tasks).await
    }

    /// Step 2: cycles whose expiry passed without a renewal lapse (after one more look).
    async fn close_lapsed(&self, report: &Shared) -> Result<(), EngineError> {
        let lapsing = self.store.lapsing_hosts(self.now()).await?;
        for (region, hosts) in by_region(&lapsing) {
            let ids: Vec<HostId> = hosts.iter().map(|h| h.host.id.clone()).collect();
            let cloud = match self.read_cloud(&region, &ids).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(region, error = %e, "cannot re-read lapsing hosts; will retry next pass");
                    continue;
                }
            };
            let mut results = Vec::new();
            for h in hosts {
                let id = h.host.id.clone();
                let cycle = h.host.expired_time;
                match cloud.get(id.as_str()) {
                    Some(c) if c.expiry > cycle => {
                        results.push(renewed_elsewhere(id.clone(), cycle, c.expiry));
                        push(report, |r| r.already_renewed.push(id.to_string()));
                    }
                    _ => {
                        results.push(HostResult {
                            host_id: id.clone(),
                            cycle,
                            outcome: "lapsed",
                            expiry_after: None,
                            close: Some("lapsed"),
                            notice: Some(("lapsed", format!("{id} expired at {} without a renewal; no further attempts are made for this cycle", to_db(cycle)))),
                        });
                        push(report, |r| r.lapsed.push(id.to_string()));
                    }
                }
            }
            push(report, |r| {
                r.notices += results.iter().filter(|x| x.notice.is_some()).count()
            });
            self.store.finish(None, &results, self.now()).await?;
        }
        Ok(())
    }

    /// Steps 3–4: the due set, re-read, written ahead, sent in batches.
    async fn renew_due(
        &self,
        window: DateTime<Utc>,
        report: &Shared,
        stop: &Arc<AtomicBool>,
    ) -> Result<(), EngineError> {
        let mut due = self.store.due_hosts(window).await?;
        // A host auto-renewed by the cloud as well would be paid for twice: skip it.
        if !self.cfg.takeover {
            let mut kept = Vec::with_capacity(due.len());
            for h in due {
                if h.cloud_renewal
                    .as_ref()
                    .is_some_and(|c| c.status == RenewalStatus::AutoRenewal.as_str())
                {
                    let id = h.host.id.to_string();
                    let msg = format!(
                        "{id} is AutoRenewal here and in the cloud; skipped to avoid paying twice (set [ecs] takeover = true, or change one side)"
                    );
                    if self
                        .store
                        .notice(
                            &id,
                            &to_db(h.host.expired_time),
                            "double_renew_risk",
                            &msg,
                            self.now(),
                        )
                        .await?
                    {
                        push(report, |r| r.notices += 1);
                    }
                    push(report, |r| r.skipped_double_renew.push(id));
                } else {
                    kept.push(h);
                }
            }
            due = kept;
        }
        push(report, |r| {
            r.due = due.iter().map(|h| h.host.id.to_string()).collect()
        });
        if due.is_empty() {
            return Ok(());
        }
        // Batches: (region, period) groups of at most batch_size.
        let mut groups: BTreeMap<(String, Period), Vec<HostRecord>> = BTreeMap::new();
        for h in due {
            let period = h.effective_policy().period;
            groups
                .entry((h.host.region_id.clone(), period))
                .or_default()
                .push(h);
        }
        let deadline = Instant::now() + self.cfg.in_window_retry;
        let sem = Arc::new(Semaphore::new(self.cfg.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for ((region, period), hosts) in groups {
            for chunk in hosts.chunks(self.cfg.batch_size) {
                let batch: Vec<(HostId, DateTime<Utc>)> = chunk
                    .iter()
                    .map(|h| (h.host.id.clone(), h.host.expired_time))
                    .collect();
                let this = self.clone_handle();
                let (report, stop, sem, region) =
                    (report.clone(), stop.clone(), sem.clone(), region.clone());
                tasks.spawn(async move {
                    let _permit = sem.acquire_owned().await;
                    if stop.load(Ordering::SeqCst) || this.shutdown.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    this.batch(
                        "scheduled",
                        window,
                        &region,
                        period,
                        batch,
                        0,
                        None,
                        report,
                        stop,
                        deadline,
                        None,
                    )
                    .await
                });
            }
        }
        join_all(tasks).await
    }

    fn clone_handle(&self) -> Engine {
        Engine {
            store: self.store.clone(),
            client: self.client.clone(),
            cfg: self.cfg.clone(),
            clock: self.clock.clone(),
            shutdown: self.shutdown.clone(),
        }
    }

    /// Re-reads a batch, records hosts renewed elsewhere or gone, writes the rest ahead as one
    /// attempt and executes it.
    #[allow(clippy::too_many_arguments)]
    fn batch(
        &self,
        kind: &'static str,
        window: DateTime<Utc>,
        region: &str,
        period: Period,
        hosts: Vec<(HostId, DateTime<Utc>)>,
        generation: u32,
        parent: Option<i64>,
        report: Shared,
        stop: Arc<AtomicBool>,
        deadline: Instant,
        token: Option<ClientToken>,
    ) -> Pin<Box<dyn Future<Output = Result<(), EngineError>> + Send + '_>> {
        let region = region.to_owned();
        Box::pin(async move {
            let ids: Vec<HostId> = hosts.iter().map(|(id, _)| id.clone()).collect();
            let cloud = match self.read_cloud(&region, &ids).await {
                Ok(c) => c,
                Err(e) => {
                    // Without the cloud's expiry nothing may be sent.
                    self.note_unreadable(&e, &report, &stop).await?;
                    push(&report, |r| {
                        r.failed.extend(ids.iter().map(ToString::to_string))
                    });
                    return Ok(());
                }
            };
            let now = self.now();
            let mut settled = Vec::new();
            let mut send = Vec::new();
            for (id, cycle) in hosts {
                match cloud.get(id.as_str()) {
                    None => settled.push(gone(
                        id.clone(),
                        cycle,
                        "DescribeDedicatedHosts no longer returns it",
                    )),
                    Some(c) if c.postpaid => {
                        settled.push(gone(id.clone(), cycle, "it is now PostPaid"))
                    }
                    Some(c) if c.expiry > cycle => {
                        push(&report, |r| r.already_renewed.push(id.to_string()));
                        settled.push(renewed_elsewhere(id, cycle, c.expiry));
                    }
                    Some(_) => send.push((id, cycle)),
                }
            }
            for s in &settled {
                if s.close == Some("gone") {
                    push(&report, |r| r.gone.push(s.host_id.to_string()));
                }
            }
            if !settled.is_empty() {
                push(&report, |r| {
                    r.notices += settled.iter().filter(|x| x.notice.is_some()).count()
                });
                self.store.finish(None, &settled, now).await?;
            }
            if send.is_empty() {
                return Ok(());
            }
            let caller_token = token.is_some();
            let token = token.unwrap_or_else(|| {
                ClientToken::derive(kind, &region, period, window, &send, generation)
            });
            if self.store.attempt_by_token(&token).await?.is_some() {
                if caller_token {
                    // A caller-chosen token is never reused for a new attempt.
                    push(&report, |r| {
                        r.config_error = Some(format!(
                            "ClientToken {token} was used by an earlier attempt; see `ddh-renewd audit attempts`"
                        ))
                    });
                    return Ok(());
                }
                // Decided before (and resolved in step 1); a new attempt needs a new generation.
                return self
                    .batch(
                        kind,
                        window,
                        &region,
                        period,
                        send,
                        generation + 1,
                        parent,
                        report,
                        stop,
                        deadline,
                        None,
                    )
                    .await;
            }
            let ids: Vec<HostId> = send.iter().map(|(id, _)| id.clone()).collect();
            let params = crate::ecs::sign::canonical_query(&EcsClient::renew_params(
                &region,
                &ids,
                period,
                Some(&token),
            ));
            let attempt = self
                .store
                .create_attempt(
                    NewAttempt {
                        kind,
                        window_at: window,
                        region_id: &region,
                        period,
                        client_token: token,
                        params,
                        generation,
                        parent,
                        hosts: send,
                    },
                    self.now(),
                )
                .await?;
            self.execute(attempt, report, stop, deadline).await
        })
    }

    /// Sends a written-ahead attempt until it has an outcome or the window's retry time is spent.
    fn execute(
        &self,
        attempt: Attempt,
        report: Shared,
        stop: Arc<AtomicBool>,
        deadline: Instant,
    ) -> Pin<Box<dyn Future<Output = Result<(), EngineError>> + Send + '_>> {
        Box::pin(async move {
            let ids: Vec<HostId> = attempt.hosts.iter().map(|(id, _)| id.clone()).collect();
            let mut sends = 0u32;
            loop {
                if stop.load(Ordering::SeqCst) || self.shutdown.load(Ordering::SeqCst) {
                    // A configuration error elsewhere, or shutdown: leave this one unresolved.
                    push(&report, |r| r.unresolved += 1);
                    return Ok(());
                }
                sends += 1;
                self.store
                    .record_event(
                        attempt.attempt_id,
                        Event {
                            kind: "sent",
                            http_status: None,
                            code: None,
                            message: None,
                            request_id: None,
                        },
                        self.now(),
                    )
                    .await?;
                tracing::info!(attempt = attempt.attempt_id, client_token = %attempt.client_token, hosts = ids.len(), region = %attempt.region_id, "sending RenewDedicatedHosts");
                let answer = self
                    .client
                    .renew_dedicated_hosts(
                        &attempt.region_id,
                        &ids,
                        attempt.period,
                        Some(&attempt.client_token),
                    )
                    .await;
                match answer {
                    Ok(resp) => {
                        self.store
                            .record_event(
                                attempt.attempt_id,
                                Event {
                                    kind: "answer",
                                    http_status: Some(200),
                                    code: None,
                                    message: None,
                                    request_id: Some(&resp.request_id),
                                },
                                self.now(),
                            )
                            .await?;
                        tracing::info!(attempt = attempt.attempt_id, request_id = %resp.request_id, "renewal accepted");
                        // The cloud's expiry is the record of what happened.
                        let Some(cloud) = self.read_after(&attempt, &report).await else {
                            return Ok(());
                        };
                        let results =
                            self.settle(&attempt, &cloud, self.now(), Some("ExpiryUnchanged"));
                        return self
                            .finish(
                                &attempt,
                                Outcome {
                                    outcome: "renewed",
                                    http_status: Some(200),
                                    code: None,
                                    message: None,
                                    request_id: Some(&resp.request_id),
                                },
                                results,
                                sends,
                                &report,
                            )
                            .await;
                    }
                    Err(e) => {
                        let (status, code, rid) = match e.api() {
                            Some(a) => (Some(a.status), Some(a.code.clone()), a.request_id.clone()),
                            None => (None, None, None),
                        };
                        let kind = if e.api().is_some() {
                            "answer"
                        } else {
                            "no_answer"
                        };
                        let msg = e.to_string();
                        self.store
                            .record_event(
                                attempt.attempt_id,
                                Event {
                                    kind,
                                    http_status: status,
                                    code: code.as_deref(),
                                    message: Some(&msg),
                                    request_id: rid.as_deref(),
                                },
                                self.now(),
                            )
                            .await?;
                        let outcome = |name| Outcome {
                            outcome: name,
                            http_status: status,
                            code: code.as_deref(),
                            message: Some(&msg),
                            request_id: rid.as_deref(),
                        };
                        match e.class() {
                            ErrorClass::Transient => {
                                let wait = backoff(sends);
                                if Instant::now() + wait < deadline {
                                    tracing::warn!(attempt = attempt.attempt_id, client_token = %attempt.client_token, error = %e, "transient failure; re-sending with the same ClientToken");
                                    tokio::time::sleep(wait).await;
                                    continue;
                                }
                                // Out of time in this window. The request may still have landed.
                                let Some(cloud) = self.read_after(&attempt, &report).await else {
                                    return Ok(());
                                };
                                let results = self.settle(
                                    &attempt,
                                    &cloud,
                                    self.now(),
                                    code.as_deref().or(Some("RetriesExhausted")),
                                );
                                let name = if results.iter().any(|r| r.outcome == "renewed") {
                                    "renewed"
                                } else {
                                    "retries_exhausted"
                                };
                                return self
                                    .finish(&attempt, outcome(name), results, sends, &report)
                                    .await;
                            }
                            _ if code.as_deref().is_some_and(is_idempotence_mismatch) => {
                                // The token was used with other parameters: re-read, then a new attempt.
                                let Some(cloud) = self.read_after(&attempt, &report).await else {
                                    return Ok(());
                                };
                                let results = self.settle(&attempt, &cloud, self.now(), None);
                                let pending: Vec<(HostId, DateTime<Utc>)> = results
                                    .iter()
                                    .filter(|r| r.outcome == "pending")
                                    .map(|r| (r.host_id.clone(), r.cycle))
                                    .collect();
                                let results: Vec<HostResult> = results
                                    .into_iter()
                                    .map(|mut r| {
                                        if r.outcome == "pending" {
                                            r.outcome = "superseded";
                                        }
                                        r
                                    })
                                    .collect();
                                self.finish(
                                    &attempt,
                                    outcome("superseded"),
                                    results,
                                    sends,
                                    &report,
                                )
                                .await?;
                                if pending.is_empty() {
                                    return Ok(());
                                }
                                return self
                                    .batch(
                                        kind_of(&attempt),
                                        attempt.window_at,
                                        &attempt.region_id,
                                        attempt.period,
                                        pending,
                                        attempt.generation + 1,
                                        Some(attempt.attempt_id),
                                        report,
                                        stop,
                                        deadline,
                                        None,
                                    )
                                    .await;
                            }
                            ErrorClass::Configuration => {
                                stop.store(true, Ordering::SeqCst);
                                let results = self.each(&attempt, "config_error", None, None);
                                self.finish(
                                    &attempt,
                                    outcome("config_error"),
                                    results,
                                    sends,
                                    &report,
                                )
                                .await?;
                                let text = format!(
                                    "RenewDedicatedHosts refused the request: {msg}. Nothing more is sent until the configuration is fixed."
                                );
                                self.store
                                    .notice("-", "-", "config_error", &text, self.now())
                                    .await?;
                                push(&report, |r| {
                                    r.config_error = Some(msg.clone());
                                    r.notices += 1;
                                });
                                return Ok(());
                            }
                            _ if attempt.hosts.len() > 1 => {
                                // A definite error on a batch: split it to find the host at fault
                                // and renew the rest in this window.
                                let results = self.each(&attempt, "split", None, None);
                                self.finish(&attempt, outcome("split"), results, sends, &report)
                                    .await?;
                                let mid = attempt.hosts.len() / 2;
                                let (a, b) = attempt.hosts.split_at(mid);
                                let kind = kind_of(&attempt);
                                self.batch(
                                    kind,
                                    attempt.window_at,
                                    &attempt.region_id,
                                    attempt.period,
                                    a.to_vec(),
                                    attempt.generation,
                                    Some(attempt.attempt_id),
                                    report.clone(),
                                    stop.clone(),
                                    deadline,
                                    None,
                                )
                                .await?;
                                return self
                                    .batch(
                                        kind,
                                        attempt.window_at,
                                        &attempt.region_id,
                                        attempt.period,
                                        b.to_vec(),
                                        attempt.generation,
                                        Some(attempt.attempt_id),
                                        report,
                                        stop,
                                        deadline,
                                        None,
                                    )
                                    .await;
                            }
                            ErrorClass::HostGone => {
                                let why = format!(
                                    "RenewDedicatedHosts answered {}: the host leaves automatic renewal",
                                    code.as_deref().unwrap_or("an error")
                                );
                                let results: Vec<HostResult> = attempt
                                    .hosts
                                    .iter()
                                    .map(|(id, cycle)| gone(id.clone(), *cycle, &why))
                                    .collect();
                                push(&report, |r| {
                                    r.gone.extend(results.iter().map(|x| x.host_id.to_string()))
                                });
                                return self
                                    .finish(&attempt, outcome("host_gone"), results, sends, &report)
                                    .await;
                            }
                            ErrorClass::Definite => {
                                let note = format!(
                                    "renewal failed in the window of {}: {msg}; next attempt in the next window",
                                    to_db(attempt.window_at)
                                );
                                let results = self.each(
                                    &attempt,
                                    "failed",
                                    None,
                                    Some(("renewal_failed", note)),
                                );
                                return self
                                    .finish(&attempt, outcome("failed"), results, sends, &report)
                                    .await;
                            }
                        }
                    }
                }
            }
        })
    }

    /// Re-reads an attempt's hosts after an answer; `None` (attempt left unresolved) if the
    /// cloud cannot be read now.
    async fn read_after(
        &self,
        attempt: &Attempt,
        report: &Shared,
    ) -> Option<HashMap<String, CloudHost>> {
        let ids: Vec<HostId> = attempt.hosts.iter().map(|(id, _)| id.clone()).collect();
        match self.read_cloud(&attempt.region_id, &ids).await {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(attempt = attempt.attempt_id, error = %e, "cannot re-read the expiry; the attempt stays unresolved until the next pass");
                push(report, |r| r.unresolved += 1);
                None
            }
        }
    }

    /// Per-host results from the cloud's expiries: moved → renewed; gone → host_gone; lapsed →
    /// lapsed; else `pending`, or `failed` with `unchanged_code` when one is given.
    fn settle(
        &self,
        attempt: &Attempt,
        cloud: &HashMap<String, CloudHost>,
        now: DateTime<Utc>,
        unchanged_code: Option<&str>,
    ) -> Vec<HostResult> {
        attempt
            .hosts
            .iter()
            .map(|(id, cycle)| match cloud.get(id.as_str()) {
                Some(c) if c.expiry > *cycle => HostResult {
                    host_id: id.clone(),
                    cycle: *cycle,
                    outcome: "renewed",
                    expiry_after: Some(c.expiry),
                    close: Some("renewed"),
                    notice: Some(("renewed", format!("{id} renewed: expiry {} → {} (ClientToken {})", to_db(*cycle), to_db(c.expiry), attempt.client_token))),
                },
                None => gone(id.clone(), *cycle, "DescribeDedicatedHosts no longer returns it"),
                Some(_) if *cycle <= now => HostResult {
                    host_id: id.clone(),
                    cycle: *cycle,
                    outcome: "lapsed",
                    expiry_after: None,
                    close: Some("lapsed"),
                    notice: Some(("lapsed", format!("{id} expired at {} without a renewal", to_db(*cycle)))),
                },
                Some(_) => match unchanged_code {
                    Some(code) => HostResult {
                        host_id: id.clone(),
                        cycle: *cycle,
                        outcome: "failed",
                        expiry_after: None,
                        close: None,
                        notice: Some(("renewal_failed", format!("{id} was not renewed in the window of {} ({code}); next attempt in the next window", to_db(attempt.window_at)))),
                    },
                    None => HostResult { host_id: id.clone(), cycle: *cycle, outcome: "pending", expiry_after: None, close: None, notice: None },
                },
            })
            .collect()
    }

    fn each(
        &self,
        attempt: &Attempt,
        outcome: &'static str,
        close: Option<&'static str>,
        notice: Option<(&'static str, String)>,
    ) -> Vec<HostResult> {
        attempt
            .hosts
            .iter()
            .map(|(id, cycle)| HostResult {
                host_id: id.clone(),
                cycle: *cycle,
                outcome,
                expiry_after: None,
                close,
                notice: notice.clone(),
            })
            .collect()
    }

    /// Records an attempt's outcome and reports it.
    async fn finish(
        &self,
        attempt: &Attempt,
        o: Outcome<'_>,
        results: Vec<HostResult>,
        sends: u32,
        report: &Shared,
    ) -> Result<(), EngineError> {
        let code = o.code.map(str::to_owned);
        let rid = o.request_id.map(str::to_owned);
        let name = o.outcome.to_owned();
        self.store
            .finish(Some((attempt.attempt_id, o)), &results, self.now())
            .await?;
        push(report, |r| {
            for x in &results {
                let id = x.host_id.to_string();
                match x.outcome {
                    "renewed" => r.renewed.push(id),
                    "failed" | "retries_exhausted" | "config_error" => r.failed.push(id),
                    "lapsed" => r.lapsed.push(id),
                    _ => {}
                }
            }
            r.notices += results.iter().filter(|x| x.notice.is_some()).count();
            r.attempts.push(AttemptReport {
                attempt_id: attempt.attempt_id,
                client_token: attempt.client_token.to_string(),
                region_id: attempt.region_id.clone(),
                period: attempt.period.to_string(),
                hosts: attempt.hosts.iter().map(|(id, _)| id.to_string()).collect(),
                sends,
                outcome: name,
                code,
                request_id: rid,
            });
        });
        Ok(())
    }

    /// A read that failed: a configuration-class error stops the pass and raises a notice.
    async fn note_unreadable(
        &self,
        e: &EcsError,
        report: &Shared,
        stop: &Arc<AtomicBool>,
    ) -> Result<(), EngineError> {
        tracing::warn!(error = %e, "cannot read hosts from ECS");
        if e.class() == ErrorClass::Configuration {
            stop.store(true, Ordering::SeqCst);
            let text = format!(
                "ECS refused the request: {e}. Nothing more is sent until the configuration is fixed."
            );
            self.store
                .notice("-", "-", "config_error", &text, self.now())
                .await?;
            push(report, |r| {
                r.config_error = Some(e.to_string());
                r.notices += 1;
            });
        }
        Ok(())
    }

    /// Step 5: reminders for hosts renewed by hand, and the single non-renewal notice.
    async fn reminders(&self, window: DateTime<Utc>, report: &Shared) -> Result<(), EngineError> {
        for h in self.store.unmanaged_hosts(self.now()).await? {
            let days = self
                .cfg
                .schedule
                .days_before_expiry(window, h.host.expired_time);
            let status = h.effective_policy().status;
            let id = h.host.id.to_string();
            let e = to_db(h.host.expired_time);
            let notice = match status {
                RenewalStatus::NotRenewal if days == 3 => Some((
                    "not_renewing",
                    format!("{id} expires at {e} and is set to NotRenewal: it will not be renewed"),
                )),
                RenewalStatus::Normal
                    if days >= 0
                        && self
                            .cfg
                            .reminder_days
                            .contains(&u32::try_from(days).unwrap_or(u32::MAX)) =>
                {
                    Some((
                        "expiry_reminder",
                        format!(
                            "{id} expires at {e} ({days} days); it is not renewed automatically: renew it by hand"
                        ),
                    ))
                }
                _ => None,
            };
            if let Some((kind, msg)) = notice
                && self.store.notice(&id, &e, kind, &msg, self.now()).await?
            {
                push(report, |r| r.notices += 1);
            }
        }
        Ok(())
    }

    /// A manual renewal (`renew`): validated already; re-read, written ahead and sent through
    /// the same machinery as a scheduled one.
    pub async fn renew_manual(
        &self,
        region: &str,
        hosts: Vec<(HostId, DateTime<Utc>)>,
        period: Period,
        token: Option<ClientToken>,
    ) -> Result<PassReport, EngineError> {
        let now = self.now();
        let report: Shared = Arc::new(Mutex::new(PassReport {
            window: to_db(now),
            trigger: "manual".into(),
            ..Default::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        self.resolve_unknown(&report, &stop).await?;
        if stop.load(Ordering::SeqCst) {
            return Ok(take(report));
        }
        let deadline = Instant::now() + self.cfg.in_window_retry;
        // A caller-chosen token is used as given; otherwise one is derived as for a window.
        self.batch(
            "manual",
            now,
            region,
            period,
            hosts,
            0,
            None,
            report.clone(),
            stop,
            deadline,
            token,
        )
        .await?;
        Ok(take(report))
    }
}

fn kind_of(a: &Attempt) -> &'static str {
    if a.kind == "manual" {
        "manual"
    } else {
        "scheduled"
    }
}

fn renewed_elsewhere(id: HostId, cycle: DateTime<Utc>, after: DateTime<Utc>) -> HostResult {
    HostResult {
        notice: Some((
            "renewed",
            format!(
                "{id} was already renewed (by hand or by the cloud): expiry {} → {}; nothing sent",
                to_db(cycle),
                to_db(after)
            ),
        )),
        host_id: id,
        cycle,
        outcome: "already_renewed",
        expiry_after: Some(after),
        close: Some("renewed"),
    }
}

fn gone(id: HostId, cycle: DateTime<Utc>, why: &str) -> HostResult {
    HostResult {
        notice: Some((
            "renewal_failed",
            format!("{id} left automatic renewal: {why}"),
        )),
        host_id: id,
        cycle,
        outcome: "host_gone",
        expiry_after: None,
        close: Some("gone"),
    }
}

/// Full-jitter exponential backoff for the n-th send (1-based).
fn backoff(sends: u32) -> Duration {
    let exp = BACKOFF_BASE
        .saturating_mul(1u32 << sends.saturating_sub(1).min(16))
        .min(BACKOFF_CAP);
    let ms = u64::try_from(exp.as_millis()).unwrap_or(u64::MAX).max(2);
    Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
}

fn by_region(hosts: &[HostRecord]) -> BTreeMap<String, Vec<&HostRecord>> {
    let mut m: BTreeMap<String, Vec<&HostRecord>> = BTreeMap::new();
    for h in hosts {
        m.entry(h.host.region_id.clone()).or_default().push(h);
    }
    m
}

fn take(report: Shared) -> PassReport {
    match Arc::try_unwrap(report) {
        Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
        Err(arc) => arc.lock().unwrap_or_else(|p| p.into_inner()).clone(),
    }
}

/// Moves the attempt just finished from `attempts` to `resolved` in the report.
fn move_last_to_resolved(report: &Shared) {
    push(report, |r| {
        if let Some(a) = r.attempts.pop() {
            r.resolved.push(a);
        }
    });
}

/// Waits for every task; the first error wins, a panicked task is logged.
async fn join_all(
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
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn len<T>(v: &[T]) -> i64 {
    i64::try_from(v.len()).unwrap_or(i64::MAX)
}
