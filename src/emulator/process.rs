//! One API request, as the cloud would process it, in steps: read it, let an anonymous
//! AssumeRoleWithOIDC through, verify the signature and the session token, check the action and
//! the quota and pick a fault (one lock), play an injected fault that comes before processing,
//! settle the ClientToken (replay, mismatch, in flight, or claim), then apply the action and play
//! a fault that comes after.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::Response;
use chrono::Utc;

use super::actions::{self, ACTIONS, ApiErr, ApiResult, Params};
use super::state::{Fault, FaultKind, LogEntry, State, Stored, TokenEntry, TokenState, request_id};
use super::{
    HANG_LIMIT_MS, Shared, completed, dropped, error_body, fingerprint, hold, json_response, sts,
    verify,
};

/// A request as received: its parameters (query and form), headers as text, and its log entry.
struct Incoming {
    method: Method,
    query: Vec<(String, String)>,
    form: Vec<(String, String)>,
    headers: HeaderMap,
    hdrs: Vec<(String, String)>,
    body: Bytes,
    host: String,
    rid: String,
    params: Vec<(String, String)>,
    entry: LogEntry,
}

impl Incoming {
    fn read(method: Method, uri: &Uri, headers: HeaderMap, body: Bytes) -> Self {
        let query: Vec<(String, String)> =
            form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
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
        let hdrs = headers
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
        let params = query.iter().chain(form.iter()).cloned().collect();
        let entry = LogEntry {
            at: crate::domain::time::to_db(Utc::now()),
            action: String::new(),
            signature_version: "none".into(),
            verified: false,
            access_key_id: String::new(),
            status: 0,
            code: String::new(),
            request_id: rid.clone(),
        };
        Self {
            method,
            query,
            form,
            headers,
            hdrs,
            body,
            host,
            rid,
            params,
            entry,
        }
    }

    fn p(&self) -> Params<'_> {
        Params(&self.params)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|a| a.to_str().ok())
    }

    /// Logs the request as failed with `e` and answers with the error body.
    fn fail(&mut self, st: &mut State, e: ApiErr) -> Response {
        let mut entry = self.take_entry();
        entry.status = e.status;
        entry.code = e.code.clone();
        st.log(entry);
        json_response(e.status, error_body(&self.rid, &self.host, &e))
    }

    /// Logs the request with this status and code.
    fn log(&mut self, st: &mut State, status: u16, code: String) {
        let mut entry = self.take_entry();
        entry.status = status;
        entry.code = code;
        st.log(entry);
    }

    fn take_entry(&mut self) -> LogEntry {
        let blank = LogEntry {
            at: self.entry.at.clone(),
            action: String::new(),
            signature_version: String::new(),
            verified: false,
            access_key_id: String::new(),
            status: 0,
            code: String::new(),
            request_id: self.rid.clone(),
        };
        std::mem::replace(&mut self.entry, blank)
    }
}

/// What the checks decided: the action, the fault to play, the hosts the request names.
struct Admitted {
    action: &'static str,
    fault: Option<Fault>,
    named: Vec<String>,
}

pub(super) async fn process(
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
    let mut req = Incoming::read(method, &uri, headers, body);
    if let Some(r) = anonymous_oidc(&app, &mut req) {
        return r;
    }
    let admitted = match admit(&app, &mut req) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    // Only RenewDedicatedHosts is idempotent by ClientToken.
    let key = (admitted.action == "RenewDedicatedHosts")
        .then(|| {
            req.p()
                .get("ClientToken")
                .filter(|t| !t.is_empty())
                .map(|t| (admitted.action.to_owned(), t.to_owned()))
        })
        .flatten();
    if let Some(r) = fault_before(&app, &mut req, admitted.fault.as_ref(), key.as_ref()).await {
        return r;
    }
    if let Some(k) = &key
        && let Some(r) = settle_token(&app, &mut req, k)
    {
        return r;
    }
    apply(&app, &mut req, admitted, key).await
}

/// AssumeRoleWithOIDC is anonymous: the OIDC token is the proof.
fn anonymous_oidc(app: &Shared, req: &mut Incoming) -> Option<Response> {
    let action = req
        .header("x-acs-action")
        .map(str::to_owned)
        .or_else(|| req.p().get("Action").map(str::to_owned));
    if action.as_deref() != Some("AssumeRoleWithOIDC") || req.p().get("Signature").is_some() {
        return None;
    }
    let mut st = app.lock();
    req.entry.action = "AssumeRoleWithOIDC".into();
    req.entry.verified = true;
    Some(
        match sts::assume_role_with_oidc(&mut st.sts, &req.p(), &req.rid) {
            Ok(v) => {
                req.log(&mut st, 200, String::new());
                json_response(200, v.to_string())
            }
            Err(e) => req.fail(&mut st, e),
        },
    )
}

/// Verifies the signature and the session token, answers AssumeRole, checks the action and the
/// quota and picks a fault: all under one lock.
fn admit(app: &Shared, req: &mut Incoming) -> Result<Admitted, Box<Response>> {
    let mut st = app.lock();
    let keys = keys_with_sessions(app, &st);
    let checked = verify::verify(
        &verify::Request {
            method: req.method.as_str(),
            query: &req.query,
            form: &req.form,
            headers: &req.hdrs,
            body: &req.body,
        },
        &keys,
        &mut st,
        Utc::now(),
    );
    let v = match checked {
        Ok(v) => v,
        Err(r) => {
            req.entry.signature_version = r.version.map_or("none", |v| v.as_str()).into();
            req.entry.access_key_id = r.access_key_id;
            req.entry.action = req.p().get("Action").unwrap_or_default().to_owned();
            return Err(Box::new(req.fail(&mut st, r.error)));
        }
    };
    req.entry.signature_version = v.version.as_str().into();
    req.entry.verified = true;
    req.entry.access_key_id = v.access_key_id.clone();
    let (action, token) = action_and_token(req, v.version);
    req.entry.action = action.clone();
    if let Err(e) = st.sts.check_token(&v.access_key_id, token.as_deref()) {
        return Err(Box::new(req.fail(&mut st, e)));
    }
    if action == "AssumeRole" {
        return Err(Box::new(
            match sts::assume_role(&mut st.sts, &req.p(), &req.rid) {
                Ok(body) => {
                    req.log(&mut st, 200, String::new());
                    json_response(200, body.to_string())
                }
                Err(e) => req.fail(&mut st, e),
            },
        ));
    }
    let Some(action) = ACTIONS.iter().copied().find(|a| *a == action) else {
        let e = ApiErr::new(
            404,
            "InvalidAction.NotFound",
            format!("Specified api {action:?} is not found, please check your url and method."),
        );
        return Err(Box::new(req.fail(&mut st, e)));
    };
    if !st.take_quota(&v.access_key_id, action, app.quota) {
        let e = ApiErr::new(
            400,
            "Throttling.User",
            "Request was denied due to user flow control.",
        );
        return Err(Box::new(req.fail(&mut st, e)));
    }
    let named =
        crate::domain::ids::parse_id_list(req.p().get("DedicatedHostIds").unwrap_or_default())
            .unwrap_or_default();
    let fault = st.pick_fault(action, &named);
    Ok(Admitted {
        action,
        fault,
        named,
    })
}

/// The keys a request may be signed with: the configured pairs, and the sessions STS and the
/// metadata service issued.
fn keys_with_sessions<'a>(
    app: &'a Shared,
    st: &State,
) -> std::borrow::Cow<'a, std::collections::HashMap<String, String>> {
    if st.sts.sessions.is_empty() {
        return std::borrow::Cow::Borrowed(&app.keys);
    }
    let mut k = app.keys.clone();
    for (id, s) in &st.sts.sessions {
        k.insert(id.clone(), s.secret.clone());
    }
    std::borrow::Cow::Owned(k)
}

/// The action a request names and its security token, where each signature version puts them.
fn action_and_token(req: &Incoming, version: verify::SigVersion) -> (String, Option<String>) {
    let (action, token) = match version {
        verify::SigVersion::V1 => (
            req.p().get("Action").map(str::to_owned),
            req.p().get("SecurityToken").map(str::to_owned),
        ),
        verify::SigVersion::V3 => (
            req.header("x-acs-action")
                .map(str::to_owned)
                .or_else(|| req.p().get("Action").map(str::to_owned)),
            req.header("x-acs-security-token").map(str::to_owned),
        ),
    };
    (action.unwrap_or_default(), token)
}

/// Plays a fault that strikes before processing: a hang, a reset, or an error (a definite
/// business error completes the token; 5xx and throttling do not).
async fn fault_before(
    app: &Shared,
    req: &mut Incoming,
    fault: Option<&Fault>,
    key: Option<&(String, String)>,
) -> Option<Response> {
    let f = fault?;
    match f.kind {
        FaultKind::Hang => {
            req.log(&mut app.lock(), 0, "fault:hang".into());
            hold(app, if f.ms == 0 { HANG_LIMIT_MS } else { f.ms }).await;
            Some(dropped())
        }
        FaultKind::Reset => {
            req.log(&mut app.lock(), 0, "fault:reset".into());
            Some(dropped())
        }
        FaultKind::Error => {
            let e = ApiErr::new(f.status, &f.code, "Injected by the emulator's fault rules.");
            let mut st = app.lock();
            if let Some(k) = key
                && completed(e.status, &e.code)
                && !st.tokens.contains_key(k)
            {
                let entry = TokenEntry {
                    fingerprint: fingerprint(&req.params),
                    state: TokenState::Done(Stored {
                        status: e.status,
                        body: error_body(&req.rid, &req.host, &e),
                    }),
                };
                st.tokens.insert(k.clone(), entry);
            }
            Some(req.fail(&mut st, e))
        }
        _ => None,
    }
}

/// The ClientToken: a different request under it is refused, one in flight answers
/// LastTokenProcessing, a finished one replays its stored answer; else it is claimed.
fn settle_token(app: &Shared, req: &mut Incoming, k: &(String, String)) -> Option<Response> {
    let mut st = app.lock();
    let fp = fingerprint(&req.params);
    match st.tokens.get(k) {
        Some(t) if t.fingerprint != fp => {
            let e = ApiErr::new(
                400,
                "IdempotenceParamNotMatch",
                "Request uses a client token in a previous request but is not identical to that request.",
            );
            Some(req.fail(&mut st, e))
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
            Some(req.fail(&mut st, e))
        }
        Some(TokenEntry {
            state: TokenState::Done(stored),
            ..
        }) => {
            let stored = stored.clone();
            let code = serde_json::from_str::<serde_json::Value>(&stored.body)
                .ok()
                .and_then(|v| v.get("Code").and_then(|c| c.as_str()).map(str::to_owned))
                .unwrap_or_else(|| "replayed".into());
            req.log(&mut st, stored.status, code);
            Some(json_response(stored.status, stored.body))
        }
        None => {
            let entry = TokenEntry {
                fingerprint: fp,
                state: TokenState::InFlight,
            };
            st.tokens.insert(k.clone(), entry);
            None
        }
    }
}

/// Applies the action (after the delay a fault asks for: processing takes that long whether or
/// not the client is still there), stores the token's answer, then plays a fault that strikes
/// after processing.
async fn apply(
    app: &Shared,
    req: &mut Incoming,
    a: Admitted,
    key: Option<(String, String)>,
) -> Response {
    app.lock().begin(a.action, &a.named);
    if let Some(f) = a.fault.as_ref().filter(|f| f.kind == FaultKind::Delay) {
        hold(app, f.ms).await;
    }
    let mut st = app.lock();
    st.end(a.action, &a.named);
    st.charge_cloud_auto_renew();
    let p = Params(&req.params);
    let result: ApiResult = match a.action {
        "DescribeDedicatedHosts" => actions::describe_dedicated_hosts(&st, &p, &req.rid),
        "DescribeDedicatedHostAutoRenew" => actions::describe_auto_renew(&st, &p, &req.rid),
        "RenewDedicatedHosts" => actions::renew(&mut st, &p, &req.rid),
        _ => actions::modify_auto_renew(&mut st, &p, &req.rid),
    };
    let (status, code, body) = match result {
        Ok(v) => (200, String::new(), v.to_string()),
        Err(e) => (
            e.status,
            e.code.clone(),
            error_body(&req.rid, &req.host, &e),
        ),
    };
    if let Some(k) = key {
        if completed(status, &code) {
            let entry = TokenEntry {
                fingerprint: fingerprint(&req.params),
                state: TokenState::Done(Stored {
                    status,
                    body: body.clone(),
                }),
            };
            st.tokens.insert(k, entry);
        } else {
            st.tokens.remove(&k);
        }
    }
    match a.fault.map(|f| (f.kind, f.status, f.code)) {
        Some((FaultKind::ApplyThenError, s, c)) => {
            let e = ApiErr::new(
                s,
                &c,
                "Injected by the emulator's fault rules after the call was applied.",
            );
            req.fail(&mut st, e)
        }
        Some((FaultKind::ApplyThenDrop, _, _)) => {
            req.log(&mut st, status, "fault:apply_then_drop".into());
            dropped()
        }
        _ => {
            req.log(&mut st, status, code);
            json_response(status, body)
        }
    }
}
