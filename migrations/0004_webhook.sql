-- Webhook delivery of notices: every try is appended; a notice is delivered once a row with
-- delivered = 1 exists for it.
CREATE TABLE notice_deliveries (
    delivery_id INTEGER PRIMARY KEY AUTOINCREMENT,
    notice_id   INTEGER NOT NULL REFERENCES notices (notice_id),
    try         INTEGER NOT NULL,       -- 1, 2, 3 … per notice
    at          TEXT NOT NULL,
    http_status INTEGER,
    error       TEXT,
    delivered   INTEGER NOT NULL CHECK (delivered IN (0, 1))
) STRICT;
CREATE INDEX notice_deliveries_by_notice ON notice_deliveries (notice_id, try);
CREATE TRIGGER notice_deliveries_ro_u BEFORE UPDATE ON notice_deliveries BEGIN SELECT RAISE(ABORT, 'notice_deliveries is append-only'); END;
CREATE TRIGGER notice_deliveries_ro_d BEFORE DELETE ON notice_deliveries BEGIN SELECT RAISE(ABORT, 'notice_deliveries is append-only'); END;

DROP VIEW v_notices;
CREATE VIEW v_notices AS
SELECT
    n.notice_id, n.created_at, n.day, n.kind, n.host_id, n.cycle, n.message,
    (SELECT count(*) FROM notice_deliveries d WHERE d.notice_id = n.notice_id) AS delivery_tries,
    (SELECT min(d.at) FROM notice_deliveries d WHERE d.notice_id = n.notice_id AND d.delivered = 1) AS delivered_at
FROM notices n;
