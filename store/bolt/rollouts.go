package bolt

import (
	"context"
	"time"

	"go.etcd.io/bbolt"

	"github.com/hoodcloud/hoodcloud/engine"
)

// Buckets listing rollouts and groups newest first.
var (
	bRolloutsByTime = []byte("rollouts_by_created")
	bRoGroupsByTime = []byte("rollout_groups_by_created")
)

var rollouts = kind[engine.Rollout]{
	name: "rollout", bucket: bRollouts,
	key:     func(r *engine.Rollout) []byte { return key(r.ID) },
	version: func(r *engine.Rollout) *int64 { return &r.Version },
	indexes: func(r *engine.Rollout) []index {
		return []index{{bucket: bRolloutsByTime, key: rolloutCursor(r)}}
	},
}

func (s *Store) CreateRollout(ctx context.Context, r *engine.Rollout) error {
	return create(ctx, s, rollouts, r)
}

func (s *Store) GetRollout(ctx context.Context, id string) (*engine.Rollout, error) {
	return getOne(ctx, s, rollouts, key(id))
}

func (s *Store) UpdateRollout(ctx context.Context, r *engine.Rollout) error {
	return replaceVersioned(ctx, s, rollouts, r, nil)
}

func (s *Store) ListRollouts(ctx context.Context, before string, limit int) ([]*engine.Rollout, error) {
	return listNewestFirst(ctx, s, rollouts, bRolloutsByTime, before, limit, rolloutCursor)
}

func rolloutCursor(r *engine.Rollout) []byte { return newestFirstKey(r.CreatedAt, r.ID) }

var rolloutNodes = kind[engine.RolloutNode]{
	name: "rollout node", bucket: bRolloutNodes,
	key: func(n *engine.RolloutNode) []byte { return key(n.RolloutID, n.NodeID) },
	indexes: func(n *engine.RolloutNode) []index {
		return []index{{bucket: bRoNodesBatch, key: key(n.RolloutID, intKey(int64(n.BatchIndex)), n.NodeID)}}
	},
}

func (s *Store) PutRolloutNodes(ctx context.Context, ns []*engine.RolloutNode) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		for _, n := range ns {
			if err := rolloutNodes.upsert(tx, n); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) ListRolloutNodes(ctx context.Context, rolloutID string, batch int) (ns []*engine.RolloutNode, err error) {
	p := prefix(rolloutID)
	if batch >= 0 {
		p = prefix(rolloutID, intKey(int64(batch)))
	}
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		ns, err = rolloutNodes.list(tx, bRoNodesBatch, p, nil, 0)
		return err
	})
	return ns, err
}

var rolloutGroups = kind[engine.RolloutGroup]{
	name: "rollout group", bucket: bRolloutGroups,
	key:     func(g *engine.RolloutGroup) []byte { return key(g.ID) },
	version: func(g *engine.RolloutGroup) *int64 { return &g.Version },
	indexes: func(g *engine.RolloutGroup) []index {
		return []index{{bucket: bRoGroupsByTime, key: groupCursor(g)}}
	},
}

func (s *Store) CreateRolloutGroup(ctx context.Context, g *engine.RolloutGroup) error {
	return create(ctx, s, rolloutGroups, g)
}

func (s *Store) GetRolloutGroup(ctx context.Context, id string) (*engine.RolloutGroup, error) {
	return getOne(ctx, s, rolloutGroups, key(id))
}

func (s *Store) UpdateRolloutGroup(ctx context.Context, g *engine.RolloutGroup) error {
	return replaceVersioned(ctx, s, rolloutGroups, g, nil)
}

func (s *Store) ListRolloutGroups(ctx context.Context, before string, limit int) ([]*engine.RolloutGroup, error) {
	return listNewestFirst(ctx, s, rolloutGroups, bRoGroupsByTime, before, limit, groupCursor)
}

func groupCursor(g *engine.RolloutGroup) []byte { return newestFirstKey(g.CreatedAt, g.ID) }

// newestFirstKey orders records by creation time, then ID, both descending.
func newestFirstKey(created time.Time, id string) []byte {
	return key(newestFirst(created), descending(id))
}

// descending orders strings backwards as bytes: each byte inverted, then a
// terminator above every inverted byte so a longer ID sorts before its
// prefix ("ab" before "a").
func descending(s string) string {
	b := make([]byte, len(s)+1)
	for i := range len(s) {
		b[i] = ^s[i]
	}
	b[len(s)] = 0xff
	return string(b)
}

// listNewestFirst pages through a newest-first index after the record the
// cursor names (its ID; "" for the newest). cursorKey is the record's key
// in that index.
func listNewestFirst[T any](ctx context.Context, s *Store, k kind[T], index []byte, before string, limit int, cursorKey func(*T) []byte) (out []*T, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		var after []byte
		if before != "" {
			cur, err := k.get(tx, key(before))
			if engine.IsCode(err, engine.ENotFound) {
				return engine.Errorf(engine.EInvalid, "the cursor names no %s", k.name)
			}
			if err != nil {
				return err
			}
			after = cursorKey(cur)
		}
		out, err = k.list(tx, index, nil, after, limit)
		return err
	})
	return out, err
}

// indexRolloutsByTime brings the rollouts and groups of a file written
// before their newest-first indexes into them, once.
func indexRolloutsByTime(tx *bbolt.Tx) error {
	if err := reindexOnce(tx, rollouts, bRolloutsByTime); err != nil {
		return err
	}
	return reindexOnce(tx, rolloutGroups, bRoGroupsByTime)
}

// reindexOnce rewrites every record of k, and so its index entries, when
// the index bucket is still empty.
func reindexOnce[T any](tx *bbolt.Tx, k kind[T], index []byte) error {
	if first, _ := tx.Bucket(index).Cursor().First(); first != nil {
		return nil
	}
	for _, id := range keysUnder(tx.Bucket(k.bucket), nil) {
		if err := k.change(tx, id, func(*T) error { return nil }); err != nil {
			return err
		}
	}
	return nil
}
