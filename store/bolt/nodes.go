package bolt

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"slices"
	"time"

	"go.etcd.io/bbolt"

	"github.com/hoodcloud/hoodcloud/engine"
)

var nodes = kind[engine.Node]{
	name: "node", bucket: bNodes,
	key:     func(n *engine.Node) []byte { return key(n.ID) },
	version: func(n *engine.Node) *int64 { return &n.Version },
	indexes: func(n *engine.Node) []index {
		return []index{
			{bucket: bNodesBySub, key: key(n.SubscriptionID), unique: "the subscription already has a node"},
			{bucket: bNodesByOwner, key: key(n.OwnerID, n.ID)},
			{bucket: bNodesByState, key: key(string(n.State), n.ID)},
			{bucket: bNodesByChain, key: key(n.ChainProfileID, n.ID)},
		}
	},
}

func (s *Store) CreateNode(ctx context.Context, n *engine.Node) error {
	rec := *n
	rec.Version = 1
	if err := s.update(ctx, func(tx *bbolt.Tx) error { return createNode(tx, &rec) }); err != nil {
		return err
	}
	n.Version = 1
	return nil
}

// CreateNodes loads many nodes in one transaction (one fsync instead of one
// per node), for imports and benchmark fixtures. All or none are stored.
func (s *Store) CreateNodes(ctx context.Context, ns []*engine.Node) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		for _, n := range ns {
			n.Version = 1
			if err := createNode(tx, n); err != nil {
				return err
			}
		}
		return nil
	})
}

// createNode stores a new node and logs its initial state.
func createNode(tx *bbolt.Tx, n *engine.Node) error {
	if err := nodes.insert(tx, n); err != nil {
		return err
	}
	return appendStateLog(tx, &engine.NodeStateChange{NodeID: n.ID, To: n.State, Reason: "created", At: n.CreatedAt})
}

func (s *Store) GetNode(ctx context.Context, id string) (*engine.Node, error) {
	return getOne(ctx, s, nodes, key(id))
}

func (s *Store) GetNodeBySubscription(ctx context.Context, subscriptionID string) (*engine.Node, error) {
	return byIndex(ctx, s, nodes, bNodesBySub, key(subscriptionID), "node of this subscription")
}

func (s *Store) ListNodesByOwner(ctx context.Context, ownerID, after string, limit int) ([]*engine.Node, error) {
	return s.listNodes(ctx, bNodesByOwner, ownerID, after, limit)
}

func (s *Store) ListNodesByState(ctx context.Context, state engine.NodeState, after string, limit int) ([]*engine.Node, error) {
	return s.listNodes(ctx, bNodesByState, string(state), after, limit)
}

func (s *Store) ListNodesByChain(ctx context.Context, chainProfileID, after string, limit int) ([]*engine.Node, error) {
	return s.listNodes(ctx, bNodesByChain, chainProfileID, after, limit)
}

// listNodes pages through an index keyed by (value, node ID).
func (s *Store) listNodes(ctx context.Context, bucket []byte, value, after string, limit int) (ns []*engine.Node, err error) {
	var from []byte
	if after != "" {
		from = []byte(after)
	}
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		ns, err = nodes.list(tx, bucket, prefix(value), from, limit)
		return err
	})
	return ns, err
}

// UpdateNode keeps the stored State: only ChangeNodeState moves it, with a log entry.
func (s *Store) UpdateNode(ctx context.Context, n *engine.Node) error {
	return replaceVersioned(ctx, s, nodes, n, func(stored, next *engine.Node) { next.State = stored.State })
}

func (s *Store) ChangeNodeState(ctx context.Context, version int64, c *engine.NodeStateChange) (*engine.Node, error) {
	var moved *engine.Node
	change := *c
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		n, err := nodes.get(tx, key(c.NodeID))
		if err != nil {
			return err
		}
		if n.Version != version {
			return engine.Errorf(engine.EConflict, "node %q was changed by someone else: reload and retry", c.NodeID)
		}
		if !n.State.CanBecome(c.To) {
			return engine.Errorf(engine.EInvalid, "node %q cannot go from %s to %s", c.NodeID, n.State, c.To)
		}
		m := *n
		moved = &m
		moved.State, moved.Version, moved.UpdatedAt = c.To, n.Version+1, c.At
		change.From = n.State
		if err := nodes.write(tx, n, moved); err != nil {
			return err
		}
		return appendStateLog(tx, &change)
	})
	if err != nil {
		return nil, err
	}
	c.From, c.Seq = change.From, change.Seq
	return moved, nil
}

func (s *Store) TouchNode(ctx context.Context, id string, seen time.Time, agentVersion string) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		n, err := nodes.get(tx, key(id))
		if err != nil {
			return err
		}
		n.LastSeenAt = seen
		if agentVersion != "" {
			n.AgentVersion = agentVersion
		}
		return putJSON(tx.Bucket(bNodes), key(id), n) // no indexed field changed
	})
}

// appendStateLog stores c under (node, seq) with the node's next seq, and
// indexes it under (node, time) for windowed reads.
func appendStateLog(tx *bbolt.Tx, c *engine.NodeStateChange) error {
	b := tx.Bucket(bStateLog)
	p := prefix(c.NodeID)
	c.Seq = lastSeq(b, p) + 1
	k := binary.BigEndian.AppendUint64(p, uint64(c.Seq))
	if err := tx.Bucket(bStateLogByAt).Put(key(c.NodeID, timeKey(c.At), string(k[len(p):])), k); err != nil {
		return err
	}
	return putJSON(b, k, c)
}

// lastSeq finds the node's newest log entry: the key just before the
// largest possible key under p.
func lastSeq(b *bbolt.Bucket, p []byte) int64 {
	c := b.Cursor()
	k, _ := c.Seek(append(bytes.Clone(p), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, p) || len(k) != len(p)+8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(k[len(p):]))
}

// ListNodeStateLog reads the node's time index over the window (widened
// to whole microseconds, then filtered exactly) and orders by Seq.
func (s *Store) ListNodeStateLog(ctx context.Context, nodeID string, since, until time.Time) (log []*engine.NodeStateChange, err error) {
	from, to := key(nodeID, timeKey(since)), key(nodeID, timeKey(until.Add(time.Microsecond)))
	err = s.view(ctx, func(tx *bbolt.Tx) (err error) {
		scanRange(tx.Bucket(bStateLogByAt), from, to, func(_, k []byte) bool {
			var c *engine.NodeStateChange
			if c, err = stateLog.get(tx, k); err == nil && !c.At.Before(since) && c.At.Before(until) {
				log = append(log, c)
			}
			return err == nil
		})
		return err
	})
	slices.SortFunc(log, func(a, b *engine.NodeStateChange) int { return cmp.Compare(a.Seq, b.Seq) })
	return log, err
}

var stateLog = kind[engine.NodeStateChange]{name: "state change", bucket: bStateLog}

var tokens = kind[engine.EnrollmentToken]{
	name: "enrollment token", bucket: bTokens, secret: true,
	key: func(t *engine.EnrollmentToken) []byte { return t.Hash },
}

func (s *Store) CreateEnrollmentToken(ctx context.Context, t *engine.EnrollmentToken) error {
	return s.update(ctx, func(tx *bbolt.Tx) error { return tokens.insert(tx, t) })
}

func (s *Store) ConsumeEnrollmentToken(ctx context.Context, hash, keyFingerprint []byte, now time.Time) (*engine.EnrollmentToken, error) {
	var used *engine.EnrollmentToken
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		return tokens.change(tx, hash, func(t *engine.EnrollmentToken) error {
			switch {
			case !now.Before(t.ExpiresAt):
				return engine.Errorf(engine.EForbidden, "enrollment token expired")
			case t.UsedAt.IsZero():
				t.UsedAt, t.KeyFingerprint = now, bytes.Clone(keyFingerprint)
			case len(keyFingerprint) == 0 || !bytes.Equal(t.KeyFingerprint, keyFingerprint):
				return engine.Errorf(engine.EConflict, "enrollment token already used")
			}
			used = t
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return used, nil
}

var agents = kind[engine.AgentRegistration]{
	name: "agent registration", bucket: bAgents,
	key: func(r *engine.AgentRegistration) []byte { return key(r.NodeID) },
}

func (s *Store) PutAgentRegistration(ctx context.Context, r *engine.AgentRegistration) error {
	return s.update(ctx, func(tx *bbolt.Tx) error { return agents.upsert(tx, r) })
}

func (s *Store) GetAgentRegistration(ctx context.Context, nodeID string) (*engine.AgentRegistration, error) {
	return getOne(ctx, s, agents, key(nodeID))
}

func (s *Store) RevokeAgentRegistration(ctx context.Context, nodeID string, at time.Time) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		return agents.change(tx, key(nodeID), func(r *engine.AgentRegistration) error {
			r.RevokedAt = at
			return nil
		})
	})
}

var commands = kind[engine.Command]{
	name: "command", bucket: bCommands,
	key:     func(c *engine.Command) []byte { return key(c.ID) },
	version: func(c *engine.Command) *int64 { return &c.Version },
	indexes: func(c *engine.Command) []index {
		return []index{
			{bucket: bCmdsByNode, key: key(c.NodeID, string(c.Status), timeKey(c.CreatedAt), c.ID)},
			{bucket: bCmdsByStatus, key: key(string(c.Status), timeKey(c.CreatedAt), c.ID)},
		}
	},
}

func (s *Store) CreateCommand(ctx context.Context, c *engine.Command) error {
	return create(ctx, s, commands, c)
}

func (s *Store) GetCommand(ctx context.Context, id string) (*engine.Command, error) {
	return getOne(ctx, s, commands, key(id))
}

func (s *Store) UpdateCommand(ctx context.Context, c *engine.Command) error {
	return replaceVersioned(ctx, s, commands, c, nil)
}

// ListCommandsByNode reads the (node, status) index once per status asked
// for, or the node's whole range, and merges by creation time.
func (s *Store) ListCommandsByNode(ctx context.Context, nodeID string, statuses ...engine.CommandStatus) (cs []*engine.Command, err error) {
	prefixes := [][]byte{prefix(nodeID)}
	if len(statuses) > 0 {
		prefixes = prefixes[:0]
		for _, st := range statuses {
			prefixes = append(prefixes, prefix(nodeID, string(st)))
		}
	}
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		for _, p := range prefixes {
			some, err := commands.list(tx, bCmdsByNode, p, nil, 0)
			if err != nil {
				return err
			}
			cs = append(cs, some...)
		}
		return nil
	})
	slices.SortFunc(cs, func(a, b *engine.Command) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return cs, err
}

func (s *Store) ListCommandsByStatus(ctx context.Context, status engine.CommandStatus, limit int) (cs []*engine.Command, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		cs, err = commands.list(tx, bCmdsByStatus, prefix(string(status)), nil, limit)
		return err
	})
	return cs, err
}

var nodeKeys = kind[engine.NodeKey]{
	name: "node key", bucket: bNodeKeys,
	key: func(k *engine.NodeKey) []byte { return key(k.NodeID, k.Name) },
}

func (s *Store) PutNodeKey(ctx context.Context, k *engine.NodeKey) error {
	return s.update(ctx, func(tx *bbolt.Tx) error { return nodeKeys.upsert(tx, k) })
}

func (s *Store) GetNodeKey(ctx context.Context, nodeID, name string) (*engine.NodeKey, error) {
	return getOne(ctx, s, nodeKeys, key(nodeID, name))
}

func (s *Store) ListNodeKeys(ctx context.Context, nodeID string) (ks []*engine.NodeKey, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		ks, err = nodeKeys.own(tx, prefix(nodeID))
		return err
	})
	return ks, err
}

func (s *Store) DeleteNodeKeys(ctx context.Context, nodeID string) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bNodeKeys)
		for _, k := range keysUnder(b, prefix(nodeID)) {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

var inputs = kind[engine.ProvisioningInput]{
	name: "input", bucket: bInputs,
	key: func(in *engine.ProvisioningInput) []byte { return key(in.SubscriptionID, in.Name) },
}

func (s *Store) PutInput(ctx context.Context, in *engine.ProvisioningInput) error {
	return s.update(ctx, func(tx *bbolt.Tx) error { return inputs.upsert(tx, in) })
}

func (s *Store) ListInputs(ctx context.Context, subscriptionID string) (ins []*engine.ProvisioningInput, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		ins, err = inputs.own(tx, prefix(subscriptionID))
		return err
	})
	return ins, err
}

func (s *Store) MarkInputsApplied(ctx context.Context, subscriptionID string, at time.Time) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		ins, err := inputs.own(tx, prefix(subscriptionID))
		for _, in := range ins {
			in.Status, in.UpdatedAt = engine.InputApplied, at
			if err == nil {
				err = inputs.write(tx, nil, in)
			}
		}
		return err
	})
}
