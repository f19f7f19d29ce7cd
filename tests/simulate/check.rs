//! The invariant checker. It stands outside the system under test: it reads the emulator's
//! ledger and hosts, and from the database only the write-ahead records (to map a ledger token
//! to the cycle it was written ahead for) and the notices (a blocked cycle must have told a
//! person).
//!
//! 1. **At most once.** No (host, cycle) is paid twice. A ledger entry of ours pays for the cycle
//!    its attempt was written ahead for; a hand or cloud renewal pays for the cycle it found.
//! 2. **Every token written ahead.** Each ledger ClientToken has its attempt row, naming that host.
//! 3. **At least once.** A managed host's cycle that saw clean passes (no faults, no kill, the
//!    right clock) in two different windows before its expiry is renewed — by us, by hand or by
//!    the cloud — or a person was told (`needs_attention`, or `double_renew_risk` for a host the
//!    cloud renews itself). Two windows, because the first clean pass may only learn a definite
//!    refusal a token already carried (the cloud replays it); the next window opens a new one.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use ddh_renewd::domain::RenewalStatus;
use ddh_renewd::domain::time::parse_instant;
use ddh_renewd::emulator::state::LedgerSource;

use super::schedule::Setup;
use super::world::Facts;

pub fn check(setup: &Setup, facts: &Facts) -> Vec<String> {
    let mut v = facts.violations.clone();
    at_most_once(facts, &mut v);
    at_least_once(setup, facts, &mut v);
    v
}

fn at_most_once(facts: &Facts, v: &mut Vec<String>) {
    let mut paid: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for e in &facts.ledger {
        let intended = match e.source {
            LedgerSource::Api => {
                let Some(token) = &e.client_token else {
                    v.push(format!(
                        "{}: a renewal without a ClientToken",
                        e.dedicated_host_id
                    ));
                    continue;
                };
                let Some(cycle) = facts
                    .attempts
                    .get(token)
                    .and_then(|hosts| hosts.get(&e.dedicated_host_id))
                else {
                    v.push(format!(
                        "{}: ClientToken {token} paid {} but has no write-ahead row for the host",
                        e.dedicated_host_id, e.expired_time_before
                    ));
                    continue;
                };
                ecs(cycle)
            }
            LedgerSource::Elsewhere | LedgerSource::Cloud => e.expired_time_before.clone(),
        };
        paid.entry((e.dedicated_host_id.clone(), intended))
            .or_default()
            .push(format!(
                "{:?} {} {}→{} at {}",
                e.source,
                e.client_token.as_deref().unwrap_or("-"),
                e.expired_time_before,
                e.expired_time_after,
                e.at
            ));
    }
    for ((host, cycle), payments) in paid {
        if payments.len() > 1 {
            v.push(format!(
                "{host}: cycle ending {cycle} paid {} times: {}",
                payments.len(),
                payments.join("; ")
            ));
        }
    }
}

/// A stored cycle (RFC 3339) in the ledger's form (`yyyy-MM-ddTHH:mmZ`).
fn ecs(db: &str) -> String {
    parse_instant(db).map_or_else(|_| db.to_owned(), ddh_renewd::domain::time::to_ecs)
}

fn at_least_once(setup: &Setup, facts: &Facts, v: &mut Vec<String>) {
    let schedule = ddh_renewd::domain::Schedule::default();
    let told: BTreeSet<&str> = facts
        .notices
        .iter()
        .filter(|(_, k)| k == "needs_attention" || k == "double_renew_risk")
        .map(|(h, _)| h.as_str())
        .collect();
    let mut paid: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for e in &facts.ledger {
        paid.entry(e.dedicated_host_id.as_str())
            .or_default()
            .insert(e.expired_time_before.clone());
    }
    for h in setup
        .hosts
        .iter()
        .filter(|h| h.status == RenewalStatus::AutoRenewal && !h.postpaid)
    {
        if told.contains(h.id.as_str()) {
            continue;
        }
        // The cycles the host went through, as the clean passes saw them.
        let mut windows: BTreeMap<DateTime<Utc>, BTreeSet<DateTime<Utc>>> = BTreeMap::new();
        for p in &facts.clean {
            let Some((expiry, expired)) = p.expiries.get(&h.id) else {
                continue;
            };
            let in_window = schedule
                .first_window(*expiry)
                .is_some_and(|f| f <= p.cloud_at);
            if in_window && !expired {
                windows
                    .entry(*expiry)
                    .or_default()
                    .insert(schedule.window_at_or_before(p.cloud_at));
            }
        }
        for (cycle, seen_in) in windows {
            let key = ddh_renewd::domain::time::to_ecs(cycle);
            let was_paid = paid.get(h.id.as_str()).is_some_and(|s| s.contains(&key));
            if seen_in.len() >= 2 && !was_paid {
                v.push(format!(
                    "{}: cycle ending {key} was payable in {} clean windows ({}) but was not renewed, and nobody was told",
                    h.id,
                    seen_in.len(),
                    seen_in
                        .iter()
                        .map(|w| ddh_renewd::domain::time::to_db(*w))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
}
