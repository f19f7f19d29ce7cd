//! Configuration (SPEC §4.2): TOML, every key optional, unknown keys refused.
//!
//! Parsing has two steps: serde reads the raw shape (so a wrong type or unknown key is reported
//! with its dotted path), then [`Config::validate`] turns strings into checked values, naming the
//! key and the accepted form on error.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::Schedule;

/// Where `--config` falls back to when neither the flag nor `$DDH_RENEWD_CONFIG` is set.
pub const SYSTEM_CONFIG: &str = "/etc/ddh-renewd/ddh-renewd.toml";

mod channels;
pub use channels::{ChannelConfig, ChannelKind, PLACEHOLDERS, Secret, SmtpConfig, SmtpTls};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config key {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

// ---------------------------------------------------------------- raw (serde) shape

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    database: RawDatabase,
    schedule: RawSchedule,
    ecs: RawEcs,
    credentials: RawCredentials,
    notify: RawNotify,
    metrics: RawMetrics,
    sync: RawSync,
    display: RawDisplay,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDisplay {
    timezone: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSync {
    enabled: Option<bool>,
    interval: Option<String>,
    max_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDatabase {
    path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSchedule {
    timezone: Option<String>,
    time: Option<String>,
    lead_days: Option<i64>,
    catch_up: Option<bool>,
    in_window_retry: Option<String>,
    safety_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawEcs {
    regions: Option<Vec<String>>,
    endpoint: Option<String>,
    timeout: Option<String>,
    read_retry: Option<String>,
    quota_per_minute: Option<i64>,
    batch_size: Option<i64>,
    takeover: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCredentials {
    source: Option<String>,
    file: Option<PathBuf>,
    profile: Option<String>,
    base_source: Option<String>,
    role_name: Option<String>,
    metadata_endpoint: Option<String>,
    role_arn: Option<String>,
    role_session_name: Option<String>,
    duration_seconds: Option<i64>,
    external_id: Option<String>,
    policy: Option<String>,
    sts_endpoint: Option<String>,
    sts_region: Option<String>,
    oidc_provider_arn: Option<String>,
    oidc_token_file: Option<PathBuf>,
    uri: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawNotify {
    webhook_url: Option<String>,
    reminder_days: Option<Vec<i64>>,
    channel: Vec<channels::RawChannel>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMetrics {
    listen: Option<String>,
}

// ---------------------------------------------------------------- validated config

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub database: DatabaseConfig,
    pub schedule: ScheduleConfig,
    pub ecs: EcsConfig,
    pub credentials: CredentialsConfig,
    pub notify: NotifyConfig,
    pub metrics: MetricsConfig,
    pub sync: SyncConfig,
    pub display: DisplayConfig,
}

/// How tables show instants: one zone for every time in a view.
#[derive(Debug, Clone, Serialize)]
pub struct DisplayConfig {
    /// Default: `[schedule] timezone`, so windows read as whole hours.
    #[serde(serialize_with = "ser_tz")]
    pub timezone: Tz,
}

/// `sync` inside the daemon.
#[derive(Debug, Clone, Serialize)]
pub struct SyncConfig {
    pub enabled: bool,
    /// How often `run` syncs; it also syncs before a window when the last sync is older than
    /// an hour.
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    /// `/healthz` is unhealthy when the last successful sync is older than this.
    #[serde(serialize_with = "ser_duration")]
    pub max_age: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseConfig {
    pub path: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScheduleConfig {
    #[serde(serialize_with = "ser_tz")]
    pub timezone: Tz,
    #[serde(serialize_with = "ser_time")]
    pub time: NaiveTime,
    pub lead_days: u32,
    pub catch_up: bool,
    #[serde(serialize_with = "ser_duration")]
    pub in_window_retry: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub safety_interval: Duration,
}

impl ScheduleConfig {
    pub fn schedule(&self) -> Schedule {
        Schedule {
            tz: self.timezone,
            time: self.time,
            lead_days: self.lead_days,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EcsConfig {
    pub regions: Vec<String>,
    /// Empty = the regional endpoint of each region.
    pub endpoint: String,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    /// How long one read (Describe…) is retried on transient failures before it gives up.
    #[serde(serialize_with = "ser_duration")]
    pub read_retry: Duration,
    pub quota_per_minute: u32,
    pub batch_size: u32,
    pub takeover: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialSource {
    Env,
    File,
    Systemd,
    Profile,
    EcsRamRole,
    RamRoleArn,
    OidcRoleArn,
    CredentialsUri,
    Default,
}

impl CredentialSource {
    pub const ALL: &[(&str, CredentialSource)] = &[
        ("env", Self::Env),
        ("file", Self::File),
        ("systemd", Self::Systemd),
        ("profile", Self::Profile),
        ("ecs_ram_role", Self::EcsRamRole),
        ("ram_role_arn", Self::RamRoleArn),
        ("oidc_role_arn", Self::OidcRoleArn),
        ("credentials_uri", Self::CredentialsUri),
        ("default", Self::Default),
    ];

    fn parse(s: &str, key: &'static str, only_static: bool) -> Result<Self, ConfigError> {
        let valid: Vec<&str> = Self::ALL
            .iter()
            .filter(|(_, v)| !only_static || v.is_static())
            .map(|(n, _)| *n)
            .collect();
        Self::ALL
            .iter()
            .find(|(n, v)| *n == s && (!only_static || v.is_static()))
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                invalid(
                    key,
                    format!(
                        "{} is not a credential source here; valid values: {}",
                        crate::domain::error::quote(s),
                        valid.join(", ")
                    ),
                )
            })
    }

    /// An AccessKey read once: env, file, systemd, profile.
    pub fn is_static(self) -> bool {
        matches!(self, Self::Env | Self::File | Self::Systemd | Self::Profile)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CredentialsConfig {
    pub source: CredentialSource,
    /// Key file for `source = "file"` (JSON or `KEY=value` lines; must not be group/world readable).
    pub file: Option<PathBuf>,
    /// aliyun CLI profile name for `source = "profile"`.
    pub profile: String,
    /// Where `ram_role_arn` gets the key it assumes the role with (env, file, systemd, profile).
    pub base_source: CredentialSource,
    /// `ecs_ram_role`: the instance's role name; discovered from the metadata service if unset.
    pub role_name: Option<String>,
    /// The instance metadata service (tests point it at the emulator).
    pub metadata_endpoint: String,
    /// `ram_role_arn` / `oidc_role_arn`: the role to assume ($ALIBABA_CLOUD_ROLE_ARN if unset).
    pub role_arn: Option<String>,
    pub role_session_name: Option<String>,
    /// Lifetime asked of STS, 900 to 43200 seconds.
    pub duration_seconds: u32,
    pub external_id: Option<String>,
    /// An inline RAM policy that narrows the assumed role's permissions.
    pub policy: Option<String>,
    pub sts_endpoint: String,
    pub oidc_provider_arn: Option<String>,
    pub oidc_token_file: Option<PathBuf>,
    /// `credentials_uri` ($ALIBABA_CLOUD_CREDENTIALS_URI if unset). Shown without its query.
    #[serde(serialize_with = "ser_uri")]
    pub uri: Option<String>,
}

fn ser_uri<S: serde::Serializer>(u: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match u {
        Some(u) => s.serialize_some(&crate::ecs::provider::redact_url(u)),
        None => s.serialize_none(),
    }
}

impl CredentialsConfig {
    /// The defaults for `source`.
    pub fn new(source: CredentialSource) -> Self {
        Self {
            source,
            file: None,
            profile: "default".into(),
            base_source: CredentialSource::Env,
            role_name: None,
            metadata_endpoint: crate::ecs::provider::DEFAULT_METADATA_ENDPOINT.into(),
            role_arn: None,
            role_session_name: None,
            duration_seconds: 3600,
            external_id: None,
            policy: None,
            sts_endpoint: crate::ecs::provider::DEFAULT_STS_ENDPOINT.into(),
            oidc_provider_arn: None,
            oidc_token_file: None,
            uri: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NotifyConfig {
    pub webhook_url: SecretUrl,
    pub reminder_days: Vec<u32>,
    /// Every channel notices are delivered to: `webhook_url` (as channel "webhook") and each
    /// `[[notify.channel]]`.
    pub channels: Vec<ChannelConfig>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
}

/// A URL that may carry a token in its path or query. `Debug`, `Display` and `Serialize` show
/// only scheme and host; [`SecretUrl::expose`] gives the real value to the one caller that sends.
#[derive(Clone, Default)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `https://hooks.example.com/…` — enough to tell which receiver, nothing more.
    pub fn redacted(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        match self.0.split_once("://") {
            Some((scheme, rest)) => {
                let host = rest.split(['/', '?', '#']).next().unwrap_or("");
                // Drop any user:password@ part as well.
                let host = host.rsplit('@').next().unwrap_or(host);
                format!("{scheme}://{host}/…(redacted)")
            }
            None => "(redacted)".to_owned(),
        }
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({:?})", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

fn ser_tz<S: serde::Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

fn ser_time<S: serde::Serializer>(t: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.format("%H:%M:%S").to_string())
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// Parses `"30m"`, `"1h"`, `"45s"`, `"500ms"`, `"1h30m"`, `"2d"`.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let s = raw.trim();
    let form = "a duration such as \"500ms\", \"45s\", \"30m\", \"1h\", \"1h30m\" or \"2d\"";
    if s.is_empty() {
        return Err(format!("empty value; expected {form}"));
    }
    let mut total_ms: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("{raw:?} is not {form}"));
        }
        let n: u128 = rest[..digits]
            .parse()
            .map_err(|_| format!("{raw:?} is not {form}"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit_ms: u128 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(format!("{raw:?} is not {form}")),
        };
        rest = &rest[unit_len..];
        total_ms = total_ms
            .checked_add(n.checked_mul(unit_ms).ok_or("duration too large")?)
            .ok_or("duration too large")?;
    }
    let ms = u64::try_from(total_ms).map_err(|_| "duration too large".to_owned())?;
    Ok(Duration::from_millis(ms))
}

/// The shortest exact form of a duration in the units `parse_duration` reads.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms > 0 && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

impl Default for Config {
    fn default() -> Self {
        // The raw defaults are valid by construction; `validate` is the one place defaults live.
        match Self::validate(RawConfig::default()) {
            Ok(c) => c,
            Err(e) => unreachable!("built-in defaults are invalid: {e}"),
        }
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner().to_string();
            let message = inner.lines().last().unwrap_or_default().trim().to_owned();
            ConfigError::Parse {
                path: origin.to_owned(),
                message: if key == "." {
                    message
                } else {
                    format!("key {key}: {message}")
                },
            }
        })?;
        Self::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        let schedule = validate_schedule(raw.schedule)?;
        let display = DisplayConfig {
            timezone: zone(
                raw.display.timezone.as_deref(),
                schedule.timezone,
                "display.timezone",
            )?,
        };
        let ecs = validate_ecs(raw.ecs)?;
        let credentials = validate_credentials(raw.credentials)?;
        let notify = validate_notify(raw.notify)?;
        let metrics = validate_metrics(raw.metrics)?;
        let sync = validate_sync(raw.sync)?;
        Ok(Self {
            database: DatabaseConfig {
                path: raw
                    .database
                    .path
                    .unwrap_or_else(|| PathBuf::from("ddh-renewd.db")),
            },
            schedule,
            ecs,
            credentials,
            notify,
            metrics,
            sync,
            display,
        })
    }
}

fn validate_schedule(s: RawSchedule) -> Result<ScheduleConfig, ConfigError> {
    let timezone = zone(
        s.timezone.as_deref(),
        chrono_tz::Asia::Shanghai,
        "schedule.timezone",
    )?;
    let time = match s.time.as_deref() {
        None => NaiveTime::from_hms_opt(8, 0, 0).unwrap_or(NaiveTime::MIN),
        Some(t) => NaiveTime::parse_from_str(t, "%H:%M:%S")
            .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M"))
            .ok()
            // A leap second (":60") is not a time a window can be at.
            .filter(|v| chrono::Timelike::nanosecond(v) < 1_000_000_000)
            .ok_or_else(|| {
                invalid(
                    "schedule.time",
                    format!(
                        "{} is not a time of day HH:MM:SS from 00:00:00 to 23:59:59 (e.g. \"08:00:00\")",
                        crate::domain::error::quote(t)
                    ),
                )
            })?,
    };
    let lead_days = int_in(s.lead_days, 9, 1, 60, "schedule.lead_days")?;
    let in_window_retry = dur(s.in_window_retry, "30m", "schedule.in_window_retry")?;
    let safety_interval = dur(s.safety_interval, "1h", "schedule.safety_interval")?;
    if safety_interval < Duration::from_secs(1) {
        return Err(invalid("schedule.safety_interval", "must be at least 1s"));
    }

    Ok(ScheduleConfig {
        timezone,
        time,
        lead_days,
        catch_up: s.catch_up.unwrap_or(true),
        in_window_retry,
        safety_interval,
    })
}

fn validate_ecs(e: RawEcs) -> Result<EcsConfig, ConfigError> {
    let regions = e.regions.unwrap_or_else(|| vec!["cn-hangzhou".to_owned()]);
    if regions.is_empty() {
        return Err(invalid(
            "ecs.regions",
            "name at least one region (e.g. [\"cn-hangzhou\"])",
        ));
    }
    for r in &regions {
        if !crate::domain::ids::valid_region(r) {
            return Err(invalid(
                "ecs.regions",
                format!(
                    "{} is not a region id (lowercase letters, digits and -, at most {} characters, e.g. \"cn-hangzhou\")",
                    crate::domain::error::quote(r),
                    crate::domain::ids::MAX_REGION_LEN
                ),
            ));
        }
    }
    let endpoint = e.endpoint.unwrap_or_default();
    if !endpoint.is_empty() {
        check_endpoint(&endpoint)?;
    }
    let timeout = dur(e.timeout, "30s", "ecs.timeout")?;
    if timeout.is_zero() {
        return Err(invalid("ecs.timeout", "must be greater than 0"));
    }
    let read_retry = dur(e.read_retry, "60s", "ecs.read_retry")?;
    let quota_per_minute = int_in(e.quota_per_minute, 1000, 1, 100_000, "ecs.quota_per_minute")?;
    let batch_size = int_in(e.batch_size, 100, 1, 100, "ecs.batch_size")?;

    Ok(EcsConfig {
        regions,
        endpoint,
        timeout,
        read_retry,
        quota_per_minute,
        batch_size,
        takeover: e.takeover.unwrap_or(false),
    })
}

fn validate_credentials(c: RawCredentials) -> Result<CredentialsConfig, ConfigError> {
    let source = CredentialSource::parse(
        c.source.as_deref().unwrap_or("env"),
        "credentials.source",
        false,
    )?;
    let base_source = CredentialSource::parse(
        c.base_source.as_deref().unwrap_or("env"),
        "credentials.base_source",
        true,
    )?;
    let uses_file = source == CredentialSource::File
        || (source == CredentialSource::RamRoleArn && base_source == CredentialSource::File);
    if uses_file && c.file.is_none() {
        return Err(invalid(
            "credentials.file",
            "required when credentials.source = \"file\" (path to the key file)",
        ));
    }

    credentials_config(source, base_source, c)
}

fn validate_notify(n: RawNotify) -> Result<NotifyConfig, ConfigError> {
    let webhook_url = n.webhook_url.unwrap_or_default();
    let scheme_ok = webhook_url.starts_with("https://") || webhook_url.starts_with("http://");
    if !webhook_url.is_empty() && !scheme_ok {
        return Err(invalid(
            "notify.webhook_url",
            "must be an http:// or https:// URL (value not shown: it may hold a token)",
        ));
    }
    let reminder_days = match n.reminder_days {
        None => vec![7, 3, 1],
        Some(days) => {
            let mut out = Vec::with_capacity(days.len());
            for d in days {
                let d = u32::try_from(d)
                    .ok()
                    .filter(|d| (1..=60).contains(d))
                    .ok_or_else(|| {
                        invalid(
                            "notify.reminder_days",
                            format!("{d} is not a whole number of days from 1 to 60"),
                        )
                    })?;
                out.push(d);
            }
            out.sort_unstable_by(|a, b| b.cmp(a));
            out.dedup();
            out
        }
    };

    let legacy = (!webhook_url.is_empty()).then(|| SecretUrl(webhook_url.clone()));
    let channels = channels::validate(n.channel, legacy)?;

    Ok(NotifyConfig {
        webhook_url: SecretUrl(webhook_url),
        reminder_days,
        channels,
    })
}

fn validate_metrics(m: RawMetrics) -> Result<MetricsConfig, ConfigError> {
    let listen_raw = m.listen.unwrap_or_else(|| "127.0.0.1:9466".to_owned());
    let listen: SocketAddr = listen_raw.parse().map_err(|_| {
        invalid(
            "metrics.listen",
            format!("{listen_raw:?} is not an address:port (e.g. \"127.0.0.1:9466\")"),
        )
    })?;

    Ok(MetricsConfig { listen })
}

fn validate_sync(s: RawSync) -> Result<SyncConfig, ConfigError> {
    let interval = dur(s.interval, "6h", "sync.interval")?;
    if interval < Duration::from_secs(1) {
        return Err(invalid("sync.interval", "must be at least 1s"));
    }
    Ok(SyncConfig {
        enabled: s.enabled.unwrap_or(true),
        interval,
        max_age: dur(s.max_age, "26h", "sync.max_age")?,
    })
}

/// An IANA zone name, or `default` when the key is absent.
fn zone(v: Option<&str>, default: Tz, key: &'static str) -> Result<Tz, ConfigError> {
    match v {
        None => Ok(default),
        Some(name) => name.parse().map_err(|_| {
            invalid(
                key,
                format!(
                    "{} is not an IANA time zone (e.g. \"Asia/Shanghai\", \"UTC\")",
                    crate::domain::error::quote(name)
                ),
            )
        }),
    }
}

fn credentials_config(
    source: CredentialSource,
    base_source: CredentialSource,
    c: RawCredentials,
) -> Result<CredentialsConfig, ConfigError> {
    let mut out = CredentialsConfig::new(source);
    let url = |v: Option<String>, key: &'static str, any_http: bool| {
        v.map(|v| checked_url(&v, key, any_http)).transpose()
    };
    out.file = c.file;
    out.profile = c.profile.unwrap_or_else(|| "default".to_owned());
    out.base_source = base_source;
    out.role_name = c.role_name.filter(|s| !s.is_empty());
    if let Some(m) = url(c.metadata_endpoint, "credentials.metadata_endpoint", true)? {
        out.metadata_endpoint = m;
    }
    out.role_arn = c.role_arn.filter(|s| !s.is_empty());
    if let Some(arn) = &out.role_arn
        && !arn.starts_with("acs:ram::")
    {
        return Err(invalid(
            "credentials.role_arn",
            "a RAM role ARN looks like \"acs:ram::<account id>:role/<role name>\"",
        ));
    }
    out.role_session_name = c.role_session_name.filter(|s| !s.is_empty());
    if let Some(n) = &out.role_session_name
        && (n.len() < 2
            || n.len() > 64
            || !n
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "._@-".contains(ch)))
    {
        return Err(invalid(
            "credentials.role_session_name",
            "2 to 64 characters: letters, digits, '.', '_', '@' and '-'",
        ));
    }
    out.duration_seconds = int_in(
        c.duration_seconds,
        3600,
        900,
        43_200,
        "credentials.duration_seconds",
    )?;
    out.external_id = c.external_id.filter(|s| !s.is_empty());
    out.policy = c.policy.filter(|s| !s.is_empty());
    match (
        url(c.sts_endpoint, "credentials.sts_endpoint", false)?,
        c.sts_region,
    ) {
        (Some(e), _) => out.sts_endpoint = e,
        (None, Some(r)) if !r.is_empty() => {
            if !crate::domain::ids::valid_region(&r) {
                return Err(invalid(
                    "credentials.sts_region",
                    "not a region id (e.g. \"cn-hangzhou\")",
                ));
            }
            out.sts_endpoint = format!("https://sts.{r}.aliyuncs.com");
        }
        _ => {}
    }
    out.oidc_provider_arn = c.oidc_provider_arn.filter(|s| !s.is_empty());
    out.oidc_token_file = c.oidc_token_file;
    out.uri = url(c.uri, "credentials.uri", false)?;
    Ok(out)
}

fn int_in(
    v: Option<i64>,
    default: u32,
    lo: u32,
    hi: u32,
    key: &'static str,
) -> Result<u32, ConfigError> {
    match v {
        None => Ok(default),
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|n| (lo..=hi).contains(n))
            .ok_or_else(|| {
                invalid(
                    key,
                    format!("{n} is out of range; expected a whole number from {lo} to {hi}"),
                )
            }),
    }
}

fn dur(v: Option<String>, default: &str, key: &'static str) -> Result<Duration, ConfigError> {
    parse_duration(v.as_deref().unwrap_or(default)).map_err(|m| invalid(key, m))
}

/// `http(s)://host[:port][/path]`; plain http only for a loopback host.
fn check_endpoint(endpoint: &str) -> Result<(), ConfigError> {
    checked_url(endpoint, "ecs.endpoint", false).map(drop)
}

/// `v` under the URL rule of [`crate::net::check_url`], the problem named with `key`.
fn checked_url(v: &str, key: &'static str, any_http: bool) -> Result<String, ConfigError> {
    crate::net::check_url(v, any_http)
        .map(|_| v.to_owned())
        .map_err(|p| {
            invalid(
                key,
                format!(
                    "{} {p}",
                    crate::domain::error::quote(&crate::net::redact_userinfo(v))
                ),
            )
        })
}

/// Resolves which config file to read: `--config`, else `$DDH_RENEWD_CONFIG`, else the system
/// file if it exists, else none (built-in defaults).
pub fn resolve_path(flag: Option<&Path>, env: Option<&str>) -> Option<PathBuf> {
    if let Some(p) = flag {
        return Some(p.to_owned());
    }
    if let Some(p) = env.filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let sys = Path::new(SYSTEM_CONFIG);
    sys.exists().then(|| sys.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(text, "test.toml").unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let c = Config::parse("", "x").unwrap();
        assert_eq!(c.schedule.lead_days, 9);
        assert_eq!(c.schedule.timezone, chrono_tz::Asia::Shanghai);
        assert_eq!(c.schedule.in_window_retry, Duration::from_secs(1800));
        assert_eq!(c.ecs.batch_size, 100);
        assert_eq!(c.notify.reminder_days, vec![7, 3, 1]);
        assert_eq!(c.database.path, PathBuf::from("ddh-renewd.db"));
        assert_eq!(c.display.timezone, chrono_tz::Asia::Shanghai);
    }

    #[test]
    fn display_zone_follows_the_schedule_unless_set() {
        let c = Config::parse("[schedule]\ntimezone = \"Europe/Berlin\"", "x").unwrap();
        assert_eq!(c.display.timezone, chrono_tz::Europe::Berlin);
        let c = Config::parse("[display]\ntimezone = \"UTC\"", "x").unwrap();
        assert_eq!(c.display.timezone, chrono_tz::UTC);
        assert_eq!(c.schedule.timezone, chrono_tz::Asia::Shanghai);
        assert!(err("[display]\ntimezone = \"Nowhere\"").contains("display.timezone"));
    }

    #[test]
    fn the_example_file_is_valid() {
        let text = include_str!("../config/ddh-renewd.example.toml");
        let c = Config::parse(text, "example").unwrap();
        assert_eq!(c.ecs.regions, vec!["cn-hangzhou".to_owned()]);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = err("[schedule]\nlead_dayz = 3\n");
        assert!(e.contains("lead_dayz"), "{e}");
        assert!(e.contains("lead_days"), "should list valid keys: {e}");
        let e = err("[sched]\n");
        assert!(e.contains("sched"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = err("[schedule]\nlead_days = \"nine\"\n");
        assert!(e.contains("schedule.lead_days"), "{e}");
    }

    #[test]
    fn bad_values_name_key_and_form() {
        assert!(err("[schedule]\ntimezone = \"Mars/Olympus\"").contains("schedule.timezone"));
        assert!(err("[schedule]\ntime = \"8am\"").contains("HH:MM:SS"));
        assert!(err("[schedule]\nin_window_retry = \"soon\"").contains("\"30m\""));
        assert!(err("[ecs]\nbatch_size = 101").contains("from 1 to 100"));
        assert!(err("[ecs]\nendpoint = \"http://10.0.0.1:80\"").contains("loopback"));
        let e = err("[ecs]\nendpoint = \"http://u:SECRET@127.0.0.1:8080\"");
        assert!(e.contains("user info") && !e.contains("SECRET"), "{e}");
        let e = err("[schedule]\ntime = \"23:59:60\"");
        assert!(e.contains("schedule.time"), "{e}");
        assert!(err("[credentials]\nsource = \"vault\"").contains("env, file, systemd, profile"));
        assert!(err("[metrics]\nlisten = \"nowhere\"").contains("metrics.listen"));
    }

    #[test]
    fn loopback_http_is_fine() {
        for ok in [
            "http://127.0.0.1:18080",
            "http://localhost:1",
            "http://[::1]:8080",
            "https://ecs.cn-hangzhou.aliyuncs.com",
        ] {
            let text = format!("[ecs]\nendpoint = \"{ok}\"\n");
            assert!(Config::parse(&text, "x").is_ok(), "{ok}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("10").is_err());
        assert_eq!(format_duration(Duration::from_secs(1800)), "30m");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
    }

    #[test]
    fn webhook_secret_never_shown() {
        let c = Config::parse(
            "[notify]\nwebhook_url = \"https://hooks.example.com/T0k3n?key=s3cr3t\"",
            "x",
        )
        .unwrap();
        let shown = format!(
            "{:?} {} {}",
            c,
            c.notify.webhook_url,
            serde_json::to_string(&c).unwrap()
        );
        assert!(
            !shown.contains("T0k3n") && !shown.contains("s3cr3t"),
            "{shown}"
        );
        assert!(shown.contains("hooks.example.com"));
    }
}
