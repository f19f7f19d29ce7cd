//! The renewal engine: a thin driver of the protocol in [`crate::domain::protocol`].
//!
//! A pass over a window (`pass.rs`) runs three steps, each in its own file:
//! 1. `resolve.rs` — every attempt without an outcome is re-read; the protocol decides it,
//!    blocks it, or has it re-sent byte for byte with its own token;
//! 2. `due.rs` — the hosts to look at are read from the cloud; the protocol decides per host
//!    (send, close, skip), the inventory follows the cloud, and each batch is written ahead and
//!    sent (`send.rs`); a definite refusal of a batch retries its hosts in smaller attempts;
//! 3. `reminders.rs` — notices for hosts renewed by hand.
//!
//! `record.rs` turns decisions into audit rows and notices; `observe.rs` reads the cloud;
//! `manual.rs` is `renew`, through the same steps. `sync.rs`, `clock.rs`, `lock.rs` serve them.

pub mod clock;
mod due;
pub mod lock;
mod manual;
mod observe;
mod pass;
mod record;
mod reminders;
mod resolve;
mod send;
pub mod sync;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use clock::{Clock, OffsetClock, SettableClock, SystemClock};
pub use lock::{ActorLock, LockError};
pub use pass::{PassReport, PlannedAttempt, PlannedResend, SkippedHost};

use crate::domain::Schedule;
use crate::ecs::EcsClient;
use crate::store::{Epoch, Location, Store, StoreError};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub schedule: Schedule,
    pub batch_size: usize,
    pub in_window_retry: Duration,
    pub reminder_days: Vec<u32>,
    pub takeover: bool,
    /// Batches in flight at once.
    pub concurrency: usize,
    /// Backoff between re-sends of one attempt: full jitter, doubling from `base` up to `cap`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// The clock may run ahead of the wall clock: a simulation against an emulator on the same
    /// virtual time (tests, `demo`, `tick --virtual-clock`). Otherwise a pass whose clock is
    /// ahead of the wall clock is refused: nothing is recorded in the future.
    pub virtual_clock: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another process took the database over: this one must not send anything more.
    #[error("{0}")]
    Fenced(String),
    /// `renew` refused: these hosts have attempts whose outcome is not known yet.
    #[error(
        "not sent: {hosts} {have} an attempt whose outcome is not decided yet (attempt {attempts}); \
         ddh-renewd resolves it with its own ClientToken, or it is blocked and waits for \
         `ddh-renewd attempts settle`. See `ddh-renewd attempts list`."
    )]
    Busy {
        hosts: String,
        have: &'static str,
        attempts: String,
    },
    /// `renew` refused: the cloud could not be read, so nothing may be sent.
    #[error(
        "not sent: the hosts could not be read from ECS ({0}); nothing is sent without a fresh read"
    )]
    Unreadable(String),
    #[error("not sent: {0}")]
    Refused(String),
}

/// The right to act on a database: the OS lock on its file and the epoch claimed under it.
#[derive(Debug)]
pub struct Actor {
    _lock: ActorLock,
    epoch: Epoch,
}

impl Actor {
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// False once the lock may have been lost (see [`ActorLock::held`]).
    pub fn held(&self) -> bool {
        self._lock.held()
    }
}

/// Locks the database, opens the store and claims a new epoch: the one way to get an
/// [`Actor`]. On a held lock the error names the holder's pid when the database knows it.
pub async fn take_database(at: &Location, schedule: Schedule) -> Result<(Store, Actor), String> {
    let lock = lock_database(at).await.map_err(|e| e.to_string())?;
    let store = Store::open_at(at, schedule)
        .await
        .map_err(|e| e.to_string())?;
    let actor = claim(&store, lock).await.map_err(|e| e.to_string())?;
    Ok((store, actor))
}

/// Why the actor lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum NotTaken {
    /// Another process holds it (the message names it where the database knows).
    #[error("{0}")]
    Held(String),
    #[error("{0}")]
    Failed(String),
}

/// Claims a new epoch on `store` under `lock`, held already: the daemon's way to an [`Actor`]
/// once it leads.
pub async fn claim(store: &Store, lock: ActorLock) -> Result<Actor, StoreError> {
    let epoch = store.claim_epoch(std::process::id(), Utc::now()).await?;
    Ok(Actor { _lock: lock, epoch })
}

/// The actor lock of `at`: the file's `flock`, or PostgreSQL's session lock.
pub async fn lock_database(at: &Location) -> Result<ActorLock, NotTaken> {
    let held = |holder: Option<(i64, i64)>| {
        NotTaken::Held(format!(
            "another ddh-renewd{} is already acting on {}; only one may run at a time",
            holder
                .map(|(epoch, pid)| format!(" (pid {pid}, epoch {epoch})"))
                .unwrap_or_default(),
            at.display()
        ))
    };
    match at {
        Location::Sqlite(db) => match ActorLock::acquire(db) {
            Ok(l) => Ok(l),
            Err(LockError::Held { .. }) => Err(held(Store::peek_actor(db).await)),
            Err(e) => Err(NotTaken::Failed(e.to_string())),
        },
        Location::Postgres { url, password } => {
            match crate::store::SessionLock::try_acquire(url, password.as_deref()).await {
                Ok(Some(l)) => Ok(ActorLock::Session(l)),
                Ok(None) => Err(held(None)),
                Err(e) => Err(NotTaken::Failed(e.to_string())),
            }
        }
    }
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) client: Arc<EcsClient>,
    pub(crate) cfg: EngineConfig,
    pub(crate) clock: Arc<dyn Clock>,
    /// Set on SIGTERM: no new sends; in-flight calls finish and are recorded.
    pub(crate) shutdown: Arc<AtomicBool>,
    /// `None`: this engine may read and report but never write ahead (dry run).
    pub(crate) actor: Option<Actor>,
}

/// The engine; cheap to clone (tasks of one pass share it).
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl Engine {
    pub fn new(
        store: Store,
        client: Arc<EcsClient>,
        cfg: EngineConfig,
        clock: Arc<dyn Clock>,
        actor: Option<Actor>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                client,
                cfg,
                clock,
                shutdown: Arc::new(AtomicBool::new(false)),
                actor,
            }),
        }
    }

    /// Resolves once the actor lock is lost (never for an engine that does not act, nor on
    /// SQLite).
    pub async fn actor_lost(&self) {
        match &self.inner.actor {
            Some(a) => a._lock.lost().await,
            None => std::future::pending().await,
        }
    }

    /// The flag that stops new sends (in-flight calls finish and are recorded).
    pub fn shutdown_handle(&self) -> Arc<AtomicBool> {
        self.inner.shutdown.clone()
    }

    /// No new sends: on SIGTERM, or when the actor lock may have been lost.
    pub(crate) fn stopping(&self) -> bool {
        self.inner.shutdown.load(Ordering::SeqCst)
            || self.inner.actor.as_ref().is_some_and(|a| !a.held())
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.cfg
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn client(&self) -> &EcsClient {
        &self.inner.client
    }

    pub fn client_handle(&self) -> Arc<EcsClient> {
        self.inner.client.clone()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Refuses a clock ahead of the wall clock (beyond a minute), unless this is a simulation.
    pub(crate) fn check_clock(&self) -> Result<(), EngineError> {
        let now = self.now();
        let wall = Utc::now();
        if !self.inner.cfg.virtual_clock && now > wall + chrono::Duration::minutes(1) {
            return Err(EngineError::Refused(format!(
                "this pass runs at {}, ahead of the wall clock ({}); nothing is paid or recorded in the future (`tick --at` a future instant only with --dry-run)",
                crate::domain::time::to_db(now),
                crate::domain::time::to_db(wall)
            )));
        }
        Ok(())
    }

    /// The window a pass run now belongs to.
    pub fn current_window(&self) -> DateTime<Utc> {
        self.inner.cfg.schedule.window_at_or_before(self.now())
    }

    /// Closes the store, then releases the actor lock (in this order: see `lock.rs`). Tasks of
    /// an abandoned pass (aborted, not yet dropped) are given up to ten seconds to let go first.
    pub async fn close(self) {
        self.inner.store.clone().close().await;
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&self.inner) > 1 && std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(self);
    }
}
