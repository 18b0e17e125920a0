package engine

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// RolloutStatus is where a rollout, a rollout group or one node of a
// rollout is.
type RolloutStatus string

const (
	RolloutPending   RolloutStatus = "pending"
	RolloutRunning   RolloutStatus = "running"
	RolloutPaused    RolloutStatus = "paused"
	RolloutSucceeded RolloutStatus = "succeeded"
	RolloutFailed    RolloutStatus = "failed"
	RolloutCancelled RolloutStatus = "cancelled"
	// RolloutAwaitingApproval: a canary of a breaking upgrade passed and
	// the rollout waits for approve_canary.
	RolloutAwaitingApproval RolloutStatus = "awaiting_approval"
	// RolloutRollingBack: succeeded nodes are being put back.
	RolloutRollingBack RolloutStatus = "rolling_back"
	// RolloutRolledBack: every node that was upgraded runs its previous
	// release again (a node's status: it was put back).
	RolloutRolledBack RolloutStatus = "rolled_back"
	// RolloutSkipped: a node already at the target, or a group's component
	// skipped by a signal.
	RolloutSkipped RolloutStatus = "skipped"
)

// Finished reports whether the rollout will not change again unless an
// operator starts a rollback.
func (s RolloutStatus) Finished() bool {
	switch s {
	case RolloutSucceeded, RolloutFailed, RolloutCancelled, RolloutRolledBack, RolloutSkipped:
		return true
	}
	return false
}

// Strategies of a rollout.
const (
	StrategyRolling   = "rolling"
	StrategyCanary    = "canary"
	StrategyAllAtOnce = "all_at_once"
	// StrategyAtHeight: every node stages the release, then switches when
	// its chain reaches UpgradeSpec.TargetHeight.
	StrategyAtHeight = "at_height"
)

// Strategies lists every strategy.
var Strategies = []string{StrategyRolling, StrategyCanary, StrategyAllAtOnce, StrategyAtHeight}

// State compatibility of a release with the chain data of the one before.
const (
	Compatible = "compatible"
	Breaking   = "breaking"
)

// Failure policies of a rollout group.
const (
	PolicyPartialOK   = "partial_ok"
	PolicyRollbackAll = "rollback_all"
	PolicyManual      = "manual"
)

// What a failing gate does to a rollout.
const (
	GatePause    = "pause"
	GateRollback = "rollback"
)

// Release is one component at one version: what a node runs before or
// after an upgrade.
type Release struct {
	Version string `json:"version"`
	// URL and SHA256 name the artifact; an empty URL keeps the program
	// the node runs (a change of command line or configuration only).
	URL    string `json:"url,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Binary is the program's path inside an archive artifact.
	Binary string `json:"binary,omitempty"`
	// Args replaces the component's command line (templates, as in the
	// chain profile); empty keeps it.
	Args []string `json:"args,omitempty"`
}

// ConfigChange is a file an upgrade writes in the chain data dir: a
// text/template over the node's recipe data, rendered on the host.
type ConfigChange struct {
	Path     string `json:"path"`
	Template string `json:"template"`
	Mode     uint32 `json:"mode,omitempty"` // default 0600
}

// UpgradeSpec is what a rollout installs: from a manifest in auto mode,
// from the operator in manual mode.
type UpgradeSpec struct {
	UpgradeID     string         `json:"upgrade_id,omitempty"` // the manifest's; empty in manual mode
	Release       Release        `json:"release"`
	Compatibility string         `json:"compatibility"` // compatible | breaking
	ConfigChanges []ConfigChange `json:"config_changes,omitempty"`
	// TargetHeight is the chain height the at_height strategy switches at.
	TargetHeight int64 `json:"target_height,omitempty"`
}

// RolloutPlan is how a rollout goes about it, beyond its strategy.
type RolloutPlan struct {
	// HealthWait bounds each node's health validation after its upgrade;
	// a canary is observed for twice as long.
	HealthWait time.Duration `json:"health_wait"`
	// Gates are CEL conditions over each upgraded node's facts (the health
	// policies' environment), checked after every batch.
	Gates []string `json:"gates,omitempty"`
	// GateFailure is what a failing gate does: pause (default) or rollback.
	GateFailure string `json:"gate_failure,omitempty"`
}

// Rollout upgrades one component of a chain on many nodes in batches.
// Progress lives here, not in workflow state.
type Rollout struct {
	ID               string
	GroupID          string // empty for a standalone rollout
	ChainProfileID   string
	Component        string
	TargetVersion    string
	Strategy         string
	BatchSize        int
	CanarySize       int
	FailureThreshold int // failed nodes that stop the rollout
	Status           RolloutStatus
	CurrentBatch     int
	Batches          int // known once the targets are resolved
	Succeeded        int
	Failed           int
	ManifestHash     string // sha256 of the manifest's bytes; empty in manual mode
	Spec             UpgradeSpec
	Plan             RolloutPlan
	// Message says why the rollout is where it is (a paused rollout's
	// reason, a failed one's error), for people.
	Message   string
	Forced    bool // the failure threshold no longer stops it
	CreatedBy string
	CreatedAt time.Time
	UpdatedAt time.Time
	Version   int64
}

// RolloutNode is one node's part in a rollout.
type RolloutNode struct {
	RolloutID       string
	NodeID          string
	BatchIndex      int
	Status          RolloutStatus
	PreviousVersion string
	// Previous is the release the node ran before, which a rollback
	// installs again.
	Previous   Release
	NewVersion string
	// SwitchHeight is the chain height the node switched at (at_height),
	// as its agent saw it.
	SwitchHeight int64
	Error        string
	UpdatedAt    time.Time
}

// RolloutGroup upgrades the components of a multi-binary chain in order.
type RolloutGroup struct {
	ID             string
	ChainProfileID string
	Components     []string
	FailurePolicy  string
	Status         RolloutStatus
	// Rollouts are the group's rollouts, one per component, in order.
	Rollouts  []string
	Current   int // index of the component being rolled out
	Skipped   []string
	Message   string
	CreatedBy string
	CreatedAt time.Time
	UpdatedAt time.Time
	Version   int64
}

// RolloutStore keeps rollouts, their nodes and groups. Safe for concurrent use.
type RolloutStore interface {
	// CreateRollout returns EConflict if the ID is taken.
	CreateRollout(ctx context.Context, r *Rollout) error
	// GetRollout returns ENotFound if missing.
	GetRollout(ctx context.Context, id string) (*Rollout, error)
	// UpdateRollout writes r if the version matches, then bumps it. ENotFound or EConflict.
	UpdateRollout(ctx context.Context, r *Rollout) error
	// ListRollouts returns rollouts newest first (by CreatedAt, then ID
	// descending), those created before the cursor rollout (its ID, ""
	// for the start), at most limit.
	ListRollouts(ctx context.Context, before string, limit int) ([]*Rollout, error)
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
	// ListRolloutGroups returns groups newest first, like ListRollouts.
	ListRolloutGroups(ctx context.Context, before string, limit int) ([]*RolloutGroup, error)
}

// RolloutSignal is an operator's instruction to a running rollout or group.
type RolloutSignal string

const (
	SignalPause         RolloutSignal = "pause"
	SignalResume        RolloutSignal = "resume"
	SignalCancel        RolloutSignal = "cancel"
	SignalForce         RolloutSignal = "force"
	SignalApproveCanary RolloutSignal = "approve_canary"
	SignalRollback      RolloutSignal = "rollback"
	SignalSkip          RolloutSignal = "skip" // groups only
)

// rolloutSignalsIn lists the signals that make sense in each status.
var rolloutSignalsIn = map[RolloutStatus][]RolloutSignal{
	RolloutPending:          {SignalCancel, SignalPause},
	RolloutRunning:          {SignalPause, SignalCancel, SignalForce, SignalRollback},
	RolloutPaused:           {SignalResume, SignalCancel, SignalForce, SignalRollback},
	RolloutAwaitingApproval: {SignalApproveCanary, SignalCancel, SignalRollback},
}

// groupSignalsIn is rolloutSignalsIn for groups.
var groupSignalsIn = map[RolloutStatus][]RolloutSignal{
	RolloutPending: {SignalCancel, SignalPause, SignalSkip},
	RolloutRunning: {SignalPause, SignalCancel, SignalRollback, SignalSkip},
	RolloutPaused:  {SignalResume, SignalCancel, SignalRollback, SignalSkip},
}

// CheckRolloutSignal returns EConflict, naming the status, when sig makes
// no sense for a rollout in status s, and EInvalid for an unknown signal.
func CheckRolloutSignal(s RolloutStatus, sig RolloutSignal) error {
	return checkSignal("rollout", rolloutSignalsIn, s, sig)
}

// CheckGroupSignal is CheckRolloutSignal for a rollout group.
func CheckGroupSignal(s RolloutStatus, sig RolloutSignal) error {
	return checkSignal("rollout group", groupSignalsIn, s, sig)
}

func checkSignal(what string, table map[RolloutStatus][]RolloutSignal, s RolloutStatus, sig RolloutSignal) error {
	known := false
	for _, sigs := range table {
		known = known || slices.Contains(sigs, sig)
	}
	if !known {
		return Errorf(EInvalid, "%s has no signal %q", what, sig)
	}
	if !slices.Contains(table[s], sig) {
		return Errorf(EConflict, "cannot %s a %s that is %s", sig, what, s)
	}
	return nil
}

// RolloutID and friends name the workflows of a rollout.
func RolloutWorkflowID(rolloutID string) string    { return "rollout-" + rolloutID }
func RolloutGroupWorkflowID(groupID string) string { return "rollout-group-" + groupID }
func UpgradeNodeWorkflowID(rolloutID, nodeID string) string {
	return fmt.Sprintf("upgrade-%s-%s", rolloutID, nodeID)
}

// Rollout event subjects.
func RolloutEventSubject(rolloutID, event string) string {
	return "events.rollout." + rolloutID + "." + event
}

func NodeUpgradeEventSubject(nodeID, event string) string {
	return "events.node." + nodeID + "." + event
}

// RolloutEvent is the body of every events.rollout.* message.
type RolloutEvent struct {
	RolloutID    string        `json:"rollout_id"`
	GroupID      string        `json:"group_id,omitempty"`
	Status       RolloutStatus `json:"status"`
	Component    string        `json:"component"`
	Version      string        `json:"version"`
	CurrentBatch int           `json:"current_batch"`
	Batches      int           `json:"batches"`
	Succeeded    int           `json:"succeeded"`
	Failed       int           `json:"failed"`
	Message      string        `json:"message,omitempty"`
	At           time.Time     `json:"at"`
}

// NodeUpgradeEvent is the body of events.node.*.upgrade_* messages.
type NodeUpgradeEvent struct {
	NodeID    string    `json:"node_id"`
	RolloutID string    `json:"rollout_id"`
	Component string    `json:"component"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Phase     string    `json:"phase"`
	Error     string    `json:"error,omitempty"`
	At        time.Time `json:"at"`
}
