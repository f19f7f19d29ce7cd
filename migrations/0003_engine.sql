-- The renewal engine's audit trail (SPEC §3). Every table is append-only: an attempt is written
-- ahead of its request; what happened to it is appended later, never rewritten.

-- One RenewDedicatedHosts request as decided: hosts, exact parameters, ClientToken.
CREATE TABLE attempts (
    attempt_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind              TEXT NOT NULL CHECK (kind IN ('scheduled', 'manual')),
    window_at         TEXT NOT NULL,        -- the window this attempt belongs to (manual: when asked)
    region_id         TEXT NOT NULL,
    period            INTEGER NOT NULL,
    period_unit       TEXT NOT NULL,
    client_token      TEXT NOT NULL UNIQUE,
    params            TEXT NOT NULL,        -- the exact request parameters, canonical query form
    generation        INTEGER NOT NULL DEFAULT 0,
    parent_attempt_id INTEGER REFERENCES attempts (attempt_id),  -- split from / retried after
    created_at        TEXT NOT NULL
) STRICT;

CREATE TABLE attempt_hosts (
    attempt_id INTEGER NOT NULL REFERENCES attempts (attempt_id),
    host_id    TEXT NOT NULL REFERENCES hosts (host_id),
    cycle      TEXT NOT NULL,                -- the expiry the cycle ends at (before renewal)
    PRIMARY KEY (attempt_id, host_id)
) STRICT;
CREATE INDEX attempt_hosts_by_cycle ON attempt_hosts (host_id, cycle);

-- Every send and every answer (or lack of one).
CREATE TABLE attempt_events (
    event_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    attempt_id  INTEGER NOT NULL REFERENCES attempts (attempt_id),
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('sent', 'answer', 'no_answer', 'resolve')),
    http_status INTEGER,
    code        TEXT,
    message     TEXT,
    request_id  TEXT
) STRICT;
CREATE INDEX attempt_events_by_attempt ON attempt_events (attempt_id, event_id);

-- The final outcome of an attempt; an attempt without a row here has an unknown outcome and is
-- resolved before anything else touches its hosts.
CREATE TABLE attempt_outcomes (
    attempt_id  INTEGER PRIMARY KEY REFERENCES attempts (attempt_id),
    finished_at TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('renewed', 'already_renewed', 'failed', 'retries_exhausted',
                                                 'config_error', 'host_gone', 'split', 'superseded', 'lapsed')),
    http_status INTEGER,
    code        TEXT,
    message     TEXT,
    request_id  TEXT
) STRICT;

-- Per host of an attempt: what happened, with the expiry before and after.
CREATE TABLE host_outcomes (
    attempt_id    INTEGER NOT NULL REFERENCES attempts (attempt_id),
    host_id       TEXT NOT NULL,
    cycle         TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    expiry_before TEXT NOT NULL,
    expiry_after  TEXT,
    at            TEXT NOT NULL,
    PRIMARY KEY (attempt_id, host_id)
) STRICT;

-- A cycle ends once: renewed (by us, by hand, or by the cloud), lapsed, or host gone.
CREATE TABLE cycle_closures (
    host_id    TEXT NOT NULL REFERENCES hosts (host_id),
    cycle      TEXT NOT NULL,
    outcome    TEXT NOT NULL CHECK (outcome IN ('renewed', 'lapsed', 'gone')),
    new_expiry TEXT,
    attempt_id INTEGER REFERENCES attempts (attempt_id),
    at         TEXT NOT NULL,
    PRIMARY KEY (host_id, cycle)
) STRICT;

-- Every window pass the engine ran.
CREATE TABLE window_runs (
    run_id          INTEGER PRIMARY KEY AUTOINCREMENT,
    window_at       TEXT NOT NULL,
    trigger         TEXT NOT NULL CHECK (trigger IN ('cron', 'catch_up', 'safety', 'tick', 'manual')),
    started_at      TEXT NOT NULL,
    finished_at     TEXT NOT NULL,
    due             INTEGER NOT NULL,
    renewed         INTEGER NOT NULL,
    already_renewed INTEGER NOT NULL,
    failed          INTEGER NOT NULL,
    lapsed          INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    result          TEXT NOT NULL CHECK (result IN ('ok', 'failures', 'config_error', 'interrupted'))
) STRICT;
CREATE INDEX window_runs_by_window ON window_runs (window_at);

CREATE TRIGGER attempts_ro_u BEFORE UPDATE ON attempts BEGIN SELECT RAISE(ABORT, 'attempts is append-only'); END;
CREATE TRIGGER attempts_ro_d BEFORE DELETE ON attempts BEGIN SELECT RAISE(ABORT, 'attempts is append-only'); END;
CREATE TRIGGER attempt_hosts_ro_u BEFORE UPDATE ON attempt_hosts BEGIN SELECT RAISE(ABORT, 'attempt_hosts is append-only'); END;
CREATE TRIGGER attempt_hosts_ro_d BEFORE DELETE ON attempt_hosts BEGIN SELECT RAISE(ABORT, 'attempt_hosts is append-only'); END;
CREATE TRIGGER attempt_events_ro_u BEFORE UPDATE ON attempt_events BEGIN SELECT RAISE(ABORT, 'attempt_events is append-only'); END;
CREATE TRIGGER attempt_events_ro_d BEFORE DELETE ON attempt_events BEGIN SELECT RAISE(ABORT, 'attempt_events is append-only'); END;
CREATE TRIGGER attempt_outcomes_ro_u BEFORE UPDATE ON attempt_outcomes BEGIN SELECT RAISE(ABORT, 'attempt_outcomes is append-only'); END;
CREATE TRIGGER attempt_outcomes_ro_d BEFORE DELETE ON attempt_outcomes BEGIN SELECT RAISE(ABORT, 'attempt_outcomes is append-only'); END;
CREATE TRIGGER host_outcomes_ro_u BEFORE UPDATE ON host_outcomes BEGIN SELECT RAISE(ABORT, 'host_outcomes is append-only'); END;
CREATE TRIGGER host_outcomes_ro_d BEFORE DELETE ON host_outcomes BEGIN SELECT RAISE(ABORT, 'host_outcomes is append-only'); END;
CREATE TRIGGER cycle_closures_ro_u BEFORE UPDATE ON cycle_closures BEGIN SELECT RAISE(ABORT, 'cycle_closures is append-only'); END;
CREATE TRIGGER cycle_closures_ro_d BEFORE DELETE ON cycle_closures BEGIN SELECT RAISE(ABORT, 'cycle_closures is append-only'); END;
CREATE TRIGGER window_runs_ro_u BEFORE UPDATE ON window_runs BEGIN SELECT RAISE(ABORT, 'window_runs is append-only'); END;
CREATE TRIGGER window_runs_ro_d BEFORE DELETE ON window_runs BEGIN SELECT RAISE(ABORT, 'window_runs is append-only'); END;

-- One row per (attempt, host).
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
    a.created_at,
    (SELECT min(e.at) FROM attempt_events e WHERE e.attempt_id = a.attempt_id AND e.kind = 'sent') AS sent_at,
    (SELECT count(*) FROM attempt_events e WHERE e.attempt_id = a.attempt_id AND e.kind = 'sent') AS sends,
    o.finished_at,
    COALESCE(o.http_status,
        (SELECT e.http_status FROM attempt_events e WHERE e.attempt_id = a.attempt_id AND e.kind = 'answer'
         ORDER BY e.event_id DESC LIMIT 1)) AS http_status,
    o.code,
    COALESCE(o.request_id,
        (SELECT e.request_id FROM attempt_events e WHERE e.attempt_id = a.attempt_id AND e.request_id IS NOT NULL
         ORDER BY e.event_id DESC LIMIT 1)) AS request_id,
    COALESCE(ho.outcome, o.outcome, 'unknown') AS outcome,
    o.outcome AS attempt_outcome,
    COALESCE(ho.expiry_before, ah.cycle) AS expiry_before,
    ho.expiry_after
FROM attempts a
JOIN attempt_hosts ah ON ah.attempt_id = a.attempt_id
LEFT JOIN attempt_outcomes o ON o.attempt_id = a.attempt_id
LEFT JOIN host_outcomes ho ON ho.attempt_id = a.attempt_id AND ho.host_id = ah.host_id;

CREATE VIEW v_windows AS
SELECT run_id, window_at, trigger, started_at, finished_at, due, renewed, already_renewed, failed,
       lapsed, attempts, result
FROM window_runs;
