//! The other side of short-lived credentials (SPEC §4.4): an instance metadata service with the
//! hardened token flow, STS `AssumeRole` (signed) and `AssumeRoleWithOIDC` (anonymous, the OIDC
//! token is the proof), and a credentials URI. What they issue is a session: a temporary
//! AccessKeyId (`STS.…`), its secret and a security token, valid until `Expiration`. ECS calls
//! signed with a session key must carry its token (`x-acs-security-token`, or `SecurityToken`
//! in V1) and are refused once it has expired, with the documented codes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Shared;
use super::actions::{ApiErr, ApiResult, Params};

/// The role the emulator's instance carries and STS lets assume.
pub const ROLE_NAME: &str = "ddh-renewd-role";
pub const ROLE_ARN: &str = "acs:ram::1234567890123456:role/ddh-renewd-role";
pub const OIDC_PROVIDER_ARN: &str = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-test";
/// The OIDC token STS accepts (a test stand-in for the token ACK mounts in the pod).
pub const OIDC_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.test-rrsa-token.signature";

/// One issued session.
#[derive(Debug, Clone)]
pub struct Session {
    pub secret: String,
    pub token: String,
    pub expires: DateTime<Utc>,
    pub source: &'static str,
}

/// Settings an admin call can change, and what was issued.
#[derive(Debug)]
pub struct Sts {
    pub sessions: HashMap<String, Session>,
    /// Metadata session tokens and their expiry.
    imds_tokens: HashMap<String, DateTime<Utc>>,
    /// Lifetime of what is issued, when shorter than asked (tests of renewal).
    pub ttl_override: Option<i64>,
    /// The instance's role; `None` = no role attached.
    pub role_name: Option<String>,
    /// Refuse metadata reads without a session token (the hardened mode).
    pub imds_hardened: bool,
    /// Issued so far, by source.
    pub issued: HashMap<&'static str, u64>,
    /// Every secret and token issued (at most 10,000), so tests can search their logs and
    /// databases for them.
    pub issued_secrets: Vec<String>,
}

impl Default for Sts {
    fn default() -> Self {
        Self {
            sessions: HashMap::new(),
            imds_tokens: HashMap::new(),
            ttl_override: None,
            role_name: Some(ROLE_NAME.to_owned()),
            imds_hardened: true,
            issued: HashMap::new(),
            issued_secrets: Vec::new(),
        }
    }
}

fn random_text(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

impl Sts {
    /// Issues a session of `asked` seconds (or the override) and returns its JSON credentials.
    fn issue(&mut self, asked: i64, source: &'static str) -> serde_json::Value {
        let now = Utc::now();
        let ttl = self.ttl_override.unwrap_or(asked).clamp(1, 43_200);
        let expires = now + TimeDelta::seconds(ttl);
        let id = format!("STS.{}", random_text(24));
        let s = Session {
            secret: random_text(40),
            token: format!("CAIS{}", random_text(120)),
            expires,
            source,
        };
        *self.issued.entry(source).or_default() += 1;
        if self.issued_secrets.len() < 10_000 {
            self.issued_secrets.push(s.secret.clone());
            self.issued_secrets.push(s.token.clone());
        }
        let v = json!({
            "AccessKeyId": id,
            "AccessKeySecret": s.secret,
            "SecurityToken": s.token,
            "Expiration": expires.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        });
        // Sessions expired for over an hour are forgotten.
        self.sessions
            .retain(|_, s| s.expires + TimeDelta::hours(1) > now);
        self.sessions.insert(id, s);
        v
    }

    /// The secret of a session key, for signature checks (also when it expired: the signature
    /// is checked first, then the token).
    pub fn secret(&self, access_key_id: &str) -> Option<String> {
        self.sessions.get(access_key_id).map(|s| s.secret.clone())
    }

    /// For a request signed with a session key: the token must be the session's and unexpired.
    pub fn check_token(&self, access_key_id: &str, token: Option<&str>) -> Result<(), ApiErr> {
        let Some(s) = self.sessions.get(access_key_id) else {
            return Ok(());
        };
        match token {
            None | Some("") => Err(ApiErr::new(
                400,
                "InvalidSecurityToken.MismatchWithAccessKey",
                "The AccessKeyId is a temporary one: the request must carry its SecurityToken.",
            )),
            Some(t) if t != s.token => Err(ApiErr::new(
                400,
                "InvalidSecurityToken.MismatchWithAccessKey",
                "The SecurityToken does not belong to this AccessKeyId.",
            )),
            Some(_) if Utc::now() >= s.expires => Err(ApiErr::new(
                400,
                "InvalidSecurityToken.Expired",
                "Specified SecurityToken is expired.",
            )),
            Some(_) => Ok(()),
        }
    }
}

/// STS actions, answered on the same endpoint as ECS (the client is pointed at it).
pub const ACTIONS: &[&str] = &["AssumeRole", "AssumeRoleWithOIDC"];

fn duration(p: &Params<'_>) -> Result<i64, ApiErr> {
    match p.get("DurationSeconds") {
        None | Some("") => Ok(3600),
        Some(d) => d
            .parse::<i64>()
            .ok()
            .filter(|d| (900..=43_200).contains(d))
            .ok_or_else(|| {
                ApiErr::new(
                    400,
                    "InvalidParameter.DurationSeconds",
                    "The parameter DurationSeconds must be between 900 and 43200 (the role's maximum session duration).",
                )
            }),
    }
}

fn role_arn(p: &Params<'_>) -> Result<(), ApiErr> {
    match p.get("RoleArn") {
        None | Some("") => Err(ApiErr::new(
            400,
            "MissingRoleArn",
            "RoleArn is mandatory for this action.",
        )),
        Some(ROLE_ARN) => Ok(()),
        Some(_) => Err(ApiErr::new(
            404,
            "EntityNotExist.Role",
            "The specified Role not exists.",
        )),
    }
}

fn session_name(p: &Params<'_>) -> Result<String, ApiErr> {
    let n = p.get("RoleSessionName").unwrap_or_default();
    if n.len() < 2
        || n.len() > 64
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
    {
        return Err(ApiErr::new(
            400,
            "InvalidParameter.RoleSessionName",
            "The parameter RoleSessionName is wrongly formed.",
        ));
    }
    Ok(n.to_owned())
}

fn answer(rid: &str, session: &str, creds: serde_json::Value) -> serde_json::Value {
    json!({
        "RequestId": rid,
        "AssumedRoleUser": {
            "Arn": format!("acs:ram::1234567890123456:assumed-role/{ROLE_NAME}/{session}"),
            "AssumedRoleId": format!("300000000000000000:{session}"),
        },
        "Credentials": creds,
    })
}

/// `AssumeRole`, after the caller's signature was verified.
pub fn assume_role(sts: &mut Sts, p: &Params<'_>, rid: &str) -> ApiResult {
    role_arn(p)?;
    let session = session_name(p)?;
    let d = duration(p)?;
    Ok(answer(rid, &session, sts.issue(d, "AssumeRole")))
}

/// `AssumeRoleWithOIDC`: anonymous; the provider and the token decide.
pub fn assume_role_with_oidc(sts: &mut Sts, p: &Params<'_>, rid: &str) -> ApiResult {
    role_arn(p)?;
    if p.get("OIDCProviderArn") != Some(OIDC_PROVIDER_ARN) {
        return Err(ApiErr::new(
            404,
            "EntityNotExist.OIDCProvider",
            "The specified OIDC provider does not exist.",
        ));
    }
    match p.get("OIDCToken") {
        None | Some("") => {
            return Err(ApiErr::new(
                400,
                "MissingOIDCToken",
                "OIDCToken is mandatory for this action.",
            ));
        }
        Some(OIDC_TOKEN) => {}
        Some(_) => {
            return Err(ApiErr::new(
                400,
                "AuthenticationFail.OIDCToken.Invalid",
                "The OIDC token is invalid.",
            ));
        }
    }
    let session = session_name(p)?;
    let d = duration(p)?;
    Ok(answer(rid, &session, sts.issue(d, "AssumeRoleWithOIDC")))
}

// ------------------------------------------------------------------ instance metadata

pub(super) fn metadata_router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/latest/api/token", put(imds_token))
        .route(
            "/latest/meta-data/ram/security-credentials/",
            get(imds_roles),
        )
        .route(
            "/latest/meta-data/ram/security-credentials/{role}",
            get(imds_role),
        )
        .route("/credentials-uri", get(credentials_uri))
}

fn text(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(body))
        .unwrap_or_default()
}

async fn imds_token(AxState(app): AxState<Arc<Shared>>, headers: HeaderMap) -> Response {
    let ttl = headers
        .get("x-aliyun-ecs-metadata-token-ttl-seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    let Some(ttl) = ttl.filter(|t| (1..=21_600).contains(t)) else {
        return text(
            StatusCode::BAD_REQUEST,
            "X-aliyun-ecs-metadata-token-ttl-seconds must be 1 to 21600".into(),
        );
    };
    let token = random_text(44);
    let mut st = app.lock();
    let now = Utc::now();
    st.sts.imds_tokens.retain(|_, e| *e > now);
    st.sts
        .imds_tokens
        .insert(token.clone(), now + TimeDelta::seconds(ttl));
    text(StatusCode::OK, token)
}

/// Hardened mode: a valid session token is required; `Some(refusal)` when it is missing.
fn imds_refused(app: &Shared, headers: &HeaderMap) -> Option<Response> {
    let st = app.lock();
    if !st.sts.imds_hardened {
        return None;
    }
    let ok = headers
        .get("x-aliyun-ecs-metadata-token")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| st.sts.imds_tokens.get(t))
        .is_some_and(|e| *e > Utc::now());
    (!ok).then(|| {
        text(
            StatusCode::UNAUTHORIZED,
            "a metadata session token (PUT /latest/api/token) is required".into(),
        )
    })
}

async fn imds_roles(AxState(app): AxState<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(r) = imds_refused(&app, &headers) {
        return r;
    }
    match app.lock().sts.role_name.clone() {
        Some(r) => text(StatusCode::OK, r),
        None => text(StatusCode::NOT_FOUND, "no RAM role is attached".into()),
    }
}

async fn imds_role(
    AxState(app): AxState<Arc<Shared>>,
    headers: HeaderMap,
    Path(role): Path<String>,
) -> Response {
    if let Some(r) = imds_refused(&app, &headers) {
        return r;
    }
    let mut st = app.lock();
    if st.sts.role_name.as_deref() != Some(role.as_str()) {
        return text(
            StatusCode::NOT_FOUND,
            "no such role on this instance".into(),
        );
    }
    let mut v = st.sts.issue(21_600, "metadata");
    v["Code"] = json!("Success");
    v["LastUpdated"] = json!(Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
    Json(v).into_response()
}

async fn credentials_uri(AxState(app): AxState<Arc<Shared>>) -> Response {
    let mut v = app.lock().sts.issue(3600, "credentials_uri");
    v["Code"] = json!("Success");
    Json(v).into_response()
}

// ------------------------------------------------------------------ admin

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StsSettings {
    /// Lifetime of what is issued from now on, in seconds; null = as asked.
    #[serde(default)]
    ttl_seconds: Option<Option<i64>>,
    /// The instance's role name; null = no role attached.
    #[serde(default)]
    role_name: Option<Option<String>>,
    #[serde(default)]
    imds_hardened: Option<bool>,
    /// Expire every session issued so far, at once.
    #[serde(default)]
    expire_all: bool,
}

#[derive(Serialize)]
pub(super) struct StsView {
    ttl_seconds: Option<i64>,
    role_name: Option<String>,
    imds_hardened: bool,
    sessions: usize,
    issued: HashMap<&'static str, u64>,
}

pub(super) fn view(sts: &Sts) -> StsView {
    StsView {
        ttl_seconds: sts.ttl_override,
        role_name: sts.role_name.clone(),
        imds_hardened: sts.imds_hardened,
        sessions: sts.sessions.len(),
        issued: sts.issued.clone(),
    }
}

pub(super) fn apply(sts: &mut Sts, s: StsSettings) -> Result<(), String> {
    if let Some(t) = s.ttl_seconds {
        if let Some(n) = t
            && !(1..=43_200).contains(&n)
        {
            return Err("ttl_seconds must be 1 to 43200, or null".into());
        }
        sts.ttl_override = t;
    }
    if let Some(r) = s.role_name {
        sts.role_name = r;
    }
    if let Some(h) = s.imds_hardened {
        sts.imds_hardened = h;
    }
    if s.expire_all {
        expire_all(sts);
    }
    Ok(())
}

/// Every session issued so far expires now.
pub fn expire_all(sts: &mut Sts) {
    let now = Utc::now();
    for session in sts.sessions.values_mut() {
        session.expires = now;
    }
}
