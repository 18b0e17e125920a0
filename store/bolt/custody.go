package bolt

import (
	"context"
	"time"

	"go.etcd.io/bbolt"

	"github.com/hoodcloud/hoodcloud/engine"
)

// Leases are keyed by (node, key name), so a node's leases and all leases
// read in the order the LeaseStore promises.
var leases = kind[engine.SigningLease]{
	name: "signing lease", bucket: bLeases,
	key:     func(l *engine.SigningLease) []byte { return key(l.NodeID, l.KeyName) },
	version: func(l *engine.SigningLease) *int64 { return &l.Version },
}

func (s *Store) GrantSigningLease(ctx context.Context, g engine.LeaseGrant) (*engine.SigningLease, error) {
	return s.applyLeaseRule(ctx, g.NodeID, g.KeyName, func(cur *engine.SigningLease) (*engine.SigningLease, error) {
		return engine.NextLease(cur, g)
	})
}

func (s *Store) ReleaseSigningLease(ctx context.Context, nodeID, keyName string, holder engine.LeaseHolder, epoch uint64, reason string, now time.Time) (*engine.SigningLease, error) {
	r := engine.LeaseRelease{NodeID: nodeID, KeyName: keyName, Holder: holder, Epoch: epoch, Reason: reason, Now: now}
	return s.applyLeaseRule(ctx, nodeID, keyName, func(cur *engine.SigningLease) (*engine.SigningLease, error) {
		return engine.ReleaseLease(cur, r)
	})
}

// applyLeaseRule runs rule on the stored lease (nil when none) and writes
// what it returns, in one write transaction: bbolt's single writer orders
// concurrent grants.
func (s *Store) applyLeaseRule(ctx context.Context, nodeID, keyName string, rule func(*engine.SigningLease) (*engine.SigningLease, error)) (*engine.SigningLease, error) {
	var out *engine.SigningLease
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		cur, err := leases.get(tx, key(nodeID, keyName))
		if engine.IsCode(err, engine.ENotFound) {
			cur, err = nil, nil
		}
		if err != nil {
			return err
		}
		next, err := rule(cur)
		if err != nil {
			return err
		}
		out = next
		if next == cur {
			return nil
		}
		return leases.write(tx, cur, next)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) GetSigningLease(ctx context.Context, nodeID, keyName string) (*engine.SigningLease, error) {
	return getOne(ctx, s, leases, key(nodeID, keyName))
}

func (s *Store) ListSigningLeases(ctx context.Context, nodeID string) (ls []*engine.SigningLease, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		ls, err = leases.own(tx, prefix(nodeID))
		return err
	})
	return ls, err
}

func (s *Store) ListAllSigningLeases(ctx context.Context, limit int) (ls []*engine.SigningLease, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		scan(tx.Bucket(bLeases), nil, nil, func(_, v []byte) bool {
			var l *engine.SigningLease
			if l, err = decode[engine.SigningLease](v); err != nil {
				return false
			}
			ls = append(ls, l)
			return limit <= 0 || len(ls) < limit
		})
		return err
	})
	return ls, err
}

func (s *Store) DeleteSigningLeases(ctx context.Context, nodeID string) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bLeases)
		for _, k := range keysUnder(b, prefix(nodeID)) {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
