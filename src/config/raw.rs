//! The config file's shape, as serde reads it: every key optional, unknown keys refused. Values
//! are checked by `validate.rs`.

use std::path::PathBuf;

use serde::Deserialize;

use super::channels::RawChannel;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    pub(super) database: RawDatabase,
    pub(super) schedule: RawSchedule,
    pub(super) ecs: RawEcs,
    pub(super) credentials: RawCredentials,
    pub(super) notify: RawNotify,
    pub(super) metrics: RawMetrics,
    pub(super) sync: RawSync,
    pub(super) display: RawDisplay,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDisplay {
    pub(super) timezone: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSync {
    pub(super) enabled: Option<bool>,
    pub(super) interval: Option<String>,
    pub(super) max_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDatabase {
    pub(super) path: Option<PathBuf>,
    pub(super) url: Option<String>,
    pub(super) takeover_poll: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSchedule {
    pub(super) timezone: Option<String>,
    pub(super) time: Option<String>,
    pub(super) lead_days: Option<i64>,
    pub(super) catch_up: Option<bool>,
    pub(super) in_window_retry: Option<String>,
    pub(super) safety_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawEcs {
    pub(super) regions: Option<Vec<String>>,
    pub(super) endpoint: Option<String>,
    pub(super) timeout: Option<String>,
    pub(super) read_retry: Option<String>,
    pub(super) quota_per_minute: Option<i64>,
    pub(super) batch_size: Option<i64>,
    pub(super) takeover: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawCredentials {
    pub(super) source: Option<String>,
    pub(super) file: Option<PathBuf>,
    pub(super) profile: Option<String>,
    pub(super) base_source: Option<String>,
    pub(super) role_name: Option<String>,
    pub(super) metadata_endpoint: Option<String>,
    pub(super) role_arn: Option<String>,
    pub(super) role_session_name: Option<String>,
    pub(super) duration_seconds: Option<i64>,
    pub(super) external_id: Option<String>,
    pub(super) policy: Option<String>,
    pub(super) sts_endpoint: Option<String>,
    pub(super) sts_region: Option<String>,
    pub(super) oidc_provider_arn: Option<String>,
    pub(super) oidc_token_file: Option<PathBuf>,
    pub(super) uri: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawNotify {
    pub(super) webhook_url: Option<String>,
    pub(super) reminder_days: Option<Vec<i64>>,
    pub(super) channel: Vec<RawChannel>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMetrics {
    pub(super) listen: Option<String>,
}
