package postgres

import (
	"context"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
)

const uptimeColumns = `node_id, hour, up_seconds, down_seconds, complete, recompute`

// PutUptimeBuckets sends every upsert in one batch inside one transaction:
// one round trip however many buckets.
func (s *Store) PutUptimeBuckets(ctx context.Context, bs []*engine.UptimeBucket) error {
	defer s.observe("put_uptime_buckets")()
	if len(bs) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var batch pgx.Batch
		for _, b := range bs {
			batch.Queue(`INSERT INTO uptime_buckets (`+uptimeColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (node_id, hour) DO UPDATE SET up_seconds = excluded.up_seconds,
					down_seconds = excluded.down_seconds, complete = excluded.complete, recompute = excluded.recompute`,
				b.NodeID, b.Hour, b.UpSeconds, b.DownSeconds, b.Complete, b.Recompute)
		}
		return tx.SendBatch(ctx, &batch).Close()
	})
	return translate(err, "uptime bucket")
}

func (s *Store) ListUptimeBuckets(ctx context.Context, nodeID string, from, to time.Time) ([]*engine.UptimeBucket, error) {
	defer s.observe("list_uptime_buckets")()
	rows, err := s.pool.Query(ctx, `SELECT `+uptimeColumns+` FROM uptime_buckets
		WHERE node_id = $1 AND hour >= $2 AND hour < $3 ORDER BY hour`, nodeID, from, to)
	return collect(rows, err, "uptime bucket", func(row pgx.Row) (*engine.UptimeBucket, error) {
		var b engine.UptimeBucket
		err := row.Scan(&b.NodeID, at(&b.Hour), &b.UpSeconds, &b.DownSeconds, &b.Complete, &b.Recompute)
		return &b, err
	})
}

func (s *Store) MarkUptimeRecompute(ctx context.Context, nodeID string, hour time.Time) error {
	defer s.observe("mark_uptime_recompute")()
	tag, err := s.exec(ctx, `UPDATE uptime_buckets SET recompute = true WHERE node_id = $1 AND hour = $2`, nodeID, hour)
	if err != nil {
		return translate(err, "uptime bucket")
	}
	if tag.RowsAffected() == 0 {
		return engine.Errorf(engine.ENotFound, "uptime bucket not found")
	}
	return nil
}

func (s *Store) DeleteUptimeBucketsBefore(ctx context.Context, t time.Time) (int, error) {
	defer s.observe("delete_uptime_buckets_before")()
	tag, err := s.exec(ctx, `DELETE FROM uptime_buckets WHERE hour < $1`, t)
	if err != nil {
		return 0, translate(err, "uptime bucket")
	}
	return int(tag.RowsAffected()), nil
}

// ListUptimeRecomputeNodes reads the partial index of flagged buckets.
func (s *Store) ListUptimeRecomputeNodes(ctx context.Context, after string, limit int) ([]string, error) {
	defer s.observe("list_uptime_recompute_nodes")()
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT node_id FROM uptime_buckets
		WHERE recompute AND node_id > $1 ORDER BY node_id LIMIT $2`, after, noLimit(limit))
	ids, err := collect(rows, err, "uptime bucket", func(row pgx.Row) (*string, error) {
		var id string
		return &id, row.Scan(&id)
	})
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = *id
	}
	return out, err
}
