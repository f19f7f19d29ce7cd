//! The ECS OpenAPI client: V3-signed RPC calls (POST, parameters in the query, empty body) to the
//! regional endpoint or the configured override, with the quota limiter in front and typed
//! answers or classified errors out.
//!
//! Read-only actions retry transient failures with backoff here; `RenewDedicatedHosts` is sent
//! exactly once per call, because its retries belong to the engine's write-ahead attempt.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use serde::de::DeserializeOwned;

use super::credentials::Credentials;
use super::error::{ApiError, EcsError, ErrorClass, is_throttling};
use super::limiter::{Limiter, QuotaWaits};
use super::models::{
    DedicatedHost, DescribeDedicatedHostAutoRenewResponse, DescribeDedicatedHostsResponse,
    RenewAttribute, RenewDedicatedHostsResponse, RequestIdOnly,
};
use super::provider::Provider;
use super::sign;
use crate::domain::{ClientToken, HostId, Period, RenewalStatus};

pub const API_VERSION: &str = "2014-05-26";
/// Page size and batch size: the API's maximum.
pub const MAX_PER_CALL: usize = 100;
pub(crate) const USER_AGENT: &str = concat!("ddh-renewd/", env!("CARGO_PKG_VERSION"));
/// Bound on pages per listing, so a server that repeats tokens cannot loop us forever.
const MAX_PAGES: usize = 10_000;

/// Upper bounds (seconds) of the request-latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 9] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// What one action's requests did, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct ActionStats {
    pub requests: u64,
    /// Failed requests by code: the API's code, or `transport`, `timeout`, `malformed`,
    /// `redirect`, `setup`.
    pub errors: BTreeMap<String, u64>,
    /// Requests at or under each of [`LATENCY_BUCKETS`].
    pub buckets: [u64; LATENCY_BUCKETS.len()],
    pub seconds: f64,
}

/// Largest response body read; a bigger one is an error, not a reason to run out of memory.
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// How read-only calls retry transient failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    /// No retry starts after this much time on one read (a stalled cloud fails in bounded time).
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 24,
            base: Duration::from_millis(50),
            cap: Duration::from_secs(2),
            max_elapsed: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Full-jitter exponential backoff for attempt `n` (0-based).
    pub fn delay(&self, n: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << n.min(16)).min(self.cap);
        let ms = u64::try_from(exp.as_millis()).unwrap_or(u64::MAX).max(1);
        Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
    }
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Empty: regional endpoints. Else `https://host[:port]` or `http://loopback[:port]`.
    pub endpoint: String,
    pub timeout: Duration,
    pub quota_per_minute: u32,
    pub retry: RetryPolicy,
}

pub struct EcsClient {
    http: reqwest::Client,
    creds: Arc<Provider>,
    endpoint: Option<String>,
    limiter: Arc<Limiter>,
    retry: RetryPolicy,
    stats: Mutex<BTreeMap<&'static str, ActionStats>>,
}

/// The official SDKs' endpoint map: `cn-hangzhou` is special, the rest follow the rule.
pub fn regional_endpoint(region: &str) -> String {
    match region {
        "cn-hangzhou" => "https://ecs-cn-hangzhou.aliyuncs.com".to_owned(),
        other => format!("https://ecs.{other}.aliyuncs.com"),
    }
}

/// Installs the ring crypto provider for rustls once per process (needed before any
/// `reqwest::Client` is built with `rustls-no-provider`).
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only if another provider is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Why an HTTP client could not be built, with the cause and the fix. The usual cause is a system
/// without CA certificates: the TLS verifier has nothing to check the endpoint's certificate with.
pub fn http_client_error(e: &reqwest::Error) -> String {
    let mut chain = Vec::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        let text = err.to_string();
        if chain.last() != Some(&text) {
            chain.push(text);
        }
        source = err.source();
    }
    let detail = chain.join(": ");
    let lower = detail.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("root") || lower.contains("verifier") {
        format!(
            "cannot build the HTTP client: no usable CA certificates to verify TLS servers with ({detail}). \
             Install them (Debian/Ubuntu: apt-get install ca-certificates) or set SSL_CERT_FILE to a PEM bundle"
        )
    } else {
        format!("cannot build the HTTP client: {detail}")
    }
}

impl EcsClient {
    /// A client with one fixed key (tests, demo, by-hand tools).
    pub fn new(opts: &ClientOptions, creds: Credentials) -> Result<Self, EcsError> {
        Self::with_provider(opts, Arc::new(Provider::fixed(creds)))
    }

    /// A client whose credentials come from `creds`, renewed as they near expiry; each request
    /// is signed with one snapshot taken just before it is sent.
    pub fn with_provider(opts: &ClientOptions, creds: Arc<Provider>) -> Result<Self, EcsError> {
        let endpoint = match opts.endpoint.trim_end_matches('/') {
            "" => None,
            e => {
                crate::net::check_url(e, false)
                    .map_err(|p| EcsError::Setup(format!("endpoint {e:?} {p}")))?;
                Some(e.to_owned())
            }
        };
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout.min(Duration::from_secs(10)))
            .read_timeout(opts.timeout.min(Duration::from_secs(15)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT);
        if endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"))
        {
            // Plain http on loopback (checked above) never uses TLS, and redirects are not
            // followed: it needs no CA certificates, which a minimal system may not have.
            builder = builder.tls_certs_only([]);
        }
        let http = builder
            .build()
            .map_err(|e| EcsError::Setup(http_client_error(&e)))?;
        Ok(Self {
            http,
            creds,
            endpoint,
            limiter: Arc::new(Limiter::new(opts.quota_per_minute)),
            retry: opts.retry,
            stats: Mutex::new(BTreeMap::new()),
        })
    }

    /// The AccessKeyId in use (a temporary one for short-lived credentials), or the source's
    /// identity before any was loaded.
    pub fn access_key_id(&self) -> String {
        self.creds
            .current_access_key_id()
            .unwrap_or_else(|| self.creds.identity())
    }

    /// Where the credentials come from.
    pub fn credentials(&self) -> &Arc<Provider> {
        &self.creds
    }

    /// Calls made so far, by action (every HTTP request, retries included).
    pub fn calls(&self) -> BTreeMap<&'static str, u64> {
        self.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(a, s)| (*a, s.requests))
            .collect()
    }

    /// Requests, errors and latency by action.
    pub fn stats(&self) -> BTreeMap<&'static str, ActionStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record(&self, action: &'static str, took: Duration, error: Option<String>) {
        let mut all = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let s = all.entry(action).or_default();
        s.requests += 1;
        let secs = took.as_secs_f64();
        s.seconds += secs;
        for (bound, n) in LATENCY_BUCKETS.iter().zip(s.buckets.iter_mut()) {
            if secs <= *bound {
                *n += 1;
            }
        }
        if let Some(code) = error {
            *s.errors.entry(code).or_default() += 1;
        }
    }

    pub fn quota_waits(&self) -> QuotaWaits {
        self.limiter.waits()
    }

    fn base_url(&self, region: &str) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| regional_endpoint(region))
    }

    /// One signed request; no retries. Returns the parsed body or the classified error.
    pub async fn call_once<T: DeserializeOwned>(
        &self,
        action: &'static str,
        region: &str,
        params: &[(String, String)],
    ) -> Result<T, EcsError> {
        self.limiter.acquire(region, action).await;
        let started = std::time::Instant::now();
        let result = self.send(action, region, params).await;
        let code = result.as_ref().err().map(|e| match e {
            EcsError::Api { error, .. } => error.code.clone(),
            EcsError::Transport { timeout: true, .. } => "timeout".to_owned(),
            EcsError::Transport { .. } => "transport".to_owned(),
            EcsError::Decode { .. } => "malformed".to_owned(),
            EcsError::Redirected { .. } => "redirect".to_owned(),
            EcsError::Setup(_) => "setup".to_owned(),
            EcsError::Credentials(_) => "credentials".to_owned(),
        });
        self.record(action, started.elapsed(), code);
        result
    }

    /// The POST for `action`, V3-signed with one credentials snapshot.
    async fn signed_request(
        &self,
        action: &'static str,
        region: &str,
        params: &[(String, String)],
    ) -> Result<reqwest::RequestBuilder, EcsError> {
        let query = sign::canonical_query(params);
        let url_text = format!("{}/?{query}", self.base_url(region));
        let url = reqwest::Url::parse(&url_text)
            .map_err(|e| EcsError::Setup(format!("bad request URL: {e}")))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(EcsError::Setup("endpoint has no host".into())),
        };
        // Signature freshness is always judged on the real wall clock, even on a virtual one.
        let date = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let nonce: u128 = rand::rng().random();
        let nonce = format!("{nonce:032x}");
        let mut headers: Vec<(String, String)> = vec![
            ("accept".into(), "application/json".into()),
            ("host".into(), host),
            ("user-agent".into(), USER_AGENT.into()),
            ("x-acs-action".into(), action.into()),
            ("x-acs-content-sha256".into(), sign::EMPTY_SHA256.into()),
            ("x-acs-date".into(), date),
            ("x-acs-signature-nonce".into(), nonce),
            ("x-acs-version".into(), API_VERSION.into()),
        ];
        // One snapshot for this request: a renewal never re-signs a request on its way.
        let creds = self
            .creds
            .credentials()
            .await
            .map_err(|e| EcsError::Credentials(e.to_string()))?;
        if let Some(token) = &creds.security_token {
            headers.push(("x-acs-security-token".into(), token.expose().to_owned()));
        }
        let signed: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
        let canonical = sign::v3_canonical_request(&sign::V3Input {
            method: "POST",
            path: "/",
            query: params,
            headers: &headers,
            signed_headers: &signed,
            payload_hash: sign::EMPTY_SHA256,
        });
        let signature = sign::v3_signature(
            creds.access_key_secret.expose(),
            &sign::v3_string_to_sign(&canonical),
        );
        let auth = sign::v3_authorization(
            &creds.access_key_id,
            &sign::signed_headers_list(&signed),
            &signature,
        );

        let mut req = self.http.post(url).header("authorization", auth);
        for (k, v) in &headers {
            // reqwest derives Host from the URL (the same value we signed).
            if k != "host" && k != "user-agent" {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        Ok(req)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        action: &'static str,
        region: &str,
        params: &[(String, String)],
    ) -> Result<T, EcsError> {
        let req = self.signed_request(action, region, params).await?;
        let (status, body) = read_answer(action, req).await?;
        if (200..300).contains(&status) {
            self.limiter.succeeded(region, action);
            return serde_json::from_slice(&body).map_err(|e| EcsError::Decode {
                action,
                status,
                message: e.to_string(),
            });
        }
        let mut error: ApiError = serde_json::from_slice(&body).map_err(|_| EcsError::Decode {
            action,
            status,
            message: format!(
                "error body is not the documented JSON: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
        })?;
        error.status = status;
        if is_throttling(&error.code) {
            self.limiter.throttled(region, action);
        }
        Err(EcsError::Api {
            action,
            error: Box::new(error),
        })
    }

    /// A read-only call, retried on transient failures with a fresh signature each time.
    async fn call_read<T: DeserializeOwned>(
        &self,
        action: &'static str,
        region: &str,
        params: &[(String, String)],
    ) -> Result<T, EcsError> {
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            match self.call_once(action, region, params).await {
                Err(e)
                    if e.class() == ErrorClass::Transient
                        && attempt + 1 < self.retry.max_attempts =>
                {
                    let wait = self.retry.delay(attempt);
                    if started.elapsed() + wait > self.retry.max_elapsed {
                        tracing::warn!(action, region, tries = attempt + 1, error = %e,
                            "giving up on this read after {:.0} s", started.elapsed().as_secs_f64());
                        return Err(e);
                    }
                    // A progress line on every retry: a struggling cloud is visible at once.
                    tracing::warn!(action, region, tries = attempt + 1, error = %e,
                        "transient failure; retrying in {} ms", wait.as_millis());
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Every host of a region, or the named ones (≤ 100 per call), following `NextToken`.
    pub async fn describe_dedicated_hosts(
        &self,
        region: &str,
        ids: Option<&[HostId]>,
    ) -> Result<Vec<DedicatedHost>, EcsError> {
        let chunks: Vec<Option<String>> = match ids {
            None => vec![None],
            Some(ids) => ids
                .chunks(MAX_PER_CALL)
                .map(|c| Some(json_id_list(c)))
                .collect(),
        };
        let mut out = Vec::new();
        for chunk in chunks {
            let mut token = String::new();
            let mut total = None;
            let before = out.len();
            for page in 0.. {
                if page >= MAX_PAGES {
                    return Err(EcsError::Decode {
                        action: "DescribeDedicatedHosts",
                        status: 200,
                        message: format!("more than {MAX_PAGES} pages; NextToken does not end"),
                    });
                }
                let mut params = vec![
                    ("RegionId".to_owned(), region.to_owned()),
                    ("MaxResults".to_owned(), MAX_PER_CALL.to_string()),
                ];
                if let Some(list) = &chunk {
                    params.push(("DedicatedHostIds".to_owned(), list.clone()));
                }
                if !token.is_empty() {
                    params.push(("NextToken".to_owned(), token.clone()));
                }
                let r: DescribeDedicatedHostsResponse = self
                    .call_read("DescribeDedicatedHosts", region, &params)
                    .await?;
                total.get_or_insert(r.total_count);
                out.extend(r.dedicated_hosts.dedicated_host);
                if r.next_token.is_empty() || r.next_token == token {
                    break;
                }
                token = r.next_token;
            }
            // A listing that says it holds more hosts than it returned is not "the rest are
            // gone": it is an answer we cannot trust.
            let got = out.len() - before;
            if let Some(t) = total
                && usize::try_from(t).is_ok_and(|t| t > got)
            {
                return Err(EcsError::Decode {
                    action: "DescribeDedicatedHosts",
                    status: 200,
                    message: format!("TotalCount is {t} but {got} hosts were returned"),
                });
            }
        }
        Ok(out)
    }

    /// Cloud-side auto-renew attributes of PrePaid hosts, ≤ 100 ids per call (comma list).
    pub async fn describe_auto_renew(
        &self,
        region: &str,
        ids: &[HostId],
    ) -> Result<Vec<RenewAttribute>, EcsError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_PER_CALL) {
            let params = vec![
                ("RegionId".to_owned(), region.to_owned()),
                ("DedicatedHostIds".to_owned(), comma_id_list(chunk)),
            ];
            let r: DescribeDedicatedHostAutoRenewResponse = self
                .call_read("DescribeDedicatedHostAutoRenew", region, &params)
                .await?;
            let attrs = r
                .dedicated_host_renew_attributes
                .dedicated_host_renew_attribute;
            // The API answers for every id it is asked about (an unknown id is an error): an
            // answer that leaves some out is not one to decide on.
            let missing = chunk
                .iter()
                .filter(|id| !attrs.iter().any(|a| a.dedicated_host_id == id.as_str()))
                .count();
            if missing > 0 {
                return Err(EcsError::Decode {
                    action: "DescribeDedicatedHostAutoRenew",
                    status: 200,
                    message: format!(
                        "asked about {} hosts, {missing} of them are missing from the answer",
                        chunk.len()
                    ),
                });
            }
            out.extend(attrs);
        }
        Ok(out)
    }

    /// The exact parameters of a renewal, as the write-ahead record stores them.
    pub fn renew_params(
        region: &str,
        ids: &[HostId],
        period: Period,
        token: Option<&ClientToken>,
    ) -> Vec<(String, String)> {
        let mut params = vec![
            ("RegionId".to_owned(), region.to_owned()),
            ("DedicatedHostIds".to_owned(), json_id_list(ids)),
            ("Period".to_owned(), period.n.to_string()),
            ("PeriodUnit".to_owned(), period.unit.as_str().to_owned()),
        ];
        if let Some(t) = token {
            params.push(("ClientToken".to_owned(), t.as_str().to_owned()));
        }
        params
    }

    /// One RenewDedicatedHosts request (≤ 100 hosts). Never retried here.
    pub async fn renew_dedicated_hosts(
        &self,
        region: &str,
        ids: &[HostId],
        period: Period,
        token: Option<&ClientToken>,
    ) -> Result<RenewDedicatedHostsResponse, EcsError> {
        if ids.is_empty() || ids.len() > MAX_PER_CALL {
            return Err(EcsError::Setup(format!(
                "RenewDedicatedHosts takes 1 to {MAX_PER_CALL} hosts, not {}",
                ids.len()
            )));
        }
        let params = Self::renew_params(region, ids, period, token);
        self.call_once("RenewDedicatedHosts", region, &params).await
    }

    /// Sets the cloud-side auto-renew attribute of ≤ 100 hosts. Setting a state is naturally
    /// idempotent, so transient failures are retried.
    pub async fn modify_auto_renew(
        &self,
        region: &str,
        ids: &[HostId],
        status: RenewalStatus,
        duration: Option<Period>,
    ) -> Result<String, EcsError> {
        let mut params = vec![
            ("RegionId".to_owned(), region.to_owned()),
            ("DedicatedHostIds".to_owned(), comma_id_list(ids)),
            ("RenewalStatus".to_owned(), status.as_str().to_owned()),
            (
                "AutoRenew".to_owned(),
                (status == RenewalStatus::AutoRenewal).to_string(),
            ),
        ];
        if let Some(p) = duration {
            params.push(("Duration".to_owned(), p.n.to_string()));
            params.push(("PeriodUnit".to_owned(), p.unit.as_str().to_owned()));
        }
        let r: RequestIdOnly = self
            .call_read("ModifyDedicatedHostAutoRenewAttribute", region, &params)
            .await?;
        Ok(r.request_id)
    }
}

/// `["dh-a","dh-b"]` — the form RenewDedicatedHosts and DescribeDedicatedHosts document.
pub fn json_id_list(ids: &[HostId]) -> String {
    let v: Vec<&str> = ids.iter().map(HostId::as_str).collect();
    serde_json::to_string(&v).unwrap_or_default()
}

/// `dh-a,dh-b` — the form the auto-renew APIs document.
pub fn comma_id_list(ids: &[HostId]) -> String {
    ids.iter().map(HostId::as_str).collect::<Vec<_>>().join(",")
}

/// A redirect target as it may be shown: scheme, host, port and path; no user info, no query.
fn redact_location(raw: &str) -> String {
    let shown: String = match reqwest::Url::parse(raw) {
        Ok(u) => format!(
            "{}://{}{}{}",
            u.scheme(),
            u.host_str().unwrap_or("?"),
            u.port().map(|p| format!(":{p}")).unwrap_or_default(),
            u.path()
        ),
        Err(_) => raw.split(['?', '#']).next().unwrap_or_default().to_owned(),
    };
    shown.chars().take(200).collect()
}

/// reqwest's message without the URL (which would repeat every query parameter).
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    if let Some(url) = e.url() {
        msg = msg.replace(url.as_str(), "<endpoint>");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// Sends `req` and reads its answer: status and body, at most [`MAX_BODY_BYTES`]; a redirect is
/// refused (it would carry a signed request elsewhere).
async fn read_answer(
    action: &'static str,
    req: reqwest::RequestBuilder,
) -> Result<(u16, Vec<u8>), EcsError> {
    let transport = |e: reqwest::Error| EcsError::Transport {
        action,
        timeout: e.is_timeout(),
        message: without_url(&e),
    };
    let mut resp = req.send().await.map_err(transport)?;
    let status = resp.status().as_u16();
    if resp.status().is_redirection() {
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| "(no Location)".to_owned(), redact_location);
        return Err(EcsError::Redirected {
            action,
            status,
            location,
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(EcsError::Decode {
                action,
                status,
                message: format!(
                    "the response is larger than {MAX_BODY_BYTES} bytes; not read further"
                ),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            regional_endpoint("cn-hangzhou"),
            "https://ecs-cn-hangzhou.aliyuncs.com"
        );
        assert_eq!(
            regional_endpoint("cn-shanghai"),
            "https://ecs.cn-shanghai.aliyuncs.com"
        );
        assert_eq!(
            regional_endpoint("ap-southeast-1"),
            "https://ecs.ap-southeast-1.aliyuncs.com"
        );
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let creds = Credentials::new("id", "secret");
        let opts = |e: &str| ClientOptions {
            endpoint: e.into(),
            timeout: Duration::from_secs(1),
            quota_per_minute: 10,
            retry: RetryPolicy::default(),
        };
        assert!(EcsClient::new(&opts("http://127.0.0.1:18080"), creds.clone()).is_ok());
        assert!(EcsClient::new(&opts("http://[::1]:18080"), creds.clone()).is_ok());
        let e = EcsClient::new(&opts("http://10.1.2.3:80"), creds.clone())
            .err()
            .unwrap();
        assert!(e.to_string().contains("loopback"));
        assert!(EcsClient::new(&opts("https://ecs.cn-hangzhou.aliyuncs.com"), creds).is_ok());
    }

    #[test]
    fn id_lists() {
        let ids = [
            HostId::parse("dh-a").unwrap(),
            HostId::parse("dh-b").unwrap(),
        ];
        assert_eq!(json_id_list(&ids), r#"["dh-a","dh-b"]"#);
        assert_eq!(comma_id_list(&ids), "dh-a,dh-b");
    }
}
