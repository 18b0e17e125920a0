-- The incident pipeline (engine.Incident): who acknowledged an incident,
-- its append-only history (engine.IncidentTransition, JSON), each
-- notifier's delivery state (engine.Delivery, JSON), and when the
-- dispatcher should next look at it (NULL once nothing is left to tell).
ALTER TABLE incidents
    ADD COLUMN acknowledged_at timestamptz,
    ADD COLUMN acknowledged_by text COLLATE "C" NOT NULL DEFAULT '',
    ADD COLUMN transitions     jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN deliveries      jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN notify_at       timestamptz;

-- Incidents opened before: their history starts with what is known, and
-- the open ones are due for notification.
UPDATE incidents SET
    transitions = jsonb_build_array(jsonb_build_object('At', opened_at, 'Kind', 'opened', 'Note', summary))
        || CASE WHEN resolved_at IS NULL THEN '[]'::jsonb
                ELSE jsonb_build_array(jsonb_build_object('At', resolved_at, 'Kind', 'resolved', 'Note', '')) END,
    notify_at = CASE WHEN resolved_at IS NULL THEN opened_at END;

-- Every incident newest first (administrators' list), the open ones alone,
-- and those the dispatcher has work for.
CREATE INDEX incidents_opened_idx ON incidents (opened_at DESC, id);
CREATE INDEX incidents_open_opened_idx ON incidents (opened_at DESC, id) WHERE resolved_at IS NULL;
CREATE INDEX incidents_notify_idx ON incidents (notify_at, id) WHERE notify_at IS NOT NULL;
