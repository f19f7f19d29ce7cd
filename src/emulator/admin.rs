//! The admin API under `/_emulator/` (SPEC §4.4): JSON, no signature, loopback peers only.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use super::actions::host_view;
use super::state::{EmuHost, FaultsBody};
use crate::config::parse_duration;
use crate::domain::time::{parse_instant, to_db};
use crate::domain::{ChargeType, Host, HostId, HostStatus, PeriodUnit, RenewalStatus};

pub(super) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/reset", post(reset))
        .route("/hosts", post(add_hosts).get(list_hosts))
        .route("/clock", put(set_clock).get(get_clock))
        .route("/faults", put(set_faults).get(get_faults))
        .route("/latency", put(set_latency))
        .route("/ledger", get(ledger))
        .route("/requests", get(requests))
        .route("/renew", post(renew_elsewhere))
        .route("/inflight", get(inflight))
        .route("/sts", put(set_sts).get(get_sts))
}

/// Short-lived credentials: `{"ttl_seconds": 5}` makes what is issued from now on expire after
/// 5 s; `{"expire_all": true}` expires every session at once; `role_name` (null: no role) and
/// `imds_hardened` shape the metadata service.
async fn set_sts(AxState(app): App, peer: Peer, raw: axum::body::Bytes) -> Answer {
    loopback(&peer)?;
    let s: super::sts::StsSettings = body(&raw)?;
    let mut st = app.lock();
    super::sts::apply(&mut st.sts, s).map_err(bad)?;
    Ok(Json(super::sts::view(&st.sts)).into_response())
}

async fn get_sts(AxState(app): App, peer: Peer) -> Answer {
    loopback(&peer)?;
    Ok(Json(super::sts::view(&app.lock().sts)).into_response())
}

type App = AxState<Arc<Shared>>;
type Peer = ConnectInfo<SocketAddr>;

/// An admin error: status and a message, answered as `{"error": "…"}`.
struct AdminError(StatusCode, String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type Answer = Result<Response, AdminError>;

fn bad(msg: impl Into<String>) -> AdminError {
    AdminError(StatusCode::BAD_REQUEST, msg.into())
}

fn loopback(peer: &Peer) -> Result<(), AdminError> {
    if peer.0.ip().is_loopback() {
        Ok(())
    } else {
        Err(AdminError(
            StatusCode::FORBIDDEN,
            "the admin API answers loopback peers only".into(),
        ))
    }
}

/// Parses a JSON body, answering 400 with serde's message on failure.
fn body<T: for<'de> Deserialize<'de>>(raw: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(raw).map_err(|e| bad(format!("bad JSON body: {e}")))
}

async fn reset(AxState(app): App, peer: Peer) -> Answer {
    loopback(&peer)?;
    app.lock().reset();
    Ok(Json(json!({ "ok": true })).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AdminHost {
    dedicated_host_id: String,
    region_id: String,
    charge_type: String,
    #[serde(default)]
    expired_time: Option<String>,
    #[serde(default)]
    zone_id: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    renewal_status: Option<String>,
    #[serde(default)]
    duration: Option<u32>,
    #[serde(default)]
    period_unit: Option<String>,
    #[serde(default)]
    dedicated_host_name: Option<String>,
}

fn to_emu(h: AdminHost, now: chrono::DateTime<Utc>) -> Result<EmuHost, String> {
    let id = HostId::parse(&h.dedicated_host_id)?;
    let charge_type = ChargeType::parse(&h.charge_type)
        .ok_or_else(|| format!("{id}: ChargeType must be PrePaid or PostPaid"))?;
    let expired_time = match (&h.expired_time, charge_type) {
        (Some(t), _) => parse_instant(t).map_err(|e| format!("{id}: ExpiredTime: {e}"))?,
        (None, ChargeType::PostPaid) => parse_instant("2999-09-08T16:00Z")?,
        (None, ChargeType::PrePaid) => {
            return Err(format!("{id}: ExpiredTime is required for PrePaid"));
        }
    };
    let renewal_status = match h.renewal_status.as_deref() {
        None => RenewalStatus::Normal,
        Some(s) => s
            .parse()
            .map_err(|e: crate::domain::ValidationError| format!("{id}: {e}"))?,
    };
    let period_unit = match h.period_unit.as_deref() {
        None => PeriodUnit::Month,
        Some(u) => PeriodUnit::parse(u).map_err(|e| format!("{id}: {e}"))?,
    };
    let region = h.region_id;
    Ok(EmuHost {
        name: h.dedicated_host_name.unwrap_or_else(|| id.to_string()),
        host: Host {
            zone_id: Some(h.zone_id.unwrap_or_else(|| format!("{region}-a"))),
            region_id: region,
            charge_type,
            status: HostStatus(h.status.unwrap_or_else(|| HostStatus::AVAILABLE.to_owned())),
            expired_time,
            sale_cycle: (charge_type == ChargeType::PrePaid).then(|| "Month".to_owned()),
            financial_lock: false,
            id,
        },
        created: now,
        charged_through: now,
        renewal_status,
        duration: h
            .duration
            .unwrap_or(if renewal_status == RenewalStatus::AutoRenewal {
                1
            } else {
                0
            }),
        period_unit,
    })
}

/// Adds or replaces hosts given in the admin JSON form; all or nothing. Returns how many.
pub(super) fn insert_hosts(st: &mut super::State, raw: &[u8]) -> Result<usize, String> {
    let list: Vec<AdminHost> =
        serde_json::from_slice(raw).map_err(|e| format!("bad JSON body: {e}"))?;
    let now = st.now();
    let hosts = list
        .into_iter()
        .map(|h| to_emu(h, now))
        .collect::<Result<Vec<_>, _>>()?;
    let n = hosts.len();
    for h in hosts {
        st.hosts.insert(h.host.id.to_string(), h);
    }
    Ok(n)
}

async fn add_hosts(AxState(app): App, peer: Peer, raw: axum::body::Bytes) -> Answer {
    loopback(&peer)?;
    let mut st = app.lock();
    let n = insert_hosts(&mut st, &raw).map_err(bad)?;
    Ok(Json(json!({ "added_or_replaced": n, "total": st.hosts.len() })).into_response())
}

async fn list_hosts(AxState(app): App, peer: Peer) -> Answer {
    loopback(&peer)?;
    let mut st = app.lock();
    st.charge_cloud_auto_renew();
    let now = st.now();
    let v: Vec<_> = st.hosts.values().map(|h| host_view(h, now)).collect();
    Ok(Json(v).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    #[serde(default)]
    now: Option<String>,
    #[serde(default)]
    advance: Option<String>,
}

async fn set_clock(AxState(app): App, peer: Peer, raw: axum::body::Bytes) -> Answer {
    loopback(&peer)?;
    let b: ClockBody = body(&raw)?;
    let mut st = app.lock();
    match (b.now, b.advance) {
        (Some(now), None) => match parse_instant(&now) {
            Ok(t) if st.set_clock(t) => {}
            Ok(_) => return Err(bad("the clock takes instants from 1970 to 9000")),
            Err(e) => return Err(bad(e)),
        },
        (None, Some(adv)) => {
            let d = parse_duration(&adv)
                .ok()
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .ok_or_else(|| bad(format!("advance {adv:?} is not a duration like \"24h\"")))?;
            if st.advance_clock(d).is_none() {
                return Err(bad(format!(
                    "advance {adv:?} would move the clock out of range (before 1970 or after 9000)"
                )));
            }
        }
        _ => {
            return Err(bad(
                "give exactly one of {\"now\": RFC3339} or {\"advance\": \"24h\"}",
            ));
        }
    }
    Ok(Json(json!({ "now": to_db(st.now()) })).into_response())
}

async fn get_clock(AxState(app): App, peer: Peer) -> Answer {
    loopback(&peer)?;
    Ok(Json(json!({ "now": to_db(app.lock().now()) })).into_response())
}

async fn set_faults(AxState(app): App, peer: Peer, raw: axum::body::Bytes) -> Answer {
    loopback(&peer)?;
    let b: FaultsBody = body(&raw)?;
    let (seed, rules) = match b {
        FaultsBody::Clear(rules) => (0, rules),
        FaultsBody::Set { seed, rules } => (seed, rules),
    };
    if let Some(r) = rules.iter().find(|r| !(0.0..=1.0).contains(&r.probability)) {
        return Err(bad(format!(
            "probability {} is not within 0..1",
            r.probability
        )));
    }
    let n = rules.len();
    app.lock().set_faults(seed, rules);
    Ok(Json(json!({ "rules": n, "seed": seed })).into_response())
}

async fn get_faults(AxState(app): App, peer: Peer) -> Answer {
    loopback(&peer)?;
    Ok(Json(json!({ "rules": app.lock().faults() })).into_response())
}

async fn set_latency(AxState(app): App, peer: Peer, raw: axum::body::Bytes) -> Answer {
    loopback(&peer)?;
    let v: Value = body(&raw)?;
    let Some(ms) = v.get("ms").and_then(Value::as_u64) else {
        return Err(bad("expected {\"ms\": N}"));
    };
    app.lock().latency_ms = ms;
    Ok(Json(json!({ "ms": ms })).into_response())
}

async fn ledger(AxState(app): App, peer: Peer) -> Answer {
    loopback(&peer)?;
    let mut st = app.lock();
    st.charge_cloud_auto_renew();
    Ok(Json(&st.ledger).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RenewBody {
    dedicated_host_ids: Vec<String>,
    #[serde(default = "one_period")]
    period: i64,
    #[serde(default)]
    period_unit: Option<String>,
}

fn one_period() -> i64 {
    1
}

/// Renews hosts "elsewhere" (by hand, outside ddh-renewd): ledger source `elsewhere`.
async fn renew_elsewhere(AxState(app): App, peer: Peer, raw: axum::body::Bytes) -> Answer {
    loopback(&peer)?;
    let b: RenewBody = body(&raw)?;
    let unit = match b.period_unit.as_deref() {
        None => PeriodUnit::Month,
        Some(u) => PeriodUnit::parse(u).map_err(|e| bad(e.to_string()))?,
    };
    let period =
        crate::domain::Period::for_renewal(b.period, unit).map_err(|e| bad(e.to_string()))?;
    let mut st = app.lock();
    if let Some(missing) = b
        .dedicated_host_ids
        .iter()
        .find(|id| !st.hosts.contains_key(*id))
    {
        return Err(bad(format!("{missing}: no such host")));
    }
    let mut entries = Vec::with_capacity(b.dedicated_host_ids.len());
    for id in &b.dedicated_host_ids {
        entries.push(st.renew_elsewhere(id, period).map_err(bad)?);
    }
    Ok(Json(entries).into_response())
}

/// RenewDedicatedHosts requests being processed right now (arrived, not yet applied).
async fn inflight(AxState(app): App, peer: Peer) -> Answer {
    loopback(&peer)?;
    let st = app.lock();
    Ok(
        Json(json!({ "renewing": st.renewing_hosts(), "processing": st.processing }))
            .into_response(),
    )
}

async fn requests(AxState(app): App, peer: Peer) -> Answer {
    loopback(&peer)?;
    Ok(Json(&app.lock().log).into_response())
}
