package postgres

import (
	"context"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
)

const incidentColumns = `id, node_id, dedupe_key, severity, summary, opened_at, resolved_at, notified_at, version`

func scanIncident(row pgx.Row) (*engine.Incident, error) {
	var i engine.Incident
	err := row.Scan(&i.ID, &i.NodeID, &i.DedupeKey, &i.Severity, &i.Summary,
		at(&i.OpenedAt), at(&i.ResolvedAt), at(&i.NotifiedAt), &i.Version)
	return &i, err
}

// OpenIncident relies on the partial unique index for "one open incident
// per (node, dedupe key)".
func (s *Store) OpenIncident(ctx context.Context, i *engine.Incident) error {
	defer s.observe("open_incident")()
	_, err := s.exec(ctx, `INSERT INTO incidents (`+incidentColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1)`,
		i.ID, i.NodeID, i.DedupeKey, i.Severity, i.Summary, i.OpenedAt, optTime(i.ResolvedAt), optTime(i.NotifiedAt))
	if err != nil {
		return translate(err, "incident")
	}
	i.Version = 1
	return nil
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

func (s *Store) UpdateIncident(ctx context.Context, i *engine.Incident) error {
	defer s.observe("update_incident")()
	return s.updateVersioned(ctx, "incidents", "incident", i.ID, &i.Version,
		`UPDATE incidents SET node_id = $3, dedupe_key = $4, severity = $5, summary = $6, opened_at = $7,
			resolved_at = $8, notified_at = $9, version = version + 1
		WHERE id = $1 AND version = $2`,
		i.NodeID, i.DedupeKey, i.Severity, i.Summary, i.OpenedAt, optTime(i.ResolvedAt), optTime(i.NotifiedAt))
}
