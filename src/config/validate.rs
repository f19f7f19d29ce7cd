//! Each section of the config checked and turned into its values; the first bad key is named.

use super::*;

pub(super) fn validate_schedule(s: RawSchedule) -> Result<ScheduleConfig, ConfigError> {
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

pub(super) fn validate_ecs(e: RawEcs) -> Result<EcsConfig, ConfigError> {
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

pub(super) fn validate_credentials(c: RawCredentials) -> Result<CredentialsConfig, ConfigError> {
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

pub(super) fn validate_notify(n: RawNotify) -> Result<NotifyConfig, ConfigError> {
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

pub(super) fn validate_metrics(m: RawMetrics) -> Result<MetricsConfig, ConfigError> {
    let listen_raw = m.listen.unwrap_or_else(|| "127.0.0.1:9466".to_owned());
    let listen: SocketAddr = listen_raw.parse().map_err(|_| {
        invalid(
            "metrics.listen",
            format!("{listen_raw:?} is not an address:port (e.g. \"127.0.0.1:9466\")"),
        )
    })?;

    Ok(MetricsConfig { listen })
}

pub(super) fn validate_sync(s: RawSync) -> Result<SyncConfig, ConfigError> {
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
pub(super) fn zone(v: Option<&str>, default: Tz, key: &'static str) -> Result<Tz, ConfigError> {
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

pub(super) fn credentials_config(
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

pub(super) fn int_in(
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

/// `http(s)://host[:port][/path]`; plain http only for a loopback host.
pub(super) fn check_endpoint(endpoint: &str) -> Result<(), ConfigError> {
    checked_url(endpoint, "ecs.endpoint", false).map(drop)
}

/// `v` under the URL rule of [`crate::net::check_url`], the problem named with `key`.
pub(super) fn checked_url(
    v: &str,
    key: &'static str,
    any_http: bool,
) -> Result<String, ConfigError> {
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
