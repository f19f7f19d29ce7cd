//! One pass over a window: resolve, renew what is due, remind; then record the run. The pass
//! report is assembled from what the steps decided, and its attempts are read back from the
//! audit trail, so the report and `v_attempts` always agree.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Engine, EngineError, due, reminders, resolve};
use crate::domain::protocol::{NoticeKind, PassResult, Trigger};
use crate::domain::time::to_db;
use crate::store::{AttemptSummary, NoticeRow, WindowRun};

/// A request a dry run would send: a new attempt as it would be written ahead.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlannedAttempt {
    pub region_id: String,
    pub period: String,
    /// Hosts with the cycle (the cloud's expiry) each would pay for, in request order.
    pub hosts: Vec<(String, String)>,
    pub client_token: String,
    /// The exact request parameters (canonical query form), as they would be recorded.
    pub params: String,
}

/// An open attempt a dry run would re-send, byte for byte.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlannedResend {
    pub attempt_id: i64,
    pub client_token: String,
    pub hosts: Vec<String>,
}

/// A host a pass (or `renew`) did not send for.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedHost {
    pub host_id: String,
    pub reason: crate::domain::protocol::Skip,
    pub detail: String,
}

/// What a pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    pub window: String,
    pub trigger: String,
    pub dry_run: bool,
    /// Attempts that were open when the pass began and that it worked on.
    pub resolved: Vec<AttemptSummary>,
    /// Hosts a new attempt was written ahead for (dry run: would be).
    pub due: Vec<String>,
    /// Renewed by one of our attempts (credited to its ClientToken).
    pub renewed: Vec<String>,
    /// Found renewed elsewhere (by hand, by the cloud): nothing sent for them.
    pub already_renewed: Vec<String>,
    /// Refused definitively; tried again in the next window.
    pub failed: Vec<String>,
    pub lapsed: Vec<String>,
    pub gone: Vec<String>,
    pub skipped_double_renew: Vec<String>,
    /// Hosts not sent for, and why (guards, stale reads, unknown state).
    pub skipped: Vec<SkippedHost>,
    /// Hosts of attempts that are blocked: a person must settle them.
    pub blocked: Vec<String>,
    /// Hosts of attempts left undecided; resolved first on the next pass, same token.
    pub undecided: Vec<String>,
    /// Attempts written ahead by this pass.
    pub attempts: Vec<AttemptSummary>,
    /// Dry run: the new attempts the pass would write ahead and send (first sends; a refusal
    /// could split them further).
    pub planned: Vec<PlannedAttempt>,
    /// Dry run: the open attempts the pass would re-send.
    pub planned_resends: Vec<PlannedResend>,
    pub notices: usize,
    pub config_error: Option<String>,
    /// Attempts left without an outcome (open or blocked) at the end of the pass.
    pub unresolved: usize,
}

impl PassReport {
    pub fn result(&self) -> PassResult {
        if self.config_error.is_some() {
            PassResult::ConfigError
        } else if !self.failed.is_empty() || self.unresolved > 0 || !self.blocked.is_empty() {
            PassResult::Failures
        } else {
            PassResult::Ok
        }
    }
}

/// State shared by the tasks of one pass.
/// An open attempt, the outcome a dry run found for it, and each host's result.
pub(crate) type DryDecision = (
    crate::store::Attempt,
    crate::domain::protocol::AttemptOutcome,
    Vec<crate::domain::protocol::HostDecision>,
);

pub(crate) struct PassCtx {
    pub(crate) window: DateTime<Utc>,
    /// A dry run: read and decide as the real pass would, write and send nothing.
    pub(crate) dry: bool,
    /// The in-window retry budget of this pass ends here.
    pub(crate) deadline: Instant,
    /// A configuration error or a lost epoch: nothing more is sent in this pass.
    stop: AtomicBool,
    report: Mutex<PassReport>,
    written: Mutex<Vec<i64>>,
    worked: Mutex<Vec<i64>>,
    /// A dry run's decisions on open attempts (not recorded): the hosts they free are chosen
    /// in step 2 as the real pass, which records them, will choose them.
    dry_decided: Mutex<Vec<DryDecision>>,
    /// Managed hosts per region, and how many this pass has seen disappear.
    managed: HashMap<String, usize>,
    gone: Mutex<HashMap<String, usize>>,
    /// Regions where more hosts went missing than a pass may believe: (missing, asked) at most.
    suspects: Mutex<HashMap<String, (usize, usize)>>,
}

impl PassCtx {
    pub(crate) async fn new(
        e: &Engine,
        window: DateTime<Utc>,
        trigger: Trigger,
        dry_run: bool,
    ) -> Result<Arc<Self>, EngineError> {
        let managed = e.inner.store.managed_per_region().await?;
        Ok(Arc::new(Self {
            dry: dry_run,
            managed,
            gone: Mutex::new(HashMap::new()),
            suspects: Mutex::new(HashMap::new()),
            window,
            deadline: Instant::now() + e.inner.cfg.in_window_retry,
            stop: AtomicBool::new(false),
            report: Mutex::new(PassReport {
                window: to_db(window),
                trigger: trigger.as_str().to_owned(),
                dry_run,
                ..PassReport::default()
            }),
            written: Mutex::new(Vec::new()),
            worked: Mutex::new(Vec::new()),
            dry_decided: Mutex::new(Vec::new()),
        }))
    }

    /// How many hosts of `region` one pass may believe gone: a fifth of its managed hosts, at
    /// least three. More at once is a broken answer until `sync` says otherwise.
    pub(crate) fn gone_limit(&self, region: &str) -> usize {
        (self.managed.get(region).copied().unwrap_or(0) / 5).max(3)
    }

    /// Notes that `missing` of `asked` hosts of `region` vanished without being believed.
    pub(crate) fn suspect(&self, region: &str, missing: usize, asked: usize) {
        let mut s = self.suspects.lock().unwrap_or_else(|p| p.into_inner());
        let e = s.entry(region.to_owned()).or_insert((0, 0));
        e.0 += missing;
        e.1 += asked;
    }

    /// Counts `n` hosts of `region` as gone; `false` (nothing counted) past the limit.
    pub(crate) fn claim_gone(&self, region: &str, n: usize) -> bool {
        let mut g = self.gone.lock().unwrap_or_else(|p| p.into_inner());
        let seen = g.entry(region.to_owned()).or_default();
        if *seen + n > self.gone_limit(region) {
            return false;
        }
        *seen += n;
        true
    }

    /// Notes a decision a dry run reached on an open attempt and did not record.
    pub(crate) fn dry_decided(&self, d: DryDecision) {
        self.dry_decided
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(d);
    }

    /// The decisions noted by [`PassCtx::dry_decided`], in attempt order.
    pub(crate) fn take_dry_decided(&self) -> Vec<DryDecision> {
        let mut v =
            std::mem::take(&mut *self.dry_decided.lock().unwrap_or_else(|p| p.into_inner()));
        v.sort_by_key(|(a, _, _)| a.attempt_id);
        v
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut PassReport) -> R) -> R {
        f(&mut self.report.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Stops sending for the rest of the pass (a configuration error, a lost epoch).
    pub(crate) fn halt(&self, why: String) {
        self.stop.store(true, Ordering::SeqCst);
        self.with(|r| {
            r.config_error.get_or_insert(why);
        });
    }

    pub(crate) fn written(&self, attempt_id: i64) {
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(attempt_id);
    }

    pub(crate) fn worked_on(&self, attempt_id: i64) {
        self.worked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(attempt_id);
    }

    /// The report, with the attempts read back from the audit trail.
    pub(crate) async fn finish(&self, e: &Engine) -> Result<PassReport, EngineError> {
        let written = std::mem::take(&mut *self.written.lock().unwrap_or_else(|p| p.into_inner()));
        let worked: BTreeSet<i64> =
            std::mem::take(&mut *self.worked.lock().unwrap_or_else(|p| p.into_inner()))
                .into_iter()
                .filter(|id| !written.contains(id))
                .collect();
        let worked: Vec<i64> = worked.into_iter().collect();
        let store = &e.inner.store;
        let suspects =
            std::mem::take(&mut *self.suspects.lock().unwrap_or_else(|p| p.into_inner()));
        let rows: Vec<NoticeRow> = suspects
            .into_iter()
            .map(|(region, (missing, asked))| NoticeRow {
                host_id: "-".into(),
                cycle: region.clone(),
                kind: NoticeKind::NeedsAttention,
                message: format!(
                    "{missing} of {asked} hosts asked for in {region} are missing from well-formed answers, more than the {} a pass believes gone at once; nothing was decided for them. If they were released, `ddh-renewd sync --region {region} --allow-mass-release` records it",
                    self.gone_limit(&region)
                ),
            })
            .collect();
        let n = if self.dry {
            0
        } else {
            store.notices_now(&rows, e.now()).await?
        };
        self.with(|r| r.notices += n);
        let attempts = store.attempt_summaries(&written).await?;
        let resolved = store.attempt_summaries(&worked).await?;
        let open = store.open_attempts().await?.len();
        let mut r = self.with(std::mem::take);
        r.attempts = attempts;
        r.resolved = resolved;
        r.unresolved = open;
        for list in [
            &mut r.due,
            &mut r.renewed,
            &mut r.already_renewed,
            &mut r.failed,
            &mut r.lapsed,
            &mut r.gone,
            &mut r.skipped_double_renew,
            &mut r.blocked,
            &mut r.undecided,
        ] {
            list.sort();
            list.dedup();
        }
        Ok(r)
    }
}

impl Engine {
    /// What the database alone says a pass would look at (`tick --dry-run --offline`): no cloud
    /// read, so no batches or tokens.
    pub async fn plan_offline(&self) -> Result<PassReport, EngineError> {
        let window = self.current_window();
        let p = PassCtx::new(self, window, Trigger::Tick, true).await?;
        let candidates = self.inner.store.candidates(window).await?;
        p.with(|r| r.due = candidates.iter().map(|h| h.host.id.to_string()).collect());
        p.finish(self).await
    }

    /// Does the window a pass run now belongs to still need a pass: not run yet, or (for the
    /// safety pass) hosts to look at, or attempts without an outcome?
    pub async fn needs_pass(&self, only_if_not_run: bool) -> Result<bool, EngineError> {
        let window = self.current_window();
        let store = &self.inner.store;
        if !store.window_was_run(window).await? {
            return Ok(true);
        }
        if only_if_not_run {
            return Ok(false);
        }
        Ok(!store.candidates(window).await?.is_empty() || !store.open_attempts().await?.is_empty())
    }

    /// Runs one pass over the current window. A `dry_run` reads the cloud, decides and builds
    /// the batches and tokens exactly as the real pass would, and stops before anything is
    /// written or sent (`PassReport::planned`).
    pub async fn pass(&self, trigger: Trigger, dry_run: bool) -> Result<PassReport, EngineError> {
        let started = self.now();
        let window = self.inner.cfg.schedule.window_at_or_before(started);
        let dry = dry_run || self.inner.actor.is_none();
        let p = PassCtx::new(self, window, trigger, dry).await?;
        if !dry {
            self.check_clock()?;
        }
        resolve::run(self, &p).await?;
        if !p.stopped() {
            due::run(self, &p).await?;
        }
        if dry {
            return p.finish(self).await;
        }
        reminders::run(self, &p).await?;
        let r = p.finish(self).await?;
        let result = if self.stopping() {
            PassResult::Interrupted
        } else {
            r.result()
        };
        let len = |v: &[String]| i64::try_from(v.len()).unwrap_or(i64::MAX);
        let run = WindowRun {
            window_at: to_db(window),
            trigger,
            started_at: to_db(started),
            finished_at: to_db(self.now()),
            due: len(&r.due),
            renewed: len(&r.renewed),
            already_renewed: len(&r.already_renewed),
            failed: len(&r.failed),
            lapsed: len(&r.lapsed),
            attempts: i64::try_from(r.attempts.len()).unwrap_or(i64::MAX),
            result,
        };
        self.inner.store.record_window_run(&run).await?;
        tracing::info!(window = %run.window_at, trigger = %trigger, due = run.due, renewed = run.renewed,
            already_renewed = run.already_renewed, failed = run.failed, lapsed = run.lapsed,
            undecided = r.undecided.len(), blocked = r.blocked.len(), result = %result, "window pass done");
        Ok(r)
    }
}
