package engine

import "context"

// LeaderStore keeps the leader epoch: a counter bumped by every new leader,
// so writes of a deposed leader can be fenced.
type LeaderStore interface {
	// AdvanceLeaderEpoch increments the epoch, records holder and returns the new epoch.
	AdvanceLeaderEpoch(ctx context.Context, holder string) (int64, error)
	// LeaderEpoch returns the current epoch and its holder (0, "" before any leader).
	LeaderEpoch(ctx context.Context) (int64, string, error)
}
