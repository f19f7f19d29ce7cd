-- Notice channels (chat robots, mail, the generic webhook): every delivery try is recorded per
-- channel, so that a notice is sent once to each channel that routes its kind.
ALTER TABLE notice_deliveries ADD COLUMN channel TEXT NOT NULL DEFAULT 'webhook';
CREATE INDEX notice_deliveries_by_channel ON notice_deliveries (channel, notice_id, try);

-- A channel seen for the first time is registered with `since`: it is sent the notices created
-- from then on (the daemon registers it 24 hours back, so that what was raised just before a
-- restart with a new channel still goes out, but not the whole history). The generic webhook of
-- earlier versions is registered from the beginning, as it was delivered before.
CREATE TABLE notice_channels (
    channel  TEXT PRIMARY KEY,
    kind     TEXT NOT NULL,
    since    TEXT NOT NULL,
    added_at TEXT NOT NULL
) STRICT;
INSERT INTO notice_channels (channel, kind, since, added_at)
    SELECT 'webhook', 'webhook', '0000-01-01T00:00:00Z', min(at) FROM notice_deliveries HAVING count(*) > 0;

-- One row per (notice, channel) that was tried: tries, first try, delivery.
CREATE VIEW v_notice_deliveries AS
SELECT
    d.notice_id, d.channel,
    count(*) AS tries,
    min(d.at) AS first_try_at,
    min(CASE WHEN d.delivered = 1 THEN d.at END) AS delivered_at,
    (SELECT e.error FROM notice_deliveries e
      WHERE e.notice_id = d.notice_id AND e.channel = d.channel ORDER BY e.try DESC LIMIT 1) AS last_error
FROM notice_deliveries d
GROUP BY d.notice_id, d.channel;
