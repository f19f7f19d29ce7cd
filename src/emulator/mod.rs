//! A local stand-in for the ECS endpoint (SPEC §4.4), for tests, demos and staging.
//!
//! RPC style on `/` (GET or POST, parameters in the query and/or a form body), V1 and V3
//! signatures verified, Alibaba's JSON shapes and error body, ClientToken replay, a quota per
//! (key, action), a virtual clock, seeded fault injection, and an admin API under `/_emulator/`
//! (loopback peers only). It depends on `ecs` and `domain`, never on the engine.
//!
//! It is as stubborn as the cloud: a request that has arrived is processed to completion in a
//! task of its own, whether or not its client is still connected (a `delay` fault makes the
//! processing outlive the client's timeout); hosts with cloud-side `AutoRenewal` are charged by
//! the emulator itself at its windows; and an admin call renews a host "elsewhere". The ledger
//! records every renewal with its source.

pub mod actions;
mod admin;
mod serve;
pub mod state;
pub mod sts;
pub mod verify;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::get;
use chrono::Utc;
use tokio::sync::watch;

use actions::{ACTIONS, ApiErr, ApiResult, Params};
use state::{FaultKind, LogEntry, State, Stored, TokenEntry, TokenState, request_id};

/// The fixed test key pair used when no keys are configured (the fake pair of ecs-api.md §1.4).
pub const TEST_ACCESS_KEY_ID: &str = "LTAI5tTestKeyId000000000";
pub const TEST_ACCESS_KEY_SECRET: &str = "TestSecret0123456789abcdefghijk";
/// How long a `hang` fault without `ms` holds a request before dropping it (nothing applied).
const HANG_LIMIT_MS: u64 = 3_600_000;

#[derive(Clone)]
pub struct EmulatorConfig {
    /// AccessKeyId → secret.
    pub keys: HashMap<String, String>,
    /// Calls per (key, action) per 60 s before `Throttling.User`.
    pub quota_per_minute: u32,
}

impl std::fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .field("quota_per_minute", &self.quota_per_minute)
            .finish()
    }
}

impl EmulatorConfig {
    /// The built-in test key pair and the documented default quota.
    pub fn test() -> Self {
        Self {
            keys: HashMap::from([(
                TEST_ACCESS_KEY_ID.to_owned(),
                TEST_ACCESS_KEY_SECRET.to_owned(),
            )]),
            quota_per_minute: 1000,
        }
    }
}

pub(crate) struct Shared {
    state: Mutex<State>,
    keys: HashMap<String, String>,
    quota: usize,
    shutdown: watch::Receiver<bool>,
    traffic: Arc<Traffic>,
}

/// What is still on the wire: connections open, and requests received whose processing has
/// not finished. A client that gave up (killed, timed out) may still have bytes on their way;
/// a test that wants the cloud quiet waits for both to reach zero.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    connections: AtomicUsize,
    requests: AtomicUsize,
}

/// Counts one of `Traffic`'s figures for as long as it lives.
pub(crate) struct Counted(Arc<Traffic>, fn(&Traffic) -> &AtomicUsize);

impl Counted {
    pub(crate) fn new(t: &Arc<Traffic>, which: fn(&Traffic) -> &AtomicUsize) -> Self {
        which(t).fetch_add(1, Ordering::SeqCst);
        Self(t.clone(), which)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        (self.1)(&self.0).fetch_sub(1, Ordering::SeqCst);
    }
}

impl Traffic {
    pub(crate) fn connections(t: &Traffic) -> &AtomicUsize {
        &t.connections
    }
    pub(crate) fn requests(t: &Traffic) -> &AtomicUsize {
        &t.requests
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running emulator. Stop it with [`Emulator::stop`]; dropping it also signals shutdown.
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Emulator {
    /// Binds `listen` (port 0 picks a free port) and serves until stopped.
    pub async fn start(listen: SocketAddr, cfg: EmulatorConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (stop, rx) = watch::channel(false);
        let traffic = Arc::new(Traffic::default());
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            keys: cfg.keys,
            quota: usize::try_from(cfg.quota_per_minute.max(1)).unwrap_or(usize::MAX),
            shutdown: rx.clone(),
            traffic: traffic.clone(),
        });
        let app = Router::new()
            .route("/", get(api).post(api))
            .nest("/_emulator", admin::router())
            .merge(sts::metadata_router())
            .with_state(shared.clone());
        let task = tokio::spawn(serve::serve(listener, app, rx, traffic));
        Ok(Self {
            addr,
            shared,
            stop,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for `[ecs] endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Nothing on the wire: no connection open and no request being processed. After a client
    /// was killed this turns true once what it had sent has arrived and been worked off (the
    /// client's connections close when it is dropped).
    pub fn quiet(&self) -> bool {
        self.shared.traffic.connections.load(Ordering::SeqCst) == 0
            && self.shared.traffic.requests.load(Ordering::SeqCst) == 0
    }

    /// Direct access to the state, for in-process use (demo, tests).
    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.shared.lock())
    }

    /// Adds or replaces hosts given as the admin API's JSON array (`POST /_emulator/hosts`).
    pub fn add_hosts(&self, hosts: &serde_json::Value) -> Result<usize, String> {
        let raw = serde_json::to_vec(hosts).map_err(|e| e.to_string())?;
        admin::insert_hosts(&mut self.shared.lock(), &raw)
    }

    /// Stops accepting, releases hung requests, and waits for the server task.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The standard error body.
fn error_body(request_id: &str, host: &str, e: &ApiErr) -> String {
    serde_json::json!({
        "RequestId": request_id,
        "HostId": host,
        "Code": e.code,
        "Message": e.message,
        "Recommend": format!("https://api.aliyun.com/troubleshoot?q={}&product=Ecs", e.code),
    })
    .to_string()
}

fn json_response(status: u16, body: String) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json;charset=utf-8")
        .body(Body::from(body))
        .unwrap_or_default()
}

/// A response whose body fails at once: the client gets no complete answer.
fn dropped() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "emulator fault: connection dropped",
        ))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json;charset=utf-8")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

/// Parameters that are part of the signature or transport, not of the call itself.
const COMMON: &[&str] = &[
    "Action",
    "Version",
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "SignatureType",
    "Timestamp",
    "Format",
    "SecurityToken",
    "ClientToken",
];

fn fingerprint(params: &[(String, String)]) -> String {
    let api: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !COMMON.contains(&k.as_str()))
        .cloned()
        .collect();
    crate::ecs::sign::canonical_query(&api)
}

/// Is this answer one the token remembers: a success or a definite business error? Transient
/// answers (5xx, throttling, "still processing") are not: a retry with the token is processed.
fn completed(status: u16, code: &str) -> bool {
    use crate::ecs::ErrorClass;
    (200..300).contains(&status)
        || matches!(
            crate::ecs::error::classify(status, code),
            ErrorClass::Definite | ErrorClass::HostGone
        )
        || code.starts_with("InvalidPeriod")
}

/// The API handler. Once the whole request has arrived it is processed in a task of its own,
/// so its effect never depends on the connection: a client that hangs up (a timeout) does not
/// stop the work, just as with the real cloud.
async fn api(
    AxState(app): AxState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let counted = Counted::new(&app.traffic, Traffic::requests);
    let work = tokio::spawn(async move {
        let _counted = counted;
        process(app, method, uri, headers, body).await
    });
    match work.await {
        Ok(r) => r,
        Err(e) => json_response(
            500,
            serde_json::json!({"Code": "InternalError", "Message": format!("emulator task failed: {e}")})
                .to_string(),
        ),
    }
}

/// Sleeps `ms`, or less if the emulator stops.
async fn hold(app: &Shared, ms: u64) {
    let mut rx = app.shutdown.clone();
    let _ = tokio::time::timeout(Duration::from_millis(ms), rx.wait_for(|s| *s)).await;
}

async fn process(
    app: Arc<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let latency = app.lock().latency_ms;
    if latency > 0 {
        hold(&app, latency).await;
    }
    let query: Vec<(String, String)> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let form: Vec<(String, String)> = if is_form {
        form_urlencoded::parse(&body).into_owned().collect()
    } else {
        Vec::new()
    };
    let hdrs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("ecs.aliyuncs.com")
        .to_owned();
    let rid = request_id();
    let params: Vec<(String, String)> = query.iter().chain(form.iter()).cloned().collect();
    let p = Params(&params);

    let mut entry = LogEntry {
        at: crate::domain::time::to_db(Utc::now()),
        action: String::new(),
        signature_version: "none".into(),
        verified: false,
        access_key_id: String::new(),
        status: 0,
        code: String::new(),
        request_id: rid.clone(),
    };
    let fail = |st: &mut State, mut entry: LogEntry, e: ApiErr| {
        entry.status = e.status;
        entry.code = e.code.clone();
        st.log(entry);
        json_response(e.status, error_body(&rid, &host, &e))
    };

    // AssumeRoleWithOIDC is anonymous: the OIDC token is the proof.
    let unsigned_action = headers
        .get("x-acs-action")
        .and_then(|a| a.to_str().ok())
        .or_else(|| p.get("Action"));
    if unsigned_action == Some("AssumeRoleWithOIDC") && p.get("Signature").is_none() {
        let mut st = app.lock();
        entry.action = "AssumeRoleWithOIDC".into();
        entry.verified = true;
        return match sts::assume_role_with_oidc(&mut st.sts, &p, &rid) {
            Ok(v) => {
                entry.status = 200;
                st.log(entry);
                json_response(200, v.to_string())
            }
            Err(e) => fail(&mut st, entry, e),
        };
    }

    // Verify, check action and quota, and pick a fault, all under one lock.
    let (action, fault, named) = {
        let mut st = app.lock();
        let req = verify::Request {
            method: method.as_str(),
            query: &query,
            form: &form,
            headers: &hdrs,
            body: &body,
        };
        // Keys: the configured pairs, and the sessions STS and the metadata service issued.
        let keys = if st.sts.sessions.is_empty() {
            std::borrow::Cow::Borrowed(&app.keys)
        } else {
            let mut k = app.keys.clone();
            for (id, s) in &st.sts.sessions {
                k.insert(id.clone(), s.secret.clone());
            }
            std::borrow::Cow::Owned(k)
        };
        let v = match verify::verify(&req, &keys, &mut st, Utc::now()) {
            Ok(v) => v,
            Err(r) => {
                entry.signature_version = r.version.map_or("none", |v| v.as_str()).into();
                entry.access_key_id = r.access_key_id;
                entry.action = p.get("Action").unwrap_or_default().to_owned();
                return fail(&mut st, entry, r.error);
            }
        };
        entry.signature_version = v.version.as_str().into();
        entry.verified = true;
        entry.access_key_id = v.access_key_id.clone();
        let action = match v.version {
            verify::SigVersion::V1 => p.get("Action").map(str::to_owned),
            verify::SigVersion::V3 => headers
                .get("x-acs-action")
                .and_then(|a| a.to_str().ok())
                .map(str::to_owned)
                .or_else(|| p.get("Action").map(str::to_owned)),
        }
        .unwrap_or_default();
        entry.action = action.clone();
        let token = match v.version {
            verify::SigVersion::V1 => p.get("SecurityToken"),
            verify::SigVersion::V3 => headers
                .get("x-acs-security-token")
                .and_then(|t| t.to_str().ok()),
        };
        if let Err(e) = st.sts.check_token(&v.access_key_id, token) {
            return fail(&mut st, entry, e);
        }
        if action == "AssumeRole" {
            return match sts::assume_role(&mut st.sts, &p, &rid) {
                Ok(body) => {
                    entry.status = 200;
                    st.log(entry);
                    json_response(200, body.to_string())
                }
                Err(e) => fail(&mut st, entry, e),
            };
        }
        let Some(action) = ACTIONS.iter().copied().find(|a| *a == action) else {
            let e = ApiErr::new(
                404,
                "InvalidAction.NotFound",
                format!("Specified api {action:?} is not found, please check your url and method."),
            );
            return fail(&mut st, entry, e);
        };
        if !st.take_quota(&v.access_key_id, action, app.quota) {
            let e = ApiErr::new(
                400,
                "Throttling.User",
                "Request was denied due to user flow control.",
            );
            return fail(&mut st, entry, e);
        }
        let named =
            crate::domain::ids::parse_id_list(p.get("DedicatedHostIds").unwrap_or_default())
                .unwrap_or_default();
        let fault = st.pick_fault(action, &named);
        (action, fault, named)
    };

    let token = (action == "RenewDedicatedHosts")
        .then(|| {
            p.get("ClientToken")
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        })
        .flatten();
    let key = token.as_ref().map(|t| (action.to_owned(), t.clone()));

    match fault.as_ref().map(|f| f.kind) {
        Some(FaultKind::Hang) => {
            {
                let mut st = app.lock();
                entry.code = "fault:hang".into();
                st.log(entry);
            }
            let ms = fault.as_ref().map_or(0, |f| f.ms);
            let ms = if ms == 0 { HANG_LIMIT_MS } else { ms };
            hold(&app, ms).await;
            return dropped();
        }
        Some(FaultKind::Reset) => {
            let mut st = app.lock();
            entry.code = "fault:reset".into();
            st.log(entry);
            return dropped();
        }
        Some(FaultKind::Error) => {
            let f = fault
                .as_ref()
                .map(|f| (f.status, f.code.clone()))
                .unwrap_or((500, "InternalError".into()));
            let e = ApiErr::new(f.0, &f.1, "Injected by the emulator's fault rules.");
            let mut st = app.lock();
            // A definite business error completes the token; 5xx and throttling do not.
            if let Some(k) = &key
                && completed(e.status, &e.code)
                && !st.tokens.contains_key(k)
            {
                let fp = fingerprint(&params);
                st.tokens.insert(
                    k.clone(),
                    TokenEntry {
                        fingerprint: fp,
                        state: TokenState::Done(Stored {
                            status: e.status,
                            body: error_body(&rid, &host, &e),
                        }),
                    },
                );
            }
            return fail(&mut st, entry, e);
        }
        _ => {}
    }

    // ClientToken: replay, mismatch, in flight — or claim it.
    if let Some(k) = &key {
        let mut st = app.lock();
        let fp = fingerprint(&params);
        match st.tokens.get(k) {
            Some(t) if t.fingerprint != fp => {
                let e = ApiErr::new(
                    400,
                    "IdempotenceParamNotMatch",
                    "Request uses a client token in a previous request but is not identical to that request.",
                );
                return fail(&mut st, entry, e);
            }
            Some(TokenEntry {
                state: TokenState::InFlight,
                ..
            }) => {
                let e = ApiErr::new(
                    403,
                    "LastTokenProcessing",
                    "The last token request is processing.",
                );
                return fail(&mut st, entry, e);
            }
            Some(TokenEntry {
                state: TokenState::Done(stored),
                ..
            }) => {
                let stored = stored.clone();
                entry.status = stored.status;
                entry.code = serde_json::from_str::<serde_json::Value>(&stored.body)
                    .ok()
                    .and_then(|v| v.get("Code").and_then(|c| c.as_str()).map(str::to_owned))
                    .unwrap_or_else(|| "replayed".into());
                st.log(entry);
                return json_response(stored.status, stored.body);
            }
            None => {
                st.tokens.insert(
                    k.clone(),
                    TokenEntry {
                        fingerprint: fp,
                        state: TokenState::InFlight,
                    },
                );
            }
        }
    }
    app.lock().begin(action, &named);
    if let Some(f) = fault.as_ref().filter(|f| f.kind == FaultKind::Delay) {
        // Processing takes this long, whether or not the client is still there.
        hold(&app, f.ms).await;
    }

    let mut st = app.lock();
    st.end(action, &named);
    st.charge_cloud_auto_renew();
    let result: ApiResult = match action {
        "DescribeDedicatedHosts" => actions::describe_dedicated_hosts(&st, &p, &rid),
        "DescribeDedicatedHostAutoRenew" => actions::describe_auto_renew(&st, &p, &rid),
        "RenewDedicatedHosts" => actions::renew(&mut st, &p, &rid),
        _ => actions::modify_auto_renew(&mut st, &p, &rid),
    };
    let (status, code, body) = match result {
        Ok(v) => (200, String::new(), v.to_string()),
        Err(e) => (e.status, e.code.clone(), error_body(&rid, &host, &e)),
    };
    if let Some(k) = &key {
        if completed(status, &code) {
            st.tokens.insert(
                k.clone(),
                TokenEntry {
                    fingerprint: fingerprint(&params),
                    state: TokenState::Done(Stored {
                        status,
                        body: body.clone(),
                    }),
                },
            );
        } else {
            st.tokens.remove(k);
        }
    }
    match fault.map(|f| (f.kind, f.status, f.code)) {
        Some((FaultKind::ApplyThenError, s, c)) => {
            let e = ApiErr::new(
                s,
                &c,
                "Injected by the emulator's fault rules after the call was applied.",
            );
            fail(&mut st, entry, e)
        }
        Some((FaultKind::ApplyThenDrop, _, _)) => {
            entry.code = "fault:apply_then_drop".into();
            entry.status = status;
            st.log(entry);
            dropped()
        }
        _ => {
            entry.status = status;
            entry.code = code;
            st.log(entry);
            json_response(status, body)
        }
    }
}
