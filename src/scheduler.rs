//! Wake-ups for the daemon (SPEC §3.4). tokio-cron-scheduler wakes it at the window time in the
//! configured zone; a catch-up check at start and every minute runs a window that was missed
//! (down at 08:00, suspended, clock jumped); a safety pass every `safety_interval` re-checks the
//! due set. Every decision is made from the database and the wall clock, so a cron job that never
//! fires only delays a pass until the next check.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::engine::Engine;

/// How often the loop looks for a missed window.
const GAP_CHECK: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    Cron,
}

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub catch_up: bool,
    pub safety_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("cannot start the cron scheduler: {0}")]
    Cron(String),
    #[error(transparent)]
    Engine(#[from] crate::engine::renew::EngineError),
}

/// Runs until `stop` resolves; then lets the current pass record its in-flight calls and returns.
pub async fn run(
    engine: Engine,
    cfg: SchedulerConfig,
    stop: impl Future<Output = ()>,
) -> Result<(), SchedulerError> {
    let schedule = engine.config().schedule;
    let (tx, mut rx) = mpsc::channel::<Wake>(4);
    let mut cron = JobScheduler::new()
        .await
        .map_err(|e| SchedulerError::Cron(e.to_string()))?;
    let expr = schedule.time.format("%S %M %H * * *").to_string();
    let job = Job::new_async_tz(expr.as_str(), schedule.tz, move |_, _| {
        let tx = tx.clone();
        Box::pin(async move {
            let _ = tx.try_send(Wake::Cron);
        })
    })
    .map_err(|e| SchedulerError::Cron(e.to_string()))?;
    cron.add(job)
        .await
        .map_err(|e| SchedulerError::Cron(e.to_string()))?;
    cron.start()
        .await
        .map_err(|e| SchedulerError::Cron(e.to_string()))?;
    tracing::info!(cron = %expr, tz = %schedule.tz, next_window = %schedule.next_window_instant(engine.now()), "scheduler started");

    let shutdown = engine.shutdown_handle();
    let mut safety = tokio::time::interval(cfg.safety_interval);
    safety.tick().await; // the first tick is immediate; the start-up check below covers it
    let mut gap = tokio::time::interval(GAP_CHECK);
    gap.tick().await;
    tokio::pin!(stop);

    if cfg.catch_up {
        maybe_pass(&engine, "catch_up", true).await?;
    }
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(Wake::Cron) = rx.recv() => { maybe_pass(&engine, "cron", true).await?; }
            _ = gap.tick(), if cfg.catch_up => { maybe_pass(&engine, "catch_up", true).await?; }
            _ = safety.tick() => { maybe_pass(&engine, "safety", false).await?; }
        }
        if shutdown.load(Ordering::SeqCst) {
            break;
        }
    }
    shutdown.store(true, Ordering::SeqCst);
    let _ = cron.shutdown().await;
    tracing::info!("scheduler stopped");
    Ok(())
}

/// Runs a pass if the window needs one. `only_if_not_run`: the cron and catch-up wake-ups act
/// only on a window not yet run; the safety pass also acts on leftovers within a run window.
async fn maybe_pass(
    engine: &Engine,
    trigger: &str,
    only_if_not_run: bool,
) -> Result<(), SchedulerError> {
    if engine.needs_pass(only_if_not_run).await? {
        let r = engine.pass(trigger, false).await?;
        if let Some(e) = &r.config_error {
            tracing::error!(
                trigger,
                "configuration error; nothing more is sent until it is fixed: {e}"
            );
        }
    }
    Ok(())
}
