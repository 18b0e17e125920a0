package postgres

import (
	"context"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
)

const chainProfileRefColumns = `id, version, checksum, source, updated_at`

func scanChainProfileRef(row pgx.Row) (*engine.ChainProfileRef, error) {
	var r engine.ChainProfileRef
	err := row.Scan(&r.ID, &r.Version, &r.Checksum, &r.Source, at(&r.UpdatedAt))
	return &r, err
}

func (s *Store) PutChainProfileRef(ctx context.Context, r *engine.ChainProfileRef) error {
	defer s.observe("put_chain_profile_ref")()
	_, err := s.pool.Exec(ctx, `INSERT INTO chain_profile_refs (`+chainProfileRefColumns+`) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET version = excluded.version, checksum = excluded.checksum,
			source = excluded.source, updated_at = excluded.updated_at`,
		r.ID, r.Version, r.Checksum, r.Source, r.UpdatedAt)
	return translate(err, "chain profile reference")
}

func (s *Store) GetChainProfileRef(ctx context.Context, id string) (*engine.ChainProfileRef, error) {
	defer s.observe("get_chain_profile_ref")()
	r, err := scanChainProfileRef(s.pool.QueryRow(ctx, `SELECT `+chainProfileRefColumns+` FROM chain_profile_refs WHERE id = $1`, id))
	if err != nil {
		return nil, translate(err, "chain profile reference")
	}
	return r, nil
}

func (s *Store) ListChainProfileRefs(ctx context.Context) ([]*engine.ChainProfileRef, error) {
	defer s.observe("list_chain_profile_refs")()
	rows, err := s.pool.Query(ctx, `SELECT `+chainProfileRefColumns+` FROM chain_profile_refs ORDER BY id`)
	return collect(rows, err, "chain profile reference", scanChainProfileRef)
}
