-- Every sync run, by hand or by the daemon (append-only): when the inventory was last refreshed.
CREATE TABLE sync_runs (
    run_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    trigger     TEXT NOT NULL CHECK (trigger IN ('cli', 'daemon')),
    regions     TEXT NOT NULL,   -- comma separated
    result      TEXT NOT NULL CHECK (result IN ('ok', 'failed')),
    detail      TEXT NOT NULL    -- counts, or the error
) STRICT;
CREATE INDEX sync_runs_by_time ON sync_runs (finished_at);
CREATE TRIGGER sync_runs_ro_u BEFORE UPDATE ON sync_runs BEGIN SELECT RAISE(ABORT, 'sync_runs is append-only'); END;
CREATE TRIGGER sync_runs_ro_d BEFORE DELETE ON sync_runs BEGIN SELECT RAISE(ABORT, 'sync_runs is append-only'); END;
