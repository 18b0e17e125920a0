package postgres

import (
	"context"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
)

const commandColumns = `id, node_id, type, payload, status, result, error,
	created_at, updated_at, acked_at, finished_at, version`

func scanCommand(row pgx.Row) (*engine.Command, error) {
	var c engine.Command
	err := row.Scan(&c.ID, &c.NodeID, &c.Type, &c.Payload, &c.Status, &c.Result, &c.Error,
		at(&c.CreatedAt), at(&c.UpdatedAt), at(&c.AckedAt), at(&c.FinishedAt), &c.Version)
	return &c, err
}

func (s *Store) CreateCommand(ctx context.Context, c *engine.Command) error {
	defer s.observe("create_command")()
	_, err := s.exec(ctx, `INSERT INTO commands (`+commandColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1)`,
		c.ID, c.NodeID, c.Type, c.Payload, c.Status, c.Result, c.Error,
		c.CreatedAt, c.UpdatedAt, optTime(c.AckedAt), optTime(c.FinishedAt))
	if err != nil {
		return translate(err, "command")
	}
	c.Version = 1
	return nil
}

func (s *Store) GetCommand(ctx context.Context, id string) (*engine.Command, error) {
	defer s.observe("get_command")()
	c, err := scanCommand(s.pool.QueryRow(ctx, `SELECT `+commandColumns+` FROM commands WHERE id = $1`, id))
	if err != nil {
		return nil, translate(err, "command")
	}
	return c, nil
}

func (s *Store) UpdateCommand(ctx context.Context, c *engine.Command) error {
	defer s.observe("update_command")()
	return s.updateVersioned(ctx, "commands", "command", c.ID, &c.Version,
		`UPDATE commands SET node_id = $3, type = $4, payload = $5, status = $6, result = $7, error = $8,
			created_at = $9, updated_at = $10, acked_at = $11, finished_at = $12, version = version + 1
		WHERE id = $1 AND version = $2`,
		c.NodeID, c.Type, c.Payload, c.Status, c.Result, c.Error,
		c.CreatedAt, c.UpdatedAt, optTime(c.AckedAt), optTime(c.FinishedAt))
}

// ListCommandsByNode filters on statuses only when some are given.
func (s *Store) ListCommandsByNode(ctx context.Context, nodeID string, statuses ...engine.CommandStatus) ([]*engine.Command, error) {
	defer s.observe("list_commands_by_node")()
	var filter []string
	for _, st := range statuses {
		filter = append(filter, string(st))
	}
	rows, err := s.pool.Query(ctx, `SELECT `+commandColumns+` FROM commands
		WHERE node_id = $1 AND ($2::text[] IS NULL OR status = ANY($2))
		ORDER BY created_at, id`, nodeID, filter)
	return collect(rows, err, "command", scanCommand)
}

func (s *Store) ListCommandsByStatus(ctx context.Context, status engine.CommandStatus, limit int) ([]*engine.Command, error) {
	defer s.observe("list_commands_by_status")()
	rows, err := s.pool.Query(ctx, `SELECT `+commandColumns+` FROM commands
		WHERE status = $1 ORDER BY created_at, id LIMIT $2`, status, noLimit(limit))
	return collect(rows, err, "command", scanCommand)
}
