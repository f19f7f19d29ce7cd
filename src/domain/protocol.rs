//! The renewal protocol of SPEC §3.1 as a pure state machine.
//!
//! An attempt is one `RenewDedicatedHosts` request, written ahead of its first send. It is
//! **open** until something definite is known, then **decided** once; or it is **blocked** when
//! it can be neither re-sent nor replaced, until a person settles it. Every decision here is a
//! function of what was observed — the cloud's answer, the expiry read before the send (the
//! attempt's cycle) and after it, the lock the cloud reports — and never of the local clock:
//!
//! ```text
//!              write ahead
//!                  │
//!                  ▼          no definite answer (timeout, 5xx, throttled, in flight,
//!   ┌──────────► OPEN ◄─────┐ retries spent, refused before processing, crash)
//!   │ re-send     │  │      │
//!   │ same bytes  │  └──────┘
//!   │             │ definite answer + re-read,  or a re-read that closes every host
//!   └─────────────┤
//!                 ├──────────────► DECIDED (renewed │ failed │ split │ resolved │ config_error)
//!                 │
//!                 └─ some hosts renewed elsewhere while undecided, token bound to other
//!                    parameters, expiry moved backwards
//!                                  ▼
//!                               BLOCKED ── every host closed by the cloud ──► DECIDED (resolved)
//!                                  └────── operator: `attempts settle --not-applied` ──► DECIDED (settled)
//! ```
//!
//! The engine is the driver: read → [`decide_pre_send`] → write ahead → send → re-read →
//! [`decide_answered`] (or, for an attempt found open, [`decide_unanswered`]) → record.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ids::HostId;
use super::period::Period;
use super::policy::RenewalStatus;
use super::window::Schedule;

/// Declares a string-backed enum: `as_str`, `FromStr`, `Display`, `Serialize` as the string, and
/// `ALL` (every value the database may hold, for CHECK constraints and tests).
macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $var),+ }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$var),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$var => $s),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok(Self::$var),)+
                    other => Err(format!("{other:?} is not a {}", stringify!($name))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Who opened an attempt.
    AttemptKind {
        Scheduled = "scheduled",
        Manual = "manual",
    }
);

text_enum!(
    /// The final word on an attempt (`attempt_outcomes.outcome`).
    AttemptOutcome {
        /// At least one host's expiry moved by exactly the attempt's period: credited to its token.
        Renewed = "renewed",
        /// The cloud refused it definitively; its hosts are tried again in the next window.
        Failed = "failed",
        /// The cloud refused a batch definitively; its hosts were retried in smaller attempts in
        /// the same window, to isolate the host at fault.
        Split = "split",
        /// Every host's cycle was closed by what the cloud shows (renewed elsewhere, gone,
        /// lapsed); nothing is credited to the token.
        Resolved = "resolved",
        /// The cloud refused the parameters themselves (`InvalidPeriod…`): fix the policy.
        ConfigError = "config_error",
        /// A person confirmed that the blocked request was not applied and will not be.
        Settled = "settled",
        /// Written by versions before 0.2; never written now.
        LegacyAlreadyRenewed = "already_renewed",
        LegacyRetriesExhausted = "retries_exhausted",
        LegacyHostGone = "host_gone",
        LegacySuperseded = "superseded",
        LegacyLapsed = "lapsed",
    }
);

text_enum!(
    /// What an attempt did for one of its hosts (`host_outcomes.outcome`).
    HostOutcome {
        /// The expiry moved by exactly the period: credited to this token.
        Renewed = "renewed",
        /// The expiry moved by another amount (by hand, by the cloud's auto-renew): not credited.
        RenewedElsewhere = "renewed_elsewhere",
        /// Refused definitively; the next window opens a new attempt with a new token.
        Failed = "failed",
        /// Refused as part of a batch; retried in a smaller attempt in the same window.
        Retry = "retry",
        /// The cloud no longer returns the host, or it is PostPaid now.
        Gone = "gone",
        /// The cloud shows the host expired and locked, unrenewed.
        Lapsed = "lapsed",
        /// Settled by a person as not applied; the host may be attempted again at once.
        Abandoned = "abandoned",
        /// Written by versions before 0.2; never written now.
        LegacyAlreadyRenewed = "already_renewed",
        LegacyRetriesExhausted = "retries_exhausted",
        LegacyConfigError = "config_error",
        LegacyHostGone = "host_gone",
        LegacySplit = "split",
        LegacySuperseded = "superseded",
        LegacyPending = "pending",
    }
);

text_enum!(
    /// How a (host, cycle) ended (`cycle_closures.outcome`). A closed cycle is never attempted.
    Closure {
        /// Renewed by an attempt of ours (its id is on the closure).
        Renewed = "renewed",
        /// Renewed, but not by us: by hand, by the cloud, or found renewed on a re-read.
        RenewedElsewhere = "renewed_elsewhere",
        Lapsed = "lapsed",
        Gone = "gone",
    }
);

text_enum!(
    /// Notice kinds of SPEC §2.5 (`notices.kind`).
    NoticeKind {
        Renewed = "renewed",
        RenewalFailed = "renewal_failed",
        Lapsed = "lapsed",
        NotRenewing = "not_renewing",
        ExpiryReminder = "expiry_reminder",
        DoubleRenewRisk = "double_renew_risk",
        NeedsAttention = "needs_attention",
        ConfigError = "config_error",
    }
);

text_enum!(
    /// Why an attempt is blocked (`attempt_blocks.reason`).
    BlockReason {
        /// Undecided, and some of its hosts were renewed elsewhere: re-sending could pay for them
        /// again, replacing it could pay twice if it still completes.
        PartlyRenewedElsewhere = "partly_renewed_elsewhere",
        /// The cloud holds this token with other parameters: someone else used it.
        TokenMismatch = "token_mismatch",
        /// The cloud shows an expiry earlier than the one read before the send.
        ExpiryMovedBackwards = "expiry_moved_backwards",
    }
);

text_enum!(
    /// What woke a window pass (`window_runs.trigger`).
    Trigger {
        Cron = "cron",
        CatchUp = "catch_up",
        Safety = "safety",
        Tick = "tick",
        Manual = "manual",
    }
);

text_enum!(
    /// How a window pass ended (`window_runs.result`).
    PassResult {
        Ok = "ok",
        Failures = "failures",
        ConfigError = "config_error",
        Interrupted = "interrupted",
    }
);

text_enum!(
    /// A send and what came back (`attempt_events.kind`).
    EventKind {
        Sent = "sent",
        Answer = "answer",
        NoAnswer = "no_answer",
        Resolve = "resolve",
    }
);

impl Closure {
    /// Closures that mean "this cycle was paid for".
    pub fn is_renewal(self) -> bool {
        matches!(self, Self::Renewed | Self::RenewedElsewhere)
    }
}

/// A host as the cloud shows it now: `DescribeDedicatedHosts` and, where read,
/// `DescribeDedicatedHostAutoRenew`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudHost {
    pub expiry: DateTime<Utc>,
    pub prepaid: bool,
    /// `OperationLocks` carries `LockReason=financial`: expired and locked for non-payment.
    pub locked: bool,
    /// The cloud-side auto-renew status; `None` when it was not read or not returned.
    pub auto_renew: Option<RenewalStatus>,
}

/// One host in one read: returned; not returned, with proof (missing from a complete answer to a
/// query naming it, twice); or missing without proof (too many of a region at once to believe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Present(CloudHost),
    Absent,
    Unproven,
}

/// One host of an attempt, measured against the attempt's cycle (the expiry read before it was
/// sent) and period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// Moved by exactly the period.
    Applied(DateTime<Utc>),
    /// Moved forward by another amount.
    Elsewhere(DateTime<Utc>),
    /// Same expiry, not locked.
    Unmoved,
    /// Same expiry, locked for non-payment.
    Lapsed,
    /// Not returned, or PostPaid now.
    Gone,
    /// Missing without proof: nothing can be decided about it now.
    Unknown,
    /// Earlier than the cycle: the cloud contradicts what it said before the send.
    Backwards(DateTime<Utc>),
}

/// Measures one host of an attempt.
pub fn classify(cycle: DateTime<Utc>, period: Period, seen: &Seen) -> Moved {
    let c = match seen {
        Seen::Absent => return Moved::Gone,
        Seen::Unproven => return Moved::Unknown,
        Seen::Present(c) if !c.prepaid => return Moved::Gone,
        Seen::Present(c) => c,
    };
    if c.expiry == cycle {
        if c.locked {
            Moved::Lapsed
        } else {
            Moved::Unmoved
        }
    } else if c.expiry > cycle {
        if period.add_to(cycle) == Some(c.expiry) {
            Moved::Applied(c.expiry)
        } else {
            Moved::Elsewhere(c.expiry)
        }
    } else {
        Moved::Backwards(c.expiry)
    }
}

/// The answer to one send, reduced to what the protocol needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 2xx.
    Accepted,
    /// A definite business refusal: the cloud processed the request, refused it, and replays that
    /// refusal for this token.
    Refused(Refusal),
    /// `IdempotenceParamNotMatch` and kin: the token is bound to other parameters.
    TokenMismatch,
    /// Refused before processing (key, signature, permission, timestamp). Says nothing about
    /// earlier sends of the same attempt.
    Unauthorized,
    /// No definite answer: transport error, timeout, 5xx, throttling, `LastTokenProcessing`,
    /// `IdempotentProcessing`, a 2xx body that cannot be read.
    Undecided,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Payment and other business errors (`InsufficientBalance`, `IncorrectHostStatus`…).
    Definite,
    /// `InvalidDedicatedHostId.NotFound`, `ChargeTypeViolation`.
    HostGone,
    /// The parameters themselves (`InvalidPeriod…`).
    Parameters,
}

/// What happens to one host when an attempt is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDecision {
    pub host: HostId,
    pub cycle: DateTime<Utc>,
    pub outcome: HostOutcome,
    /// The expiry the cloud showed, when it moved.
    pub expiry_after: Option<DateTime<Utc>>,
    pub closure: Option<Closure>,
}

/// Why an open attempt stays open without a re-send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// The cloud accepted it but the expiry has not moved (yet).
    AcceptedNotMoved,
    /// Not a definite answer: nothing to decide.
    NoDefiniteAnswer,
}

/// What to do with an attempt after looking at the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Decide it now. `retry` lists host groups to try again at once, each as a new attempt in
    /// the same window (a definite refusal of a batch isolates the host at fault).
    Decide {
        outcome: AttemptOutcome,
        hosts: Vec<HostDecision>,
        retry: Vec<Vec<(HostId, DateTime<Utc>)>>,
    },
    /// Send the recorded request again: the same bytes, the same token.
    Resend,
    /// Leave it open: nothing is decided and nothing is sent now.
    Wait(WaitReason),
    /// Neither re-send nor replace it; a person must look. `hosts` are the ones that explain why.
    Block {
        reason: BlockReason,
        hosts: Vec<HostId>,
    },
}

/// An attempt as the decisions need it: its hosts with their cycles (in request order) and its
/// period.
#[derive(Debug, Clone)]
pub struct AttemptFacts<'a> {
    pub hosts: &'a [(HostId, DateTime<Utc>)],
    pub period: Period,
}

fn measure(a: &AttemptFacts<'_>, seen: &BTreeMap<HostId, Seen>) -> Vec<Moved> {
    a.hosts
        .iter()
        .map(|(id, cycle)| classify(*cycle, a.period, seen.get(id).unwrap_or(&Seen::Unproven)))
        .collect()
}

/// The closure a measured host gets, or `None` if it is still unrenewed and payable.
fn closed(id: &HostId, cycle: DateTime<Utc>, m: Moved) -> Option<HostDecision> {
    let (outcome, expiry_after, closure) = match m {
        Moved::Applied(t) => (HostOutcome::Renewed, Some(t), Closure::Renewed),
        Moved::Elsewhere(t) => (
            HostOutcome::RenewedElsewhere,
            Some(t),
            Closure::RenewedElsewhere,
        ),
        Moved::Gone => (HostOutcome::Gone, None, Closure::Gone),
        Moved::Lapsed => (HostOutcome::Lapsed, None, Closure::Lapsed),
        Moved::Unmoved | Moved::Backwards(_) | Moved::Unknown => return None,
    };
    Some(HostDecision {
        host: id.clone(),
        cycle,
        outcome,
        expiry_after,
        closure: Some(closure),
    })
}

fn backwards(a: &AttemptFacts<'_>, moved: &[Moved]) -> Option<Decision> {
    let hosts: Vec<HostId> = a
        .hosts
        .iter()
        .zip(moved)
        .filter(|(_, m)| matches!(m, Moved::Backwards(_)))
        .map(|((id, _), _)| id.clone())
        .collect();
    (!hosts.is_empty()).then_some(Decision::Block {
        reason: BlockReason::ExpiryMovedBackwards,
        hosts,
    })
}

/// Decides from the hosts alone when none is left unmoved: every cycle is closed by the cloud.
fn all_closed(a: &AttemptFacts<'_>, moved: &[Moved]) -> Option<Decision> {
    let hosts: Option<Vec<HostDecision>> = a
        .hosts
        .iter()
        .zip(moved)
        .map(|((id, cycle), m)| closed(id, *cycle, *m))
        .collect();
    let hosts = hosts?;
    let outcome = if hosts.iter().any(|h| h.outcome == HostOutcome::Renewed) {
        AttemptOutcome::Renewed
    } else {
        AttemptOutcome::Resolved
    };
    Some(Decision::Decide {
        outcome,
        hosts,
        retry: Vec::new(),
    })
}

/// An attempt found open (after a restart, a crash, or retries that ran out), re-read, with no
/// definite answer in hand. Undecided stays undecided unless the cloud closes every host.
pub fn decide_unanswered(a: &AttemptFacts<'_>, seen: &BTreeMap<HostId, Seen>) -> Decision {
    let moved = measure(a, seen);
    if let Some(block) = backwards(a, &moved) {
        return block;
    }
    if moved.contains(&Moved::Unknown) {
        return Decision::Wait(WaitReason::NoDefiniteAnswer);
    }
    if let Some(decided) = all_closed(a, &moved) {
        return decided;
    }
    let renewed: Vec<HostId> = a
        .hosts
        .iter()
        .zip(&moved)
        .filter(|(_, m)| matches!(m, Moved::Applied(_) | Moved::Elsewhere(_)))
        .map(|((id, _), _)| id.clone())
        .collect();
    if renewed.is_empty() {
        // Nothing moved: the request did not apply (yet). Only the same bytes may go again.
        Decision::Resend
    } else {
        Decision::Block {
            reason: BlockReason::PartlyRenewedElsewhere,
            hosts: renewed,
        }
    }
}

/// An attempt that just got `answer`, with its hosts re-read after it.
pub fn decide_answered(
    a: &AttemptFacts<'_>,
    answer: Answer,
    seen: &BTreeMap<HostId, Seen>,
) -> Decision {
    let moved = measure(a, seen);
    if let Some(block) = backwards(a, &moved) {
        return block;
    }
    if moved.contains(&Moved::Unknown) {
        // Re-read next pass; the answer (if definite) is replayed for the same token.
        return Decision::Wait(WaitReason::NoDefiniteAnswer);
    }
    match answer {
        Answer::Undecided | Answer::Unauthorized => Decision::Wait(WaitReason::NoDefiniteAnswer),
        Answer::Accepted => {
            all_closed(a, &moved).unwrap_or(Decision::Wait(WaitReason::AcceptedNotMoved))
        }
        Answer::TokenMismatch => all_closed(a, &moved).unwrap_or_else(|| Decision::Block {
            reason: BlockReason::TokenMismatch,
            hosts: a.hosts.iter().map(|(id, _)| id.clone()).collect(),
        }),
        Answer::Refused(refusal) => refused(a, refusal, &moved),
    }
}

/// A definite refusal: the token will never apply, so every unmoved host is free again. Hosts the
/// cloud shows renewed, gone or lapsed are closed; the rest fail, or are retried at once when the
/// refusal may have been caused by another host of the batch.
fn refused(a: &AttemptFacts<'_>, refusal: Refusal, moved: &[Moved]) -> Decision {
    let mut hosts = Vec::with_capacity(a.hosts.len());
    let mut rest = Vec::new();
    for ((id, cycle), m) in a.hosts.iter().zip(moved) {
        match closed(id, *cycle, *m) {
            Some(d) => hosts.push(d),
            None => rest.push((id.clone(), *cycle)),
        }
    }
    let n = a.hosts.len();
    let retry: Vec<Vec<(HostId, DateTime<Utc>)>> =
        if rest.is_empty() || refusal == Refusal::Parameters {
            Vec::new()
        } else if rest.len() < n {
            // Some hosts left the batch (gone, lapsed, renewed): they may have caused the refusal.
            vec![rest.clone()]
        } else if n > 1 {
            let (x, y) = rest.split_at(n / 2);
            vec![x.to_vec(), y.to_vec()]
        } else {
            Vec::new()
        };
    let unmoved_outcome = if retry.is_empty() {
        HostOutcome::Failed
    } else {
        HostOutcome::Retry
    };
    hosts.extend(rest.into_iter().map(|(host, cycle)| HostDecision {
        host,
        cycle,
        outcome: unmoved_outcome,
        expiry_after: None,
        closure: None,
    }));
    let outcome = if hosts.iter().any(|h| h.outcome == HostOutcome::Renewed) {
        AttemptOutcome::Renewed
    } else if refusal == Refusal::Parameters {
        AttemptOutcome::ConfigError
    } else if unmoved_outcome == HostOutcome::Retry {
        AttemptOutcome::Split
    } else if hosts.iter().any(|h| h.outcome == HostOutcome::Failed) {
        AttemptOutcome::Failed
    } else {
        AttemptOutcome::Resolved
    };
    // Request order: the decisions follow the attempt's host order.
    hosts.sort_by_key(|h| a.hosts.iter().position(|(id, _)| *id == h.host));
    Decision::Decide {
        outcome,
        hosts,
        retry,
    }
}

/// What the store knows about a managed host, for the decision before a new attempt.
#[derive(Debug, Clone, Default)]
pub struct CycleFacts {
    /// The inventory's expiry.
    pub inventory_expiry: Option<DateTime<Utc>>,
    /// The expiry the cloud showed at the last read, if it was ever read.
    pub last_cloud_expiry: Option<DateTime<Utc>>,
    /// Closed cycles of this host.
    pub closures: BTreeMap<DateTime<Utc>, Closure>,
    /// Cycles with a definite failure in the current window: not attempted again in it.
    pub failed_in_window: BTreeSet<DateTime<Utc>>,
}

/// Why a candidate is not sent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// The cloud's cycle has no window at or before this one yet.
    NotYet,
    /// The cloud's cycle has no window at all with this schedule.
    NoWindow,
    /// Refused definitively in this window already; the next window tries again.
    FailedThisWindow,
    /// Auto-renewed by the cloud as well: paying here could pay twice.
    DoubleRenewRisk,
    /// The cloud-side auto-renew status could not be read.
    AutoRenewUnknown,
    /// The cloud shows a cycle recorded as renewed already: a stale read; nothing is changed.
    StaleRead,
    /// The cloud's cycle is closed (lapsed or gone) already.
    Closed,
    /// `renew`: the cycle the inventory showed was renewed elsewhere meanwhile; the inventory
    /// now shows the new expiry — ask again to pay for that one.
    RenewedMeanwhile,
    /// Missing from the answers without proof that it is gone.
    Unconfirmed,
    /// `renew`: the cloud's current cycle has no window open yet (it was renewed already, or
    /// expires far ahead); `--force` pays anyway.
    NotInWindow,
}

/// The decision before a new attempt on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreSend {
    /// Write ahead and send for this cycle (the cloud's expiry).
    Send(DateTime<Utc>),
    /// Cloud-side auto-renew is on and `takeover` is set: switch it off, then read again.
    TakeOver(DateTime<Utc>),
    /// Close this cycle without sending.
    Close(DateTime<Utc>, Closure),
    Skip(Skip),
}

/// The whole decision: what to send, and how the inventory follows the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreSendDecision {
    pub action: PreSend,
    /// The inventory's expiry moves to the cloud's (forwards or backwards).
    pub adopt: Option<DateTime<Utc>>,
    /// The inventory's cycle was renewed elsewhere: the cloud's expiry is past it.
    pub close_inventory_cycle: Option<DateTime<Utc>>,
}

/// The inventory's cycle, if the cloud now shows it renewed: the expiry moved past it, and it
/// was a real cycle (the cloud showed it at the last read, or was never read) that is not closed
/// yet. An inventory expiry the cloud never showed (a wrong import) closes nothing.
fn renewed_since(facts: &CycleFacts, cloud: DateTime<Utc>) -> Option<DateTime<Utc>> {
    facts.inventory_expiry.filter(|e| {
        *e < cloud
            && !facts.closures.contains_key(e)
            && facts.last_cloud_expiry.is_none_or(|last| last == *e)
    })
}

/// The decision that needs no cycle: a host not proven gone but unseen, or gone.
fn unseen(facts: &CycleFacts, seen: &Seen) -> Option<PreSend> {
    match seen {
        Seen::Unproven => Some(PreSend::Skip(Skip::Unconfirmed)),
        Seen::Present(c) if c.prepaid => None,
        // Gone (or PostPaid now): the inventory's cycle ends here.
        _ => Some(match facts.inventory_expiry {
            Some(e) if !facts.closures.contains_key(&e) => PreSend::Close(e, Closure::Gone),
            _ => PreSend::Skip(Skip::Closed),
        }),
    }
}

/// Send, take over, or skip, by the cloud-side auto-renew status: a host the cloud renews itself
/// is never paid for here as well.
fn by_auto_renew(c: &CloudHost, takeover: bool) -> PreSend {
    match c.auto_renew {
        None => PreSend::Skip(Skip::AutoRenewUnknown),
        Some(RenewalStatus::AutoRenewal) if takeover => PreSend::TakeOver(c.expiry),
        Some(RenewalStatus::AutoRenewal) => PreSend::Skip(Skip::DoubleRenewRisk),
        Some(_) => PreSend::Send(c.expiry),
    }
}

fn plain(action: PreSend) -> PreSendDecision {
    PreSendDecision {
        action,
        adopt: None,
        close_inventory_cycle: None,
    }
}

/// Decides, from a fresh read, whether a managed host gets a new attempt in `window`. The cycle
/// worked on is always the cloud's current expiry; the local clock lapses nothing.
pub fn decide_pre_send(
    facts: &CycleFacts,
    seen: &Seen,
    window: DateTime<Utc>,
    schedule: &Schedule,
    takeover: bool,
) -> PreSendDecision {
    if let Some(action) = unseen(facts, seen) {
        return plain(action);
    }
    let Seen::Present(c) = seen else {
        return plain(PreSend::Skip(Skip::Unconfirmed));
    };
    let cycle = c.expiry;
    if let Some(closure) = facts.closures.get(&cycle) {
        // A cycle we already saw end: if it was renewed, this read is older than what we know.
        let skip = if closure.is_renewal() {
            Skip::StaleRead
        } else {
            Skip::Closed
        };
        return plain(PreSend::Skip(skip));
    }
    let action = if c.locked {
        PreSend::Close(cycle, Closure::Lapsed)
    } else if facts.failed_in_window.contains(&cycle) {
        PreSend::Skip(Skip::FailedThisWindow)
    } else {
        match schedule.first_window(cycle) {
            None => PreSend::Skip(Skip::NoWindow),
            Some(first) if first > window => PreSend::Skip(Skip::NotYet),
            Some(_) => by_auto_renew(c, takeover),
        }
    };
    PreSendDecision {
        action,
        adopt: (facts.inventory_expiry != Some(cycle)).then_some(cycle),
        close_inventory_cycle: renewed_since(facts, cycle),
    }
}

/// How a manual renewal is guarded.
#[derive(Debug, Clone, Copy)]
pub struct ManualGuard<'a> {
    pub now: DateTime<Utc>,
    pub schedule: &'a Schedule,
    pub takeover: bool,
    /// A person insists: pay outside the cycle's windows, or for a cycle renewed meanwhile.
    pub force: bool,
}

/// The decision before a manual renewal (`renew`). It pays only for a cycle in its windows (the
/// same windows auto-renew uses; an expired host's are open until it is renewed), and only for
/// the cycle the person asked about — the one the inventory showed: if the cloud shows it renewed
/// meanwhile nothing is paid and the inventory follows. `force` lifts those two guards; a cycle
/// recorded as renewed (a stale read) and cloud-side auto-renew still stop it.
pub fn decide_manual(facts: &CycleFacts, seen: &Seen, g: ManualGuard<'_>) -> PreSendDecision {
    if let Some(action) = unseen(facts, seen) {
        return plain(action);
    }
    let Seen::Present(c) = seen else {
        return plain(PreSend::Skip(Skip::Unconfirmed));
    };
    let cycle = c.expiry;
    if facts.closures.get(&cycle).is_some_and(|cl| cl.is_renewal()) {
        return plain(PreSend::Skip(Skip::StaleRead));
    }
    let in_window = g.schedule.first_window(cycle).is_some_and(|f| f <= g.now);
    let action = if !g.force && facts.inventory_expiry.is_some_and(|e| e < cycle) {
        PreSend::Skip(Skip::RenewedMeanwhile)
    } else if !g.force && !in_window {
        PreSend::Skip(Skip::NotInWindow)
    } else {
        by_auto_renew(c, g.takeover)
    };
    PreSendDecision {
        action,
        adopt: (facts.inventory_expiry != Some(cycle)).then_some(cycle),
        close_inventory_cycle: renewed_since(facts, cycle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::period::PeriodUnit;
    use crate::domain::time::parse_instant;
    use proptest::prelude::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_instant(s).unwrap()
    }
    fn id(s: &str) -> HostId {
        HostId::parse(s).unwrap()
    }
    const MONTH: Period = Period {
        n: 1,
        unit: PeriodUnit::Month,
    };
    const E: &str = "2026-12-10T16:00Z";
    const E1: &str = "2027-01-10T16:00Z";

    fn present(expiry: &str) -> Seen {
        Seen::Present(CloudHost {
            expiry: t(expiry),
            prepaid: true,
            locked: false,
            auto_renew: Some(RenewalStatus::Normal),
        })
    }
    fn locked(expiry: &str) -> Seen {
        Seen::Present(CloudHost {
            expiry: t(expiry),
            prepaid: true,
            locked: true,
            auto_renew: Some(RenewalStatus::Normal),
        })
    }
    fn seen(pairs: &[(&str, Seen)]) -> BTreeMap<HostId, Seen> {
        pairs.iter().map(|(h, s)| (id(h), s.clone())).collect()
    }
    fn batch(ids: &[&str]) -> Vec<(HostId, DateTime<Utc>)> {
        ids.iter().map(|h| (id(h), t(E))).collect()
    }

    #[test]
    fn classify_credits_only_a_move_by_the_period() {
        assert_eq!(classify(t(E), MONTH, &present(E1)), Moved::Applied(t(E1)));
        assert_eq!(
            classify(t(E), MONTH, &present("2027-12-10T16:00Z")),
            Moved::Elsewhere(t("2027-12-10T16:00Z"))
        );
        assert_eq!(classify(t(E), MONTH, &present(E)), Moved::Unmoved);
        assert_eq!(classify(t(E), MONTH, &locked(E)), Moved::Lapsed);
        assert_eq!(classify(t(E), MONTH, &Seen::Absent), Moved::Gone);
        assert_eq!(
            classify(t(E), MONTH, &present("2026-11-10T16:00Z")),
            Moved::Backwards(t("2026-11-10T16:00Z"))
        );
    }

    #[test]
    fn unanswered_and_unmoved_is_resent_never_replaced() {
        let hosts = batch(&["dh-a", "dh-b"]);
        let a = AttemptFacts {
            hosts: &hosts,
            period: MONTH,
        };
        let s = seen(&[("dh-a", present(E)), ("dh-b", present(E))]);
        assert_eq!(decide_unanswered(&a, &s), Decision::Resend);
        // Whatever the answer that did not decide, the attempt stays open.
        for ans in [Answer::Undecided, Answer::Unauthorized] {
            assert_eq!(
                decide_answered(&a, ans, &s),
                Decision::Wait(WaitReason::NoDefiniteAnswer)
            );
        }
    }

    #[test]
    fn partly_renewed_elsewhere_while_undecided_blocks() {
        let hosts = batch(&["dh-a", "dh-b", "dh-c"]);
        let a = AttemptFacts {
            hosts: &hosts,
            period: MONTH,
        };
        let s = seen(&[
            ("dh-a", present("2027-12-10T16:00Z")),
            ("dh-b", present(E)),
            ("dh-c", present(E)),
        ]);
        assert_eq!(
            decide_unanswered(&a, &s),
            Decision::Block {
                reason: BlockReason::PartlyRenewedElsewhere,
                hosts: vec![id("dh-a")]
            }
        );
    }

    #[test]
    fn every_host_closed_by_the_cloud_decides_without_a_send() {
        let hosts = batch(&["dh-a", "dh-b", "dh-c"]);
        let a = AttemptFacts {
            hosts: &hosts,
            period: MONTH,
        };
        let s = seen(&[
            ("dh-a", present(E1)),
            ("dh-b", locked(E)),
            ("dh-c", Seen::Absent),
        ]);
        let Decision::Decide {
            outcome,
            hosts,
            retry,
        } = decide_unanswered(&a, &s)
        else {
            panic!("decided")
        };
        assert_eq!(outcome, AttemptOutcome::Renewed);
        assert!(retry.is_empty());
        let o: Vec<_> = hosts.iter().map(|h| (h.outcome, h.closure)).collect();
        assert_eq!(
            o,
            [
                (HostOutcome::Renewed, Some(Closure::Renewed)),
                (HostOutcome::Lapsed, Some(Closure::Lapsed)),
                (HostOutcome::Gone, Some(Closure::Gone)),
            ]
        );
        // A move by another amount is not credited.
        let s = seen(&[
            ("dh-a", present("2027-12-10T16:00Z")),
            ("dh-b", locked(E)),
            ("dh-c", Seen::Absent),
        ]);
        let Decision::Decide { outcome, .. } = decide_unanswered(&a, &s) else {
            panic!("decided")
        };
        assert_eq!(outcome, AttemptOutcome::Resolved);
    }

    #[test]
    fn accepted_but_unmoved_waits_and_accepted_moved_is_credited() {
        let hosts = batch(&["dh-a"]);
        let a = AttemptFacts {
            hosts: &hosts,
            period: MONTH,
        };
        assert_eq!(
            decide_answered(&a, Answer::Accepted, &seen(&[("dh-a", present(E))])),
            Decision::Wait(WaitReason::AcceptedNotMoved)
        );
        let d = decide_answered(&a, Answer::Accepted, &seen(&[("dh-a", present(E1))]));
        assert!(matches!(
            d,
            Decision::Decide {
                outcome: AttemptOutcome::Renewed,
                ..
            }
        ));
    }

    #[test]
    fn a_refusal_after_the_cloud_applied_is_still_a_renewal() {
        let hosts = batch(&["dh-a"]);
        let a = AttemptFacts {
            hosts: &hosts,
            period: MONTH,
        };
        for r in [Refusal::Definite, Refusal::HostGone] {
            let d = decide_answered(&a, Answer::Refused(r), &seen(&[("dh-a", present(E1))]));
            let Decision::Decide { outcome, hosts, .. } = d else {
                panic!()
            };
            assert_eq!(outcome, AttemptOutcome::Renewed);
            assert_eq!(hosts[0].closure, Some(Closure::Renewed));
        }
        // HostGone refused but the host is there and unmoved: it fails, it does not leave.
        let d = decide_answered(
            &a,
            Answer::Refused(Refusal::HostGone),
            &seen(&[("dh-a", present(E))]),
        );
        let Decision::Decide { outcome, hosts, .. } = d else {
            panic!()
        };
        assert_eq!(outcome, AttemptOutcome::Failed);
        assert_eq!(
            (hosts[0].outcome, hosts[0].closure),
            (HostOutcome::Failed, None)
        );
    }

    #[test]
    fn a_refused_batch_is_split_and_a_found_culprit_leaves() {
        let hosts = batch(&["dh-a", "dh-b", "dh-c", "dh-d"]);
        let a = AttemptFacts {
            hosts: &hosts,
            period: MONTH,
        };
        let all = seen(&[
            ("dh-a", present(E)),
            ("dh-b", present(E)),
            ("dh-c", present(E)),
            ("dh-d", present(E)),
        ]);
        let Decision::Decide { outcome, retry, .. } =
            decide_answered(&a, Answer::Refused(Refusal::Definite), &all)
        else {
            panic!()
        };
        assert_eq!(outcome, AttemptOutcome::Split);
        assert_eq!(
            retry,
            vec![batch(&["dh-a", "dh-b"]), batch(&["dh-c", "dh-d"])]
        );
        // dh-c is gone: the other three are retried together, at once.
        let mut s = all.clone();
        s.insert(id("dh-c"), Seen::Absent);
        let Decision::Decide { retry, hosts, .. } =
            decide_answered(&a, Answer::Refused(Refusal::HostGone), &s)
        else {
            panic!()
        };
        assert_eq!(retry, vec![batch(&["dh-a", "dh-b", "dh-d"])]);
        assert_eq!(hosts[2].outcome, HostOutcome::Gone);
        // Bad parameters are never split: every host fails.
        let Decision::Decide { outcome, retry, .. } =
            decide_answered(&a, Answer::Refused(Refusal::Parameters), &all)
        else {
            panic!()
        };
        assert_eq!((outcome, retry.len()), (AttemptOutcome::ConfigError, 0));
    }

    #[test]
    fn a_token_bound_elsewhere_blocks_unless_the_cloud_closed_everything() {
        let hosts = batch(&["dh-a"]);
        let a = AttemptFacts {
            hosts: &hosts,
            period: MONTH,
        };
        assert!(matches!(
            decide_answered(&a, Answer::TokenMismatch, &seen(&[("dh-a", present(E))])),
            Decision::Block {
                reason: BlockReason::TokenMismatch,
                ..
            }
        ));
        assert!(matches!(
            decide_answered(&a, Answer::TokenMismatch, &seen(&[("dh-a", present(E1))])),
            Decision::Decide { .. }
        ));
    }

    #[test]
    fn a_host_missing_without_proof_decides_nothing() {
        let hosts = batch(&["dh-a", "dh-b"]);
        let a = AttemptFacts {
            hosts: &hosts,
            period: MONTH,
        };
        let s = seen(&[("dh-a", present(E1)), ("dh-b", Seen::Unproven)]);
        assert_eq!(
            decide_unanswered(&a, &s),
            Decision::Wait(WaitReason::NoDefiniteAnswer)
        );
        assert_eq!(
            decide_answered(&a, Answer::Refused(Refusal::HostGone), &s),
            Decision::Wait(WaitReason::NoDefiniteAnswer)
        );
        let d = decide_pre_send(
            &facts(E),
            &Seen::Unproven,
            t(W3),
            &Schedule::default(),
            false,
        );
        assert_eq!(d.action, PreSend::Skip(Skip::Unconfirmed));
    }

    #[test]
    fn backwards_expiry_blocks() {
        let hosts = batch(&["dh-a"]);
        let a = AttemptFacts {
            hosts: &hosts,
            period: MONTH,
        };
        let s = seen(&[("dh-a", present("2026-11-10T16:00Z"))]);
        for d in [
            decide_unanswered(&a, &s),
            decide_answered(&a, Answer::Accepted, &s),
        ] {
            assert!(matches!(
                d,
                Decision::Block {
                    reason: BlockReason::ExpiryMovedBackwards,
                    ..
                }
            ));
        }
    }

    fn facts(inv: &str) -> CycleFacts {
        CycleFacts {
            inventory_expiry: Some(t(inv)),
            ..Default::default()
        }
    }
    const W3: &str = "2026-12-03T08:00:00+08:00";

    #[test]
    fn pre_send_works_on_the_clouds_cycle() {
        let s = Schedule::default();
        // Inventory ahead of the cloud: the cloud's cycle is attempted.
        let d = decide_pre_send(&facts("2027-03-01T16:00Z"), &present(E), t(W3), &s, false);
        assert_eq!(d.action, PreSend::Send(t(E)));
        assert_eq!(d.adopt, Some(t(E)));
        assert_eq!(d.close_inventory_cycle, None);
        // Inventory behind (an old CSV): the old cycle was renewed elsewhere, the new one is not
        // due yet.
        let mut f = facts("2026-11-10T16:00Z");
        let d = decide_pre_send(&f, &present(E1), t(W3), &s, false);
        assert_eq!(d.action, PreSend::Skip(Skip::NotYet));
        assert_eq!(d.adopt, Some(t(E1)));
        assert_eq!(d.close_inventory_cycle, Some(t("2026-11-10T16:00Z")));
        // … unless that old cycle is closed already,
        f.closures.insert(t("2026-11-10T16:00Z"), Closure::Renewed);
        let d = decide_pre_send(&f, &present(E1), t(W3), &s, false);
        assert_eq!(d.close_inventory_cycle, None);
        // … or the cloud never showed it (a wrong import): the inventory just follows.
        let mut f = facts("2026-11-10T16:00Z");
        f.last_cloud_expiry = Some(t(E));
        let d = decide_pre_send(&f, &present(E1), t(W3), &s, false);
        assert_eq!((d.adopt, d.close_inventory_cycle), (Some(t(E1)), None));
    }

    #[test]
    fn pre_send_never_reopens_a_closed_cycle_and_the_clock_lapses_nothing() {
        let s = Schedule::default();
        let mut f = facts(E);
        f.closures.insert(t(E), Closure::Renewed);
        let d = decide_pre_send(&f, &present(E), t(W3), &s, false);
        assert_eq!((d.action, d.adopt), (PreSend::Skip(Skip::StaleRead), None));
        // Local clock past the expiry, cloud unlocked: still payable.
        let late = t("2026-12-12T08:00:00+08:00");
        let d = decide_pre_send(&facts(E), &present(E), late, &s, false);
        assert_eq!(d.action, PreSend::Send(t(E)));
        // Locked by the cloud: lapsed.
        let d = decide_pre_send(&facts(E), &locked(E), late, &s, false);
        assert_eq!(d.action, PreSend::Close(t(E), Closure::Lapsed));
        // Gone.
        let d = decide_pre_send(&facts(E), &Seen::Absent, t(W3), &s, false);
        assert_eq!(d.action, PreSend::Close(t(E), Closure::Gone));
    }

    #[test]
    fn pre_send_checks_cloud_side_auto_renew() {
        let s = Schedule::default();
        let mut c = CloudHost {
            expiry: t(E),
            prepaid: true,
            locked: false,
            auto_renew: Some(RenewalStatus::AutoRenewal),
        };
        let d = |c: &CloudHost, takeover| {
            decide_pre_send(&facts(E), &Seen::Present(c.clone()), t(W3), &s, takeover).action
        };
        assert_eq!(d(&c, false), PreSend::Skip(Skip::DoubleRenewRisk));
        assert_eq!(d(&c, true), PreSend::TakeOver(t(E)));
        c.auto_renew = None;
        assert_eq!(d(&c, true), PreSend::Skip(Skip::AutoRenewUnknown));
        c.auto_renew = Some(RenewalStatus::NotRenewal);
        assert_eq!(d(&c, false), PreSend::Send(t(E)));
        let mut f = facts(E);
        f.failed_in_window.insert(t(E));
        assert_eq!(
            decide_pre_send(&f, &present(E), t(W3), &s, false).action,
            PreSend::Skip(Skip::FailedThisWindow)
        );
    }

    #[test]
    fn manual_renewal_pays_in_the_windows_only_unless_forced() {
        let far = t("2026-11-01T08:00:00+08:00");
        let s = Schedule::default();
        let guard = |now, force| ManualGuard {
            now,
            schedule: &s,
            takeover: false,
            force,
        };
        // No window yet: refused, unless forced; in the windows: sent.
        assert_eq!(
            decide_manual(&facts(E), &present(E), guard(far, false)).action,
            PreSend::Skip(Skip::NotInWindow)
        );
        assert_eq!(
            decide_manual(&facts(E), &present(E), guard(far, true)).action,
            PreSend::Send(t(E))
        );
        let g = guard(t(W3), false);
        assert_eq!(
            decide_manual(&facts(E), &present(E), g).action,
            PreSend::Send(t(E))
        );
        // An expired host may be renewed by hand.
        let late = guard(t("2026-12-20T08:00:00+08:00"), false);
        assert_eq!(
            decide_manual(&facts(E), &locked(E), late).action,
            PreSend::Send(t(E))
        );
        let mut f = facts(E);
        f.closures.insert(t(E), Closure::Renewed);
        assert_eq!(
            decide_manual(&f, &present(E), g).action,
            PreSend::Skip(Skip::StaleRead)
        );
        let on = Seen::Present(CloudHost {
            expiry: t(E),
            prepaid: true,
            locked: false,
            auto_renew: Some(RenewalStatus::AutoRenewal),
        });
        assert_eq!(
            decide_manual(&facts(E), &on, g).action,
            PreSend::Skip(Skip::DoubleRenewRisk)
        );
        // Renewed elsewhere since the inventory was read: nothing paid, the inventory follows.
        let d = decide_manual(&facts(E), &present(E1), g);
        assert_eq!(d.action, PreSend::Skip(Skip::RenewedMeanwhile));
        assert_eq!(
            (d.adopt, d.close_inventory_cycle),
            (Some(t(E1)), Some(t(E)))
        );
    }

    #[test]
    fn every_enum_value_round_trips() {
        for v in AttemptOutcome::ALL {
            assert_eq!(v.as_str().parse::<AttemptOutcome>(), Ok(*v));
        }
        for v in HostOutcome::ALL {
            assert_eq!(v.as_str().parse::<HostOutcome>(), Ok(*v));
        }
        for v in Closure::ALL {
            assert_eq!(v.as_str().parse::<Closure>(), Ok(*v));
        }
        for v in NoticeKind::ALL {
            assert_eq!(v.as_str().parse::<NoticeKind>(), Ok(*v));
        }
        assert!("bogus".parse::<Closure>().is_err());
    }

    fn arb_seen() -> impl Strategy<Value = Seen> {
        prop_oneof![
            Just(Seen::Absent),
            Just(Seen::Unproven),
            (0i64..5, any::<bool>(), any::<bool>()).prop_map(|(m, prepaid, locked)| {
                let base = t(E);
                let expiry = match m {
                    0 => base,
                    1 => MONTH.add_to(base).unwrap(),
                    2 => base + chrono::Duration::days(400),
                    3 => base - chrono::Duration::days(30),
                    _ => base + chrono::Duration::days(7),
                };
                Seen::Present(CloudHost {
                    expiry,
                    prepaid,
                    locked,
                    auto_renew: Some(RenewalStatus::Normal),
                })
            }),
        ]
    }

    fn arb_answer() -> impl Strategy<Value = Answer> {
        prop_oneof![
            Just(Answer::Accepted),
            Just(Answer::Refused(Refusal::Definite)),
            Just(Answer::Refused(Refusal::HostGone)),
            Just(Answer::Refused(Refusal::Parameters)),
            Just(Answer::TokenMismatch),
            Just(Answer::Unauthorized),
            Just(Answer::Undecided),
        ]
    }

    proptest! {
        /// The safety properties, over every combination of what the cloud can show:
        /// - an unmoved host is freed (failed/retry) only by a definite refusal;
        /// - a host is never freed while another host of the same undecided attempt moved;
        /// - renewed is credited only for a move by exactly the period;
        /// - retried groups are strictly smaller than the attempt and hold only unmoved hosts.
        #[test]
        fn decisions_are_safe(
            views in proptest::collection::vec(arb_seen(), 1..6),
            answer in proptest::option::of(arb_answer()),
        ) {
            let names: Vec<String> = (0..views.len()).map(|i| format!("dh-{i}")).collect();
            let hosts: Vec<(HostId, DateTime<Utc>)> = names.iter().map(|n| (id(n), t(E))).collect();
            let a = AttemptFacts { hosts: &hosts, period: MONTH };
            let s: BTreeMap<HostId, Seen> =
                hosts.iter().map(|(h, _)| h.clone()).zip(views.iter().cloned()).collect();
            let d = match answer {
                Some(ans) => decide_answered(&a, ans, &s),
                None => decide_unanswered(&a, &s),
            };
            let moved: Vec<Moved> = views.iter().map(|v| classify(t(E), MONTH, v)).collect();
            let definite = matches!(answer, Some(Answer::Refused(_)));
            if let Decision::Decide { hosts: hd, retry, .. } = &d {
                prop_assert_eq!(hd.len(), hosts.len());
                for (h, m) in hd.iter().zip(&moved) {
                    let freed = matches!(h.outcome, HostOutcome::Failed | HostOutcome::Retry);
                    prop_assert!(!freed || (definite && *m == Moved::Unmoved));
                    if h.outcome == HostOutcome::Renewed {
                        prop_assert!(matches!(m, Moved::Applied(_)));
                    }
                    prop_assert_eq!(h.closure.is_some(), !freed);
                }
                for g in retry {
                    prop_assert!(g.len() < hosts.len() || hosts.len() == 1 && g.is_empty());
                    for (h, _) in g {
                        let i = hosts.iter().position(|(x, _)| x == h).unwrap();
                        prop_assert_eq!(moved[i], Moved::Unmoved);
                    }
                }
            }
            if moved.contains(&Moved::Unknown) {
                prop_assert!(matches!(d, Decision::Wait(_) | Decision::Block { .. }), "nothing decided on a host not proven gone");
            }
            if d == Decision::Resend {
                prop_assert!(moved.iter().all(|m| matches!(m, Moved::Unmoved | Moved::Gone | Moved::Lapsed)));
            }
        }
    }
}
