package postgres

import (
	"context"
)

// AdvanceLeaderEpoch bumps the single row's epoch atomically: two new
// leaders racing get different epochs.
func (s *Store) AdvanceLeaderEpoch(ctx context.Context, holder string) (int64, error) {
	defer s.observe("advance_leader_epoch")()
	var epoch int64
	err := s.pool.QueryRow(ctx, `UPDATE leader_epoch SET epoch = epoch + 1, holder = $1, updated_at = now()
		RETURNING epoch`, holder).Scan(&epoch)
	if err != nil {
		return 0, translate(err, "leader epoch")
	}
	return epoch, nil
}

func (s *Store) LeaderEpoch(ctx context.Context) (int64, string, error) {
	defer s.observe("leader_epoch")()
	var (
		epoch  int64
		holder string
	)
	if err := s.pool.QueryRow(ctx, `SELECT epoch, holder FROM leader_epoch`).Scan(&epoch, &holder); err != nil {
		return 0, "", translate(err, "leader epoch")
	}
	return epoch, holder, nil
}
