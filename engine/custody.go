package engine

import (
	"context"
	"time"
)

// A validator key that signs on two hosts at once is slashed. A signing
// lease names the one host that may sign with a key: the node's keys stay
// the same across a migration while its hosts differ by incarnation.

// LeaseHolder is a host of a node: Incarnation is HostSpec.Incarnation,
// empty for the node's first host.
type LeaseHolder struct {
	NodeID      string
	Incarnation string
}

// String names the host in messages.
func (h LeaseHolder) String() string {
	if h.Incarnation == "" {
		return "the first host of node " + h.NodeID
	}
	return "host " + h.Incarnation + " of node " + h.NodeID
}

// SigningLease lets one host sign with one key of its node. A key always
// has exactly one holder recorded; once released, that holder no longer
// signs and the next grant, to any holder, raises Epoch, which the agent
// uses to refuse a START carrying an older one.
type SigningLease struct {
	NodeID  string
	KeyName string // one of the node's keys, e.g. "priv_validator_key"
	Holder  LeaseHolder
	// Epoch is the fencing epoch: 1 at the first grant, +1 for every grant
	// after a release.
	Epoch     uint64
	GrantedAt time.Time
	// ReleasedAt is zero while Holder may sign.
	ReleasedAt time.Time
	// ReleaseReason says why Holder stopped: "stopped" (its agent confirmed
	// the signer stopped), "host_destroyed", "operator:<user id>"...
	ReleaseReason string
	Version       int64
}

// Held reports whether the holder may still sign.
func (l *SigningLease) Held() bool { return l.ReleasedAt.IsZero() }

// LeaseGrant asks for a node's key to be leased to Holder at Now. Gap is
// how long the key must have been released before a new grant: a signer
// that was told to stop may still have a signature in flight.
type LeaseGrant struct {
	NodeID  string
	KeyName string
	Holder  LeaseHolder
	Gap     time.Duration
	Now     time.Time
}

// LeaseStore keeps the signing leases, one per (node, key). Adapters apply
// NextLease and ReleaseLease inside one write transaction, so of concurrent
// writers of a lease each sees the other's outcome. Safe for concurrent use.
type LeaseStore interface {
	// GrantSigningLease applies NextLease to the stored lease (none at
	// first) and returns the lease as stored. Returns NextLease's errors:
	// EConflict while another host holds the key or within the gap after
	// a release, EInvalid for a bad grant.
	GrantSigningLease(ctx context.Context, g LeaseGrant) (*SigningLease, error)
	// ReleaseSigningLease applies ReleaseLease to the stored lease and
	// returns the lease as stored. Returns ENotFound if the key was never
	// leased, EConflict for another holder or a stale epoch.
	ReleaseSigningLease(ctx context.Context, nodeID, keyName string, holder LeaseHolder, epoch uint64, reason string, now time.Time) (*SigningLease, error)
	// GetSigningLease returns ENotFound if the key was never leased.
	GetSigningLease(ctx context.Context, nodeID, keyName string) (*SigningLease, error)
	// ListSigningLeases returns the node's leases ordered by key name.
	ListSigningLeases(ctx context.Context, nodeID string) ([]*SigningLease, error)
	// ListAllSigningLeases returns every node's leases ordered by node then
	// key name, at most limit (all when limit <= 0): for administrators.
	ListAllSigningLeases(ctx context.Context, limit int) ([]*SigningLease, error)
	// DeleteSigningLeases forgets the leases of a terminated node; none is
	// not an error.
	DeleteSigningLeases(ctx context.Context, nodeID string) error
}

// NextLease is the rule of a grant, given the stored lease cur (nil when
// the key was never leased). It returns cur itself when there is nothing
// to write (the holder asks again), or the lease to store, with Version one
// above cur's:
//   - the first grant has epoch 1;
//   - a grant to another host while cur is held is EConflict;
//   - once cur is released, a grant to any host raises the epoch, but not
//     before the gap has passed since the release (EConflict naming when).
//
// Times are kept in UTC at microsecond precision, as every Store keeps them.
func NextLease(cur *SigningLease, g LeaseGrant) (*SigningLease, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	now := storedTime(g.Now)
	switch {
	case cur == nil:
		return &SigningLease{NodeID: g.NodeID, KeyName: g.KeyName, Holder: g.Holder, Epoch: 1, GrantedAt: now, Version: 1}, nil
	case cur.Held() && cur.Holder == g.Holder:
		return cur, nil
	case cur.Held():
		return nil, Errorf(EConflict, "the signing lease of key %s of node %s is held by %s since %s",
			cur.KeyName, cur.NodeID, cur.Holder, cur.GrantedAt.Format(time.RFC3339))
	}
	if from := cur.ReleasedAt.Add(g.Gap); now.Before(from) {
		return nil, Errorf(EConflict, "the signing lease of key %s of node %s was released at %s and may be granted from %s",
			cur.KeyName, cur.NodeID, cur.ReleasedAt.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	return &SigningLease{NodeID: cur.NodeID, KeyName: cur.KeyName, Holder: g.Holder, Epoch: cur.Epoch + 1,
		GrantedAt: now, Version: cur.Version + 1}, nil
}

func (g LeaseGrant) check() error {
	switch {
	case g.NodeID == "" || g.KeyName == "":
		return Errorf(EInvalid, "a signing lease needs a node and a key name")
	case g.Holder.NodeID != g.NodeID:
		return Errorf(EInvalid, "the signing lease of a key of node %s cannot be held by a host of node %s", g.NodeID, g.Holder.NodeID)
	case !ValidIncarnation(g.Holder.Incarnation):
		return Errorf(EInvalid, "host incarnation %q is not 1 to 16 lower-case letters and digits", g.Holder.Incarnation)
	case g.Gap < 0:
		return Errorf(EInvalid, "the gap before a signing lease is granted again cannot be negative")
	case g.Now.IsZero():
		return Errorf(EInvalid, "a signing lease grant needs the time")
	}
	return nil
}

// LeaseRelease asks for a node's key to be released by Holder, whose
// lease has Epoch, at Now.
type LeaseRelease struct {
	NodeID  string
	KeyName string
	Holder  LeaseHolder
	Epoch   uint64
	Reason  string // see SigningLease.ReleaseReason
	Now     time.Time
}

// ReleaseLease is the rule of a release of the stored lease cur (nil when
// the key was never leased: ENotFound). It returns cur itself when already
// released at that epoch (a repeat), or the lease to store, with Version
// one above cur's. Another holder or another epoch is EConflict: a host
// that lost its lease cannot release its successor's.
func ReleaseLease(cur *SigningLease, r LeaseRelease) (*SigningLease, error) {
	switch {
	case r.Reason == "" || r.Now.IsZero():
		return nil, Errorf(EInvalid, "a signing lease release needs a reason and the time")
	case cur == nil:
		return nil, Errorf(ENotFound, "no signing lease of key %s of node %s was granted", r.KeyName, r.NodeID)
	case cur.Holder != r.Holder:
		return nil, Errorf(EConflict, "the signing lease of key %s of node %s is held by %s, not by %s",
			cur.KeyName, cur.NodeID, cur.Holder, r.Holder)
	case cur.Epoch != r.Epoch:
		return nil, Errorf(EConflict, "the signing lease of key %s of node %s is at epoch %d: epoch %d is stale",
			cur.KeyName, cur.NodeID, cur.Epoch, r.Epoch)
	case !cur.Held():
		return cur, nil
	}
	next := *cur
	next.ReleasedAt, next.ReleaseReason, next.Version = storedTime(r.Now), r.Reason, cur.Version+1
	return &next, nil
}

// storedTime is t as a Store gives it back: UTC, microseconds.
func storedTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
