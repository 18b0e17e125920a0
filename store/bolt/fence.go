package bolt

import (
	"context"

	"go.etcd.io/bbolt"

	"github.com/hoodcloud/hoodcloud/engine"
)

// fenced runs a leader-only write (ctx carries the leader epoch it was
// started under) in one write transaction that first reads the leader
// record: bbolt has one writer at a time, so no AdvanceLeaderEpoch can
// come between the check and the write. A newer epoch refuses the write
// with engine.ErrStaleLeader and changes nothing.
func (s *Store) fenced(ctx context.Context, epoch int64, fn func(*bbolt.Tx) error) error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		cur, err := readLeader(tx)
		if err != nil {
			return err
		}
		if cur.Epoch != epoch {
			return engine.ErrStaleLeader
		}
		return fn(tx)
	})
	engine.FencedWriteDone(ctx, err)
	return err
}
