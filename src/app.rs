//! The composition root: where a command's parts — config, store, clock, client, engine, the
//! operating surface — are built, once, from the config. The CLI parses arguments and renders
//! results; everything it acts with comes from here, so a part is built the same way for every
//! command (and a second store backend would be chosen in one place).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::config::Config;
use std::time::Duration;

use crate::ecs::client::MAX_PER_CALL;
use crate::ecs::{ClientOptions, Credentials, EcsClient, Provider, RetryPolicy};
use crate::engine::{Clock, Engine, EngineConfig, NotTaken, SystemClock};
use crate::error::{Error, Result};
use crate::scheduler::{self, SchedulerConfig};
use crate::store::Store;

/// The client's options from `[ecs]`.
pub fn client_options(ecs: &crate::config::EcsConfig) -> ClientOptions {
    ClientOptions {
        endpoint: ecs.endpoint.clone(),
        timeout: ecs.timeout,
        quota_per_minute: ecs.quota_per_minute,
        retry: RetryPolicy {
            max_elapsed: ecs.read_retry,
            ..RetryPolicy::default()
        },
    }
}

/// The engine's settings from `[schedule]`, `[ecs]` and `[notify]`.
pub fn engine_config(c: &Config) -> EngineConfig {
    EngineConfig {
        schedule: c.schedule.schedule(),
        batch_size: usize::try_from(c.ecs.batch_size)
            .unwrap_or(MAX_PER_CALL)
            .clamp(1, MAX_PER_CALL),
        in_window_retry: c.schedule.in_window_retry,
        reminder_days: c.notify.reminder_days.clone(),
        takeover: c.ecs.takeover,
        concurrency: 8,
        backoff_base: Duration::from_millis(200),
        backoff_cap: Duration::from_secs(20),
        virtual_clock: false,
    }
}

/// How a command uses the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Acts on it: takes the one-actor lock and a new epoch (passes, `renew`, the daemon).
    Act,
    /// Reads it and the cloud, writes nothing (a dry run).
    Read,
    /// Reads it alone: no cloud, no credentials (`tick --dry-run --offline`).
    Offline,
}

/// Opens the store at `[database] path` or `url` (migrating it if needed).
pub async fn store(config: &Config) -> Result<Store> {
    Ok(Store::open_at(&location(config)?, config.schedule.schedule()).await?)
}

/// The credential file that holds the PostgreSQL password under systemd (`LoadCredential=`).
pub const PG_PASSWORD_CREDENTIAL: &str = "postgres-password";

/// Where the store is: `[database] url` (PostgreSQL, its password from the credential file
/// `postgres-password`, else PGPASSWORD, read by the driver) or `[database] path` (SQLite).
pub fn location(config: &Config) -> Result<crate::store::Location> {
    let Some(url) = &config.database.url else {
        return Ok(crate::store::Location::Sqlite(config.database.path.clone()));
    };
    Ok(crate::store::Location::Postgres {
        url: url.clone(),
        password: pg_password(&|k| std::env::var(k).ok())?,
    })
}

/// The password in `$CREDENTIALS_DIRECTORY/postgres-password`, if that file exists.
pub fn pg_password(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>> {
    let Some(dir) = env("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    let file = std::path::Path::new(&dir).join(PG_PASSWORD_CREDENTIAL);
    if !file.exists() {
        return Ok(None);
    }
    let password = std::fs::read_to_string(&file).map_err(|e| {
        Error::Usage(format!(
            "cannot read the credential {}: {e}",
            file.display()
        ))
    })?;
    Ok(Some(password.trim_end_matches(['\r', '\n']).to_owned()))
}

/// The ECS client with the configured credential source. Static keys are read now (a missing
/// key exits 2); short-lived credentials are fetched at the first call and renewed before they
/// expire.
pub fn client(config: &Config) -> Result<EcsClient> {
    let provider = Provider::from_config(&config.credentials, &|k| std::env::var(k).ok())
        .map_err(|e| Error::Usage(e.to_string()))?;
    EcsClient::with_provider(&client_options(&config.ecs), Arc::new(provider))
        .map_err(|e| Error::Usage(e.to_string()))
}

/// The engine: the store (with the lock and an epoch when it acts), the client, the clock.
pub async fn engine(
    config: &Config,
    clock: Arc<dyn Clock>,
    access: Access,
    virtual_clock: bool,
) -> Result<Engine> {
    let client = match access {
        // Never called: no credentials needed.
        Access::Offline => EcsClient::new(
            &client_options(&config.ecs),
            Credentials::new("offline", "offline"),
        )
        .map_err(|e| Error::Usage(e.to_string()))?,
        Access::Act | Access::Read => client(config)?,
    };
    let (store, actor) = match access {
        Access::Act => {
            let (store, actor) =
                crate::engine::take_database(&location(config)?, config.schedule.schedule())
                    .await
                    .map_err(Error::Runtime)?;
            (store, Some(actor))
        }
        Access::Read | Access::Offline => (store(config).await?, None),
    };
    let mut cfg = engine_config(config);
    cfg.virtual_clock = virtual_clock;
    Ok(Engine::new(store, Arc::new(client), cfg, clock, actor))
}

/// Takes over SIGINT and SIGTERM now, and returns a future that resolves on either. From this
/// call on, a signal is never fatal and never lost, even if it arrives before the future is
/// first polled (a daemon busy with its start-up pass must still finish its in-flight calls).
pub fn on_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let (mut term, mut int) = (term, int);
            let term = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(i) => {
                        i.recv().await;
                    }
                    None => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            };
            tokio::select! {
                () = term => {}
                () = int => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The daemon: the engine acting on the database, `/metrics` and `/healthz`, notice delivery,
/// and the scheduler until a signal. On PostgreSQL a node whose peer leads stands by, serving
/// `/healthz` and `/metrics`, and takes over when the leader's session ends.
pub async fn daemon(config: &Config) -> Result<()> {
    // SIGTERM is taken over before anything else: one that arrives during start-up, the first
    // sync or the catch-up pass lets the calls in flight finish and be recorded, like any other.
    let mut signal = Box::pin(on_signal());
    let at = location(config)?;
    let client = Arc::new(self::client(config)?);
    let health = Arc::new(crate::ops::Health::default());
    health.set_sync_max_age(config.sync.enabled.then_some(config.sync.max_age));
    // SQLite: the lock before the store is opened (see engine/lock.rs), and a held lock is an
    // error. PostgreSQL: a held lock makes this node a standby.
    let postgres = matches!(at, crate::store::Location::Postgres { .. });
    let mut lock = match crate::engine::lock_database(&at).await {
        Ok(l) => Some(l),
        Err(NotTaken::Held(_)) if postgres => None,
        Err(e) => return Err(Error::Runtime(e.to_string())),
    };
    let store = Store::open_at(&at, config.schedule.schedule()).await?;
    let ops = crate::ops::OpsState {
        store: store.clone(),
        health: health.clone(),
        client: client.clone(),
        schedule: config.schedule.schedule(),
        clock: Arc::new(SystemClock),
    };
    let listener = serve_ops(config, ops).await?;
    if lock.is_none() {
        lock = stand_by(
            &at,
            &store,
            &health,
            config.database.takeover_poll,
            &mut signal,
        )
        .await?;
    }
    let Some(lock) = lock else {
        listener.abort();
        store.close().await;
        return Ok(());
    };
    let actor = crate::engine::claim(&store, lock).await?;
    let epoch = actor.epoch().get();
    health.set_role(
        crate::ops::Role::Leader,
        Some(epoch),
        Some(chrono::Utc::now()),
    );
    tracing::info!(epoch, database = %at.display(), "acting on the database");
    let engine = Engine::new(
        store,
        client,
        engine_config(config),
        Arc::new(SystemClock),
        Some(actor),
    );
    let result = lead(config, &engine, health, signal).await;
    listener.abort();
    engine.close().await;
    result
}

async fn serve_ops(
    config: &Config,
    ops: crate::ops::OpsState,
) -> Result<tokio::task::JoinHandle<()>> {
    let (addr, listener) = crate::ops::serve(config.metrics.listen, ops)
        .await
        .map_err(|e| {
            Error::Runtime(format!(
                "cannot listen on [metrics] listen = {}: {e}",
                config.metrics.listen
            ))
        })?;
    tracing::info!(%addr, "metrics and health listening (/metrics, /healthz)");
    Ok(listener)
}

/// Waits as a standby until the actor lock is free (`Some`) or a signal arrives (`None`),
/// trying every `poll`.
async fn stand_by(
    at: &crate::store::Location,
    store: &Store,
    health: &crate::ops::Health,
    poll: Duration,
    signal: &mut std::pin::Pin<Box<impl std::future::Future<Output = ()>>>,
) -> Result<Option<crate::engine::ActorLock>> {
    tracing::info!(database = %at.display(), "another node leads: standing by");
    let mut tick = tokio::time::interval(poll);
    loop {
        let seen = store.actor().await.ok().flatten().map(|(epoch, _)| epoch);
        health.set_role(crate::ops::Role::Standby, seen, None);
        tokio::select! {
            () = signal.as_mut() => return Ok(None),
            _ = tick.tick() => {}
        }
        match crate::engine::lock_database(at).await {
            Ok(lock) => return Ok(Some(lock)),
            Err(NotTaken::Held(_)) => {}
            Err(NotTaken::Failed(e)) => {
                tracing::warn!(error = %e, "cannot reach the database to take over; trying again")
            }
        }
    }
}

/// The leader's life: notice delivery and the scheduler, until a signal or until the actor lock
/// is lost (then the process exits with an error, and systemd starts it again as a standby).
async fn lead(
    config: &Config,
    engine: &Engine,
    health: Arc<crate::ops::Health>,
    signal: std::pin::Pin<Box<impl std::future::Future<Output = ()> + Send + 'static>>,
) -> Result<()> {
    let deliveries = start_deliveries(config, engine.store())?;
    let shutdown = engine.shutdown_handle();
    let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stopped, mut stop_rx) = tokio::sync::watch::channel(false);
    let watcher = {
        let (engine, lost) = (engine.clone(), lost.clone());
        tokio::spawn(async move {
            let gone = engine.actor_lost();
            tokio::select! {
                () = signal => tracing::info!("signal received: finishing in-flight calls, then exiting"),
                () = gone => {
                    lost.store(true, Ordering::SeqCst);
                    tracing::error!("lost the database session that holds the lead: no more sends; exiting so that this node restarts as a standby");
                }
            }
            shutdown.store(true, Ordering::SeqCst);
            let _ = stopped.send(true);
        })
    };
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
    let result = scheduler::run(engine, cfg, health, stop).await;
    watcher.abort();
    if let Some(d) = deliveries {
        d.abort();
    }
    result.map_err(|e| Error::Runtime(e.to_string()))?;
    if lost.load(Ordering::SeqCst) {
        return Err(Error::Runtime(
            "lost the lead (the PostgreSQL session holding it ended); nothing more was sent".into(),
        ));
    }
    Ok(())
}

fn start_deliveries(config: &Config, store: &Store) -> Result<Option<tokio::task::JoinHandle<()>>> {
    if config.notify.channels.is_empty() {
        return Ok(None);
    }
    let notifier =
        crate::ops::notify::Notifier::new(config.notify.channels.clone(), config.ecs.timeout)
            .map_err(Error::Runtime)?;
    for c in notifier.channels() {
        tracing::info!(channel = %c.name, kind = c.kind.as_str(), receiver = %c.url, "delivering notices to this channel");
    }
    let store = store.clone();
    Ok(Some(tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            every.tick().await;
            if let Err(e) = notifier.deliver_pending(&store, chrono::Utc::now()).await {
                tracing::error!(error = %e, "notice delivery failed");
            }
        }
    })))
}
