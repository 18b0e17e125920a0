package certkey

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// LeaseRecords keeps lock leases where every instance sees them: a lease
// is a name, an owner and an expiry.
type LeaseRecords interface {
	// Take writes owner's lease on name, valid for ttl, unless another
	// owner's unexpired lease is there; it reports whether it wrote.
	Take(ctx context.Context, name, owner string, ttl time.Duration) (bool, error)
	// Renew extends owner's lease by ttl; false if the lease is no longer
	// owner's (it expired and was taken over).
	Renew(ctx context.Context, name, owner string, ttl time.Duration) (bool, error)
	// Release deletes name's lease if owner holds it.
	Release(ctx context.Context, name, owner string) error
}

// Leases is certmagic's Locker on lease records: Lock waits for a free or
// expired lease, a held lease is renewed every third of its TTL, and
// Unlock releases only the lease its Lock took. Safe for concurrent use.
type Leases struct {
	records LeaseRecords
	ttl     time.Duration
	poll    time.Duration

	mu       sync.Mutex
	held     map[string]*heldLease
	released chan struct{} // closed (and replaced) on every Unlock: wakes local waiters
}

type heldLease struct {
	owner string
	stop  chan struct{}
	done  chan struct{}
}

// NewLeases returns the locker on records: a lease lasts ttl after its last
// renewal and a waiter looks again every poll.
func NewLeases(records LeaseRecords, opts ...LeaseOption) *Leases {
	l := &Leases{records: records, ttl: 30 * time.Second, poll: time.Second, held: map[string]*heldLease{}, released: make(chan struct{})}
	for _, o := range opts {
		o(l)
	}
	return l
}

// LeaseOption tunes Leases.
type LeaseOption func(*Leases)

// WithLockLease sets how long a lock outlives its holder's last renewal
// (30s by default; renewed every third of it) and how often a waiter
// retries (1s by default).
func WithLockLease(lease, poll time.Duration) LeaseOption {
	return func(l *Leases) { l.ttl, l.poll = lease, poll }
}

// Lock takes name, waiting while another owner's unexpired lease holds
// it, until ctx ends.
func (l *Leases) Lock(ctx context.Context, name string) error {
	owner := NewOwner()
	for {
		wake := l.wake()
		taken, err := l.records.Take(ctx, name, owner, l.ttl)
		if err != nil {
			return fmt.Errorf("lock %s: %w", name, err)
		}
		if taken {
			l.hold(name, owner)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-time.After(l.poll):
		}
	}
}

// Unlock releases name if this locker still holds it; a lease taken over
// after it expired is left to its new owner.
func (l *Leases) Unlock(ctx context.Context, name string) error {
	l.mu.Lock()
	h := l.held[name]
	delete(l.held, name)
	l.mu.Unlock()
	if h == nil {
		return fmt.Errorf("unlock %s: not held here", name)
	}
	h.stopRenewing()
	err := l.records.Release(context.WithoutCancel(ctx), name, h.owner)
	l.mu.Lock()
	close(l.released)
	l.released = make(chan struct{})
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("unlock %s: %w", name, err)
	}
	return nil
}

// Close releases every lock held here.
func (l *Leases) Close() {
	l.mu.Lock()
	names := make([]string, 0, len(l.held))
	for name := range l.held {
		names = append(names, name)
	}
	l.mu.Unlock()
	for _, name := range names {
		l.Unlock(context.Background(), name) //nolint:errcheck // best effort: leases expire anyway
	}
}

// Abandon stops renewing every held lease without releasing it, as a
// crashed process would; for tests of takeover.
func (l *Leases) Abandon() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, h := range l.held {
		h.stopRenewing()
		delete(l.held, name)
	}
}

func (l *Leases) wake() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.released
}

// hold records the lease and renews it every third of its TTL, so one
// missed renewal does not lose it.
func (l *Leases) hold(name, owner string) {
	h := &heldLease{owner: owner, stop: make(chan struct{}), done: make(chan struct{})}
	l.mu.Lock()
	l.held[name] = h
	l.mu.Unlock()
	go func() {
		defer close(h.done)
		tick := time.NewTicker(l.ttl / 3)
		defer tick.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-tick.C:
				ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
				still, err := l.records.Renew(ctx, name, owner, l.ttl)
				cancel()
				if err == nil && !still {
					return // taken over: nothing left to renew
				}
			}
		}
	}()
}

func (h *heldLease) stopRenewing() {
	close(h.stop)
	<-h.done
}
