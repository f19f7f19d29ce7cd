//! Where a host stands at an instant: the `state` column of `plan` and `v_hosts`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::host::{ChargeType, Host};
use super::policy::{Policy, RenewalStatus};
use super::window::WindowMemo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// A window at or before now in the current cycle is still unrenewed.
    Due,
    /// An attempt on the host has no definite answer yet; it is resolved with its own token.
    Undecided,
    /// An attempt on the host is blocked: a person must settle it (`attempts settle`).
    Blocked,
    /// Managed here; the first window of the cycle is still ahead.
    Scheduled,
    /// PrePaid but `Normal` or `NotRenewal`: renewed by a person, or not at all.
    NotManaged,
    /// The current cycle was renewed; the next cycle's windows are ahead.
    Renewed,
    /// Expired (or locked for non-payment) without a renewal.
    Lapsed,
    /// No longer exists in the cloud.
    Released,
    /// Pay-as-you-go: nothing to renew.
    Postpaid,
}

impl HostState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Due => "due",
            Self::Undecided => "undecided",
            Self::Blocked => "blocked",
            Self::Scheduled => "scheduled",
            Self::NotManaged => "not_managed",
            Self::Renewed => "renewed",
            Self::Lapsed => "lapsed",
            Self::Released => "released",
            Self::Postpaid => "postpaid",
        }
    }
}

impl fmt::Display for HostState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The plan for one host at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPlan {
    pub state: HostState,
    /// The window the engine will act on next: for `due`, the latest unrenewed window at or
    /// before `at`; for `scheduled`/`renewed`, the first window ahead. `None` when no renewal
    /// will be attempted.
    pub next_window: Option<DateTime<Utc>>,
    /// The last window before the current expiry (PrePaid, not released).
    pub last_window: Option<DateTime<Utc>>,
}

/// What the audit trail says about a host, for its state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostHistory {
    /// The store recorded a renewal into the current cycle (so before its first window the host
    /// shows `renewed` rather than `scheduled`).
    pub recently_renewed: bool,
    /// An attempt on the host has no outcome: `Some(true)` if it is blocked.
    pub open_attempt: Option<bool>,
}

/// Decides a host's state at `at`.
pub fn plan_host(
    host: &Host,
    policy: &Policy,
    windows: &mut WindowMemo,
    at: DateTime<Utc>,
    history: HostHistory,
) -> HostPlan {
    let none = |state| HostPlan {
        state,
        next_window: None,
        last_window: None,
    };
    if host.status.is_released() {
        return none(HostState::Released);
    }
    if host.charge_type == ChargeType::PostPaid {
        return none(HostState::Postpaid);
    }
    let e = host.expired_time;
    // The cycle's windows (remembered per expiry: each is a time-zone conversion).
    let windows = windows.windows(e);
    let last_window = windows.last().copied();
    let with = |state, next_window| HostPlan {
        state,
        next_window,
        last_window,
    };
    match history.open_attempt {
        Some(true) => return with(HostState::Blocked, None),
        Some(false) => return with(HostState::Undecided, None),
        None => {}
    }
    if host.financial_lock || e <= at {
        return with(HostState::Lapsed, None);
    }
    if policy.status != RenewalStatus::AutoRenewal {
        return with(HostState::NotManaged, None);
    }
    if let Some(w) = windows.iter().rev().find(|w| **w <= at) {
        return with(HostState::Due, Some(*w));
    }
    let next = windows.iter().find(|w| **w > at).copied();
    if history.recently_renewed {
        with(HostState::Renewed, next)
    } else {
        with(HostState::Scheduled, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::host::HostStatus;
    use crate::domain::ids::HostId;
    use crate::domain::time::parse_instant;
    use crate::domain::window::Schedule;

    fn t(s: &str) -> DateTime<Utc> {
        parse_instant(s).unwrap()
    }

    fn host(e: &str) -> Host {
        Host {
            id: HostId::parse("dh-a").unwrap(),
            region_id: "cn-hangzhou".into(),
            zone_id: None,
            charge_type: ChargeType::PrePaid,
            status: HostStatus::available(),
            expired_time: t(e),
            sale_cycle: None,
            financial_lock: false,
        }
    }

    fn auto() -> Policy {
        Policy {
            status: RenewalStatus::AutoRenewal,
            ..Policy::default()
        }
    }

    #[test]
    fn spec_examples_before_the_first_window() {
        let s = &mut WindowMemo::new(Schedule::default());
        let at = t("2026-12-01T00:00:00Z");
        let a = plan_host(
            &host("2026-12-10T16:00Z"),
            &auto(),
            s,
            at,
            HostHistory::default(),
        );
        assert_eq!(a.state, HostState::Scheduled);
        assert_eq!(a.next_window, Some(t("2026-12-02T08:00:00+08:00")));
        assert_eq!(a.last_window, Some(t("2026-12-10T08:00:00+08:00")));
        let b = plan_host(
            &host("2026-12-11T01:00Z"),
            &auto(),
            s,
            at,
            HostHistory::default(),
        );
        assert_eq!(b.next_window, Some(t("2026-12-02T08:00:00+08:00")));
        assert_eq!(b.last_window, Some(t("2026-12-11T08:00:00+08:00")));
    }

    #[test]
    fn due_points_at_the_latest_window() {
        let s = &mut WindowMemo::new(Schedule::default());
        let p = plan_host(
            &host("2026-12-10T16:00Z"),
            &auto(),
            s,
            t("2026-12-04T09:00:00+08:00"),
            HostHistory::default(),
        );
        assert_eq!(p.state, HostState::Due);
        assert_eq!(p.next_window, Some(t("2026-12-04T08:00:00+08:00")));
    }

    #[test]
    fn other_states() {
        let s = &mut WindowMemo::new(Schedule::default());
        let at = t("2026-12-01T00:00:00Z");
        let mut h = host("2026-12-10T16:00Z");
        assert_eq!(
            plan_host(&h, &Policy::default(), s, at, HostHistory::default()).state,
            HostState::NotManaged
        );
        assert_eq!(
            plan_host(
                &h,
                &auto(),
                s,
                t("2026-12-10T16:00:00Z"),
                HostHistory::default()
            )
            .state,
            HostState::Lapsed
        );
        h.charge_type = ChargeType::PostPaid;
        assert_eq!(
            plan_host(&h, &auto(), s, at, HostHistory::default()).state,
            HostState::Postpaid
        );
        h.status = HostStatus("Released".into());
        assert_eq!(
            plan_host(&h, &auto(), s, at, HostHistory::default()).state,
            HostState::Released
        );
    }
}
