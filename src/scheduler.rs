//! Wake-ups for the daemon (SPEC §3.4). tokio-cron-scheduler wakes it at the window time in the
//! configured zone; a catch-up check at start and every minute runs a window that was missed
//! (down at 08:00, suspended, clock jumped); a safety pass every `safety_interval` re-checks the
//! due set. Every decision is made from the database and the wall clock, so a cron job that never
//! fires only delays a pass until the next check.
//!
//! The cron scheduler ticks twice a second whatever its jobs; it runs only from
//! [`ARM_BEFORE`] ahead of a window until [`DISARM_AFTER`] past it, so an idle daemon wakes
//! once a minute (the loop's own check) rather than 120 times.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::domain::protocol::Trigger;
use crate::domain::time::to_db;
use crate::engine::Engine;
use crate::ops::{Health, systemd};

/// How often the loop looks for a missed window, and arms or disarms the cron waker.
const GAP_CHECK: Duration = Duration::from_secs(60);
/// The cron waker starts this long before a window (more than one [`GAP_CHECK`])...
const ARM_BEFORE: chrono::Duration = chrono::Duration::minutes(10);
/// ...and stops this long after it.
const DISARM_AFTER: chrono::Duration = chrono::Duration::minutes(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    Cron,
}

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub catch_up: bool,
    pub safety_interval: Duration,
    /// Sync inside the daemon (`[sync]`), or `None`.
    pub sync: Option<DaemonSync>,
}

/// What the daemon syncs, and how often.
#[derive(Debug, Clone)]
pub struct DaemonSync {
    pub regions: Vec<String>,
    pub takeover: bool,
    pub interval: Duration,
}

/// A pass wants an inventory synced within this.
const SYNC_BEFORE_PASS: Duration = Duration::from_secs(3600);
/// One sync inside the daemon gives up after this.
const SYNC_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("cannot start the cron scheduler: {0}")]
    Cron(String),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
}

/// Runs until `stop` resolves; then lets the current pass record its in-flight calls and returns.
pub async fn run(
    engine: &Engine,
    cfg: SchedulerConfig,
    health: Arc<Health>,
    stop: impl Future<Output = ()>,
) -> Result<(), SchedulerError> {
    let schedule = engine.config().schedule;
    let (tx, mut rx) = mpsc::channel::<Wake>(4);
    let mut waker = CronWaker {
        schedule,
        tx,
        armed: None,
    };
    waker.update(engine.now()).await;
    tracing::info!(tz = %schedule.tz, next_window = %schedule.next_window_instant(engine.now()), "scheduler started");

    let shutdown = engine.shutdown_handle();
    let mut safety = tokio::time::interval(cfg.safety_interval);
    safety.tick().await; // the first tick is immediate; the start-up check below covers it
    let mut gap = tokio::time::interval(GAP_CHECK);
    gap.tick().await;
    // Watchdog pings come from this loop (and from the wait on a running pass): if the loop
    // hangs, systemd notices.
    let wd_every = systemd::watchdog_interval().unwrap_or(Duration::from_secs(3600));
    let mut wd = tokio::time::interval(wd_every);
    let sync_every = cfg
        .sync
        .as_ref()
        .map_or(Duration::from_secs(3600), |s| s.interval);
    let mut sync_tick = tokio::time::interval(sync_every);
    sync_tick.tick().await;
    tokio::pin!(stop);

    systemd::ready(&format!(
        "started; next window {}",
        to_db(schedule.next_window_instant(engine.now()))
    ));
    let ctx = Ctx {
        engine,
        health: &health,
        sync: cfg.sync.as_ref(),
    };
    ctx.sync_if_older(sync_every, &mut wd).await;
    let ran = cfg.catch_up && ctx.maybe_pass(Trigger::CatchUp, true, &mut wd).await?;
    if !ran {
        start_status(&schedule, cfg.catch_up, engine.now());
    }
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = wd.tick() => systemd::watchdog(),
            Some(Wake::Cron) = rx.recv() => { ctx.maybe_pass(Trigger::Cron, true, &mut wd).await?; }
            _ = gap.tick() => {
                waker.update(engine.now()).await;
                if cfg.catch_up {
                    ctx.maybe_pass(Trigger::CatchUp, true, &mut wd).await?;
                }
            }
            _ = safety.tick() => { ctx.maybe_pass(Trigger::Safety, false, &mut wd).await?; }
            _ = sync_tick.tick(), if ctx.sync.is_some() => { ctx.sync_if_older(sync_every, &mut wd).await; }
        }
        if shutdown.load(Ordering::SeqCst) {
            break;
        }
    }
    systemd::stopping();
    shutdown.store(true, Ordering::SeqCst);
    waker.disarm().await;
    tracing::info!("scheduler stopped");
    Ok(())
}

/// Said once at start when no pass ran, so that whoever reads STATUS knows the start-up check
/// is done.
fn start_status(
    schedule: &crate::domain::Schedule,
    catch_up: bool,
    now: chrono::DateTime<chrono::Utc>,
) {
    let this = if catch_up {
        format!(
            "window {} already run",
            to_db(schedule.window_at_or_before(now))
        )
    } else {
        "catch-up off".to_owned()
    };
    systemd::status(&format!(
        "{this}; next window {}",
        to_db(schedule.next_window_instant(now))
    ));
}

/// The cron job, running only around a window: armed with the window it was started for.
struct CronWaker {
    schedule: crate::domain::Schedule,
    tx: mpsc::Sender<Wake>,
    armed: Option<(JobScheduler, chrono::DateTime<chrono::Utc>)>,
}

impl CronWaker {
    /// Starts the cron job when the next window is within [`ARM_BEFORE`]; stops it once the
    /// window it was started for is [`DISARM_AFTER`] past. A cron job that cannot start is
    /// logged and tried again at the next check: the minute check runs the window anyway.
    async fn update(&mut self, now: chrono::DateTime<chrono::Utc>) {
        if let Some((_, window)) = &self.armed
            && now > *window + DISARM_AFTER
        {
            self.disarm().await;
        }
        let next = self.schedule.next_window_instant(now);
        if self.armed.is_none() && next - now <= ARM_BEFORE {
            match start_cron(&self.schedule, self.tx.clone()).await {
                Ok(cron) => {
                    tracing::debug!(window = %to_db(next), "cron waker armed");
                    self.armed = Some((cron, next));
                }
                Err(e) => {
                    tracing::warn!(error = %e, window = %to_db(next), "cron waker not armed; the minute check will run the window")
                }
            }
        }
    }

    async fn disarm(&mut self) {
        if let Some((mut cron, window)) = self.armed.take() {
            let _ = cron.shutdown().await;
            tracing::debug!(window = %to_db(window), "cron waker disarmed");
        }
    }
}

/// The cron job that wakes the loop at the window time, every day, in the schedule's zone.
async fn start_cron(
    schedule: &crate::domain::Schedule,
    tx: mpsc::Sender<Wake>,
) -> Result<JobScheduler, SchedulerError> {
    let cron_err = |e: tokio_cron_scheduler::JobSchedulerError| SchedulerError::Cron(e.to_string());
    let cron = JobScheduler::new().await.map_err(cron_err)?;
    let expr = schedule.time.format("%S %M %H * * *").to_string();
    let job = Job::new_async_tz(expr.as_str(), schedule.tz, move |_, _| {
        let tx = tx.clone();
        Box::pin(async move {
            let _ = tx.try_send(Wake::Cron);
        })
    })
    .map_err(cron_err)?;
    cron.add(job).await.map_err(cron_err)?;
    cron.start().await.map_err(cron_err)?;
    tracing::debug!(cron = %expr, "window wake-up scheduled");
    Ok(cron)
}

struct Ctx<'a> {
    engine: &'a Engine,
    health: &'a Health,
    sync: Option<&'a DaemonSync>,
}

/// Awaits `work`, pinging the watchdog meanwhile.
async fn watched<T>(work: impl Future<Output = T>, wd: &mut tokio::time::Interval) -> T {
    tokio::pin!(work);
    loop {
        tokio::select! {
            r = &mut work => return r,
            _ = wd.tick() => systemd::watchdog(),
        }
    }
}

impl Ctx<'_> {
    /// Syncs the inventory (under this daemon's lock) if the last successful sync is older than
    /// `age`. A failure is logged and shows in `/healthz` once the inventory is too old; it never
    /// stops the daemon.
    async fn sync_if_older(&self, age: Duration, wd: &mut tokio::time::Interval) {
        let Some(s) = self.sync else { return };
        let store = self.engine.store();
        let last = match store.last_sync().await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot read when the inventory was last synced");
                return;
            }
        };
        let fresh = last.is_some_and(|t| {
            chrono::Utc::now() - t
                < chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX)
        });
        if fresh || self.engine.shutdown_handle().load(Ordering::SeqCst) {
            return;
        }
        let work = crate::engine::sync::sync_and_record(
            store,
            self.engine.client(),
            &s.regions,
            s.takeover,
            false,
            "daemon",
        );
        match watched(tokio::time::timeout(SYNC_TIMEOUT, work), wd).await {
            Ok(Ok(r)) => {
                let seen: usize = r.regions.iter().map(|x| x.seen).sum();
                tracing::info!(
                    hosts = seen,
                    regions = r.regions.len(),
                    elapsed_ms = r.elapsed_ms as u64,
                    "inventory synced"
                );
            }
            Ok(Err(e)) => tracing::error!(error = %e, "sync failed; the inventory is as it was"),
            Err(_) => tracing::error!(
                "sync did not finish within {} s; nothing of an unfinished region was applied",
                SYNC_TIMEOUT.as_secs()
            ),
        }
    }

    /// Runs a pass if the window needs one, pinging the watchdog while it runs. The cron and
    /// catch-up wake-ups act only on a window not yet run; the safety pass also acts on
    /// leftovers within a run window.
    async fn maybe_pass(
        &self,
        trigger: Trigger,
        only_if_not_run: bool,
        wd: &mut tokio::time::Interval,
    ) -> Result<bool, SchedulerError> {
        if !self.engine.needs_pass(only_if_not_run).await? {
            return Ok(false);
        }
        // A pass decides on a fresh inventory: new hosts, releases, cloud-side auto-renew.
        self.sync_if_older(SYNC_BEFORE_PASS, wd).await;
        let pass = self.engine.pass(trigger, false);
        tokio::pin!(pass);
        let r = loop {
            tokio::select! {
                r = &mut pass => break r?,
                _ = wd.tick() => systemd::watchdog(),
            }
        };
        let result = r.result();
        self.health
            .record_pass(&r.window, result.as_str(), r.config_error.as_deref());
        if let Some(e) = &r.config_error {
            tracing::error!(
                trigger = %trigger,
                "configuration error; nothing more is sent until it is fixed: {e}"
            );
        }
        let schedule = self.engine.config().schedule;
        systemd::status(&format!(
            "last window {} {result}: {} due, {} renewed, {} failed; next window {}",
            r.window,
            r.due.len(),
            r.renewed.len(),
            r.failed.len(),
            to_db(schedule.next_window_instant(self.engine.now()))
        ));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Timelike, Utc};

    fn waker(schedule: crate::domain::Schedule) -> (CronWaker, mpsc::Receiver<Wake>) {
        let (tx, rx) = mpsc::channel(4);
        let w = CronWaker {
            schedule,
            tx,
            armed: None,
        };
        (w, rx)
    }

    /// Armed from ten minutes before a window to two minutes after it; idle otherwise.
    #[tokio::test]
    async fn the_cron_waker_runs_only_around_a_window() {
        let schedule = crate::domain::Schedule::default();
        let (mut w, _rx) = waker(schedule);
        let window = schedule.next_window_instant(Utc::now() + chrono::Duration::days(1));
        let armed_for = |w: &CronWaker| w.armed.as_ref().map(|(_, at)| *at);
        w.update(window - chrono::Duration::minutes(30)).await;
        assert_eq!(armed_for(&w), None, "half an hour ahead: idle");
        w.update(window - chrono::Duration::minutes(9)).await;
        assert_eq!(armed_for(&w), Some(window), "nine minutes ahead: armed");
        w.update(window + chrono::Duration::minutes(1)).await;
        assert_eq!(armed_for(&w), Some(window), "just past: still armed");
        w.update(window + chrono::Duration::minutes(3)).await;
        assert_eq!(armed_for(&w), None, "three minutes past: idle again");
    }

    /// Armed, the cron job wakes the loop at the window time.
    #[tokio::test]
    async fn an_armed_waker_fires_at_the_window() {
        let at = Utc::now() + chrono::Duration::seconds(3);
        let schedule = crate::domain::Schedule {
            tz: chrono_tz::UTC,
            time: chrono::NaiveTime::from_hms_opt(at.hour(), at.minute(), at.second()).unwrap(),
            lead_days: 9,
        };
        let (mut w, mut rx) = waker(schedule);
        w.update(Utc::now()).await;
        assert!(w.armed.is_some(), "a window seconds away arms the waker");
        let woke = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(woke.ok().flatten(), Some(Wake::Cron));
        w.disarm().await;
    }
}
