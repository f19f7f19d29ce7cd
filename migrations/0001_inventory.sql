-- Inventory and renewal policies. Documented for auditors in docs/schema.md.
-- Every time is RFC 3339 UTC with seconds and a Z suffix, so text order is time order.

-- One row per operation that changed the inventory (a `hosts import`, a `policy set`, a sync run...).
CREATE TABLE operations (
    op_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,            -- hosts_add | hosts_import | hosts_remove | policy_set | sync | takeover
    source     TEXT NOT NULL,            -- cli | import | sync | daemon
    detail     TEXT NOT NULL DEFAULT '', -- e.g. the imported file name
    at         TEXT NOT NULL
);

CREATE TABLE hosts (
    host_id        TEXT PRIMARY KEY NOT NULL CHECK (host_id GLOB 'dh-?*'),
    region_id      TEXT NOT NULL CHECK (region_id <> ''),
    zone_id        TEXT,
    charge_type    TEXT NOT NULL CHECK (charge_type IN ('PrePaid', 'PostPaid')),
    status         TEXT NOT NULL DEFAULT 'Available',
    expired_time   TEXT NOT NULL,
    sale_cycle     TEXT,
    financial_lock INTEGER NOT NULL DEFAULT 0 CHECK (financial_lock IN (0, 1)),
    -- First and last auto-renew window of the cycle ending at expired_time, computed by the
    -- daemon from [schedule]; NULL for PostPaid or released hosts.
    first_window   TEXT,
    last_window    TEXT,
    removed_at     TEXT,                 -- set by `hosts remove`; the row (and its history) stays
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
) STRICT;

CREATE INDEX hosts_by_region ON hosts (region_id) WHERE removed_at IS NULL;

-- The current renewal policy of a host (ModifyDedicatedHostAutoRenewAttribute semantics).
-- A host with no row here behaves as Normal, 1 Month.
CREATE TABLE policies (
    host_id        TEXT PRIMARY KEY NOT NULL REFERENCES hosts (host_id),
    renewal_status TEXT NOT NULL CHECK (renewal_status IN ('AutoRenewal', 'Normal', 'NotRenewal')),
    duration       INTEGER NOT NULL CHECK (duration > 0),
    period_unit    TEXT NOT NULL CHECK (period_unit IN ('Week', 'Month', 'Year')),
    updated_at     TEXT NOT NULL
) STRICT;

-- Append-only: every policy change, with the value before (NULL if none) and after.
CREATE TABLE policy_changes (
    change_id          INTEGER PRIMARY KEY AUTOINCREMENT,
    op_id              INTEGER NOT NULL REFERENCES operations (op_id),
    host_id            TEXT NOT NULL REFERENCES hosts (host_id),
    old_renewal_status TEXT,
    old_duration       INTEGER,
    old_period_unit    TEXT,
    new_renewal_status TEXT NOT NULL,
    new_duration       INTEGER NOT NULL,
    new_period_unit    TEXT NOT NULL,
    source             TEXT NOT NULL,
    changed_at         TEXT NOT NULL
) STRICT;

CREATE INDEX policy_changes_by_host ON policy_changes (host_id, change_id);

-- Append-only: every change to a host row, one row per changed field.
CREATE TABLE host_changes (
    change_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    op_id      INTEGER NOT NULL REFERENCES operations (op_id),
    host_id    TEXT NOT NULL REFERENCES hosts (host_id),
    kind       TEXT NOT NULL CHECK (kind IN ('added', 'updated', 'removed', 'restored', 'released')),
    field      TEXT,
    old_value  TEXT,
    new_value  TEXT,
    source     TEXT NOT NULL,
    changed_at TEXT NOT NULL
) STRICT;

CREATE INDEX host_changes_by_host ON host_changes (host_id, change_id);

-- Key/value facts about the database itself (e.g. the schedule the stored windows were computed with).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

-- The audit tables refuse UPDATE and DELETE: history is written once and kept.
CREATE TRIGGER operations_append_only_u BEFORE UPDATE ON operations
BEGIN SELECT RAISE(ABORT, 'operations is append-only: rows cannot be updated'); END;
CREATE TRIGGER operations_append_only_d BEFORE DELETE ON operations
BEGIN SELECT RAISE(ABORT, 'operations is append-only: rows cannot be deleted'); END;
CREATE TRIGGER policy_changes_append_only_u BEFORE UPDATE ON policy_changes
BEGIN SELECT RAISE(ABORT, 'policy_changes is append-only: rows cannot be updated'); END;
CREATE TRIGGER policy_changes_append_only_d BEFORE DELETE ON policy_changes
BEGIN SELECT RAISE(ABORT, 'policy_changes is append-only: rows cannot be deleted'); END;
CREATE TRIGGER host_changes_append_only_u BEFORE UPDATE ON host_changes
BEGIN SELECT RAISE(ABORT, 'host_changes is append-only: rows cannot be updated'); END;
CREATE TRIGGER host_changes_append_only_d BEFORE DELETE ON host_changes
BEGIN SELECT RAISE(ABORT, 'host_changes is append-only: rows cannot be deleted'); END;
-- Hosts are never deleted (their history refers to them); `hosts remove` sets removed_at.
CREATE TRIGGER hosts_never_deleted BEFORE DELETE ON hosts
BEGIN SELECT RAISE(ABORT, 'hosts are never deleted: use `ddh-renewd hosts remove`, which marks them removed'); END;

-- Read-only views for auditors. State and next window are computed at read time with the wall
-- clock; `ddh-renewd plan` gives the same answer for a chosen instant.
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
    h.created_at,
    h.updated_at
FROM hosts h
CROSS JOIN now
LEFT JOIN policies p ON p.host_id = h.host_id
WHERE h.removed_at IS NULL;

CREATE VIEW v_policy_changes AS
SELECT
    c.change_id,
    c.changed_at,
    c.host_id,
    c.old_renewal_status,
    c.old_duration,
    c.old_period_unit,
    c.new_renewal_status,
    c.new_duration,
    c.new_period_unit,
    c.source,
    c.op_id,
    o.kind   AS operation,
    o.detail AS operation_detail
FROM policy_changes c
JOIN operations o ON o.op_id = c.op_id;
