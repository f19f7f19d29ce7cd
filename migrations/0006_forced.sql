-- A manual renewal that a person forced past the guards (outside the cycle's windows, or for a
-- cycle renewed meanwhile) is marked, so that auditors see every payment made on purpose
-- outside the rules (docs/audit.md, query 6).
ALTER TABLE attempts ADD COLUMN forced INTEGER NOT NULL DEFAULT 0 CHECK (forced IN (0, 1));

DROP VIEW v_attempts;
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
    a.forced,
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
