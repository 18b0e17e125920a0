package postgres

import (
	"context"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
)

const rolloutColumns = `id, group_id, chain_profile_id, component, target_version, strategy, batch_size,
	canary_size, failure_threshold, status, current_batch, succeeded, failed, manifest_hash,
	created_at, updated_at, version`

func scanRollout(row pgx.Row) (*engine.Rollout, error) {
	var r engine.Rollout
	err := row.Scan(&r.ID, str(&r.GroupID), &r.ChainProfileID, &r.Component, &r.TargetVersion, &r.Strategy,
		&r.BatchSize, &r.CanarySize, &r.FailureThreshold, &r.Status, &r.CurrentBatch, &r.Succeeded, &r.Failed,
		&r.ManifestHash, at(&r.CreatedAt), at(&r.UpdatedAt), &r.Version)
	return &r, err
}

func (s *Store) CreateRollout(ctx context.Context, r *engine.Rollout) error {
	defer s.observe("create_rollout")()
	_, err := s.pool.Exec(ctx, `INSERT INTO rollouts (`+rolloutColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 1)`,
		r.ID, optText(r.GroupID), r.ChainProfileID, r.Component, r.TargetVersion, r.Strategy, r.BatchSize,
		r.CanarySize, r.FailureThreshold, r.Status, r.CurrentBatch, r.Succeeded, r.Failed, r.ManifestHash,
		r.CreatedAt, r.UpdatedAt)
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
			succeeded = $13, failed = $14, manifest_hash = $15, created_at = $16, updated_at = $17,
			version = version + 1
		WHERE id = $1 AND version = $2`,
		optText(r.GroupID), r.ChainProfileID, r.Component, r.TargetVersion, r.Strategy, r.BatchSize,
		r.CanarySize, r.FailureThreshold, r.Status, r.CurrentBatch, r.Succeeded, r.Failed, r.ManifestHash,
		r.CreatedAt, r.UpdatedAt)
}

// PutRolloutNodes sends every upsert in one batch inside one transaction.
func (s *Store) PutRolloutNodes(ctx context.Context, ns []*engine.RolloutNode) error {
	defer s.observe("put_rollout_nodes")()
	if len(ns) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var batch pgx.Batch
		for _, n := range ns {
			batch.Queue(`INSERT INTO rollout_nodes (rollout_id, node_id, batch_index, status, previous_version, error, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7)
				ON CONFLICT (rollout_id, node_id) DO UPDATE SET batch_index = excluded.batch_index, status = excluded.status,
					previous_version = excluded.previous_version, error = excluded.error, updated_at = excluded.updated_at`,
				n.RolloutID, n.NodeID, n.BatchIndex, n.Status, n.PreviousVersion, n.Error, n.UpdatedAt)
		}
		return tx.SendBatch(ctx, &batch).Close()
	})
	return translate(err, "rollout node")
}

// ListRolloutNodes returns one batch, or all of them when batch < 0.
func (s *Store) ListRolloutNodes(ctx context.Context, rolloutID string, batch int) ([]*engine.RolloutNode, error) {
	defer s.observe("list_rollout_nodes")()
	rows, err := s.pool.Query(ctx, `SELECT rollout_id, node_id, batch_index, status, previous_version, error, updated_at
		FROM rollout_nodes WHERE rollout_id = $1 AND ($2 < 0 OR batch_index = $2)
		ORDER BY batch_index, node_id`, rolloutID, batch)
	return collect(rows, err, "rollout node", func(row pgx.Row) (*engine.RolloutNode, error) {
		var n engine.RolloutNode
		err := row.Scan(&n.RolloutID, &n.NodeID, &n.BatchIndex, &n.Status, &n.PreviousVersion, &n.Error, at(&n.UpdatedAt))
		return &n, err
	})
}

const rolloutGroupColumns = `id, chain_profile_id, components, failure_policy, status, created_at, updated_at, version`

func scanRolloutGroup(row pgx.Row) (*engine.RolloutGroup, error) {
	var g engine.RolloutGroup
	err := row.Scan(&g.ID, &g.ChainProfileID, &g.Components, &g.FailurePolicy, &g.Status,
		at(&g.CreatedAt), at(&g.UpdatedAt), &g.Version)
	g.Components = nilIfEmpty(g.Components)
	return &g, err
}

func (s *Store) CreateRolloutGroup(ctx context.Context, g *engine.RolloutGroup) error {
	defer s.observe("create_rollout_group")()
	_, err := s.pool.Exec(ctx, `INSERT INTO rollout_groups (`+rolloutGroupColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, 1)`,
		g.ID, g.ChainProfileID, list(g.Components), g.FailurePolicy, g.Status, g.CreatedAt, g.UpdatedAt)
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
			created_at = $7, updated_at = $8, version = version + 1
		WHERE id = $1 AND version = $2`,
		g.ChainProfileID, list(g.Components), g.FailurePolicy, g.Status, g.CreatedAt, g.UpdatedAt)
}
