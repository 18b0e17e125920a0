package workflows

import (
	"fmt"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// RolloutSignalName is the one signal channel of rollouts and groups.
const RolloutSignalName = "rollout-signal"

// RolloutSignalRequest is an operator's signal; Component names what a
// group's skip skips.
type RolloutSignalRequest struct {
	Signal    engine.RolloutSignal
	Component string `json:",omitempty"`
}

// RolloutInput starts RolloutWorkflow, or continues it as new after a batch.
type RolloutInput struct {
	RolloutID string
	// Grouped: run by a group, whose failure policy decides; a reached
	// failure threshold fails the rollout instead of pausing it.
	Grouped bool `json:",omitempty"`
	// Rollback: only put back the nodes the rollout upgraded (an operator's
	// rollback of a finished rollout, or a group's rollback_all).
	Rollback bool          `json:",omitempty"`
	State    *RolloutState `json:",omitempty"`
}

// RolloutState is what a run hands to the next across continue-as-new:
// the next batch and the signals received and not yet acted on.
type RolloutState struct {
	Batch    int
	Batches  int
	Pause    bool `json:",omitempty"`
	Cancel   bool `json:",omitempty"`
	Rollback bool `json:",omitempty"`
	Forced   bool `json:",omitempty"`
}

// RolloutOutcome is how a rollout ended.
type RolloutOutcome struct {
	Status  engine.RolloutStatus
	Message string `json:",omitempty"`
}

// RolloutSpec is what the workflow reads of its rollout once per run.
type RolloutSpec struct {
	Rollout engine.Rollout
	Batches int
}

// RolloutWorkflow upgrades a component on every node of a chain in batches
// (rollout-{id}). Progress lives in the Store; the workflow continues as
// new after each batch, so its history stays bounded however many nodes
// there are. Signals: pause (after the current batch), resume, cancel (no
// new batch; the batch in flight finishes), force (the failure threshold
// no longer stops it), approve_canary, rollback (every upgraded node back
// to its previous release).
func RolloutWorkflow(ctx workflow.Context, in RolloutInput) (RolloutOutcome, error) {
	r := &rolloutRun{in: in, signals: workflow.GetSignalChannel(ctx, RolloutSignalName)}
	if in.State != nil {
		r.st = *in.State
	}
	if err := run(ctx, quick, &r.spec, acts.ResolveRolloutTargets, in.RolloutID); err != nil {
		return r.finish(ctx, engine.RolloutFailed, fmt.Sprintf("resolve targets: %v", err))
	}
	r.st.Batches = r.spec.Batches
	r.st.Forced = r.st.Forced || r.spec.Rollout.Forced
	if in.Rollback {
		return r.rollback(ctx)
	}
	if r.st.Batches == 0 {
		return r.finish(ctx, engine.RolloutSucceeded, "no node to upgrade")
	}
	return r.next(ctx)
}

type rolloutRun struct {
	in      RolloutInput
	st      RolloutState
	spec    RolloutSpec
	signals workflow.ReceiveChannel
}

func (r *rolloutRun) ro() *engine.Rollout { return &r.spec.Rollout }

// next runs the next batch, then decides what follows it.
func (r *rolloutRun) next(ctx workflow.Context) (RolloutOutcome, error) {
	r.drain()
	if out, done, err := r.between(ctx); done {
		return out, err
	}
	batch := r.st.Batch
	r.setStatus(ctx, engine.RolloutRunning, fmt.Sprintf("batch %d of %d", batch+1, r.st.Batches))
	if err := r.runBatch(ctx, batch, false); err != nil {
		return r.finish(ctx, engine.RolloutFailed, err.Error())
	}
	var p RolloutProgress
	if err := run(ctx, quick, &p, acts.UpdateRolloutProgress, ProgressRequest{RolloutID: r.in.RolloutID, Batch: batch}); err != nil {
		return r.finish(ctx, engine.RolloutFailed, fmt.Sprintf("record progress: %v", err))
	}
	if out, done, err := r.judge(ctx, batch, p); done {
		return out, err
	}
	r.st.Batch++
	if r.st.Batch >= r.st.Batches {
		r.drain()
		if r.st.Rollback {
			return r.rollback(ctx)
		}
		return r.finish(ctx, engine.RolloutSucceeded, completion(p))
	}
	r.drain()
	st := r.st
	return RolloutOutcome{}, workflow.NewContinueAsNewError(ctx, RolloutWorkflow, RolloutInput{RolloutID: r.in.RolloutID, Grouped: r.in.Grouped, State: &st})
}

// between acts on the signals received before a batch starts.
func (r *rolloutRun) between(ctx workflow.Context) (RolloutOutcome, bool, error) {
	for {
		switch {
		case r.st.Rollback:
			out, err := r.rollback(ctx)
			return out, true, err
		case r.st.Cancel:
			out, err := r.finish(ctx, engine.RolloutCancelled, "cancelled by an operator")
			return out, true, err
		case r.st.Pause:
			r.st.Pause = false
			r.hold(ctx, engine.RolloutPaused, "paused by an operator")
			continue
		}
		return RolloutOutcome{}, false, nil
	}
}

// judge applies the gates, the canary's observation and the failure
// threshold to the batch just run.
func (r *rolloutRun) judge(ctx workflow.Context, batch int, p RolloutProgress) (RolloutOutcome, bool, error) {
	ro := r.ro()
	var gate GateResult
	if err := run(ctx, quick, &gate, acts.EvaluateRolloutGate, ProgressRequest{RolloutID: r.in.RolloutID, Batch: batch}); err != nil {
		gate = GateResult{Reason: fmt.Sprintf("evaluate gates: %v", err)}
	}
	if gate.Passed && ro.Strategy == engine.StrategyCanary && batch == 0 {
		gate = r.observeCanary(ctx)
	}
	if !gate.Passed {
		if out, done, err := r.gateFailed(ctx, gate.Reason); done {
			return out, true, err
		}
	}
	if p.Failed >= ro.FailureThreshold && ro.FailureThreshold > 0 && !r.st.Forced {
		msg := fmt.Sprintf("failure threshold reached: %d nodes failed, threshold %d", p.Failed, ro.FailureThreshold)
		if r.in.Grouped {
			out, err := r.finish(ctx, engine.RolloutFailed, msg)
			return out, true, err
		}
		r.alert(ctx, msg)
		r.hold(ctx, engine.RolloutPaused, msg+": force to go on, rollback or cancel")
		if out, done, err := r.between(ctx); done {
			return out, true, err
		}
	}
	if ro.Strategy == engine.StrategyCanary && batch == 0 && ro.Spec.Compatibility == engine.Breaking {
		// Also past a failed gate an operator resumed: resume overrides
		// the gate, approval of a breaking upgrade is a decision of its own.
		msg := "canary healthy; a breaking upgrade waits for approve_canary"
		if !gate.Passed {
			msg = "canary resumed past its gate; a breaking upgrade waits for approve_canary"
		}
		r.hold(ctx, engine.RolloutAwaitingApproval, msg)
		if out, done, err := r.between(ctx); done {
			return out, true, err
		}
	}
	return RolloutOutcome{}, false, nil
}

// gateFailed pauses or rolls back, as the rollout's plan says.
func (r *rolloutRun) gateFailed(ctx workflow.Context, reason string) (RolloutOutcome, bool, error) {
	if r.ro().Plan.GateFailure == engine.GateRollback {
		r.st.Rollback = true
	} else {
		r.alert(ctx, "gate failed: "+reason)
		r.hold(ctx, engine.RolloutPaused, "gate failed: "+reason)
	}
	return r.between(ctx)
}

// observeCanary watches the canary batch for twice the health wait.
func (r *rolloutRun) observeCanary(ctx workflow.Context) GateResult {
	wait := 2 * r.ro().Plan.HealthWait
	var gate GateResult
	req := CanaryWatch{RolloutID: r.in.RolloutID, For: wait}
	if err := run(ctx, healthValidation(wait), &gate, acts.ValidateCanaryHealth, req); err != nil {
		return GateResult{Reason: fmt.Sprintf("canary: %v", err)}
	}
	return gate
}

// hold records status and waits for a signal that moves the rollout on:
// resume, force or approve_canary go on; cancel and rollback are left in
// the state for between.
func (r *rolloutRun) hold(ctx workflow.Context, status engine.RolloutStatus, msg string) {
	r.setStatus(ctx, status, msg)
	for {
		var s RolloutSignalRequest
		r.signals.Receive(ctx, &s)
		switch s.Signal {
		case engine.SignalResume:
			if status == engine.RolloutPaused {
				return
			}
		case engine.SignalForce:
			if status == engine.RolloutPaused {
				r.force(ctx)
				return
			}
		case engine.SignalApproveCanary:
			if status == engine.RolloutAwaitingApproval {
				return
			}
		case engine.SignalCancel:
			r.st.Cancel = true
			return
		case engine.SignalRollback:
			r.st.Rollback = true
			return
		}
	}
}

// alert opens an incident of the rollout (none of a node): it stopped and
// needs an operator.
func (r *rolloutRun) alert(ctx workflow.Context, why string) {
	req := IncidentRequest{DedupeKey: "rollout:" + r.in.RolloutID, Severity: engine.SeverityCritical,
		Summary: fmt.Sprintf("rollout %s of %s to %s stopped: %s", r.in.RolloutID, r.ro().Component, r.ro().TargetVersion, why)}
	if err := run(ctx, quick, nil, acts.OpenIncident, req); err != nil {
		workflow.GetLogger(ctx).Error("open a rollout's incident", "rollout_id", r.in.RolloutID, "error", err)
	}
}

// drain takes every signal waiting without blocking.
func (r *rolloutRun) drain() {
	for {
		var s RolloutSignalRequest
		if !r.signals.ReceiveAsync(&s) {
			return
		}
		switch s.Signal {
		case engine.SignalPause:
			r.st.Pause = true
		case engine.SignalResume:
			r.st.Pause = false
		case engine.SignalCancel:
			r.st.Cancel = true
		case engine.SignalRollback:
			r.st.Rollback = true
		case engine.SignalForce:
			r.st.Forced = true
		}
	}
}

func (r *rolloutRun) force(ctx workflow.Context) {
	r.st.Forced = true
	r.ro().Forced = true
	_ = run(ctx, quick, nil, acts.SetRolloutStatus, RolloutStatusChange{RolloutID: r.in.RolloutID, Status: engine.RolloutRunning, Message: "forced past the failure threshold", Forced: true})
}

// runBatch upgrades (or rolls back) the batch's nodes as child workflows
// and waits for all of them. It fails only when the batch cannot be
// listed: its nodes would be left as they are, unnoticed.
func (r *rolloutRun) runBatch(ctx workflow.Context, batch int, rollback bool) error {
	var nodes []*engine.RolloutNode
	req := BatchRequest{RolloutID: r.in.RolloutID, Batch: batch, Rollback: rollback}
	if err := run(ctx, quick, &nodes, acts.RolloutBatch, req); err != nil {
		return fmt.Errorf("list batch %d of %d: %w", batch+1, r.st.Batches, err)
	}
	var futures []workflow.ChildWorkflowFuture
	for _, n := range nodes {
		in := r.nodeInput(n, rollback)
		id := engine.UpgradeNodeWorkflowID(r.in.RolloutID, n.NodeID)
		if rollback {
			id = "rollback-" + r.in.RolloutID + "-" + n.NodeID
		}
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            id,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
			RetryPolicy:           &temporal.RetryPolicy{MaximumAttempts: 1},
		})
		futures = append(futures, workflow.ExecuteChildWorkflow(cctx, UpgradeNodeWorkflow, in))
	}
	for i, f := range futures {
		var res NodeUpgradeResult
		if err := f.Get(ctx, &res); err != nil {
			// The node's workflow itself failed (timed out, say): count
			// the node as failed rather than leave it running forever.
			workflow.GetLogger(ctx).Error("a node's upgrade workflow failed", "node_id", nodes[i].NodeID, "error", err)
			mark := NodeMark{RolloutID: r.in.RolloutID, NodeID: nodes[i].NodeID, Batch: nodes[i].BatchIndex,
				Status: engine.RolloutFailed, Error: "upgrade workflow: " + err.Error(), Rollback: rollback}
			_ = run(ctx, quick, nil, acts.MarkNodeUpgrade, mark)
		}
	}
	return nil
}

func (r *rolloutRun) nodeInput(n *engine.RolloutNode, rollback bool) UpgradeNodeInput {
	ro := r.ro()
	in := UpgradeNodeInput{RolloutID: ro.ID, NodeID: n.NodeID, Batch: n.BatchIndex, Component: ro.Component,
		Target: ro.Spec.Release, ConfigChanges: ro.Spec.ConfigChanges, HealthWait: ro.Plan.HealthWait}
	if ro.Strategy == engine.StrategyAtHeight {
		in.TargetHeight = ro.Spec.TargetHeight
	}
	if rollback {
		in.Target, in.ConfigChanges, in.TargetHeight, in.Rollback = n.Previous, nil, 0, true
	}
	return in
}

// rollback puts every node the rollout upgraded back on its previous
// release, one batch a run as the upgrade went.
func (r *rolloutRun) rollback(ctx workflow.Context) (RolloutOutcome, error) {
	if !r.in.Rollback || r.in.State == nil {
		// The rollback begins, from the first batch.
		r.st.Batch = 0
		r.setStatus(ctx, engine.RolloutRollingBack, "rolling back every upgraded node")
	}
	if r.st.Batch < r.st.Batches {
		if err := r.runBatch(ctx, r.st.Batch, true); err != nil {
			return r.finish(ctx, engine.RolloutFailed, "rollback: "+err.Error())
		}
	}
	if r.st.Batch+1 < r.st.Batches {
		st := r.st
		st.Batch++
		in := RolloutInput{RolloutID: r.in.RolloutID, Grouped: r.in.Grouped, Rollback: true, State: &st}
		return RolloutOutcome{}, workflow.NewContinueAsNewError(ctx, RolloutWorkflow, in)
	}
	var p RolloutProgress
	if err := run(ctx, quick, &p, acts.UpdateRolloutProgress, ProgressRequest{RolloutID: r.in.RolloutID, Batch: max(r.st.Batches-1, 0)}); err != nil {
		return r.finish(ctx, engine.RolloutFailed, fmt.Sprintf("record progress: %v", err))
	}
	if p.RollbackFailed > 0 {
		return r.finish(ctx, engine.RolloutFailed, fmt.Sprintf("rollback failed on %d nodes", p.RollbackFailed))
	}
	return r.finish(ctx, engine.RolloutRolledBack, fmt.Sprintf("%d nodes rolled back", p.RolledBack))
}

func (r *rolloutRun) setStatus(ctx workflow.Context, s engine.RolloutStatus, msg string) {
	c := RolloutStatusChange{RolloutID: r.in.RolloutID, Status: s, Message: msg, Batch: r.st.Batch, Batches: r.st.Batches}
	if err := run(ctx, quick, nil, acts.SetRolloutStatus, c); err != nil {
		workflow.GetLogger(ctx).Error("record a rollout's status", "rollout_id", r.in.RolloutID, "status", s, "error", err)
	}
}

// finish records the rollout's end and announces it.
func (r *rolloutRun) finish(ctx workflow.Context, s engine.RolloutStatus, msg string) (RolloutOutcome, error) {
	r.setStatus(ctx, s, msg)
	return RolloutOutcome{Status: s, Message: msg}, nil
}

func completion(p RolloutProgress) string {
	msg := fmt.Sprintf("%d nodes upgraded", p.Succeeded)
	if p.Skipped > 0 {
		msg += fmt.Sprintf(", %d already at the version", p.Skipped)
	}
	if p.Failed > 0 {
		msg += fmt.Sprintf(", %d failed", p.Failed)
	}
	return msg
}

// canaryPoll is how often ValidateCanaryHealth looks at the canary.
const canaryPoll = 2 * time.Second
