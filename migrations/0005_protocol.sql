-- The renewal protocol as a typed state machine (docs/exactly-once.md).
--
-- * attempts carry the actor epoch that wrote them ahead; one actor row fences every write-ahead.
-- * attempt_open lists attempts without an outcome (a work queue, derived from the audit tables:
--   the row is deleted in the same transaction that appends the outcome).
-- * attempt_blocks: undecided attempts that may be neither re-sent nor replaced.
-- * hosts remember the cloud's last answer (expiry, window read in) apart from the inventory's
--   expiry, and a row_version that every update bumps (compare-and-set for sync).
-- * The enum columns get CHECKs listing exactly the values of src/domain/protocol.rs; tables whose
--   CHECK grows are rebuilt (SQLite cannot alter a CHECK), their rows copied unchanged.

-- Views that name rebuilt tables go first (ALTER TABLE … RENAME checks every view).
DROP VIEW v_notices;
DROP VIEW v_attempts;
DROP VIEW v_hosts;

-- ------------------------------------------------------------------ actor and epoch
CREATE TABLE actor (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    epoch  INTEGER NOT NULL,
    pid    INTEGER NOT NULL,
    since  TEXT NOT NULL
) STRICT;

-- Append-only: every time an actor took the database.
CREATE TABLE actor_epochs (
    epoch INTEGER PRIMARY KEY,
    pid   INTEGER NOT NULL,
    at    TEXT NOT NULL
) STRICT;
CREATE TRIGGER actor_epochs_ro_u BEFORE UPDATE ON actor_epochs BEGIN SELECT RAISE(ABORT, 'actor_epochs is append-only'); END;
CREATE TRIGGER actor_epochs_ro_d BEFORE DELETE ON actor_epochs BEGIN SELECT RAISE(ABORT, 'actor_epochs is append-only'); END;

ALTER TABLE attempts ADD COLUMN epoch INTEGER;  -- NULL: written before epochs existed
-- The hosts' order in the request (DedicatedHostIds); NULL for attempts written before 0.2.
ALTER TABLE attempt_hosts ADD COLUMN position INTEGER;

-- ------------------------------------------------------------------ open and blocked attempts
CREATE TABLE attempt_open (
    attempt_id INTEGER PRIMARY KEY REFERENCES attempts (attempt_id)
) STRICT;
INSERT INTO attempt_open (attempt_id)
SELECT a.attempt_id FROM attempts a
WHERE NOT EXISTS (SELECT 1 FROM attempt_outcomes o WHERE o.attempt_id = a.attempt_id);

CREATE TABLE attempt_blocks (
    attempt_id INTEGER PRIMARY KEY REFERENCES attempts (attempt_id),
    at         TEXT NOT NULL,
    reason     TEXT NOT NULL CHECK (reason IN ('partly_renewed_elsewhere', 'token_mismatch', 'expiry_moved_backwards')),
    hosts      TEXT NOT NULL,   -- the hosts that explain the block, comma separated
    detail     TEXT NOT NULL
) STRICT;
CREATE TRIGGER attempt_blocks_ro_u BEFORE UPDATE ON attempt_blocks BEGIN SELECT RAISE(ABORT, 'attempt_blocks is append-only'); END;
CREATE TRIGGER attempt_blocks_ro_d BEFORE DELETE ON attempt_blocks BEGIN SELECT RAISE(ABORT, 'attempt_blocks is append-only'); END;

-- ------------------------------------------------------------------ attempt_outcomes (rebuilt)
CREATE TABLE attempt_outcomes_v5 (
    attempt_id  INTEGER PRIMARY KEY REFERENCES attempts (attempt_id),
    finished_at TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('renewed', 'failed', 'split', 'resolved', 'config_error', 'settled',
                                                 'already_renewed', 'retries_exhausted', 'host_gone', 'superseded', 'lapsed')),
    http_status INTEGER,
    code        TEXT,
    message     TEXT,
    request_id  TEXT
) STRICT;
INSERT INTO attempt_outcomes_v5 SELECT attempt_id, finished_at, outcome, http_status, code, message, request_id FROM attempt_outcomes;
DROP TABLE attempt_outcomes;
ALTER TABLE attempt_outcomes_v5 RENAME TO attempt_outcomes;
CREATE TRIGGER attempt_outcomes_ro_u BEFORE UPDATE ON attempt_outcomes BEGIN SELECT RAISE(ABORT, 'attempt_outcomes is append-only'); END;
CREATE TRIGGER attempt_outcomes_ro_d BEFORE DELETE ON attempt_outcomes BEGIN SELECT RAISE(ABORT, 'attempt_outcomes is append-only'); END;

-- ------------------------------------------------------------------ host_outcomes (rebuilt, now checked)
CREATE TABLE host_outcomes_v5 (
    attempt_id    INTEGER NOT NULL REFERENCES attempts (attempt_id),
    host_id       TEXT NOT NULL,
    cycle         TEXT NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('renewed', 'renewed_elsewhere', 'failed', 'retry', 'gone', 'lapsed', 'abandoned',
                                                   'already_renewed', 'retries_exhausted', 'config_error', 'host_gone', 'split',
                                                   'superseded', 'pending')),
    expiry_before TEXT NOT NULL,
    expiry_after  TEXT,
    at            TEXT NOT NULL,
    PRIMARY KEY (attempt_id, host_id)
) STRICT;
INSERT INTO host_outcomes_v5 SELECT attempt_id, host_id, cycle, outcome, expiry_before, expiry_after, at FROM host_outcomes;
DROP TABLE host_outcomes;
ALTER TABLE host_outcomes_v5 RENAME TO host_outcomes;
CREATE INDEX host_outcomes_by_cycle ON host_outcomes (host_id, cycle);
CREATE TRIGGER host_outcomes_ro_u BEFORE UPDATE ON host_outcomes BEGIN SELECT RAISE(ABORT, 'host_outcomes is append-only'); END;
CREATE TRIGGER host_outcomes_ro_d BEFORE DELETE ON host_outcomes BEGIN SELECT RAISE(ABORT, 'host_outcomes is append-only'); END;

-- ------------------------------------------------------------------ cycle_closures (rebuilt)
CREATE TABLE cycle_closures_v5 (
    host_id    TEXT NOT NULL REFERENCES hosts (host_id),
    cycle      TEXT NOT NULL,
    outcome    TEXT NOT NULL CHECK (outcome IN ('renewed', 'renewed_elsewhere', 'lapsed', 'gone')),
    new_expiry TEXT,
    attempt_id INTEGER REFERENCES attempts (attempt_id),
    at         TEXT NOT NULL,
    PRIMARY KEY (host_id, cycle)
) STRICT;
INSERT INTO cycle_closures_v5 SELECT host_id, cycle, outcome, new_expiry, attempt_id, at FROM cycle_closures;
DROP TABLE cycle_closures;
ALTER TABLE cycle_closures_v5 RENAME TO cycle_closures;
CREATE TRIGGER cycle_closures_ro_u BEFORE UPDATE ON cycle_closures BEGIN SELECT RAISE(ABORT, 'cycle_closures is append-only'); END;
CREATE TRIGGER cycle_closures_ro_d BEFORE DELETE ON cycle_closures BEGIN SELECT RAISE(ABORT, 'cycle_closures is append-only'); END;

-- ------------------------------------------------------------------ notices (rebuilt with needs_attention)
-- notice_deliveries references notices: it is rebuilt first, pointing at the new table, so that
-- the old one can be dropped with foreign keys on; the renames then rewrite the reference.
CREATE TABLE notices_v5 (
    notice_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    host_id    TEXT NOT NULL,
    cycle      TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('renewed', 'renewal_failed', 'lapsed', 'not_renewing', 'expiry_reminder',
                                             'double_renew_risk', 'needs_attention', 'config_error')),
    day        TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (host_id, cycle, kind, day)
) STRICT;
INSERT INTO notices_v5 SELECT notice_id, host_id, cycle, kind, day, message, created_at FROM notices;
CREATE TABLE notice_deliveries_v5 (
    delivery_id INTEGER PRIMARY KEY AUTOINCREMENT,
    notice_id   INTEGER NOT NULL REFERENCES notices_v5 (notice_id),
    try         INTEGER NOT NULL,
    at          TEXT NOT NULL,
    http_status INTEGER,
    error       TEXT,
    delivered   INTEGER NOT NULL CHECK (delivered IN (0, 1))
) STRICT;
INSERT INTO notice_deliveries_v5 SELECT delivery_id, notice_id, try, at, http_status, error, delivered FROM notice_deliveries;
DROP TABLE notice_deliveries;
DROP TABLE notices;
ALTER TABLE notices_v5 RENAME TO notices;
ALTER TABLE notice_deliveries_v5 RENAME TO notice_deliveries;
CREATE INDEX notices_by_time ON notices (created_at);
CREATE INDEX notice_deliveries_by_notice ON notice_deliveries (notice_id, try);
CREATE TRIGGER notices_append_only_u BEFORE UPDATE ON notices
BEGIN SELECT RAISE(ABORT, 'notices is append-only: rows cannot be updated'); END;
CREATE TRIGGER notices_append_only_d BEFORE DELETE ON notices
BEGIN SELECT RAISE(ABORT, 'notices is append-only: rows cannot be deleted'); END;
CREATE TRIGGER notice_deliveries_ro_u BEFORE UPDATE ON notice_deliveries BEGIN SELECT RAISE(ABORT, 'notice_deliveries is append-only'); END;
CREATE TRIGGER notice_deliveries_ro_d BEFORE DELETE ON notice_deliveries BEGIN SELECT RAISE(ABORT, 'notice_deliveries is append-only'); END;

-- ------------------------------------------------------------------ hosts: the cloud's last word
ALTER TABLE hosts ADD COLUMN cloud_expired_time TEXT;   -- the expiry the cloud last showed
ALTER TABLE hosts ADD COLUMN cloud_first_window TEXT;   -- first window of that expiry's cycle
ALTER TABLE hosts ADD COLUMN cloud_read_window TEXT;    -- the window of the pass that last read it
ALTER TABLE hosts ADD COLUMN row_version INTEGER NOT NULL DEFAULT 0;
-- Every update bumps row_version (recursive triggers are off, so the inner UPDATE does not fire it
-- again); `sync` applies a row only if the version it read at its start is still there.
CREATE TRIGGER hosts_row_version AFTER UPDATE ON hosts WHEN NEW.row_version = OLD.row_version
BEGIN UPDATE hosts SET row_version = OLD.row_version + 1 WHERE host_id = NEW.host_id; END;

CREATE INDEX hosts_by_first_window ON hosts (first_window) WHERE removed_at IS NULL;
CREATE INDEX hosts_by_cloud_first_window ON hosts (cloud_first_window) WHERE removed_at IS NULL;
CREATE INDEX attempts_by_window ON attempts (window_at);

-- ------------------------------------------------------------------ views
CREATE VIEW v_notices AS
SELECT
    n.notice_id, n.created_at, n.day, n.kind, n.host_id, n.cycle, n.message,
    (SELECT count(*) FROM notice_deliveries d WHERE d.notice_id = n.notice_id) AS delivery_tries,
    (SELECT min(d.at) FROM notice_deliveries d WHERE d.notice_id = n.notice_id AND d.delivered = 1) AS delivered_at
FROM notices n;

-- One row per (attempt, host). `state`: open (undecided), blocked, or decided; `outcome` is the
-- host's outcome once decided, else 'unknown' (open) or 'blocked'.
CREATE VIEW v_attempts AS
SELECT
    a.attempt_id,
    a.kind,
    a.window_at,
    ah.host_id,
    ah.cycle,
    a.region_id,
    a.period,
    a.period_unit,
    a.client_token,
    a.params,
    a.generation,
    a.parent_attempt_id,
    a.epoch,
    a.created_at,
    (SELECT min(e.at) FROM attempt_events e WHERE e.attempt_id = a.attempt_id AND e.kind = 'sent') AS sent_at,
    (SELECT count(*) FROM attempt_events e WHERE e.attempt_id = a.attempt_id AND e.kind = 'sent') AS sends,
    o.finished_at,
    COALESCE(o.http_status,
        (SELECT e.http_status FROM attempt_events e WHERE e.attempt_id = a.attempt_id AND e.kind = 'answer'
         ORDER BY e.event_id DESC LIMIT 1)) AS http_status,
    COALESCE(o.code,
        (SELECT e.code FROM attempt_events e WHERE e.attempt_id = a.attempt_id AND e.code IS NOT NULL
         ORDER BY e.event_id DESC LIMIT 1)) AS code,
    COALESCE(o.request_id,
        (SELECT e.request_id FROM attempt_events e WHERE e.attempt_id = a.attempt_id AND e.request_id IS NOT NULL
         ORDER BY e.event_id DESC LIMIT 1)) AS request_id,
    CASE WHEN o.attempt_id IS NOT NULL THEN 'decided'
         WHEN b.attempt_id IS NOT NULL THEN 'blocked'
         ELSE 'open' END AS state,
    COALESCE(ho.outcome, o.outcome, CASE WHEN b.attempt_id IS NOT NULL THEN 'blocked' ELSE 'unknown' END) AS outcome,
    o.outcome AS attempt_outcome,
    b.reason AS blocked_reason,
    COALESCE(ho.expiry_before, ah.cycle) AS expiry_before,
    ho.expiry_after
FROM attempts a
JOIN attempt_hosts ah ON ah.attempt_id = a.attempt_id
LEFT JOIN attempt_outcomes o ON o.attempt_id = a.attempt_id
LEFT JOIN attempt_blocks b ON b.attempt_id = a.attempt_id
LEFT JOIN host_outcomes ho ON ho.attempt_id = a.attempt_id AND ho.host_id = ah.host_id;

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
        WHEN EXISTS (SELECT 1 FROM attempt_open ao JOIN attempt_hosts ah ON ah.attempt_id = ao.attempt_id
                     JOIN attempt_blocks b ON b.attempt_id = ao.attempt_id
                     WHERE ah.host_id = h.host_id)             THEN 'blocked'
        WHEN EXISTS (SELECT 1 FROM attempt_open ao JOIN attempt_hosts ah ON ah.attempt_id = ao.attempt_id
                     WHERE ah.host_id = h.host_id)             THEN 'undecided'
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
    h.cloud_expired_time,
    h.synced_at,
    h.created_at,
    h.updated_at
FROM hosts h
CROSS JOIN now
LEFT JOIN policies p ON p.host_id = h.host_id
WHERE h.removed_at IS NULL;
