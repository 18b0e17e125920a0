package engine

import (
	"context"
	"time"
)

// NodeState is the canonical state of a node.
type NodeState string

const (
	NodeProvisioning NodeState = "provisioning"
	NodeSyncing      NodeState = "syncing"
	NodeRunning      NodeState = "running"
	NodeDegraded     NodeState = "degraded"
	NodeMaintenance  NodeState = "maintenance"
	NodeFailed       NodeState = "failed"
	NodeTerminating  NodeState = "terminating"
	NodeTerminated   NodeState = "terminated"
)

// NodeStates lists every state, in lifecycle order.
var NodeStates = []NodeState{
	NodeProvisioning, NodeSyncing, NodeRunning, NodeDegraded,
	NodeMaintenance, NodeFailed, NodeTerminating, NodeTerminated,
}

// nodeTransitions is the state machine: a node may only move along these.
var nodeTransitions = map[NodeState][]NodeState{
	NodeProvisioning: {NodeSyncing, NodeRunning, NodeFailed, NodeTerminating},
	NodeSyncing:      {NodeRunning, NodeDegraded, NodeMaintenance, NodeFailed, NodeTerminating},
	NodeRunning:      {NodeSyncing, NodeDegraded, NodeMaintenance, NodeFailed, NodeTerminating},
	NodeDegraded:     {NodeSyncing, NodeRunning, NodeMaintenance, NodeFailed, NodeTerminating},
	NodeMaintenance:  {NodeSyncing, NodeRunning, NodeDegraded, NodeFailed, NodeTerminating},
	NodeFailed:       {NodeProvisioning, NodeMaintenance, NodeTerminating},
	NodeTerminating:  {NodeTerminated, NodeFailed},
}

// Valid reports whether s is a canonical state.
func (s NodeState) Valid() bool {
	for _, v := range NodeStates {
		if s == v {
			return true
		}
	}
	return false
}

// CanBecome reports whether a node may move from s to next.
func (s NodeState) CanBecome(next NodeState) bool {
	for _, v := range nodeTransitions[s] {
		if v == next {
			return true
		}
	}
	return false
}

// Host is the machine a node runs on, as its provisioner describes it.
type Host struct {
	Provider     string // "local", "hetzner"
	ProviderID   string // the provider's id for the machine
	Address      string
	Region       string
	InstanceType string
}

// NodeRuntime is what the node's host reported when it configured the
// chain: the ports it allocated and the digests of the artifacts it runs.
type NodeRuntime struct {
	Ports     map[string]int    `json:"ports,omitempty"`     // by the chain profile's port names
	Artifacts map[string]string `json:"artifacts,omitempty"` // component → lowercase hex SHA-256
	// Releases are the components an upgrade replaced, by name: a later
	// CONFIGURE (a migration) installs these, not the profile's.
	Releases map[string]Release `json:"releases,omitempty"`
	// LastUpgrade is the node's latest upgrade and how it went.
	LastUpgrade *UpgradeRecord `json:"last_upgrade,omitempty"`
}

// UpgradeRecord is one upgrade of a node's component, for people.
type UpgradeRecord struct {
	RolloutID string `json:"rollout_id"`
	Component string `json:"component"`
	From      string `json:"from"`
	To        string `json:"to"`
	// Outcome: succeeded, rolled_back (the agent put the old release
	// back), failed_rollback (it could not: a person must look), failed.
	Outcome string    `json:"outcome"`
	Error   string    `json:"error,omitempty"`
	At      time.Time `json:"at"`
}

// MigrationRecord is the node's last migration, step by step, for people.
type MigrationRecord struct {
	ID    string          `json:"id,omitempty"` // the migration's run
	Steps []MigrationStep `json:"steps,omitempty"`
}

// MigrationStep is one step of a migration and what came of it.
type MigrationStep struct {
	Step string    `json:"step"`
	Note string    `json:"note,omitempty"`
	At   time.Time `json:"at"`
}

// Node is one chain node of a subscription.
type Node struct {
	ID             string
	SubscriptionID string // unique: one node per subscription
	OwnerID        string // the subscription's user
	ChainProfileID string
	NodeType       string
	State          NodeState
	Host           Host
	AgentVersion   string
	BinaryVersion  string
	Runtime        NodeRuntime // what the host made of the node's configuration
	LastMigration  MigrationRecord
	LastSeenAt     time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
	Version        int64
}

// NodeStateChange is one entry of a node's append-only state log.
type NodeStateChange struct {
	NodeID string
	Seq    int64 // per node, from 1, assigned by the store
	From   NodeState
	To     NodeState
	Reason string
	At     time.Time
}

// NodeStore keeps nodes and their state log. Safe for concurrent use.
type NodeStore interface {
	// CreateNode stores n with Version 1 and logs its initial state (From "").
	// Returns EConflict if the ID or the subscription is taken.
	CreateNode(ctx context.Context, n *Node) error
	// GetNode returns ENotFound if missing.
	GetNode(ctx context.Context, id string) (*Node, error)
	// GetNodeBySubscription returns ENotFound if the subscription has no node.
	GetNodeBySubscription(ctx context.Context, subscriptionID string) (*Node, error)
	// ListNodesByOwner returns the owner's nodes ordered by ID, after the
	// cursor (an ID, "" for the start), at most limit.
	ListNodesByOwner(ctx context.Context, ownerID, after string, limit int) ([]*Node, error)
	// ListNodesByState returns nodes in state ordered by ID, after the cursor.
	ListNodesByState(ctx context.Context, state NodeState, after string, limit int) ([]*Node, error)
	// ListNodesByChain returns nodes of a chain profile ordered by ID, after the cursor.
	ListNodesByChain(ctx context.Context, chainProfileID, after string, limit int) ([]*Node, error)
	// UpdateNode writes every field but State if n.Version matches, then bumps
	// it. Returns ENotFound or EConflict.
	UpdateNode(ctx context.Context, n *Node) error
	// ChangeNodeState moves the node to c.To and appends c to the log in one
	// transaction, if the stored version is version. It fills c.From and c.Seq
	// and returns the updated node. Returns ENotFound, EConflict for a stale
	// version, EInvalid if the state machine forbids the move.
	ChangeNodeState(ctx context.Context, version int64, c *NodeStateChange) (*Node, error)
	// TouchNode sets LastSeenAt (and AgentVersion when not empty) without
	// bumping the version: heartbeats must not conflict with state changes.
	TouchNode(ctx context.Context, id string, seen time.Time, agentVersion string) error
	// ListNodeStateLog returns the node's changes with since <= At < until,
	// oldest first (by Seq).
	ListNodeStateLog(ctx context.Context, nodeID string, since, until time.Time) ([]*NodeStateChange, error)
}
