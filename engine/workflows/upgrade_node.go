package workflows

import (
	"fmt"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"go.temporal.io/sdk/workflow"
)

// UpgradeNodeInput starts UpgradeNodeWorkflow: one node of a rollout to
// Target, or back to its previous release when Rollback.
type UpgradeNodeInput struct {
	RolloutID     string
	NodeID        string
	Batch         int // the node's batch in the rollout (its record's key)
	Component     string
	Target        engine.Release
	ConfigChanges []engine.ConfigChange `json:",omitempty"`
	TargetHeight  int64                 `json:",omitempty"`
	HealthWait    time.Duration
	Rollback      bool `json:",omitempty"`
}

// NodeUpgradeResult is how one node's upgrade ended.
type NodeUpgradeResult struct {
	Status engine.RolloutStatus // succeeded, skipped, failed, rolled_back
	Error  string               `json:",omitempty"`
}

// The phases of a node's upgrade, as events.node.*.upgrade_phase_changed
// names them.
const (
	phasePrecheck    = "precheck"
	phaseMaintenance = "maintenance"
	phaseUpgrading   = "upgrading"
	phaseHealth      = "health_validation"
	phaseDone        = "done"
	phaseFailed      = "failed"
)

// UpgradeNodeWorkflow upgrades one component of one node: it checks the
// node may be upgraded, puts it in maintenance, has its agent run the
// upgrade (which compensates on the host if a step fails), records the new
// release on the node and validates its health. It never fails as a
// workflow: the result says how the node came out, for the rollout to
// count.
func UpgradeNodeWorkflow(ctx workflow.Context, in UpgradeNodeInput) (NodeUpgradeResult, error) {
	var pre NodePrecheck
	if err := run(ctx, quick, &pre, acts.PreCheckNode, in); err != nil {
		return markNode(ctx, in, engine.RolloutFailed, fmt.Sprintf("precheck: %v", err)), nil
	}
	if pre.AtTarget {
		return markNode(ctx, in, engine.RolloutSkipped, "already at "+in.Target.Version), nil
	}
	phase(ctx, in, pre, phaseMaintenance)
	reason := fmt.Sprintf("upgrade %s to %s (rollout %s)", in.Component, in.Target.Version, in.RolloutID)
	if err := run(ctx, quick, nil, acts.SetNodeState, stateChange(in.NodeID, engine.NodeMaintenance, reason)); err != nil {
		return markNode(ctx, in, engine.RolloutFailed, fmt.Sprintf("enter maintenance: %v", err)), nil
	}
	phase(ctx, in, pre, phaseUpgrading)
	req := CommandRequest{NodeID: in.NodeID, Upgrade: &UpgradePlan{
		RolloutID: in.RolloutID, Component: in.Component, Target: in.Target, Previous: pre.Current,
		ConfigChanges: in.ConfigChanges, TargetHeight: in.TargetHeight,
	}}
	waitFor := upgrade
	if in.TargetHeight > 0 {
		waitFor = longRun // staged until the chain reaches the height
	}
	started := workflow.Now(ctx) // RecordNodeUpgrade reads the commands sent since
	cmdErr := awaitRequestWith(ctx, acts.SendUpgradeCommand, req, "upgrade", waitFor)
	var done UpgradeDone
	report := UpgradeReport{Input: in, Previous: pre, Started: started}
	if cmdErr != nil {
		report.Error = cmdErr.Error()
	}
	if err := run(ctx, quick, &done, acts.RecordNodeUpgrade, report); err != nil {
		// The node must not stay in maintenance, where nothing watches it.
		_ = run(ctx, critical, nil, acts.SetNodeState, stateChange(in.NodeID, engine.NodeDegraded, "upgrade outcome not recorded"))
		_ = run(ctx, quick, nil, acts.OpenIncident, IncidentRequest{NodeID: in.NodeID, DedupeKey: "upgrade-unrecorded",
			Severity: engine.SeverityCritical, Summary: summary("the outcome of upgrading "+in.Component+" to "+in.Target.Version+" was not recorded", err)})
		return markNode(ctx, in, engine.RolloutFailed, fmt.Sprintf("record the upgrade: %v", err)), nil
	}
	if cmdErr != nil {
		phase(ctx, in, pre, phaseFailed)
		return markNode(ctx, in, engine.RolloutFailed, done.Error), nil
	}
	phase(ctx, in, pre, phaseHealth)
	check := HealthCheck{NodeID: in.NodeID, Since: done.At, Wait: in.HealthWait}
	if err := run(ctx, healthValidation(in.HealthWait), nil, acts.WaitForHealthValidation, check); err != nil {
		_ = run(ctx, quick, nil, acts.SetNodeState, stateChange(in.NodeID, engine.NodeDegraded, "unhealthy after upgrade to "+in.Target.Version))
		phase(ctx, in, pre, phaseFailed)
		return markNode(ctx, in, engine.RolloutFailed, fmt.Sprintf("health validation: %v", err)), nil
	}
	_ = run(ctx, quick, nil, acts.SetNodeState, stateChange(in.NodeID, engine.NodeRunning, "healthy after upgrade to "+in.Target.Version))
	phase(ctx, in, pre, phaseDone)
	status := engine.RolloutSucceeded
	if in.Rollback {
		status = engine.RolloutRolledBack
	}
	return markNode(ctx, in, status, ""), nil
}

// markNode records the node's outcome in the rollout and returns it.
func markNode(ctx workflow.Context, in UpgradeNodeInput, status engine.RolloutStatus, msg string) NodeUpgradeResult {
	if in.Rollback && status == engine.RolloutSkipped {
		status = engine.RolloutRolledBack // back at its previous release already
	}
	res := NodeUpgradeResult{Status: status, Error: msg}
	if in.Rollback && status == engine.RolloutFailed {
		msg = "rollback: " + msg
	}
	if err := run(ctx, quick, nil, acts.MarkNodeUpgrade, NodeMark{RolloutID: in.RolloutID, NodeID: in.NodeID, Batch: in.Batch, Status: status, Error: msg, Rollback: in.Rollback}); err != nil {
		workflow.GetLogger(ctx).Error("record a node's upgrade outcome", "node_id", in.NodeID, "error", err)
	}
	return res
}

// phase announces a node's upgrade phase; an announcement lost is logged.
func phase(ctx workflow.Context, in UpgradeNodeInput, pre NodePrecheck, name string) {
	ev := PhaseEvent{NodeID: in.NodeID, RolloutID: in.RolloutID, Component: in.Component, From: pre.Current.Version, To: in.Target.Version, Phase: name}
	if err := run(ctx, quick, nil, acts.PublishUpgradePhase, ev); err != nil {
		workflow.GetLogger(ctx).Warn("announce an upgrade phase", "node_id", in.NodeID, "phase", name, "error", err)
	}
}

// healthValidation is the activity profile of one node's health check
// after its upgrade: as long as the rollout's health wait, tried once.
func healthValidation(wait time.Duration) activityProfile {
	return activityProfile{startToClose: wait + time.Minute, heartbeat: beatTimeout, attempts: 1}
}
