-- Scale and one definition of host state.
--
-- * hosts_by_expiry: reminders and non-renewal notices select the hosts whose expiry falls on the
--   notice days by range, instead of reading every unmanaged host on every pass.
-- * v_hosts gains the `renewed` state, so that its `state` column is the state of
--   src/domain/plan.rs (`plan_host`) for every host; tests/state_agreement.rs compares them.

CREATE INDEX hosts_by_expiry ON hosts (expired_time) WHERE removed_at IS NULL;

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
        WHEN EXISTS (SELECT 1 FROM attempt_open ao JOIN attempt_hosts ah ON ah.attempt_id = ao.attempt_id
                     JOIN attempt_blocks b ON b.attempt_id = ao.attempt_id
                     WHERE ah.host_id = h.host_id)             THEN 'blocked'
        WHEN EXISTS (SELECT 1 FROM attempt_open ao JOIN attempt_hosts ah ON ah.attempt_id = ao.attempt_id
                     WHERE ah.host_id = h.host_id)             THEN 'undecided'
        WHEN h.financial_lock = 1 OR h.expired_time <= now.t   THEN 'lapsed'
        WHEN COALESCE(p.renewal_status, 'Normal') <> 'AutoRenewal' THEN 'not_managed'
        WHEN h.first_window <= now.t                           THEN 'due'
        WHEN EXISTS (SELECT 1 FROM cycle_closures c
                     WHERE c.host_id = h.host_id AND c.outcome IN ('renewed', 'renewed_elsewhere')
                       AND c.new_expiry = h.expired_time)      THEN 'renewed'
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
