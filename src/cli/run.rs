//! `run`: the daemon.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::config::Config;
use crate::engine::{ActorLock, SystemClock};
use crate::error::{Error, Result};
use crate::scheduler::{self, SchedulerConfig};

pub async fn run(config: &Config) -> Result<()> {
    let _lock =
        ActorLock::acquire(&config.database.path).map_err(|e| Error::Runtime(e.to_string()))?;
    let engine = super::tick::engine(config, Arc::new(SystemClock)).await?;
    let store = engine.store().clone();
    let shutdown = engine.shutdown_handle();
    let stop = async move {
        super::emulator::wait_for_signal().await;
        tracing::info!("signal received: finishing in-flight calls, then exiting");
        shutdown.store(true, Ordering::SeqCst);
    };
    let cfg = SchedulerConfig {
        catch_up: config.schedule.catch_up,
        safety_interval: config.schedule.safety_interval,
    };
    scheduler::run(engine, cfg, stop)
        .await
        .map_err(|e| Error::Runtime(e.to_string()))?;
    store.close().await;
    Ok(())
}
