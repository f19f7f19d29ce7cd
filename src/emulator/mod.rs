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
mod process;
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

use tokio::sync::watch;

use actions::ApiErr;
use state::State;

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
        process::process(app, method, uri, headers, body).await
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
