-- Cloud-side auto-renew state (from DescribeDedicatedHostAutoRenew) and notices.

ALTER TABLE hosts ADD COLUMN cloud_renewal_status TEXT;      -- AutoRenewal | Normal | NotRenewal; NULL = never read
ALTER TABLE hosts ADD COLUMN cloud_renewal_duration INTEGER;
ALTER TABLE hosts ADD COLUMN cloud_renewal_unit TEXT;
ALTER TABLE hosts ADD COLUMN synced_at TEXT;                 -- last time `sync` saw the host in the cloud

-- Notices (SPEC §2.5): recorded once per (host, cycle, kind, day). Append-only.
CREATE TABLE notices (
    notice_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    host_id    TEXT NOT NULL,            -- '-' for account-wide notices (config_error)
    cycle      TEXT NOT NULL,            -- the expiry the host's cycle ends at; '-' if none
    kind       TEXT NOT NULL CHECK (kind IN ('renewed', 'renewal_failed', 'lapsed', 'not_renewing',
                                             'expiry_reminder', 'double_renew_risk', 'config_error')),
    day        TEXT NOT NULL,            -- local date (configured zone) the notice is for
    message    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (host_id, cycle, kind, day)
) STRICT;

CREATE INDEX notices_by_time ON notices (created_at);

CREATE TRIGGER notices_append_only_u BEFORE UPDATE ON notices
BEGIN SELECT RAISE(ABORT, 'notices is append-only: rows cannot be updated'); END;
CREATE TRIGGER notices_append_only_d BEFORE DELETE ON notices
BEGIN SELECT RAISE(ABORT, 'notices is append-only: rows cannot be deleted'); END;

CREATE VIEW v_notices AS
SELECT notice_id, created_at, day, kind, host_id, cycle, message FROM notices;

-- v_hosts gains the cloud-side renewal status and the double-renew flag.
DROP VIEW v_hosts;
CREATE VIEW v_hosts AS
WITH now AS (SELECT strftime('%Y-%m-%dT%H:%M:%SZ', 'now') AS t)
SELECT
    h.host_id,
    h.region_id,
    h.zone_id,
    h.charge_type,
    h.status,
    h.expired_time,
    h.financial_lock,
    COALESCE(p.renewal_status, 'Normal') AS renewal_status,
    COALESCE(p.duration, 1)              AS duration,
    COALESCE(p.period_unit, 'Month')     AS period_unit,
    CASE
        WHEN h.status = 'Released'                             THEN 'released'
        WHEN h.charge_type = 'PostPaid'                        THEN 'postpaid'
        WHEN h.financial_lock = 1 OR h.expired_time <= now.t   THEN 'lapsed'
        WHEN COALESCE(p.renewal_status, 'Normal') <> 'AutoRenewal' THEN 'not_managed'
        WHEN h.first_window <= now.t                           THEN 'due'
        ELSE 'scheduled'
    END AS state,
    CASE
        WHEN h.status = 'Released' OR h.charge_type = 'PostPaid'
             OR h.financial_lock = 1 OR h.expired_time <= now.t
             OR COALESCE(p.renewal_status, 'Normal') <> 'AutoRenewal'
             OR h.first_window IS NULL                         THEN NULL
        WHEN h.first_window > now.t                            THEN h.first_window
        ELSE min(h.last_window, strftime('%Y-%m-%dT%H:%M:%SZ', h.first_window,
                 '+' || CAST(julianday(now.t) - julianday(h.first_window) AS INTEGER) || ' days'))
    END AS next_window,
    h.first_window,
    h.last_window,
    h.cloud_renewal_status,
    CASE WHEN COALESCE(p.renewal_status, 'Normal') = 'AutoRenewal'
              AND h.cloud_renewal_status = 'AutoRenewal' THEN 1 ELSE 0 END AS double_renew_risk,
    h.synced_at,
    h.created_at,
    h.updated_at
FROM hosts h
CROSS JOIN now
LEFT JOIN policies p ON p.host_id = h.host_id
WHERE h.removed_at IS NULL;
