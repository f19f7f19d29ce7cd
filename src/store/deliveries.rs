//! Notice delivery, per channel: which notices a channel still owes, and every try it made.

use chrono::{DateTime, Utc};

use super::rows::{get, opt_instant};
use super::{Store, StoreError};
use crate::domain::time::to_db;

/// A notice a channel has not delivered yet, with the tries it already made.
#[derive(Debug, Clone)]
pub struct PendingNotice {
    pub notice_id: i64,
    pub kind: String,
    pub host_id: String,
    /// The host's region, when the host is in the inventory.
    pub region: Option<String>,
    pub cycle: String,
    pub day: String,
    pub message: String,
    pub created_at: String,
    pub tries: i64,
    pub last_try: Option<DateTime<Utc>>,
}

/// One try, as recorded. `error` must never hold a secret (a URL with its token, a password).
#[derive(Debug, Clone)]
pub struct DeliveryTry<'a> {
    pub notice_id: i64,
    pub channel: &'a str,
    pub try_no: i64,
    pub at: DateTime<Utc>,
    pub http_status: Option<u16>,
    pub error: Option<&'a str>,
    pub delivered: bool,
}

impl Store {
    /// Registers a channel the first time it is seen; it is owed the notices created at or after
    /// `since`. Registering again changes nothing.
    pub async fn register_channel(
        &self,
        channel: &str,
        kind: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO notice_channels (channel, kind, since, added_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (channel) DO NOTHING",
        )
        .bind(channel)
        .bind(kind)
        .bind(to_db(since))
        .bind(to_db(now))
        .execute(&self.pool)
        .await
        .map_err(StoreError::sql("registering a notice channel"))?;
        Ok(())
    }

    /// The notices of the given kinds that `channel` owes, oldest first.
    pub async fn pending_notices(
        &self,
        channel: &str,
        kinds: &[&str],
    ) -> Result<Vec<PendingNotice>, StoreError> {
        let kinds = kinds.join(",");
        let rows = sqlx::query(self.sql(
            "SELECT n.notice_id, n.kind, n.host_id, h.region_id, n.cycle, n.day, n.message, n.created_at,
                    (SELECT count(*) FROM notice_deliveries d
                      WHERE d.notice_id = n.notice_id AND d.channel = $1) AS tries,
                    (SELECT max(d.at) FROM notice_deliveries d
                      WHERE d.notice_id = n.notice_id AND d.channel = $1) AS last_try
             FROM notices n
             JOIN notice_channels c ON c.channel = $1
             LEFT JOIN hosts h ON h.host_id = n.host_id
             WHERE n.created_at >= c.since
               AND instr(',' || $2 || ',', ',' || n.kind || ',') > 0
               AND NOT EXISTS (SELECT 1 FROM notice_deliveries d
                                WHERE d.notice_id = n.notice_id AND d.channel = $1 AND d.delivered = 1)
             ORDER BY n.notice_id",
        ))
        .bind(channel)
        .bind(kinds)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::sql("reading undelivered notices"))?;
        // Every column is decoded strictly: a bad value is an error, never a blank.
        rows.iter()
            .map(|r| {
                Ok(PendingNotice {
                    notice_id: get(r, "notice_id")?,
                    kind: get(r, "kind")?,
                    host_id: get(r, "host_id")?,
                    region: get(r, "region_id")?,
                    cycle: get(r, "cycle")?,
                    day: get(r, "day")?,
                    message: get(r, "message")?,
                    created_at: get(r, "created_at")?,
                    tries: get(r, "tries")?,
                    last_try: opt_instant("last_try", get(r, "last_try")?)?,
                })
            })
            .collect()
    }

    /// Records one delivery try (append-only).
    pub async fn record_delivery(&self, t: &DeliveryTry<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO notice_deliveries (notice_id, channel, try, at, http_status, error, delivered)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(t.notice_id)
        .bind(t.channel)
        .bind(t.try_no)
        .bind(to_db(t.at))
        .bind(t.http_status.map(i64::from))
        .bind(t.error)
        .bind(i64::from(t.delivered))
        .execute(&self.pool)
        .await
        .map_err(StoreError::sql("recording a delivery"))?;
        Ok(())
    }

    /// Per registered channel: failed tries so far, and notices tried but not delivered yet.
    pub async fn delivery_counts(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        sqlx::query_as(
            "SELECT c.channel,
                    (SELECT count(*) FROM notice_deliveries d WHERE d.channel = c.channel AND d.delivered = 0),
                    (SELECT count(*) FROM v_notice_deliveries v WHERE v.channel = c.channel AND v.delivered_at IS NULL)
             FROM notice_channels c ORDER BY c.channel",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::sql("counting notice deliveries"))
    }
}
