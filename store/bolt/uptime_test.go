package bolt

import (
	"context"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/enginetest"
)

func TestUptime(t *testing.T) {
	enginetest.RunUptime(t, func(t *testing.T) engine.Store {
		return openAt(t, filepath.Join(t.TempDir(), "hoodcloud.db"))
	})
}

// BenchmarkUptime: go test -run '^$' -bench Uptime -benchtime 3x ./store/bolt
func BenchmarkUptime(b *testing.B) {
	s := openAt(b, filepath.Join(b.TempDir(), "hoodcloud.db"))
	b.Cleanup(func() { s.Close() })
	enginetest.BenchUptime(b, s, enginetest.UptimeSeeder{Nodes: s.CreateNodes, Changes: s.changeNodeStates})
}

// changeNodeStates applies state changes in one transaction, as
// ChangeNodeState would one by one, for the benchmark's fixture: one
// fsync instead of 50,000.
func (s *Store) changeNodeStates(ctx context.Context, changes []*engine.NodeStateChange) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		for _, c := range changes {
			n, err := nodes.get(tx, key(c.NodeID))
			if err != nil {
				return err
			}
			moved := *n
			moved.State, moved.Version, moved.UpdatedAt = c.To, n.Version+1, c.At
			c.From = n.State
			if err := nodes.write(tx, n, &moved); err != nil {
				return err
			}
			if err := appendStateLog(tx, c); err != nil {
				return err
			}
		}
		return nil
	})
}
