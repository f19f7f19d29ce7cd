//! Health: unhealthy on a configuration-class error (until a later pass succeeds), a missed
//! window (the current window's time passed a grace period ago without a completed run), or a
//! blocked attempt (until a person settles it or the cloud closes its hosts).

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::domain::Schedule;
use crate::domain::time::to_db;
use crate::store::Store;

/// How long after the window time a missing run counts as missed.
pub const MISSED_GRACE_MINUTES: i64 = 15;

#[derive(Default)]
pub struct Health {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    role: Role,
    epoch: Option<i64>,
    last_takeover: Option<DateTime<Utc>>,
    config_error: Option<String>,
    last_result: Option<(String, String)>,
    /// With sync inside the daemon: the inventory may not be older than this.
    sync_max_age: Option<std::time::Duration>,
}

/// What this node does: it acts on the database (the only node on SQLite, the leader of a pair
/// on PostgreSQL), or it waits to take over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Role {
    #[default]
    Leader,
    Standby,
}

/// The leadership part of `/healthz` and `/metrics`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Leadership {
    pub role: &'static str,
    /// The epoch this node acts under (leader), or the current one it saw (standby).
    pub epoch: Option<i64>,
    /// When this node last took the lead.
    #[serde(serialize_with = "ser_instant")]
    pub last_takeover: Option<DateTime<Utc>>,
}

/// The kinds of problem `/healthz` reports (`ddh_renewd_health_problem{problem}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    ConfigError,
    MissedWindow,
    InventoryStale,
    BlockedAttempt,
    DatabaseUnreadable,
}

impl Problem {
    pub const ALL: &'static [Self] = &[
        Self::ConfigError,
        Self::MissedWindow,
        Self::InventoryStale,
        Self::BlockedAttempt,
        Self::DatabaseUnreadable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConfigError => "config_error",
            Self::MissedWindow => "missed_window",
            Self::InventoryStale => "inventory_stale",
            Self::BlockedAttempt => "blocked_attempt",
            Self::DatabaseUnreadable => "database_unreadable",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct HealthReport {
    pub healthy: bool,
    /// The kinds of `reasons`, for `/metrics`.
    #[serde(skip)]
    pub problems: std::collections::BTreeSet<Problem>,
    pub status: &'static str,
    pub reasons: Vec<String>,
    pub last_pass: Option<String>,
    pub next_window: String,
    /// When the last successful sync finished.
    pub last_sync: Option<String>,
    #[serde(flatten)]
    pub leadership: Leadership,
}

impl Health {
    /// Records a pass: its window and result; a configuration error sticks until a clean pass.
    pub fn record_pass(&self, window: &str, result: &str, config_error: Option<&str>) {
        let mut i = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        i.last_result = Some((window.to_owned(), result.to_owned()));
        i.config_error = config_error.map(str::to_owned);
    }

    /// The daemon syncs: `/healthz` turns unhealthy when the last sync is older than `age`.
    pub fn set_sync_max_age(&self, age: Option<std::time::Duration>) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sync_max_age = age;
    }

    /// This node now leads (under `epoch`, since `at`), or waits.
    pub fn set_role(&self, role: Role, epoch: Option<i64>, at: Option<DateTime<Utc>>) {
        let mut i = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        i.role = role;
        if epoch.is_some() {
            i.epoch = epoch;
        }
        if at.is_some() {
            i.last_takeover = at;
        }
    }

    pub fn leadership(&self) -> Leadership {
        let i = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Leadership {
            role: match i.role {
                Role::Leader => "leader",
                Role::Standby => "standby",
            },
            epoch: i.epoch,
            last_takeover: i.last_takeover,
        }
    }

    pub fn set_config_error(&self, e: Option<String>) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .config_error = e;
    }

    pub async fn report(
        &self,
        store: &Store,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> HealthReport {
        let (config_error, last, sync_max_age) = {
            let i = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            (
                i.config_error.clone(),
                i.last_result.clone(),
                i.sync_max_age,
            )
        };
        let mut reasons = Vec::new();
        let mut problems = std::collections::BTreeSet::new();
        if let Some(e) = config_error {
            problems.insert(Problem::ConfigError);
            reasons.push(format!("configuration error: {e}"));
        }
        let window = schedule.window_at_or_before(now);
        if now > window + Duration::minutes(MISSED_GRACE_MINUTES) {
            match store.window_was_run(window).await {
                Ok(true) => {}
                Ok(false) => {
                    problems.insert(Problem::MissedWindow);
                    reasons.push(format!("missed window: {} was not run", to_db(window)));
                }
                Err(e) => {
                    problems.insert(Problem::DatabaseUnreadable);
                    reasons.push(format!("cannot read the database: {e}"));
                }
            }
        }
        let last_sync = store.last_sync().await.ok().flatten();
        if let Some(max) = sync_max_age {
            let max = Duration::from_std(max).unwrap_or(Duration::MAX);
            match last_sync {
                None => {
                    problems.insert(Problem::InventoryStale);
                    reasons.push("the inventory was never synced from the cloud".to_owned());
                }
                Some(t) if now - t > max => {
                    problems.insert(Problem::InventoryStale);
                    reasons.push(format!(
                        "the inventory was last synced at {}, longer ago than [sync] max_age",
                        to_db(t)
                    ));
                }
                Some(_) => {}
            }
        }
        blocked_attempts(store, &mut problems, &mut reasons).await;
        let healthy = reasons.is_empty();
        HealthReport {
            healthy,
            problems,
            status: if healthy { "ok" } else { "unhealthy" },
            reasons,
            last_pass: last.map(|(w, r)| format!("{w} {r}")),
            last_sync: last_sync.map(to_db),
            next_window: to_db(schedule.next_window_instant(now)),
            leadership: self.leadership(),
        }
    }
}

/// A blocked attempt is a problem a person must look at.
async fn blocked_attempts(
    store: &Store,
    problems: &mut std::collections::BTreeSet<Problem>,
    reasons: &mut Vec<String>,
) {
    match store.undecided_attempts().await {
        Ok(list) => {
            for a in list.iter().filter(|a| a.blocked_reason.is_some()) {
                problems.insert(Problem::BlockedAttempt);
                reasons.push(format!(
                    "blocked attempt {} (ClientToken {}) on {} needs attention: see `ddh-renewd attempts list --blocked`",
                    a.attempt_id,
                    a.client_token,
                    a.hosts.join(", ")
                ));
            }
        }
        Err(e) => {
            problems.insert(Problem::DatabaseUnreadable);
            reasons.push(format!("cannot read the database: {e}"));
        }
    }
}

/// An instant in `/healthz` as everywhere else: the storage form.
fn ser_instant<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&to_db(*t)),
        None => s.serialize_none(),
    }
}
