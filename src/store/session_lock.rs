//! The actor lock on PostgreSQL: a session-level advisory lock, held by one dedicated
//! connection for as long as this process acts. PostgreSQL releases it the moment that session
//! ends — the process killed, the connection terminated, the network gone — so a successor can
//! take over without trusting any clock. The session is probed every second; when a probe
//! fails, [`SessionLock::lost`] turns true and the engine sends nothing more (the epoch check
//! of every write-ahead fences it in any case once a successor has claimed).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use super::StoreError;

/// The advisory lock key of the actor ("ddha").
const ACTOR_LOCK: i64 = 0x6464_6861;
/// How often the lock's session is probed.
pub const PROBE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct SessionLock {
    lost: Arc<AtomicBool>,
    /// Woken when the session is lost (so that nobody polls the flag).
    gone: Arc<tokio::sync::Notify>,
    release: Option<tokio::sync::oneshot::Sender<()>>,
}

impl SessionLock {
    /// Takes the lock if it is free: `Ok(None)` if another session holds it.
    pub async fn try_acquire(
        url: &str,
        password: Option<&str>,
    ) -> Result<Option<Self>, StoreError> {
        let fail = |message: String| StoreError::Open {
            path: url.into(),
            message,
        };
        let mut opts: PgConnectOptions =
            url.parse().map_err(|e: sqlx::Error| fail(e.to_string()))?;
        if let Some(p) = password {
            opts = opts.password(p);
        }
        let mut conn = opts
            .application_name(&format!(
                "ddh-renewd actor lock (pid {})",
                std::process::id()
            ))
            .connect()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(ACTOR_LOCK)
            .fetch_one(&mut conn)
            .await
            .map_err(StoreError::sql("taking the actor lock"))?;
        if !got {
            let _ = conn.close().await;
            return Ok(None);
        }
        let lost = Arc::new(AtomicBool::new(false));
        let gone = Arc::new(tokio::sync::Notify::new());
        let (release, released) = tokio::sync::oneshot::channel();
        tokio::spawn(hold(conn, lost.clone(), gone.clone(), released));
        Ok(Some(Self {
            lost,
            gone,
            release: Some(release),
        }))
    }

    /// True once the session that holds the lock has failed a probe (or ended).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Resolves once the session is lost.
    pub async fn wait_lost(&self) {
        loop {
            let notified = self.gone.notified();
            if self.lost() {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        if let Some(r) = self.release.take() {
            let _ = r.send(());
        }
    }
}

/// Keeps the session (and so the lock) until released; probes it meanwhile.
async fn hold(
    mut conn: PgConnection,
    lost: Arc<AtomicBool>,
    gone: Arc<tokio::sync::Notify>,
    mut released: tokio::sync::oneshot::Receiver<()>,
) {
    let mut tick = tokio::time::interval(PROBE);
    loop {
        tokio::select! {
            _ = &mut released => break,
            _ = tick.tick() => {
                let probe = tokio::time::timeout(PROBE, sqlx::query("SELECT 1").execute(&mut conn)).await;
                if !matches!(probe, Ok(Ok(_))) {
                    lost.store(true, Ordering::SeqCst);
                    gone.notify_waiters();
                    tracing::error!("the PostgreSQL session holding the actor lock is gone: this process sends nothing more");
                    return;
                }
            }
        }
    }
    let _ = conn.close().await;
}
