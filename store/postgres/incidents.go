package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
)

const incidentColumns = `id, node_id, dedupe_key, severity, summary, opened_at, resolved_at, notified_at,
	acknowledged_at, acknowledged_by, transitions, deliveries, notify_at, version`

func scanIncident(row pgx.Row) (*engine.Incident, error) {
	var i engine.Incident
	var transitions, deliveries []byte
	err := row.Scan(&i.ID, &i.NodeID, &i.DedupeKey, &i.Severity, &i.Summary,
		at(&i.OpenedAt), at(&i.ResolvedAt), at(&i.NotifiedAt), at(&i.AcknowledgedAt), &i.AcknowledgedBy,
		&transitions, &deliveries, at(&i.NotifyAt), &i.Version)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(transitions, &i.Transitions); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(deliveries, &i.Deliveries); err != nil {
		return nil, err
	}
	incidentInUTC(&i)
	return &i, nil
}

// incidentInUTC puts the times read from JSON in UTC, as the columns are.
func incidentInUTC(i *engine.Incident) {
	for k := range i.Transitions {
		i.Transitions[k].At = i.Transitions[k].At.UTC()
	}
	for k := range i.Deliveries {
		d := &i.Deliveries[k]
		d.LastSentAt, d.NextAttemptAt = utcOrZero(d.LastSentAt), utcOrZero(d.NextAttemptAt)
	}
}

func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// incidentJSON is the value of a JSON column: never NULL.
func incidentJSON[T any](v []T) (string, error) {
	if v == nil {
		v = []T{}
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// OpenIncident relies on the partial unique index for "one open incident
// per (node, dedupe key)".
func (s *Store) OpenIncident(ctx context.Context, i *engine.Incident) error {
	defer s.observe("open_incident")()
	transitions, deliveries, err := incidentDocuments(i)
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, `INSERT INTO incidents (`+incidentColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::jsonb, $13, 1)`,
		i.ID, i.NodeID, i.DedupeKey, i.Severity, i.Summary, i.OpenedAt, optTime(i.ResolvedAt), optTime(i.NotifiedAt),
		optTime(i.AcknowledgedAt), i.AcknowledgedBy, transitions, deliveries, optTime(i.NotifyAt))
	if err != nil {
		return translate(err, "incident")
	}
	i.Version = 1
	return nil
}

func incidentDocuments(i *engine.Incident) (transitions, deliveries string, err error) {
	if transitions, err = incidentJSON(i.Transitions); err != nil {
		return "", "", err
	}
	deliveries, err = incidentJSON(i.Deliveries)
	return transitions, deliveries, err
}

func (s *Store) GetIncident(ctx context.Context, id string) (*engine.Incident, error) {
	defer s.observe("get_incident")()
	i, err := scanIncident(s.pool.QueryRow(ctx, `SELECT `+incidentColumns+` FROM incidents WHERE id = $1`, id))
	if err != nil {
		return nil, translate(err, "incident")
	}
	return i, nil
}

func (s *Store) FindOpenIncident(ctx context.Context, nodeID, dedupeKey string) (*engine.Incident, error) {
	defer s.observe("find_open_incident")()
	i, err := scanIncident(s.pool.QueryRow(ctx, `SELECT `+incidentColumns+` FROM incidents
		WHERE node_id = $1 AND dedupe_key = $2 AND resolved_at IS NULL`, nodeID, dedupeKey))
	if err != nil {
		return nil, translate(err, "open incident")
	}
	return i, nil
}

func (s *Store) ListIncidents(ctx context.Context, nodeID string) ([]*engine.Incident, error) {
	defer s.observe("list_incidents")()
	rows, err := s.pool.Query(ctx, `SELECT `+incidentColumns+` FROM incidents
		WHERE node_id = $1 ORDER BY opened_at DESC, id DESC`, nodeID)
	return collect(rows, err, "incident", scanIncident)
}

// QueryIncidents filters with optional arguments: a NULL owner, state or
// cursor selects everything. The cursor is the (opened_at, id) of the
// incident it names.
func (s *Store) QueryIncidents(ctx context.Context, q engine.IncidentQuery) ([]*engine.Incident, error) {
	defer s.observe("query_incidents")()
	var open any
	switch q.State {
	case engine.IncidentsAny:
	case engine.IncidentsOpen, engine.IncidentsResolved:
		open = q.State == engine.IncidentsOpen
	default:
		return nil, engine.Errorf(engine.EInvalid, "incident state must be open or resolved, not %q", q.State)
	}
	var afterAt any
	if q.After != "" {
		var t time.Time
		err := s.pool.QueryRow(ctx, `SELECT opened_at FROM incidents WHERE id = $1`, q.After).Scan(&t)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, engine.Errorf(engine.EInvalid, "the cursor names no incident")
		}
		if err != nil {
			return nil, translate(err, "incident")
		}
		afterAt = t
	}
	rows, err := s.pool.Query(ctx, `SELECT `+incidentColumns+` FROM incidents i
		WHERE ($1::text IS NULL OR i.node_id IN (SELECT n.id FROM nodes n WHERE n.owner_id = $1))
		  AND ($2::boolean IS NULL OR (i.resolved_at IS NULL) = $2)
		  AND ($3::timestamptz IS NULL OR i.opened_at < $3 OR (i.opened_at = $3 AND i.id > $4))
		ORDER BY i.opened_at DESC, i.id LIMIT $5`,
		optText(q.OwnerID), open, afterAt, q.After, noLimit(q.Limit))
	return collect(rows, err, "incident", scanIncident)
}

func (s *Store) ListIncidentsToNotify(ctx context.Context, t time.Time, limit int) ([]*engine.Incident, error) {
	defer s.observe("list_incidents_to_notify")()
	rows, err := s.pool.Query(ctx, `SELECT `+incidentColumns+` FROM incidents
		WHERE notify_at IS NOT NULL AND notify_at <= $1 ORDER BY notify_at, id LIMIT $2`, t, noLimit(limit))
	return collect(rows, err, "incident", scanIncident)
}

// UpdateIncident appends to the stored transitions only the elements of
// $12 beyond them, in one statement, so the history is append-only
// whatever the caller sends.
func (s *Store) UpdateIncident(ctx context.Context, i *engine.Incident) error {
	defer s.observe("update_incident")()
	transitions, deliveries, err := incidentDocuments(i)
	if err != nil {
		return err
	}
	return s.updateVersioned(ctx, "incidents", "incident", i.ID, &i.Version,
		`UPDATE incidents SET node_id = $3, dedupe_key = $4, severity = $5, summary = $6, opened_at = $7,
			resolved_at = $8, notified_at = $9, acknowledged_at = $10, acknowledged_by = $11,
			transitions = transitions || COALESCE((
				SELECT jsonb_agg(t.e ORDER BY t.n) FROM jsonb_array_elements($12::jsonb) WITH ORDINALITY AS t(e, n)
				WHERE t.n > jsonb_array_length(incidents.transitions)), '[]'::jsonb),
			deliveries = $13::jsonb, notify_at = $14, version = version + 1
		WHERE id = $1 AND version = $2`,
		i.NodeID, i.DedupeKey, i.Severity, i.Summary, i.OpenedAt, optTime(i.ResolvedAt), optTime(i.NotifiedAt),
		optTime(i.AcknowledgedAt), i.AcknowledgedBy, transitions, deliveries, optTime(i.NotifyAt))
}
