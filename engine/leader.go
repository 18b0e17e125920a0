package engine

import (
	"context"
	"sync/atomic"
)

// LeaderStore keeps the leader epoch: a counter bumped by every new leader,
// so writes of a deposed leader can be fenced.
type LeaderStore interface {
	// AdvanceLeaderEpoch increments the epoch, records holder and returns the new epoch.
	AdvanceLeaderEpoch(ctx context.Context, holder string) (int64, error)
	// LeaderEpoch returns the current epoch and its holder (0, "" before any leader).
	LeaderEpoch(ctx context.Context) (int64, string, error)
}

// Leadership tells whether this instance leads the appliance's singleton
// work (health evaluation, incident dispatch, uptime, expiry, reaping).
type Leadership interface {
	// Leading returns the epoch this instance leads under, or false when
	// another instance leads (or none does yet).
	Leading() (epoch int64, ok bool)
}

// ErrStaleLeader is in the chain of a leader-only write refused because a
// newer leader bumped the epoch since the writer took office.
var ErrStaleLeader = &Error{Code: EConflict, Message: "a newer leader took over: this write is fenced"}

type leaderEpochKey struct{}

// WithLeaderEpoch marks ctx as leader-only work done under epoch. Store
// writes made with it are fenced: applied only while epoch is still the
// stored one, in the same transaction, else refused with ErrStaleLeader.
func WithLeaderEpoch(ctx context.Context, epoch int64) context.Context {
	return context.WithValue(ctx, leaderEpochKey{}, epoch)
}

// LeaderEpochFrom returns the epoch ctx's writes are fenced by, if any.
func LeaderEpochFrom(ctx context.Context) (int64, bool) {
	e, ok := ctx.Value(leaderEpochKey{}).(int64)
	return e, ok
}

type fenceObserverKey struct{}

// ObserveFencedWrites has the Store report to observe how each write fenced
// by ctx's leader epoch ended: err is nil when the write landed,
// ErrStaleLeader when the fence refused it, another error when it failed
// otherwise. Like an HTTP client trace, it counts what happens below
// without every use case passing a counter along.
func ObserveFencedWrites(ctx context.Context, observe func(err error)) context.Context {
	return context.WithValue(ctx, fenceObserverKey{}, observe)
}

// FencedWriteDone is for Store adapters: they call it once for each write
// fenced by ctx's leader epoch, when it has committed (nil) or failed.
func FencedWriteDone(ctx context.Context, err error) {
	if observe, ok := ctx.Value(fenceObserverKey{}).(func(error)); ok {
		observe(err)
	}
}

// SoleLeader is the leadership of an appliance that cannot have a rival:
// on bbolt the instance holding the file lock is the only one there is. It
// still takes a fresh epoch, so fencing works the same on every store.
type SoleLeader struct{ epoch atomic.Int64 }

// TakeSoleLeadership advances the epoch for holder and leads under it.
func TakeSoleLeadership(ctx context.Context, store LeaderStore, holder string) (*SoleLeader, error) {
	e, err := store.AdvanceLeaderEpoch(ctx, holder)
	if err != nil {
		return nil, err
	}
	l := &SoleLeader{}
	l.epoch.Store(e)
	return l, nil
}

func (l *SoleLeader) Leading() (int64, bool) { return l.epoch.Load(), true }
