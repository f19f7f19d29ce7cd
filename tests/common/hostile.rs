//! A hostile ECS endpoint for tests: a proxy in front of the emulator that answers one chosen
//! action badly — malformed, partial, redirected, endless, stalled, oversized — and forwards
//! everything else unchanged (the client's signature still verifies: the Host header is kept).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::any;

use super::cloud::Cloud;

/// How the chosen action is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 200 without the list (`DedicatedHosts`, `DedicatedHostRenewAttributes`).
    MissingList,
    /// 200 whose `TotalCount` says 2 while the list is empty.
    CountMismatch,
    /// 200 that is not JSON.
    Garbage,
    /// 200 with the real answer cut in half.
    Truncated,
    /// 307 to another host.
    Redirect,
    /// 200 whose chunked body never ends.
    Endless,
    /// Nothing at all, for a minute.
    Stall,
    /// 200 with 20 MB of JSON.
    Huge,
    /// 502 with an HTML body.
    Html502,
    /// Forwarded (so applied), then answered with garbage.
    ApplyThenGarbage,
}

pub const ALL: [Kind; 10] = [
    Kind::MissingList,
    Kind::CountMismatch,
    Kind::Garbage,
    Kind::Truncated,
    Kind::Redirect,
    Kind::Endless,
    Kind::Stall,
    Kind::Huge,
    Kind::Html502,
    Kind::ApplyThenGarbage,
];

#[derive(Clone)]
struct Proxy {
    upstream: String,
    rule: Arc<Mutex<Option<(String, Kind)>>>,
    http: reqwest::Client,
}

pub struct Hostile {
    pub addr: SocketAddr,
    rule: Arc<Mutex<Option<(String, Kind)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Hostile {
    /// Starts the proxy on the cloud's runtime, in front of its emulator.
    pub fn start(cloud: &Cloud) -> Self {
        ddh_renewd::ecs::client::install_crypto_provider();
        let rule = Arc::new(Mutex::new(None));
        let proxy = Proxy {
            upstream: cloud.emu().endpoint(),
            rule: rule.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        };
        let (addr, task) = cloud.rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let app = Router::new().fallback(any(handle)).with_state(proxy);
            let task = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            (addr, task)
        });
        Self { addr, rule, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers `action` with `kind` from now on (`None`: forward everything).
    pub fn set(&self, rule: Option<(&str, Kind)>) {
        *self.rule.lock().unwrap() = rule.map(|(a, k)| (a.to_owned(), k));
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(p): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let action = headers
        .get("x-acs-action")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let kind = p
        .rule
        .lock()
        .unwrap()
        .as_ref()
        .filter(|(a, _)| *a == action)
        .map(|(_, k)| *k);
    let json = |status: u16, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    match kind {
        Some(Kind::MissingList) => {
            return json(200, r#"{"RequestId":"HOSTILE","TotalCount":1}"#.into());
        }
        Some(Kind::CountMismatch) => {
            return json(
                200,
                r#"{"RequestId":"HOSTILE","TotalCount":2,"PageNumber":1,"PageSize":100,"NextToken":"","DedicatedHosts":{"DedicatedHost":[]},"DedicatedHostRenewAttributes":{"DedicatedHostRenewAttribute":[]}}"#.into(),
            );
        }
        Some(Kind::Garbage) => return json(200, "this is not JSON at all".into()),
        Some(Kind::Redirect) => {
            return Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header("location", "http://10.255.255.1:8080/steal?ClientToken=x")
                .body(Body::empty())
                .unwrap();
        }
        Some(Kind::Endless) => {
            let chunks = futures_util::stream::repeat_with(|| {
                Ok::<Bytes, std::io::Error>(Bytes::from_static(&[b'['; 65536]))
            });
            return Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from_stream(chunks))
                .unwrap();
        }
        Some(Kind::Stall) => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return json(500, "{}".into());
        }
        Some(Kind::Huge) => {
            let big = "x".repeat(20 << 20);
            return json(200, format!(r#"{{"RequestId":"{big}"}}"#));
        }
        Some(Kind::Html502) => {
            return Response::builder()
                .status(502)
                .header("content-type", "text/html")
                .body(Body::from("<html><body>502 Bad Gateway</body></html>"))
                .unwrap();
        }
        _ => {}
    }
    let url = format!(
        "{}{}",
        p.upstream,
        uri.path_and_query().map_or("/", |x| x.as_str())
    );
    let mut req = p.http.request(method, url).body(body);
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    let Ok(resp) = req.send().await else {
        return json(502, "{}".into());
    };
    let status = resp.status().as_u16();
    let text = resp.bytes().await.unwrap_or_default();
    match kind {
        Some(Kind::Truncated) => json(
            status,
            String::from_utf8_lossy(&text[..text.len() / 2]).into_owned(),
        ),
        Some(Kind::ApplyThenGarbage) => json(200, "<<applied, then garbled>>".into()),
        _ => json(status, String::from_utf8_lossy(&text).into_owned()),
    }
}
