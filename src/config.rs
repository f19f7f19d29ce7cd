//! Configuration (SPEC §4.2): TOML, every key optional, unknown keys refused.
//!
//! Parsing has two steps: serde reads the raw shape (so a wrong type or unknown key is reported
//! with its dotted path), then [`Config::validate`] turns strings into checked values, naming the
//! key and the accepted form on error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveTime;
use chrono_tz::Tz;
use serde::Serialize;

use crate::domain::Schedule;

/// Where `--config` falls back to when neither the flag nor `$DDH_RENEWD_CONFIG` is set.
pub const SYSTEM_CONFIG: &str = "/etc/ddh-renewd/ddh-renewd.toml";

mod channels;
mod duration;
mod raw;
mod secrets;
mod validate;

pub use channels::{ChannelConfig, ChannelKind, PLACEHOLDERS, Secret, SmtpConfig, SmtpTls};
use duration::{dur, ser_duration};
pub use duration::{format_duration, parse_duration};
use raw::*;
pub use secrets::SecretUrl;
use validate::*;

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
    /// `postgres://USER@HOST:PORT/DB`: the store is this PostgreSQL database (SPEC §5), not the
    /// SQLite file. Never with a password: that comes from the credential file
    /// `postgres-password` or PGPASSWORD.
    pub url: Option<String>,
    /// On PostgreSQL: how often a standby tries to take the lead (a takeover happens at most
    /// this long after the leader's session ended).
    #[serde(serialize_with = "ser_duration")]
    pub takeover_poll: Duration,
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

fn ser_tz<S: serde::Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

fn ser_time<S: serde::Serializer>(t: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.format("%H:%M:%S").to_string())
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
        let url = validate_database_url(raw.database.url.as_deref(), raw.database.path.is_some())?;
        let takeover_poll = dur(raw.database.takeover_poll, "2s", "database.takeover_poll")?;
        if takeover_poll < Duration::from_millis(100) || takeover_poll > Duration::from_secs(3600) {
            return Err(invalid(
                "database.takeover_poll",
                "must be between 100ms and 1h",
            ));
        }
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
                url,
                takeover_poll,
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

/// `[database] url`: a PostgreSQL URL without a password, and not together with `path`.
fn validate_database_url(url: Option<&str>, path_set: bool) -> Result<Option<String>, ConfigError> {
    let Some(url) = url else { return Ok(None) };
    let key = "database.url";
    if path_set {
        return Err(invalid(
            key,
            "set one of [database] path (SQLite) and url (PostgreSQL), not both",
        ));
    }
    check_postgres_url(url).map_err(|m| invalid(key, m))?;
    Ok(Some(url.to_owned()))
}

/// What is wrong with a PostgreSQL URL given by a person (in the config or on the command line):
/// not `postgres://`, not a URL, or carrying a password (in its user part or as `?password=`),
/// which would then sit in a file, the process list or shell history.
pub fn check_postgres_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!(
            "{url:?} is not a PostgreSQL URL; expected postgres://USER@HOST:PORT/DBNAME"
        ));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a valid URL: {e}"))?;
    if parsed.password().is_some() || parsed.query_pairs().any(|(k, _)| k == "password") {
        return Err("the URL carries a password, which would show in a config file, the process list or shell history; give it in the credential file postgres-password (LoadCredential=) or in PGPASSWORD".into());
    }
    Ok(())
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
    fn a_postgres_url_takes_no_password_and_excludes_a_path() {
        let ok =
            Config::parse("[database]\nurl = \"postgres://ddh@127.0.0.1/ddh\"\n", "t").unwrap();
        assert_eq!(
            ok.database.url.as_deref(),
            Some("postgres://ddh@127.0.0.1/ddh")
        );
        for (text, want) in [
            ("url = \"postgres://ddh:pw@127.0.0.1/ddh\"", "password"),
            (
                "url = \"postgres://ddh@127.0.0.1/ddh?password=pw\"",
                "password",
            ),
            ("url = \"mysql://127.0.0.1/x\"", "postgres://"),
            (
                "url = \"postgres://ddh@127.0.0.1/ddh\"\npath = \"x.db\"",
                "one of",
            ),
        ] {
            let e = Config::parse(&format!("[database]\n{text}\n"), "t")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("database.url") && e.contains(want),
                "{text}: {e}"
            );
            assert!(!e.contains(":pw@"), "{e}");
        }
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
