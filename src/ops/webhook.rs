//! Webhook delivery of notices (SPEC §2.5): a JSON POST per notice, retried with backoff until the
//! receiver answers 2xx, every try recorded in `notice_deliveries`. Delivery is at least once: a
//! crash between the receiver's 2xx and its record re-sends that notice, so each POST carries
//! `Idempotency-Key: ddh-renewd-notice-<id>` (and the `notice_id` in the body) for the receiver
//! to drop duplicates. The URL may hold a token: it is never logged in full.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::config::SecretUrl;
use crate::domain::time::{parse_instant, to_db};
use crate::store::{Store, StoreError};

/// First retry after 30 s, doubling up to an hour; never given up.
const BACKOFF_BASE_SECS: i64 = 30;
const BACKOFF_CAP_SECS: i64 = 3600;

/// The documented body of a notice POST.
#[derive(Debug, Serialize)]
pub struct NoticeBody {
    pub source: &'static str,
    pub notice_id: i64,
    pub kind: String,
    pub host_id: String,
    pub cycle: String,
    pub day: String,
    pub message: String,
    pub created_at: String,
}

#[derive(Debug, Default, Serialize)]
pub struct DeliveryReport {
    pub delivered: usize,
    pub failed: usize,
    pub waiting: usize,
}

pub struct Webhook {
    url: SecretUrl,
    http: reqwest::Client,
}

impl Webhook {
    pub fn new(url: SecretUrl, timeout: Duration) -> Result<Self, String> {
        crate::ecs::client::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        Ok(Self { url, http })
    }

    /// Sends every notice not yet delivered whose next try is due at `now`.
    pub async fn deliver_pending(
        &self,
        store: &Store,
        now: DateTime<Utc>,
    ) -> Result<DeliveryReport, StoreError> {
        let rows = sqlx::query(
            "SELECT n.notice_id, n.kind, n.host_id, n.cycle, n.day, n.message, n.created_at,
                    (SELECT count(*) FROM notice_deliveries d WHERE d.notice_id = n.notice_id) AS tries,
                    (SELECT max(d.at) FROM notice_deliveries d WHERE d.notice_id = n.notice_id) AS last_try
             FROM notices n
             WHERE NOT EXISTS (SELECT 1 FROM notice_deliveries d WHERE d.notice_id = n.notice_id AND d.delivered = 1)
             ORDER BY n.notice_id",
        )
        .fetch_all(store.pool())
        .await
        .map_err(|e| StoreError::Sql { context: "reading undelivered notices", message: e.to_string() })?;
        let mut report = DeliveryReport::default();
        for r in rows {
            let tries: i64 = r.try_get("tries").unwrap_or(0);
            let last: Option<String> = r.try_get("last_try").unwrap_or(None);
            if let Some(last) = last.and_then(|l| parse_instant(&l).ok()) {
                let wait = (BACKOFF_BASE_SECS << (tries - 1).clamp(0, 20)).min(BACKOFF_CAP_SECS);
                if now < last + chrono::Duration::seconds(wait) {
                    report.waiting += 1;
                    continue;
                }
            }
            let body = NoticeBody {
                source: "ddh-renewd",
                notice_id: r.try_get("notice_id").unwrap_or_default(),
                kind: r.try_get("kind").unwrap_or_default(),
                host_id: r.try_get("host_id").unwrap_or_default(),
                cycle: r.try_get("cycle").unwrap_or_default(),
                day: r.try_get("day").unwrap_or_default(),
                message: r.try_get("message").unwrap_or_default(),
                created_at: r.try_get("created_at").unwrap_or_default(),
            };
            let answer = self
                .http
                .post(self.url.expose())
                .header(
                    "Idempotency-Key",
                    format!("ddh-renewd-notice-{}", body.notice_id),
                )
                .json(&body)
                .send()
                .await;
            let (status, error, delivered) = match answer {
                Ok(resp) if resp.status().is_success() => {
                    (Some(resp.status().as_u16()), None, true)
                }
                Ok(resp) => (
                    Some(resp.status().as_u16()),
                    Some(format!("HTTP {}", resp.status())),
                    false,
                ),
                // reqwest's message may include the URL: keep only the kind of failure.
                Err(e) => (None, Some(transport_error(&e)), false),
            };
            sqlx::query(
                "INSERT INTO notice_deliveries (notice_id, try, at, http_status, error, delivered) VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(body.notice_id)
            .bind(tries + 1)
            .bind(to_db(now))
            .bind(status.map(i64::from))
            .bind(&error)
            .bind(i64::from(delivered))
            .execute(store.pool())
            .await
            .map_err(|e| StoreError::Sql { context: "recording a delivery", message: e.to_string() })?;
            if delivered {
                report.delivered += 1;
            } else {
                report.failed += 1;
                tracing::warn!(notice = body.notice_id, webhook = %self.url, error = error.as_deref().unwrap_or(""), "notice not delivered; will retry");
            }
        }
        Ok(report)
    }
}

fn transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}
