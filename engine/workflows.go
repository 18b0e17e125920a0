package engine

import "context"

// Workflows starts and steers the long-running processes of the control
// plane. Workflow ids derive from domain ids, so starting the same process
// twice is a no-op, never a second run. Adapter: Temporal (embedded dev
// server or an external cluster). Safe for concurrent use.
type Workflows interface {
	// StartProvision turns an active subscription into a running node.
	// Starting it again for the same subscription is a no-op.
	// Returns EUnavailable when the workflow engine cannot be reached.
	StartProvision(ctx context.Context, subscriptionID string) error
	// StartTerminate takes the node away (best effort, see the workflow).
	// Starting it again for the same node is a no-op.
	StartTerminate(ctx context.Context, nodeID, reason string) error
	// StartMigrate moves the node to a new host. ENotFound if the node is missing.
	StartMigrate(ctx context.Context, nodeID string) error
	// ConfirmSignerStopped tells the node's running migration, waiting on
	// an old host that cannot confirm its signer stopped, that an operator
	// (by, a user id) vouches it did. ENotFound when no migration of the
	// node is running.
	ConfirmSignerStopped(ctx context.Context, nodeID, by string) error
}

// RolloutWorkflows runs upgrade rollouts. The Temporal adapter of
// Workflows is one. Safe for concurrent use.
type RolloutWorkflows interface {
	// StartRollout runs the rollout (created pending in the Store); a
	// rollout already running is left alone. With rollback, a finished
	// rollout puts back every node it upgraded.
	StartRollout(ctx context.Context, rolloutID string, rollback bool) error
	// StartRolloutGroup runs the group (created pending in the Store).
	StartRolloutGroup(ctx context.Context, groupID string) error
	// SignalRollout sends a signal to a running rollout (component: what a
	// group's skip skips); ENotFound when it is not running.
	SignalRollout(ctx context.Context, rolloutID string, sig RolloutSignal) error
	// SignalRolloutGroup is SignalRollout for a group.
	SignalRolloutGroup(ctx context.Context, groupID string, sig RolloutSignal, component string) error
}
