package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// transitionAttempts bounds the re-reads after a stale version: other
// writers (UpdateNode, other transitions) race with ours, and each retry
// sees the newer version.
const transitionAttempts = 5

// ErrNotAnnounced is in the chain of TransitionNode's error when the state
// change was stored but its announcement failed. The change is durable (the
// state log is the truth; announcements are fire-and-forget anyway), so a
// caller may treat it as success: errors.Is(err, ErrNotAnnounced).
var ErrNotAnnounced = errors.New("node state changed but not announced")

// NodeStateChanged is the JSON body announced on NodeStateChangedSubject.
type NodeStateChanged struct {
	NodeID string    `json:"node_id"`
	From   NodeState `json:"from"`
	To     NodeState `json:"to"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// TransitionNode is the one way a node changes state: it reads the node,
// checks the state machine, stores the change with its log entry at now
// against the version it read (re-reading and retrying a few times when
// another writer got there first), then announces a NodeStateChanged on
// NodeStateChangedSubject. Moving a node to the state it is in is a no-op
// that returns the node and announces nothing, so retried activities are
// safe. Returns ENotFound, EInvalid naming from and to if the state machine
// forbids the move, EConflict if every attempt met a newer version, or the
// stored node with an error wrapping ErrNotAnnounced if only the
// announcement failed.
func TransitionNode(ctx context.Context, nodes NodeStore, events Events, nodeID string, to NodeState, reason string, now time.Time) (*Node, error) {
	if !to.Valid() {
		return nil, Errorf(EInvalid, "unknown node state %q", to)
	}
	return transitionNode(ctx, nodes, events, nodeID, nil, to, reason, now)
}

// TransitionNodeFrom is TransitionNode for a writer that owns only some
// states: it moves the node only while it is in one of from, and returns
// EConflict naming the state it found otherwise. The health evaluator
// uses it so that a node a workflow took over (maintenance, terminating)
// is never moved under the workflow's feet.
func TransitionNodeFrom(ctx context.Context, nodes NodeStore, events Events, nodeID string, from []NodeState, to NodeState, reason string, now time.Time) (*Node, error) {
	if !to.Valid() {
		return nil, Errorf(EInvalid, "unknown node state %q", to)
	}
	return transitionNode(ctx, nodes, events, nodeID, from, to, reason, now)
}

func transitionNode(ctx context.Context, nodes NodeStore, events Events, nodeID string, from []NodeState, to NodeState, reason string, now time.Time) (*Node, error) {
	c, n, err := changeNodeState(ctx, nodes, nodeID, from, to, reason, now)
	if err != nil || c == nil {
		return n, err
	}
	if err := announceStateChange(ctx, events, c); err != nil {
		return n, fmt.Errorf("%w: %w", ErrNotAnnounced, err)
	}
	return n, nil
}

// changeNodeState stores the move and returns the log entry, or a nil entry
// when the node is already in state to. A non-nil from restricts the
// states the move may start from.
func changeNodeState(ctx context.Context, nodes NodeStore, nodeID string, from []NodeState, to NodeState, reason string, now time.Time) (*NodeStateChange, *Node, error) {
	var err error
	for range transitionAttempts {
		var n *Node
		if n, err = nodes.GetNode(ctx, nodeID); err != nil {
			return nil, nil, fmt.Errorf("read node %s: %w", nodeID, err)
		}
		if n.State == to {
			return nil, n, nil
		}
		if from != nil && !slices.Contains(from, n.State) {
			return nil, n, Errorf(EConflict, "node %s is %s, not moved to %s", nodeID, n.State, to)
		}
		if !n.State.CanBecome(to) {
			return nil, nil, Errorf(EInvalid, "node %s cannot go from %s to %s", nodeID, n.State, to)
		}
		// The store fills From too; the read state is the same one, since
		// the version matched.
		c := &NodeStateChange{NodeID: nodeID, From: n.State, To: to, Reason: reason, At: now}
		n, err = nodes.ChangeNodeState(ctx, n.Version, c)
		if err == nil {
			return c, n, nil
		}
		if !IsCode(err, EConflict) || errors.Is(err, ErrStaleLeader) {
			return nil, nil, fmt.Errorf("change node %s to %s: %w", nodeID, to, err)
		}
	}
	return nil, nil, fmt.Errorf("change node %s to %s after %d attempts: %w", nodeID, to, transitionAttempts, err)
}

func announceStateChange(ctx context.Context, events Events, c *NodeStateChange) error {
	body, err := json.Marshal(NodeStateChanged{NodeID: c.NodeID, From: c.From, To: c.To, Reason: c.Reason, At: c.At})
	if err != nil {
		return err
	}
	return events.Announce(ctx, NodeStateChangedSubject(c.NodeID), body)
}
