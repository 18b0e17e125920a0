package postgres_test

import (
	"context"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/enginetest"
	"github.com/jackc/pgx/v5"
)

func TestUptime(t *testing.T) {
	enginetest.RunUptime(t, func(t *testing.T) engine.Store {
		return mustOpen(t, mustMigratedDatabase(t))
	})
}

// BenchmarkUptime: go test -run '^$' -bench Uptime -benchtime 3x ./store/postgres
// (with HOODCLOUD_TEST_POSTGRES_URL set).
func BenchmarkUptime(b *testing.B) {
	dbURL := mustMigratedDatabase(b)
	s := mustOpen(b, dbURL)
	b.Cleanup(func() { s.Close() })
	enginetest.BenchUptime(b, s, enginetest.UptimeSeeder{Nodes: s.CreateNodes, Changes: copyStateChanges(dbURL)})
}

// copyStateChanges loads state changes in one transaction, as
// ChangeNodeState would one by one, for the benchmark's fixture: the log
// by COPY, then each node's final state.
func copyStateChanges(dbURL string) func(ctx context.Context, changes []*engine.NodeStateChange) error {
	return func(ctx context.Context, changes []*engine.NodeStateChange) error {
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		last := map[string]*engine.NodeStateChange{}
		for _, c := range changes {
			c.From, c.Seq = engine.NodeProvisioning, 2 // the fixture creates its nodes provisioning, logged as Seq 1
			if prev := last[c.NodeID]; prev != nil {
				c.From, c.Seq = prev.To, prev.Seq+1
			}
			last[c.NodeID] = c
		}
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"node_state_log"}, []string{"node_id", "seq", "from_state", "to_state", "reason", "at"},
				pgx.CopyFromSlice(len(changes), func(i int) ([]any, error) {
					c := changes[i]
					return []any{c.NodeID, c.Seq, string(c.From), string(c.To), c.Reason, c.At}, nil
				}))
			if err != nil {
				return err
			}
			var batch pgx.Batch
			for id, c := range last {
				batch.Queue(`UPDATE nodes SET state = $2, version = $3, updated_at = $4 WHERE id = $1`, id, string(c.To), c.Seq, c.At)
			}
			return tx.SendBatch(ctx, &batch).Close()
		})
	}
}
