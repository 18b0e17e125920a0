package engine

import (
	"context"
	"time"
)

// RolloutStatus is where a rollout or a rollout group is.
type RolloutStatus string

const (
	RolloutPending   RolloutStatus = "pending"
	RolloutRunning   RolloutStatus = "running"
	RolloutPaused    RolloutStatus = "paused"
	RolloutSucceeded RolloutStatus = "succeeded"
	RolloutFailed    RolloutStatus = "failed"
	RolloutCancelled RolloutStatus = "cancelled"
)

// Rollout upgrades one component of a chain on many nodes in batches.
// Progress lives here, not in workflow state.
type Rollout struct {
	ID               string
	GroupID          string // empty for a standalone rollout
	ChainProfileID   string
	Component        string
	TargetVersion    string
	Strategy         string // rolling, canary, all_at_once
	BatchSize        int
	CanarySize       int
	FailureThreshold int // failed nodes that stop the rollout
	Status           RolloutStatus
	CurrentBatch     int
	Succeeded        int
	Failed           int
	ManifestHash     string
	CreatedAt        time.Time
	UpdatedAt        time.Time
	Version          int64
}

// RolloutNode is one node's part in a rollout.
type RolloutNode struct {
	RolloutID       string
	NodeID          string
	BatchIndex      int
	Status          RolloutStatus
	PreviousVersion string
	Error           string
	UpdatedAt       time.Time
}

// RolloutGroup upgrades the components of a multi-binary chain in order.
type RolloutGroup struct {
	ID             string
	ChainProfileID string
	Components     []string
	FailurePolicy  string // partial_ok, rollback_all, manual
	Status         RolloutStatus
	CreatedAt      time.Time
	UpdatedAt      time.Time
	Version        int64
}

// RolloutStore keeps rollouts, their nodes and groups. Safe for concurrent use.
type RolloutStore interface {
	// CreateRollout returns EConflict if the ID is taken.
	CreateRollout(ctx context.Context, r *Rollout) error
	// GetRollout returns ENotFound if missing.
	GetRollout(ctx context.Context, id string) (*Rollout, error)
	// UpdateRollout writes r if the version matches, then bumps it. ENotFound or EConflict.
	UpdateRollout(ctx context.Context, r *Rollout) error
	// PutRolloutNodes creates or replaces each (RolloutID, NodeID) in one transaction.
	PutRolloutNodes(ctx context.Context, ns []*RolloutNode) error
	// ListRolloutNodes returns the rollout's nodes of one batch (all when
	// batch < 0), ordered by batch then node ID.
	ListRolloutNodes(ctx context.Context, rolloutID string, batch int) ([]*RolloutNode, error)
	// CreateRolloutGroup returns EConflict if the ID is taken.
	CreateRolloutGroup(ctx context.Context, g *RolloutGroup) error
	// GetRolloutGroup returns ENotFound if missing.
	GetRolloutGroup(ctx context.Context, id string) (*RolloutGroup, error)
	// UpdateRolloutGroup writes g if the version matches, then bumps it. ENotFound or EConflict.
	UpdateRolloutGroup(ctx context.Context, g *RolloutGroup) error
}
