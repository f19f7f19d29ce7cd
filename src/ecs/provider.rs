//! Where the client's credentials come from, and when they are renewed (SPEC §4.2).
//!
//! Static sources (an AccessKey from the environment, a key file, systemd `LoadCredential=`, an
//! aliyun CLI profile in mode AK or StsToken) and short-lived ones, as the official credentials
//! libraries have them:
//! - `ecs_ram_role`: the instance metadata service, hardened flow (a session token from
//!   `PUT /latest/api/token`, then the role's credentials; the role name is discovered when it
//!   is not configured);
//! - `ram_role_arn`: STS `AssumeRole`, V1-signed with a base credential;
//! - `oidc_role_arn`: STS `AssumeRoleWithOIDC` with a token file (RRSA on ACK), unsigned;
//! - `credentials_uri`: a URL answering `{"Code": "Success", "AccessKeyId": …}`;
//! - `default`: the official default chain, in its order (environment, OIDC when the three RRSA
//!   variables are set, the aliyun CLI profile, the instance RAM role unless
//!   `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true`, the credentials URI when one is set); the first
//!   link that answers is kept.
//!
//! Temporary credentials are renewed ahead of their expiry (a third of their lifetime, at most
//! 15 minutes before it), at the next request that needs them. Each request takes one snapshot
//! before it is signed, so a renewal never touches a request already on its way. A renewal that
//! fails while the old credentials are still valid keeps them (with a warning); past their
//! expiry it is a configuration-class error: nothing is sent, the daemon stays up and reports
//! itself unhealthy. Secrets and tokens never appear in messages.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Deserialize;

use super::credentials::{CredentialError, Credentials, Secret};
use super::sign;
use crate::config::{CredentialSource, CredentialsConfig};

/// The instance metadata service of every ECS instance.
pub const DEFAULT_METADATA_ENDPOINT: &str = "http://100.100.100.200";
/// The central STS endpoint.
pub const DEFAULT_STS_ENDPOINT: &str = "https://sts.aliyuncs.com";
/// The largest answer a credential endpoint may give.
const MAX_ANSWER_BYTES: usize = 64 << 10;
/// The session token's lifetime asked of the metadata service.
const METADATA_TOKEN_TTL_S: u32 = 21_600;
/// RRSA (ACK) environment names.
pub const ENV_ROLE_ARN: &str = "ALIBABA_CLOUD_ROLE_ARN";
pub const ENV_OIDC_PROVIDER_ARN: &str = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN";
pub const ENV_OIDC_TOKEN_FILE: &str = "ALIBABA_CLOUD_OIDC_TOKEN_FILE";
pub const ENV_ROLE_SESSION_NAME: &str = "ALIBABA_CLOUD_ROLE_SESSION_NAME";
pub const ENV_CREDENTIALS_URI: &str = "ALIBABA_CLOUD_CREDENTIALS_URI";
pub const ENV_ECS_METADATA: &str = "ALIBABA_CLOUD_ECS_METADATA";
pub const ENV_ECS_METADATA_DISABLED: &str = "ALIBABA_CLOUD_ECS_METADATA_DISABLED";

/// STS `AssumeRole` / `AssumeRoleWithOIDC` parameters.
#[derive(Debug, Clone)]
pub struct RoleRequest {
    pub role_arn: String,
    pub session_name: String,
    pub duration_seconds: u32,
    pub external_id: Option<String>,
    pub policy: Option<String>,
    pub sts_endpoint: String,
}

#[derive(Debug)]
enum Kind {
    Static {
        name: &'static str,
        creds: Credentials,
    },
    EcsRamRole {
        endpoint: String,
        role: Option<String>,
    },
    RamRoleArn {
        base: Box<Provider>,
        role: RoleRequest,
    },
    Oidc {
        provider_arn: String,
        token_file: PathBuf,
        role: RoleRequest,
    },
    Uri {
        uri: String,
    },
    /// The default chain; `chosen` is the link that answered first.
    Chain {
        links: Vec<Provider>,
        chosen: Mutex<Option<usize>>,
    },
}

#[derive(Clone, Debug)]
struct Cached {
    creds: Credentials,
    /// `None` for credentials that do not expire.
    expires: Option<DateTime<Utc>>,
    refresh_at: Option<DateTime<Utc>>,
}

/// A source of credentials, renewed before they expire.
#[derive(Debug)]
pub struct Provider {
    kind: Kind,
    http: Option<reqwest::Client>,
    cache: tokio::sync::Mutex<Option<Cached>>,
}

type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

fn fetch_err(source: &'static str, message: impl Into<String>) -> CredentialError {
    CredentialError::Fetch {
        from: source,
        message: message.into(),
    }
}

/// http only to loopback (or to the metadata service, which is plain http by design).
fn check_url(
    source: &'static str,
    what: &str,
    url: &str,
    http_ok: bool,
) -> Result<(), CredentialError> {
    crate::net::check_url(url, http_ok)
        .map(drop)
        .map_err(|p| fetch_err(source, format!("{what} {p}")))
}

fn http_client(
    source: &'static str,
    plain_http_only: bool,
) -> Result<reqwest::Client, CredentialError> {
    super::client::install_crypto_provider();
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(super::client::USER_AGENT);
    if plain_http_only {
        b = b.tls_certs_only([]);
    }
    b.build()
        .map_err(|e| fetch_err(source, super::client::http_client_error(&e)))
}

/// The environment, as a function (tests pass their own).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn env_nonempty(env: Env<'_>, k: &str) -> Option<String> {
    env(k).filter(|v| !v.trim().is_empty())
}

impl Provider {
    fn new(kind: Kind, http: Option<reqwest::Client>) -> Self {
        Self {
            kind,
            http,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// Credentials that never change (tests, demo, an AccessKey already loaded).
    pub fn fixed(creds: Credentials) -> Self {
        Self::new(
            Kind::Static {
                name: "static",
                creds,
            },
            None,
        )
    }

    /// The provider `[credentials]` describes. Static sources are read now (a missing key is an
    /// error at once); short-lived ones are only checked for completeness here and fetched at
    /// first use (or by [`Provider::credentials`] at start).
    pub fn from_config(cfg: &CredentialsConfig, env: Env<'_>) -> Result<Self, CredentialError> {
        match cfg.source {
            CredentialSource::Env
            | CredentialSource::File
            | CredentialSource::Systemd
            | CredentialSource::Profile => Self::static_source(cfg, cfg.source, env),
            CredentialSource::EcsRamRole => Self::ecs_ram_role(cfg, env),
            CredentialSource::RamRoleArn => {
                let role = Self::role_request(cfg, env, "ram_role_arn")?;
                let base = Self::static_source(cfg, cfg.base_source, env)?;
                Ok(Self::new(
                    Kind::RamRoleArn {
                        base: Box::new(base),
                        role,
                    },
                    Some(http_client("ram_role_arn", false)?),
                ))
            }
            CredentialSource::OidcRoleArn => Self::oidc(cfg, env),
            CredentialSource::CredentialsUri => Self::uri(cfg, env),
            CredentialSource::Default => Self::default_chain(cfg, env),
        }
    }

    fn static_source(
        cfg: &CredentialsConfig,
        source: CredentialSource,
        env: Env<'_>,
    ) -> Result<Self, CredentialError> {
        let name = match source {
            CredentialSource::Env => "env",
            CredentialSource::File => "file",
            CredentialSource::Systemd => "systemd",
            CredentialSource::Profile => "profile",
            _ => {
                return Err(fetch_err(
                    "ram_role_arn",
                    "credentials.base_source must be env, file, systemd or profile",
                ));
            }
        };
        if source == CredentialSource::Profile {
            return Self::profile(cfg, env);
        }
        let mut c = cfg.clone();
        c.source = source;
        let creds = super::credentials::load(&c, env)?;
        Ok(Self::new(Kind::Static { name, creds }, None))
    }

    fn ecs_ram_role(cfg: &CredentialsConfig, env: Env<'_>) -> Result<Self, CredentialError> {
        check_url(
            "ecs_ram_role",
            "credentials.metadata_endpoint",
            &cfg.metadata_endpoint,
            true,
        )?;
        let role = cfg
            .role_name
            .clone()
            .or_else(|| env_nonempty(env, ENV_ECS_METADATA));
        Ok(Self::new(
            Kind::EcsRamRole {
                endpoint: cfg.metadata_endpoint.trim_end_matches('/').to_owned(),
                role,
            },
            Some(http_client("ecs_ram_role", true)?),
        ))
    }

    fn role_request(
        cfg: &CredentialsConfig,
        env: Env<'_>,
        source: &'static str,
    ) -> Result<RoleRequest, CredentialError> {
        let role_arn = cfg
            .role_arn
            .clone()
            .or_else(|| env_nonempty(env, ENV_ROLE_ARN))
            .ok_or_else(|| {
                fetch_err(
                    source,
                    format!("credentials.role_arn is not set (nor {ENV_ROLE_ARN})"),
                )
            })?;
        check_url(source, "credentials.sts_endpoint", &cfg.sts_endpoint, false)?;
        Ok(RoleRequest {
            role_arn,
            session_name: cfg
                .role_session_name
                .clone()
                .or_else(|| env_nonempty(env, ENV_ROLE_SESSION_NAME))
                .unwrap_or_else(|| "ddh-renewd".to_owned()),
            duration_seconds: cfg.duration_seconds,
            external_id: cfg.external_id.clone(),
            policy: cfg.policy.clone(),
            sts_endpoint: cfg.sts_endpoint.trim_end_matches('/').to_owned(),
        })
    }

    fn oidc(cfg: &CredentialsConfig, env: Env<'_>) -> Result<Self, CredentialError> {
        let role = Self::role_request(cfg, env, "oidc_role_arn")?;
        let provider_arn = cfg
            .oidc_provider_arn
            .clone()
            .or_else(|| env_nonempty(env, ENV_OIDC_PROVIDER_ARN))
            .ok_or_else(|| {
                fetch_err(
                    "oidc_role_arn",
                    format!(
                        "credentials.oidc_provider_arn is not set (nor {ENV_OIDC_PROVIDER_ARN})"
                    ),
                )
            })?;
        let token_file = cfg
            .oidc_token_file
            .clone()
            .or_else(|| env_nonempty(env, ENV_OIDC_TOKEN_FILE).map(PathBuf::from))
            .ok_or_else(|| {
                fetch_err(
                    "oidc_role_arn",
                    format!("credentials.oidc_token_file is not set (nor {ENV_OIDC_TOKEN_FILE})"),
                )
            })?;
        Ok(Self::new(
            Kind::Oidc {
                provider_arn,
                token_file,
                role,
            },
            Some(http_client("oidc_role_arn", false)?),
        ))
    }

    fn uri(cfg: &CredentialsConfig, env: Env<'_>) -> Result<Self, CredentialError> {
        let uri = cfg
            .uri
            .clone()
            .or_else(|| env_nonempty(env, ENV_CREDENTIALS_URI))
            .ok_or_else(|| {
                fetch_err(
                    "credentials_uri",
                    format!("credentials.uri is not set (nor {ENV_CREDENTIALS_URI})"),
                )
            })?;
        check_url("credentials_uri", "credentials.uri", &uri, false)?;
        let plain = uri.starts_with("http://");
        Ok(Self::new(
            Kind::Uri { uri },
            Some(http_client("credentials_uri", plain)?),
        ))
    }

    /// An aliyun CLI profile: AK and StsToken are static; RamRoleArn assumes the role with the
    /// profile's key; EcsRamRole asks the metadata service for the profile's role.
    fn profile(cfg: &CredentialsConfig, env: Env<'_>) -> Result<Self, CredentialError> {
        let home = env_nonempty(env, "HOME").ok_or_else(|| {
            CredentialError::Profile(
                "$HOME is not set, so ~/.aliyun/config.json cannot be found".into(),
            )
        })?;
        let path = std::path::Path::new(&home).join(".aliyun/config.json");
        let name = if cfg.profile.is_empty() {
            None
        } else {
            Some(cfg.profile.as_str())
        };
        let p = super::credentials::read_profile(&path, name)?;
        let bad = |m: String| CredentialError::Profile(m);
        match p.mode.as_str() {
            "AK" | "StsToken" => {
                let creds = p.static_credentials().map_err(bad)?;
                Ok(Self::new(
                    Kind::Static {
                        name: "profile",
                        creds,
                    },
                    None,
                ))
            }
            "RamRoleArn" => {
                let base = p.static_credentials().map_err(bad)?;
                let mut c = cfg.clone();
                c.role_arn = Some(p.ram_role_arn.clone()).filter(|s| !s.is_empty());
                if !p.ram_session_name.is_empty() {
                    c.role_session_name = Some(p.ram_session_name.clone());
                }
                if let Some(s) = p.expired_seconds.filter(|s| *s > 0) {
                    c.duration_seconds = s;
                }
                if !p.sts_region.is_empty() && cfg.sts_endpoint == DEFAULT_STS_ENDPOINT {
                    c.sts_endpoint = format!("https://sts.{}.aliyuncs.com", p.sts_region);
                }
                if !p.external_id.is_empty() {
                    c.external_id = Some(p.external_id.clone());
                }
                let role = Self::role_request(&c, env, "profile")?;
                Ok(Self::new(
                    Kind::RamRoleArn {
                        base: Box::new(Self::new(
                            Kind::Static {
                                name: "profile",
                                creds: base,
                            },
                            None,
                        )),
                        role,
                    },
                    Some(http_client("profile", false)?),
                ))
            }
            "EcsRamRole" => {
                let mut c = cfg.clone();
                if !p.ram_role_name.is_empty() {
                    c.role_name = Some(p.ram_role_name.clone());
                }
                Self::ecs_ram_role(&c, env)
            }
            other => Err(bad(format!(
                "profile {:?} uses mode {other:?}; supported: AK, StsToken, RamRoleArn, EcsRamRole",
                p.name
            ))),
        }
    }

    /// The official default chain, in its order; links that cannot apply are left out.
    fn default_chain(cfg: &CredentialsConfig, env: Env<'_>) -> Result<Self, CredentialError> {
        let mut links = Vec::new();
        let mut skipped = Vec::new();
        let mut push = |r: Result<Self, CredentialError>, what: &str| match r {
            Ok(p) => links.push(p),
            Err(e) => skipped.push(format!("{what}: {e}")),
        };
        if env_nonempty(env, super::credentials::ENV_ID).is_some() {
            push(Self::static_source(cfg, CredentialSource::Env, env), "env");
        }
        let rrsa = [ENV_ROLE_ARN, ENV_OIDC_PROVIDER_ARN, ENV_OIDC_TOKEN_FILE]
            .iter()
            .all(|k| env_nonempty(env, k).is_some());
        if rrsa {
            push(Self::oidc(cfg, env), "oidc_role_arn");
        }
        if let Some(home) = env_nonempty(env, "HOME")
            && std::path::Path::new(&home)
                .join(".aliyun/config.json")
                .exists()
        {
            let mut c = cfg.clone();
            if c.profile == "default" {
                // The chain uses $ALIBABA_CLOUD_PROFILE, or the file's current profile.
                c.profile = env_nonempty(env, "ALIBABA_CLOUD_PROFILE").unwrap_or_default();
            }
            push(Self::profile(&c, env), "profile");
        }
        let imds_off =
            env(ENV_ECS_METADATA_DISABLED).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if !imds_off {
            push(Self::ecs_ram_role(cfg, env), "ecs_ram_role");
        }
        if cfg.uri.is_some() || env_nonempty(env, ENV_CREDENTIALS_URI).is_some() {
            push(Self::uri(cfg, env), "credentials_uri");
        }
        if links.is_empty() {
            return Err(fetch_err(
                "default",
                format!(
                    "no link of the default chain applies ({})",
                    skipped.join("; ")
                ),
            ));
        }
        Ok(Self::new(
            Kind::Chain {
                links,
                chosen: Mutex::new(None),
            },
            None,
        ))
    }

    /// The source's name, e.g. `ecs_ram_role` or `default/env`.
    pub fn source_name(&self) -> String {
        match &self.kind {
            Kind::Static { name, .. } => (*name).to_owned(),
            Kind::EcsRamRole { .. } => "ecs_ram_role".into(),
            Kind::RamRoleArn { .. } => "ram_role_arn".into(),
            Kind::Oidc { .. } => "oidc_role_arn".into(),
            Kind::Uri { .. } => "credentials_uri".into(),
            Kind::Chain { links, chosen } => {
                let chosen = *chosen.lock().unwrap_or_else(|p| p.into_inner());
                match chosen.and_then(|i| links.get(i)) {
                    Some(l) => format!("default/{}", l.source_name()),
                    None => "default".into(),
                }
            }
        }
    }

    /// Who we act as, without secrets: the AccessKeyId of a static key, the role's ARN or name,
    /// the credentials URI without its query.
    pub fn identity(&self) -> String {
        match &self.kind {
            Kind::Static { creds, .. } => format!("AccessKeyId {}", creds.access_key_id),
            Kind::EcsRamRole { role, .. } => match role {
                Some(r) => format!("instance RAM role {r}"),
                None => "the instance's RAM role (name discovered at first use)".into(),
            },
            Kind::RamRoleArn { role, base } => {
                format!("role {} (assumed with {})", role.role_arn, base.identity())
            }
            Kind::Oidc {
                role, provider_arn, ..
            } => {
                format!("role {} (OIDC provider {provider_arn})", role.role_arn)
            }
            Kind::Uri { uri } => format!("credentials from {}", redact_url(uri)),
            Kind::Chain { links, chosen } => {
                let chosen = *chosen.lock().unwrap_or_else(|p| p.into_inner());
                match chosen.and_then(|i| links.get(i)) {
                    Some(l) => l.identity(),
                    None => format!(
                        "the first of: {}",
                        links
                            .iter()
                            .map(Self::source_name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
            }
        }
    }

    /// The AccessKeyId in use now (a temporary one for short-lived sources), if any was loaded.
    pub fn current_access_key_id(&self) -> Option<String> {
        if let Kind::Static { creds, .. } = &self.kind {
            return Some(creds.access_key_id.clone());
        }
        if let Kind::Chain { links, chosen } = &self.kind {
            let chosen = *chosen.lock().unwrap_or_else(|p| p.into_inner());
            return chosen
                .and_then(|i| links.get(i))
                .and_then(Self::current_access_key_id);
        }
        self.cache
            .try_lock()
            .ok()
            .and_then(|c| c.as_ref().map(|c| c.creds.access_key_id.clone()))
    }

    /// When the credentials in use expire (`None`: they do not, or none were loaded yet).
    pub fn expires(&self) -> Option<DateTime<Utc>> {
        if let Kind::Chain { links, chosen } = &self.kind {
            let chosen = *chosen.lock().unwrap_or_else(|p| p.into_inner());
            return chosen.and_then(|i| links.get(i)).and_then(Self::expires);
        }
        self.cache
            .try_lock()
            .ok()
            .and_then(|c| c.as_ref().and_then(|c| c.expires))
    }

    /// Credentials to sign one request with: the cached ones while they are fresh, else new ones.
    pub fn credentials(&self) -> Fut<'_, Result<Credentials, CredentialError>> {
        Box::pin(async move {
            match &self.kind {
                Kind::Static { creds, .. } => Ok(creds.clone()),
                Kind::Chain { links, chosen } => self.chain(links, chosen).await,
                _ => self.cached().await,
            }
        })
    }

    async fn chain(
        &self,
        links: &[Provider],
        chosen: &Mutex<Option<usize>>,
    ) -> Result<Credentials, CredentialError> {
        let pick = *chosen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = pick
            && let Some(link) = links.get(i)
        {
            return link.credentials().await;
        }
        let mut errors = Vec::new();
        for (i, link) in links.iter().enumerate() {
            match link.credentials().await {
                Ok(c) => {
                    *chosen.lock().unwrap_or_else(|p| p.into_inner()) = Some(i);
                    return Ok(c);
                }
                Err(e) => errors.push(format!("{}: {e}", link.source_name())),
            }
        }
        Err(fetch_err(
            "default",
            format!(
                "no link of the default chain gave credentials: {}",
                errors.join("; ")
            ),
        ))
    }

    async fn cached(&self) -> Result<Credentials, CredentialError> {
        let mut cache = self.cache.lock().await;
        let now = Utc::now();
        if let Some(c) = cache.as_ref()
            && c.refresh_at.is_none_or(|t| now < t)
        {
            return Ok(c.creds.clone());
        }
        match self.fetch().await {
            Ok((creds, expires)) => {
                let refresh_at = expires.map(|e| {
                    let life = (e - now).max(chrono::TimeDelta::zero());
                    let ahead = (life / 3).min(chrono::TimeDelta::minutes(15));
                    e - ahead
                });
                tracing::info!(source = %self.source_name(), access_key_id = %creds.access_key_id,
                    expires = ?expires.map(crate::domain::time::to_db), "credentials loaded");
                *cache = Some(Cached {
                    creds: creds.clone(),
                    expires,
                    refresh_at,
                });
                Ok(creds)
            }
            Err(e) => match cache.as_ref() {
                // Still valid for a while: keep them, say so, try again at the next request.
                Some(c)
                    if c.expires
                        .is_some_and(|x| now + chrono::TimeDelta::seconds(5) < x) =>
                {
                    tracing::warn!(source = %self.source_name(), error = %e,
                        "could not renew the credentials; the current ones stay in use until they expire");
                    Ok(c.creds.clone())
                }
                _ => Err(e),
            },
        }
    }

    async fn fetch(&self) -> Result<(Credentials, Option<DateTime<Utc>>), CredentialError> {
        let http = self
            .http
            .as_ref()
            .ok_or_else(|| fetch_err("static", "no HTTP client"))?;
        match &self.kind {
            Kind::EcsRamRole { endpoint, role } => metadata(http, endpoint, role.as_deref()).await,
            Kind::RamRoleArn { base, role } => {
                let base = base.credentials().await?;
                assume_role(http, &base, role).await
            }
            Kind::Oidc {
                provider_arn,
                token_file,
                role,
            } => {
                let token =
                    std::fs::read_to_string(token_file).map_err(|e| CredentialError::Read {
                        path: token_file.clone(),
                        message: e.to_string(),
                    })?;
                assume_role_with_oidc(http, provider_arn, token.trim(), role).await
            }
            Kind::Uri { uri } => from_uri(http, uri).await,
            Kind::Static { .. } | Kind::Chain { .. } => {
                Err(fetch_err("static", "nothing to fetch"))
            }
        }
    }
}

/// A URL for messages: scheme, host, port and path; never user info or the query.
pub fn redact_url(u: &str) -> String {
    match reqwest::Url::parse(u) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.to_string()
        }
        Err(_) => "(not a URL)".into(),
    }
}

/// Reads a bounded answer; an error status is reported with the `Code`/`Message` of its body (if
/// it has them), never with the body itself.
async fn answer(
    source: &'static str,
    what: &str,
    req: reqwest::RequestBuilder,
) -> Result<Vec<u8>, CredentialError> {
    answer_or(source, what, req, None).await
}

/// As [`answer`], with what a 404 means here.
async fn answer_or(
    source: &'static str,
    what: &str,
    req: reqwest::RequestBuilder,
    not_found: Option<&str>,
) -> Result<Vec<u8>, CredentialError> {
    let mut resp = req.send().await.map_err(|e| {
        fetch_err(
            source,
            format!("{what}: {}", super::client::without_url(&e)),
        )
    })?;
    let status = resp.status();
    if status.is_redirection() {
        return Err(fetch_err(
            source,
            format!("{what}: answered HTTP {status}, a redirect; redirects are not followed"),
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| {
        fetch_err(
            source,
            format!("{what}: {}", super::client::without_url(&e)),
        )
    })? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(fetch_err(
                source,
                format!("{what}: answer larger than {MAX_ANSWER_BYTES} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        #[derive(Deserialize)]
        struct ErrorBody {
            #[serde(rename = "Code", default)]
            code: String,
            #[serde(rename = "Message", default)]
            message: String,
        }
        let detail = serde_json::from_slice::<ErrorBody>(&body)
            .ok()
            .filter(|b| !b.code.is_empty())
            .map(|b| {
                format!(
                    ": {} {}",
                    b.code,
                    b.message.chars().take(200).collect::<String>()
                )
            })
            .unwrap_or_default();
        if status == reqwest::StatusCode::NOT_FOUND
            && let Some(meaning) = not_found
        {
            return Err(fetch_err(source, format!("{what}: HTTP 404: {meaning}")));
        }
        return Err(fetch_err(
            source,
            format!("{what}: HTTP {}{detail}", status.as_u16()),
        ));
    }
    Ok(body)
}

/// `{"AccessKeyId", "AccessKeySecret", "SecurityToken", "Expiration"}`, as STS's `Credentials`
/// object, the metadata service and a credentials URI give them.
#[derive(Deserialize)]
struct Issued {
    #[serde(rename = "Code", default)]
    code: Option<String>,
    #[serde(rename = "AccessKeyId")]
    access_key_id: String,
    #[serde(rename = "AccessKeySecret")]
    access_key_secret: String,
    #[serde(rename = "SecurityToken")]
    security_token: String,
    #[serde(rename = "Expiration")]
    expiration: String,
}

/// Parses a credentials answer, naming what is wrong without quoting the input (serde's
/// "missing field" and "invalid type" messages name a field, never a value).
fn parse<T: serde::de::DeserializeOwned>(
    source: &'static str,
    what: &str,
    body: &[u8],
) -> Result<T, CredentialError> {
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        let why = if text.starts_with("missing field") || text.starts_with("invalid type") {
            text.split(" at line").next().unwrap_or_default().to_owned()
        } else {
            format!(
                "{:?} at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            )
        };
        fetch_err(
            source,
            format!("{what}: not the documented credentials answer ({why})"),
        )
    })
}

fn issued(
    source: &'static str,
    what: &str,
    body: &[u8],
) -> Result<(Credentials, Option<DateTime<Utc>>), CredentialError> {
    checked(source, what, parse(source, what, body)?)
}

fn checked(
    source: &'static str,
    what: &str,
    i: Issued,
) -> Result<(Credentials, Option<DateTime<Utc>>), CredentialError> {
    if let Some(code) = i.code.as_deref().filter(|c| *c != "Success") {
        return Err(fetch_err(
            source,
            format!("{what}: Code {code:?}, not \"Success\""),
        ));
    }
    if i.access_key_id.is_empty() || i.access_key_secret.is_empty() || i.security_token.is_empty() {
        return Err(fetch_err(source, format!("{what}: an empty key or token")));
    }
    let expires = DateTime::parse_from_rfc3339(&i.expiration)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            fetch_err(
                source,
                format!("{what}: Expiration {:?} is not a time", i.expiration),
            )
        })?;
    Ok((
        Credentials {
            access_key_id: i.access_key_id,
            access_key_secret: Secret::new(i.access_key_secret),
            security_token: Some(Secret::new(i.security_token)),
        },
        Some(expires),
    ))
}

/// The hardened metadata flow: a session token, then the role name (unless given), then the
/// role's credentials, each with the token.
async fn metadata(
    http: &reqwest::Client,
    endpoint: &str,
    role: Option<&str>,
) -> Result<(Credentials, Option<DateTime<Utc>>), CredentialError> {
    const SRC: &str = "ecs_ram_role";
    let token = answer(
        SRC,
        "metadata token (PUT /latest/api/token)",
        http.put(format!("{endpoint}/latest/api/token")).header(
            "X-aliyun-ecs-metadata-token-ttl-seconds",
            METADATA_TOKEN_TTL_S.to_string(),
        ),
    )
    .await?;
    let token =
        String::from_utf8(token).map_err(|_| fetch_err(SRC, "the metadata token is not text"))?;
    let base = format!("{endpoint}/latest/meta-data/ram/security-credentials/");
    let role = match role {
        Some(r) => r.to_owned(),
        None => {
            let names = answer_or(
                SRC,
                "role name (GET /latest/meta-data/ram/security-credentials/)",
                http.get(&base)
                    .header("X-aliyun-ecs-metadata-token", &token),
                Some("this instance has no RAM role attached (attach one, or use another credential source)"),
            )
            .await?;
            let names = String::from_utf8_lossy(&names).into_owned();
            names
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| fetch_err(SRC, "this instance has no RAM role attached"))?
        }
    };
    if role.len() > 64
        || !role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        return Err(fetch_err(SRC, "the RAM role name is not a valid role name"));
    }
    let body = answer_or(
        SRC,
        &format!("credentials of role {role}"),
        http.get(format!("{base}{role}"))
            .header("X-aliyun-ecs-metadata-token", &token),
        Some("no such role is attached to this instance (check role_name)"),
    )
    .await?;
    issued(SRC, &format!("credentials of role {role}"), &body)
}

fn rpc_common(action: &str) -> Vec<(String, String)> {
    let nonce: u128 = rand::rng().random();
    vec![
        ("Action".into(), action.into()),
        ("Format".into(), "JSON".into()),
        ("Version".into(), "2015-04-01".into()),
        (
            "Timestamp".into(),
            Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ),
        ("SignatureNonce".into(), format!("{nonce:032x}")),
    ]
}

fn role_params(p: &mut Vec<(String, String)>, role: &RoleRequest) {
    p.push(("RoleArn".into(), role.role_arn.clone()));
    p.push(("RoleSessionName".into(), role.session_name.clone()));
    p.push(("DurationSeconds".into(), role.duration_seconds.to_string()));
    if let Some(policy) = &role.policy {
        p.push(("Policy".into(), policy.clone()));
    }
}

#[derive(Deserialize)]
struct StsAnswer {
    #[serde(rename = "Credentials")]
    credentials: Issued,
}

fn sts_issued(
    source: &'static str,
    what: &str,
    body: &[u8],
) -> Result<(Credentials, Option<DateTime<Utc>>), CredentialError> {
    let a: StsAnswer = parse(source, what, body)?;
    checked(source, what, a.credentials)
}

/// STS `AssumeRole`, signed (V1, GET, as the official libraries send it) with `base`.
async fn assume_role(
    http: &reqwest::Client,
    base: &Credentials,
    role: &RoleRequest,
) -> Result<(Credentials, Option<DateTime<Utc>>), CredentialError> {
    const SRC: &str = "ram_role_arn";
    let mut p = rpc_common("AssumeRole");
    role_params(&mut p, role);
    if let Some(id) = &role.external_id {
        p.push(("ExternalId".into(), id.clone()));
    }
    p.push(("AccessKeyId".into(), base.access_key_id.clone()));
    p.push(("SignatureMethod".into(), "HMAC-SHA1".into()));
    p.push(("SignatureVersion".into(), "1.0".into()));
    if let Some(t) = &base.security_token {
        p.push(("SecurityToken".into(), t.expose().to_owned()));
    }
    let sig = sign::v1_signature(
        base.access_key_secret.expose(),
        &sign::v1_string_to_sign("GET", &p),
    );
    p.push(("Signature".into(), sig));
    let url = format!("{}/?{}", role.sts_endpoint, sign::canonical_query(&p));
    let what = format!("AssumeRole {}", role.role_arn);
    let body = answer(SRC, &what, http.get(url)).await?;
    sts_issued(SRC, &what, &body)
}

/// STS `AssumeRoleWithOIDC`: anonymous, the OIDC token is the proof.
async fn assume_role_with_oidc(
    http: &reqwest::Client,
    provider_arn: &str,
    token: &str,
    role: &RoleRequest,
) -> Result<(Credentials, Option<DateTime<Utc>>), CredentialError> {
    const SRC: &str = "oidc_role_arn";
    if token.is_empty() {
        return Err(fetch_err(SRC, "the OIDC token file is empty"));
    }
    let mut p = rpc_common("AssumeRoleWithOIDC");
    role_params(&mut p, role);
    p.push(("OIDCProviderArn".into(), provider_arn.to_owned()));
    // In the form body, not the URL: the token is a bearer credential.
    let form = sign::canonical_query(&[("OIDCToken".to_owned(), token.to_owned())]);
    let url = format!("{}/?{}", role.sts_endpoint, sign::canonical_query(&p));
    let what = format!("AssumeRoleWithOIDC {}", role.role_arn);
    let body = answer(
        SRC,
        &what,
        http.post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form),
    )
    .await?;
    sts_issued(SRC, &what, &body)
}

async fn from_uri(
    http: &reqwest::Client,
    uri: &str,
) -> Result<(Credentials, Option<DateTime<Utc>>), CredentialError> {
    const SRC: &str = "credentials_uri";
    let what = format!("GET {}", redact_url(uri));
    let body = answer(SRC, &what, http.get(uri)).await?;
    issued(SRC, &what, &body)
}
