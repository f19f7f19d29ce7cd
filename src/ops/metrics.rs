//! `/metrics` in the Prometheus text exposition format 0.0.4 (what `promtool check metrics`
//! and every Prometheus accept under `text/plain; version=0.0.4`), computed at scrape time from
//! the database and the client's counters, so the figures are what the audit trail says. Written
//! directly: each family has HELP and TYPE, counters end in `_total`, labels are escaped, and the
//! labels an alert needs are on the series (state, policy, region) so no join is needed.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::OpsState;
use super::health::Problem;
use futures_util::StreamExt;

use crate::domain::plan::plan_host;
use crate::domain::protocol::{NoticeKind, PassResult, Trigger};
use crate::domain::window::WindowMemo;
use crate::ecs::client::LATENCY_BUCKETS;
use crate::store::{StoreError, TrailCounts};

/// The content type of the body [`render`] writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const PREFIX: &str = "ddh_renewd_";

/// A metric family being written.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {PREFIX}{name} {help}");
        let _ = writeln!(self.0, "# TYPE {PREFIX}{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(PREFIX);
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", number(value));
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The node's role in an active/standby pair (always the leader on SQLite).
fn leadership(s: &OpsState, o: &mut Out) {
    let l = s.health.leadership();
    o.family(
        "leader",
        "gauge",
        "1 while this node acts on the database, 0 while it stands by.",
    );
    o.sample("leader", &[], f64::from(u8::from(l.role == "leader")));
    if let Some(e) = l.epoch {
        o.family(
            "epoch",
            "gauge",
            "The actor epoch this node acts under (leader) or last saw.",
        );
        o.sample("epoch", &[], e as f64);
    }
    if let Some(t) = l.last_takeover {
        o.family(
            "last_takeover_timestamp_seconds",
            "gauge",
            "When this node last took the lead.",
        );
        o.sample("last_takeover_timestamp_seconds", &[], t.timestamp() as f64);
    }
}

pub async fn render(s: &OpsState) -> Result<String, StoreError> {
    let mut o = Out(String::new());
    hosts(s, &mut o).await?;
    trail(s, &mut o).await?;
    client(s, &mut o);
    leadership(s, &mut o);
    o.family("healthy", "gauge", "1 if /healthz is ok, else 0.");
    let health = s.health.report(&s.store, &s.schedule, s.clock.now()).await;
    o.sample("healthy", &[], f64::from(u8::from(health.healthy)));
    o.family(
        "health_problem",
        "gauge",
        "1 while /healthz reports a problem of this kind, else 0.",
    );
    for p in Problem::ALL {
        let on = health.problems.contains(p);
        o.sample(
            "health_problem",
            &[("problem", p.as_str())],
            f64::from(u8::from(on)),
        );
    }
    o.family(
        "build_info",
        "gauge",
        "Always 1; the labels say which build is running.",
    );
    o.sample("build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    Ok(o.0)
}

/// Per-host series and per-state counts, with the state and policy on every host series. The
/// hosts are read as a stream: one row at a time, whatever the inventory's size.
async fn hosts(s: &OpsState, o: &mut Out) -> Result<(), StoreError> {
    let now = s.clock.now();
    let mut next = Out(String::new());
    let mut by_state: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut attempts: BTreeMap<bool, u64> = BTreeMap::new();
    o.family(
        "host_expiry_timestamp_seconds",
        "gauge",
        "Current expiry of each host (Unix time), with its state, policy and region.",
    );
    next.family(
        "host_next_window_timestamp_seconds",
        "gauge",
        "Next (or due) renewal window of each managed host (Unix time).",
    );
    let mut windows = WindowMemo::new(s.schedule);
    let mut rows = s.store.planned_hosts(false);
    while let Some(ph) = rows.next().await {
        let ph = ph?;
        let r = &ph.record;
        let id = r.host.id.as_str();
        let policy = r.effective_policy();
        let p = plan_host(&r.host, &policy, &mut windows, now, ph.history);
        o.sample(
            "host_expiry_timestamp_seconds",
            &[
                ("host_id", id),
                ("region", &r.host.region_id),
                ("state", p.state.as_str()),
                ("policy", policy.status.as_str()),
            ],
            r.host.expired_time.timestamp() as f64,
        );
        if let Some(w) = p.next_window {
            next.sample(
                "host_next_window_timestamp_seconds",
                &[("host_id", id), ("region", &r.host.region_id)],
                w.timestamp() as f64,
            );
        }
        *by_state.entry(p.state.as_str()).or_default() += 1;
    }
    drop(rows);
    o.0.push_str(&next.0);
    o.family("hosts", "gauge", "Hosts in the inventory by state.");
    for (state, n) in by_state {
        o.sample("hosts", &[("state", state)], n as f64);
    }
    for (_, blocked) in s.store.undecided_attempt_ids().await? {
        *attempts.entry(blocked).or_default() += 1;
    }
    o.family("attempts_undecided", "gauge", "Renewal attempts without an outcome: open (resolved with their own ClientToken) or blocked (a person must settle them).");
    for (state, blocked) in [("open", false), ("blocked", true)] {
        let n = attempts.get(&blocked).copied().unwrap_or(0);
        o.sample("attempts_undecided", &[("state", state)], n as f64);
    }
    Ok(())
}

/// Counts from the audit trail.
async fn trail(s: &OpsState, o: &mut Out) -> Result<(), StoreError> {
    let c = s.store.trail_counts().await?;
    o.family(
        "attempt_hosts_total",
        "counter",
        "Hosts of renewal attempts by outcome.",
    );
    for (outcome, n) in &c.attempt_hosts {
        o.sample("attempt_hosts_total", &[("outcome", outcome)], *n as f64);
    }
    o.family(
        "window_runs_total",
        "counter",
        "Window passes by trigger and result.",
    );
    // Every known label value is written, zero included: `increase()` cannot see the first
    // occurrence of a series that appears only when it is already 1.
    let mut runs: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for t in Trigger::ALL {
        for r in PassResult::ALL {
            runs.insert((t.as_str(), r.as_str()), 0);
        }
    }
    for (trigger, result, n) in &c.window_runs {
        *runs.entry((trigger.as_str(), result.as_str())).or_default() += n;
    }
    for ((trigger, result), n) in runs {
        o.sample(
            "window_runs_total",
            &[("trigger", trigger), ("result", result)],
            n as f64,
        );
    }
    o.family("notices_total", "counter", "Notices recorded, by kind.");
    let mut notices: BTreeMap<&str, i64> =
        NoticeKind::ALL.iter().map(|k| (k.as_str(), 0)).collect();
    for (kind, n) in &c.notices {
        *notices.entry(kind.as_str()).or_default() += n;
    }
    for (kind, n) in notices {
        o.sample("notices_total", &[("kind", kind)], n as f64);
    }
    times(s, &c, o).await?;
    deliveries(&c, o);
    Ok(())
}

/// When the inventory was last synced and the last windows ran.
async fn times(s: &OpsState, c: &TrailCounts, o: &mut Out) -> Result<(), StoreError> {
    o.family(
        "last_sync_timestamp_seconds",
        "gauge",
        "When the inventory was last synced from the cloud (Unix time; 0 if never).",
    );
    let synced = s
        .store
        .last_sync()
        .await?
        .map_or(0.0, |t| t.timestamp() as f64);
    o.sample("last_sync_timestamp_seconds", &[], synced);
    o.family(
        "last_successful_window_timestamp_seconds",
        "gauge",
        "Window of the last pass that ended ok (Unix time; 0 if none).",
    );
    let last = c
        .last_ok_window
        .as_deref()
        .and_then(|t| crate::domain::time::parse_instant(t).ok())
        .map_or(0.0, |t| t.timestamp() as f64);
    o.sample("last_successful_window_timestamp_seconds", &[], last);
    o.family(
        "last_window_timestamp_seconds",
        "gauge",
        "Window of the last pass that ran to its end, whatever its result (Unix time; 0 if none).",
    );
    let ran = c
        .last_window
        .as_deref()
        .and_then(|t| crate::domain::time::parse_instant(t).ok())
        .map_or(0.0, |t| t.timestamp() as f64);
    o.sample("last_window_timestamp_seconds", &[], ran);
    Ok(())
}

/// Notice deliveries per channel.
fn deliveries(c: &TrailCounts, o: &mut Out) {
    o.family(
        "notice_delivery_failures_total",
        "counter",
        "Notice delivery tries that failed, by channel.",
    );
    for (channel, failed, _) in &c.deliveries {
        o.sample(
            "notice_delivery_failures_total",
            &[("channel", channel)],
            *failed as f64,
        );
    }
    o.family(
        "notices_undelivered",
        "gauge",
        "Notices tried at least once and not yet delivered, by channel (retried with backoff).",
    );
    for (channel, _, waiting) in &c.deliveries {
        o.sample(
            "notices_undelivered",
            &[("channel", channel)],
            *waiting as f64,
        );
    }
}

/// The client's own figures since the daemon started: quota waits, and per-API requests,
/// errors and latency.
fn client(s: &OpsState, o: &mut Out) {
    let q = s.client.quota_waits();
    o.family(
        "quota_waits_total",
        "counter",
        "Calls that waited for the client-side quota.",
    );
    o.sample("quota_waits_total", &[], q.waits as f64);
    o.family(
        "quota_wait_seconds_total",
        "counter",
        "Time spent waiting for the client-side quota.",
    );
    o.sample("quota_wait_seconds_total", &[], q.waited_ms as f64 / 1000.0);
    let stats = s.client.stats();
    o.family(
        "api_requests_total",
        "counter",
        "ECS API requests sent, by action (retries included).",
    );
    for (action, st) in &stats {
        o.sample(
            "api_requests_total",
            &[("action", action)],
            st.requests as f64,
        );
    }
    o.family("api_errors_total", "counter", "ECS API requests that failed, by action and code (the API's code, or transport, timeout, malformed, redirect).");
    for (action, st) in &stats {
        for (code, n) in &st.errors {
            o.sample(
                "api_errors_total",
                &[("action", action), ("code", code)],
                *n as f64,
            );
        }
    }
    o.family(
        "api_request_duration_seconds",
        "histogram",
        "ECS API request latency, by action.",
    );
    for (action, st) in &stats {
        for (bound, n) in LATENCY_BUCKETS.iter().zip(st.buckets) {
            let le = number(*bound);
            o.sample(
                "api_request_duration_seconds_bucket",
                &[("action", action), ("le", &le)],
                n as f64,
            );
        }
        o.sample(
            "api_request_duration_seconds_bucket",
            &[("action", action), ("le", "+Inf")],
            st.requests as f64,
        );
        o.sample(
            "api_request_duration_seconds_sum",
            &[("action", action)],
            st.seconds,
        );
        o.sample(
            "api_request_duration_seconds_count",
            &[("action", action)],
            st.requests as f64,
        );
    }
}
