package postgres

import (
	"context"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
)

// The spec, the plan and a node's previous release are JSON documents
// (jsonb): pgx encodes and decodes them with encoding/json.

const rolloutColumns = `id, group_id, chain_profile_id, component, target_version, strategy, batch_size,
	canary_size, failure_threshold, status, current_batch, batches, succeeded, failed, manifest_hash,
	spec, plan, message, forced, created_by, created_at, updated_at, version`

func scanRollout(row pgx.Row) (*engine.Rollout, error) {
	var r engine.Rollout
	err := row.Scan(&r.ID, str(&r.GroupID), &r.ChainProfileID, &r.Component, &r.TargetVersion, &r.Strategy,
		&r.BatchSize, &r.CanarySize, &r.FailureThreshold, &r.Status, &r.CurrentBatch, &r.Batches, &r.Succeeded, &r.Failed,
		&r.ManifestHash, &r.Spec, &r.Plan, &r.Message, &r.Forced, &r.CreatedBy,
		at(&r.CreatedAt), at(&r.UpdatedAt), &r.Version)
	return &r, err
}

func (s *Store) CreateRollout(ctx context.Context, r *engine.Rollout) error {
	defer s.observe("create_rollout")()
	_, err := s.pool.Exec(ctx, `INSERT INTO rollouts (`+rolloutColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, 1)`,
		r.ID, optText(r.GroupID), r.ChainProfileID, r.Component, r.TargetVersion, r.Strategy, r.BatchSize,
		r.CanarySize, r.FailureThreshold, r.Status, r.CurrentBatch, r.Batches, r.Succeeded, r.Failed, r.ManifestHash,
		r.Spec, r.Plan, r.Message, r.Forced, r.CreatedBy, r.CreatedAt, r.UpdatedAt)
	if err != nil {
		return translate(err, "rollout")
	}
	r.Version = 1
	return nil
}

func (s *Store) GetRollout(ctx context.Context, id string) (*engine.Rollout, error) {
	defer s.observe("get_rollout")()
	r, err := scanRollout(s.pool.QueryRow(ctx, `SELECT `+rolloutColumns+` FROM rollouts WHERE id = $1`, id))
	if err != nil {
		return nil, translate(err, "rollout")
	}
	return r, nil
}

func (s *Store) UpdateRollout(ctx context.Context, r *engine.Rollout) error {
	defer s.observe("update_rollout")()
	return s.updateVersioned(ctx, "rollouts", "rollout", r.ID, &r.Version,
		`UPDATE rollouts SET group_id = $3, chain_profile_id = $4, component = $5, target_version = $6, strategy = $7,
			batch_size = $8, canary_size = $9, failure_threshold = $10, status = $11, current_batch = $12,
			batches = $13, succeeded = $14, failed = $15, manifest_hash = $16, spec = $17, plan = $18,
			message = $19, forced = $20, created_by = $21, created_at = $22, updated_at = $23,
			version = version + 1
		WHERE id = $1 AND version = $2`,
		optText(r.GroupID), r.ChainProfileID, r.Component, r.TargetVersion, r.Strategy, r.BatchSize,
		r.CanarySize, r.FailureThreshold, r.Status, r.CurrentBatch, r.Batches, r.Succeeded, r.Failed, r.ManifestHash,
		r.Spec, r.Plan, r.Message, r.Forced, r.CreatedBy, r.CreatedAt, r.UpdatedAt)
}

// ListRollouts reads the index on (created_at DESC, id DESC) from the cursor.
func (s *Store) ListRollouts(ctx context.Context, before string, limit int) ([]*engine.Rollout, error) {
	defer s.observe("list_rollouts")()
	since, err := s.newestFirstCursor(ctx, "rollouts", "rollout", before)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+rolloutColumns+` FROM rollouts
		WHERE $1::timestamptz IS NULL OR (created_at, id) < ($1, $2)
		ORDER BY created_at DESC, id DESC LIMIT $3`, since, before, noLimit(limit))
	return collect(rows, err, "rollout", scanRollout)
}

// newestFirstCursor is the creation time of the record a newest-first page
// continues after: nil for the first page, EInvalid when the cursor names
// no record of the table.
func (s *Store) newestFirstCursor(ctx context.Context, table, what, id string) (any, error) {
	if id == "" {
		return nil, nil
	}
	var t time.Time
	err := s.pool.QueryRow(ctx, `SELECT created_at FROM `+table+` WHERE id = $1`, id).Scan(&t)
	if isNoRows(err) {
		return nil, engine.Errorf(engine.EInvalid, "the cursor names no %s", what)
	}
	if err != nil {
		return nil, translate(err, what)
	}
	return t, nil
}

const rolloutNodeColumns = `rollout_id, node_id, batch_index, status, previous_version, previous, new_version,
	switch_height, error, updated_at`

// PutRolloutNodes sends every upsert in one batch inside one transaction.
func (s *Store) PutRolloutNodes(ctx context.Context, ns []*engine.RolloutNode) error {
	defer s.observe("put_rollout_nodes")()
	if len(ns) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var batch pgx.Batch
		for _, n := range ns {
			batch.Queue(`INSERT INTO rollout_nodes (`+rolloutNodeColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
				ON CONFLICT (rollout_id, node_id) DO UPDATE SET batch_index = excluded.batch_index, status = excluded.status,
					previous_version = excluded.previous_version, previous = excluded.previous,
					new_version = excluded.new_version, switch_height = excluded.switch_height,
					error = excluded.error, updated_at = excluded.updated_at`,
				n.RolloutID, n.NodeID, n.BatchIndex, n.Status, n.PreviousVersion, n.Previous, n.NewVersion,
				n.SwitchHeight, n.Error, n.UpdatedAt)
		}
		return tx.SendBatch(ctx, &batch).Close()
	})
	return translate(err, "rollout node")
}

// ListRolloutNodes returns one batch, or all of them when batch < 0.
func (s *Store) ListRolloutNodes(ctx context.Context, rolloutID string, batch int) ([]*engine.RolloutNode, error) {
	defer s.observe("list_rollout_nodes")()
	rows, err := s.pool.Query(ctx, `SELECT `+rolloutNodeColumns+`
		FROM rollout_nodes WHERE rollout_id = $1 AND ($2 < 0 OR batch_index = $2)
		ORDER BY batch_index, node_id`, rolloutID, batch)
	return collect(rows, err, "rollout node", func(row pgx.Row) (*engine.RolloutNode, error) {
		var n engine.RolloutNode
		err := row.Scan(&n.RolloutID, &n.NodeID, &n.BatchIndex, &n.Status, &n.PreviousVersion, &n.Previous, &n.NewVersion,
			&n.SwitchHeight, &n.Error, at(&n.UpdatedAt))
		return &n, err
	})
}

const rolloutGroupColumns = `id, chain_profile_id, components, failure_policy, status, rollouts, current, skipped,
	message, created_by, created_at, updated_at, version`

func scanRolloutGroup(row pgx.Row) (*engine.RolloutGroup, error) {
	var g engine.RolloutGroup
	err := row.Scan(&g.ID, &g.ChainProfileID, &g.Components, &g.FailurePolicy, &g.Status, &g.Rollouts, &g.Current,
		&g.Skipped, &g.Message, &g.CreatedBy, at(&g.CreatedAt), at(&g.UpdatedAt), &g.Version)
	g.Components, g.Rollouts, g.Skipped = nilIfEmpty(g.Components), nilIfEmpty(g.Rollouts), nilIfEmpty(g.Skipped)
	return &g, err
}

func (s *Store) CreateRolloutGroup(ctx context.Context, g *engine.RolloutGroup) error {
	defer s.observe("create_rollout_group")()
	_, err := s.pool.Exec(ctx, `INSERT INTO rollout_groups (`+rolloutGroupColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1)`,
		g.ID, g.ChainProfileID, list(g.Components), g.FailurePolicy, g.Status, list(g.Rollouts), g.Current,
		list(g.Skipped), g.Message, g.CreatedBy, g.CreatedAt, g.UpdatedAt)
	if err != nil {
		return translate(err, "rollout group")
	}
	g.Version = 1
	return nil
}

func (s *Store) GetRolloutGroup(ctx context.Context, id string) (*engine.RolloutGroup, error) {
	defer s.observe("get_rollout_group")()
	g, err := scanRolloutGroup(s.pool.QueryRow(ctx, `SELECT `+rolloutGroupColumns+` FROM rollout_groups WHERE id = $1`, id))
	if err != nil {
		return nil, translate(err, "rollout group")
	}
	return g, nil
}

func (s *Store) UpdateRolloutGroup(ctx context.Context, g *engine.RolloutGroup) error {
	defer s.observe("update_rollout_group")()
	return s.updateVersioned(ctx, "rollout_groups", "rollout group", g.ID, &g.Version,
		`UPDATE rollout_groups SET chain_profile_id = $3, components = $4, failure_policy = $5, status = $6,
			rollouts = $7, current = $8, skipped = $9, message = $10, created_by = $11,
			created_at = $12, updated_at = $13, version = version + 1
		WHERE id = $1 AND version = $2`,
		g.ChainProfileID, list(g.Components), g.FailurePolicy, g.Status, list(g.Rollouts), g.Current,
		list(g.Skipped), g.Message, g.CreatedBy, g.CreatedAt, g.UpdatedAt)
}

// ListRolloutGroups is ListRollouts for groups, on their own index.
func (s *Store) ListRolloutGroups(ctx context.Context, before string, limit int) ([]*engine.RolloutGroup, error) {
	defer s.observe("list_rollout_groups")()
	since, err := s.newestFirstCursor(ctx, "rollout_groups", "rollout group", before)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+rolloutGroupColumns+` FROM rollout_groups
		WHERE $1::timestamptz IS NULL OR (created_at, id) < ($1, $2)
		ORDER BY created_at DESC, id DESC LIMIT $3`, since, before, noLimit(limit))
	return collect(rows, err, "rollout group", scanRolloutGroup)
}
