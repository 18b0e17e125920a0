package postgres

import (
	"context"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
)

const nodeKeyColumns = `node_id, name, key_type, source, ciphertext, created_at`

func scanNodeKey(row pgx.Row) (*engine.NodeKey, error) {
	var k engine.NodeKey
	err := row.Scan(&k.NodeID, &k.Name, &k.KeyType, &k.Source, &k.Ciphertext, at(&k.CreatedAt))
	return &k, err
}

// PutNodeKey upserts: activities that write keys are retried.
func (s *Store) PutNodeKey(ctx context.Context, k *engine.NodeKey) error {
	defer s.observe("put_node_key")()
	_, err := s.pool.Exec(ctx, `INSERT INTO node_keys (`+nodeKeyColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (node_id, name) DO UPDATE SET key_type = excluded.key_type, source = excluded.source,
			ciphertext = excluded.ciphertext, created_at = excluded.created_at`,
		k.NodeID, k.Name, k.KeyType, k.Source, nonNilBytes(k.Ciphertext), k.CreatedAt)
	return translate(err, "node key")
}

func (s *Store) GetNodeKey(ctx context.Context, nodeID, name string) (*engine.NodeKey, error) {
	defer s.observe("get_node_key")()
	k, err := scanNodeKey(s.pool.QueryRow(ctx, `SELECT `+nodeKeyColumns+` FROM node_keys WHERE node_id = $1 AND name = $2`,
		nodeID, name))
	if err != nil {
		return nil, translate(err, "node key")
	}
	return k, nil
}

func (s *Store) ListNodeKeys(ctx context.Context, nodeID string) ([]*engine.NodeKey, error) {
	defer s.observe("list_node_keys")()
	rows, err := s.pool.Query(ctx, `SELECT `+nodeKeyColumns+` FROM node_keys WHERE node_id = $1 ORDER BY name`, nodeID)
	return collect(rows, err, "node key", scanNodeKey)
}

func (s *Store) DeleteNodeKeys(ctx context.Context, nodeID string) error {
	defer s.observe("delete_node_keys")()
	_, err := s.pool.Exec(ctx, `DELETE FROM node_keys WHERE node_id = $1`, nodeID)
	return translate(err, "node key")
}
