//! `run`: the daemon.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::config::Config;
use crate::engine::SystemClock;
use crate::error::{Error, Result};
use crate::scheduler::{self, SchedulerConfig};

pub async fn run(config: &Config) -> Result<()> {
    // SIGTERM is taken over before anything else: one that arrives during start-up, the first
    // sync or the catch-up pass lets the calls in flight finish and be recorded, like any other.
    let signal = super::emulator::on_signal();
    let engine = super::tick::engine(config, Arc::new(SystemClock), true).await?;
    let store = engine.store().clone();
    let health = Arc::new(crate::ops::Health::default());
    health.set_sync_max_age(config.sync.enabled.then_some(config.sync.max_age));
    let ops = crate::ops::OpsState {
        store: store.clone(),
        health: health.clone(),
        client: engine.client_handle(),
        schedule: config.schedule.schedule(),
        clock: Arc::new(SystemClock),
    };
    let (addr, listener) = crate::ops::serve(config.metrics.listen, ops)
        .await
        .map_err(|e| {
            Error::Runtime(format!(
                "cannot listen on [metrics] listen = {}: {e}",
                config.metrics.listen
            ))
        })?;
    tracing::info!(%addr, "metrics and health listening (/metrics, /healthz)");
    let deliveries = if config.notify.channels.is_empty() {
        None
    } else {
        let notifier =
            crate::ops::notify::Notifier::new(config.notify.channels.clone(), config.ecs.timeout)
                .map_err(Error::Runtime)?;
        for c in notifier.channels() {
            tracing::info!(channel = %c.name, kind = c.kind.as_str(), receiver = %c.url, "delivering notices to this channel");
        }
        let store = store.clone();
        Some(tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
            loop {
                every.tick().await;
                if let Err(e) = notifier.deliver_pending(&store, chrono::Utc::now()).await {
                    tracing::error!(error = %e, "notice delivery failed");
                }
            }
        }))
    };
    let shutdown = engine.shutdown_handle();
    let (stopped, mut stop_rx) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(async move {
        signal.await;
        tracing::info!("signal received: finishing in-flight calls, then exiting");
        shutdown.store(true, Ordering::SeqCst);
        let _ = stopped.send(true);
    });
    let stop = async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    };
    let cfg = SchedulerConfig {
        catch_up: config.schedule.catch_up,
        safety_interval: config.schedule.safety_interval,
        sync: config.sync.enabled.then(|| scheduler::DaemonSync {
            regions: config.ecs.regions.clone(),
            takeover: config.ecs.takeover,
            interval: config.sync.interval,
        }),
    };
    let result = scheduler::run(&engine, cfg, health, stop).await;
    watcher.abort();
    listener.abort();
    if let Some(d) = deliveries {
        d.abort();
    }
    drop(store);
    engine.close().await;
    result.map_err(|e| Error::Runtime(e.to_string()))?;
    Ok(())
}
