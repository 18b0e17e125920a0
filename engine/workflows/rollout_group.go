package workflows

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hoodcloud/hoodcloud/engine"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/workflow"
)

// RolloutGroupInput starts RolloutGroupWorkflow.
type RolloutGroupInput struct {
	GroupID string
}

// GroupStatusChange records a group's status.
type GroupStatusChange struct {
	GroupID string
	Status  engine.RolloutStatus
	Message string
	Current int
	Skipped []string `json:",omitempty"`
}

// RolloutGroupWorkflow upgrades the components of a multi-binary chain in
// their declared order (rollout-group-{id}), one child RolloutWorkflow
// each, with a health gate between components. A component that fails
// (or fails its gate) is handled by the failure policy: partial_ok goes on,
// rollback_all rolls back every component done so far, manual pauses for
// the operator. Signals: pause, resume, cancel, rollback, skip (a
// component; the running one is cancelled).
func RolloutGroupWorkflow(ctx workflow.Context, in RolloutGroupInput) (RolloutOutcome, error) {
	var g engine.RolloutGroup
	if err := run(ctx, quick, &g, acts.GetRolloutGroup, in.GroupID); err != nil {
		return RolloutOutcome{Status: engine.RolloutFailed, Message: err.Error()}, nil
	}
	gr := &groupRun{g: g, signals: workflow.GetSignalChannel(ctx, RolloutSignalName), skipped: slices.Clone(g.Skipped)}
	return gr.run(ctx)
}

type groupRun struct {
	g        engine.RolloutGroup
	signals  workflow.ReceiveChannel
	skipped  []string
	done     []string // rollout ids that ran, in order
	upgraded int      // components whose rollout succeeded
	failed   []string // components that failed
	pause    bool
	cancel   bool
	rollback bool
	cur      int // the component in flight
}

func (gr *groupRun) run(ctx workflow.Context) (RolloutOutcome, error) {
	for i, comp := range gr.g.Components {
		gr.drain()
		if out, stop := gr.between(ctx, i); stop {
			return out, nil
		}
		if slices.Contains(gr.skipped, comp) {
			gr.skipRollout(ctx, gr.g.Rollouts[i])
			continue
		}
		gr.set(ctx, engine.RolloutRunning, fmt.Sprintf("component %s (%d of %d)", comp, i+1, len(gr.g.Components)), i)
		if failure := gr.runComponent(ctx, i); failure != "" {
			gr.failed = append(gr.failed, comp)
			if out, stop := gr.onFailure(ctx, i, failure); stop {
				return out, nil
			}
		}
	}
	return gr.finish(ctx, engine.RolloutSucceeded, gr.completion())
}

// completion says how the components came out, naming those that failed.
func (gr *groupRun) completion() string {
	msg := fmt.Sprintf("%d components upgraded", gr.upgraded)
	if len(gr.failed) > 0 {
		msg += fmt.Sprintf(", %d failed (%s)", len(gr.failed), strings.Join(gr.failed, ", "))
	}
	return msg + fmt.Sprintf(", %d skipped", len(gr.skipped))
}

// runComponent runs the component's rollout as a child, forwarding the
// group's signals to it, then gates on its nodes' health. It returns why
// the component failed, "" when it did not (upgraded, or skipped while it
// ran).
func (gr *groupRun) runComponent(ctx workflow.Context, i int) string {
	id := gr.g.Rollouts[i]
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            engine.RolloutWorkflowID(id),
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
	})
	child := workflow.ExecuteChildWorkflow(cctx, RolloutWorkflow, RolloutInput{RolloutID: id, Grouped: true})
	gr.done = append(gr.done, id)
	var out RolloutOutcome
	childDone := false
	for !childDone {
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(child, func(f workflow.Future) {
			childDone = true
			if err := f.Get(ctx, &out); err != nil {
				out = RolloutOutcome{Status: engine.RolloutFailed, Message: err.Error()}
			}
		})
		sel.AddReceive(gr.signals, func(c workflow.ReceiveChannel, _ bool) {
			var s RolloutSignalRequest
			c.Receive(ctx, &s)
			gr.forward(ctx, child, gr.g.Components[i], s)
		})
		sel.Select(ctx)
	}
	switch {
	case out.Status == engine.RolloutSucceeded:
	case out.Status == engine.RolloutCancelled && slices.Contains(gr.skipped, gr.g.Components[i]):
		return ""
	default:
		return fmt.Sprintf("component %s: %s: %s", gr.g.Components[i], out.Status, out.Message)
	}
	var gate GateResult
	if err := run(ctx, quick, &gate, acts.GroupHealthGate, id); err != nil {
		return fmt.Sprintf("health gate after %s: %v", gr.g.Components[i], err)
	}
	if !gate.Passed {
		return fmt.Sprintf("health gate after %s: %s", gr.g.Components[i], gate.Reason)
	}
	gr.upgraded++
	return ""
}

// forward passes a group signal to the running component's rollout.
func (gr *groupRun) forward(ctx workflow.Context, child workflow.ChildWorkflowFuture, comp string, s RolloutSignalRequest) {
	switch s.Signal {
	case engine.SignalSkip:
		if s.Component == "" || s.Component == comp {
			gr.skip(comp)
			s = RolloutSignalRequest{Signal: engine.SignalCancel}
		} else {
			gr.skip(s.Component)
			return
		}
	case engine.SignalPause:
		// The rollout may be on its last batch, with nothing left to
		// pause: the group pauses before its next component.
		gr.pause = true
		gr.set(ctx, engine.RolloutPaused, "paused by an operator", gr.cur)
	case engine.SignalResume:
		gr.pause = false
		gr.set(ctx, engine.RolloutRunning, "resumed by an operator", gr.cur)
	case engine.SignalCancel:
		gr.cancel = true
	case engine.SignalRollback:
		gr.rollback = true
	}
	if err := child.SignalChildWorkflow(ctx, RolloutSignalName, s).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("forward a signal to a component's rollout", "signal", s.Signal, "error", err)
	}
}

// onFailure applies the failure policy to a component that failed.
func (gr *groupRun) onFailure(ctx workflow.Context, i int, failure string) (RolloutOutcome, bool) {
	if gr.cancel || gr.rollback {
		// The operator's cancel or rollback ended the component: the
		// signal decides what follows, not the policy.
		return gr.between(ctx, i+1)
	}
	switch gr.g.FailurePolicy {
	case engine.PolicyPartialOK:
		return RolloutOutcome{}, false
	case engine.PolicyRollbackAll:
		return gr.rollbackAll(ctx, failure), true
	}
	gr.hold(ctx, i, failure+": resume to go on, skip, rollback or cancel")
	return gr.between(ctx, i+1)
}

// between acts on the signals received before the next component.
func (gr *groupRun) between(ctx workflow.Context, i int) (RolloutOutcome, bool) {
	for {
		switch {
		case gr.rollback:
			return gr.rollbackAll(ctx, "rollback requested by an operator"), true
		case gr.cancel:
			out, _ := gr.finish(ctx, engine.RolloutCancelled, "cancelled by an operator")
			return out, true
		case gr.pause:
			gr.pause = false
			gr.hold(ctx, i, "paused by an operator")
			continue
		}
		return RolloutOutcome{}, false
	}
}

// hold records the group paused and waits for resume, cancel, rollback
// or a skip (which goes on).
func (gr *groupRun) hold(ctx workflow.Context, i int, msg string) {
	gr.set(ctx, engine.RolloutPaused, msg, i)
	for {
		var s RolloutSignalRequest
		gr.signals.Receive(ctx, &s)
		switch s.Signal {
		case engine.SignalResume:
			return
		case engine.SignalSkip:
			gr.skip(s.Component)
			return
		case engine.SignalCancel:
			gr.cancel = true
			return
		case engine.SignalRollback:
			gr.rollback = true
			return
		}
	}
}

func (gr *groupRun) drain() {
	for {
		var s RolloutSignalRequest
		if !gr.signals.ReceiveAsync(&s) {
			return
		}
		switch s.Signal {
		case engine.SignalPause:
			gr.pause = true
		case engine.SignalResume:
			gr.pause = false
		case engine.SignalCancel:
			gr.cancel = true
		case engine.SignalRollback:
			gr.rollback = true
		case engine.SignalSkip:
			gr.skip(s.Component) // none runs now: a skip names one
		}
	}
}

// skip records the component skipped, once; "" names none.
func (gr *groupRun) skip(comp string) {
	if comp != "" && !slices.Contains(gr.skipped, comp) {
		gr.skipped = append(gr.skipped, comp)
	}
}

// rollbackAll rolls back every component's rollout that ran, last first.
func (gr *groupRun) rollbackAll(ctx workflow.Context, why string) RolloutOutcome {
	gr.set(ctx, engine.RolloutRollingBack, why, len(gr.done))
	failed := 0
	for _, id := range slices.Backward(gr.done) {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            engine.RolloutWorkflowID(id),
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		})
		var out RolloutOutcome
		err := workflow.ExecuteChildWorkflow(cctx, RolloutWorkflow, RolloutInput{RolloutID: id, Grouped: true, Rollback: true}).Get(ctx, &out)
		if err != nil || out.Status != engine.RolloutRolledBack {
			failed++
		}
	}
	if failed > 0 {
		out, _ := gr.finish(ctx, engine.RolloutFailed, fmt.Sprintf("%s; rollback of %d components failed", why, failed))
		return out
	}
	out, _ := gr.finish(ctx, engine.RolloutRolledBack, why+"; every component rolled back")
	return out
}

func (gr *groupRun) skipRollout(ctx workflow.Context, id string) {
	_ = run(ctx, quick, nil, acts.SetRolloutStatus, RolloutStatusChange{RolloutID: id, Status: engine.RolloutSkipped, Message: "skipped by an operator"})
}

func (gr *groupRun) set(ctx workflow.Context, s engine.RolloutStatus, msg string, current int) {
	c := GroupStatusChange{GroupID: gr.g.ID, Status: s, Message: msg, Current: current, Skipped: gr.skipped}
	if err := run(ctx, quick, nil, acts.SetRolloutGroupStatus, c); err != nil {
		workflow.GetLogger(ctx).Error("record a rollout group's status", "group_id", gr.g.ID, "error", err)
	}
}

func (gr *groupRun) finish(ctx workflow.Context, s engine.RolloutStatus, msg string) (RolloutOutcome, error) {
	gr.set(ctx, s, msg, len(gr.g.Components)-1)
	return RolloutOutcome{Status: s, Message: msg}, nil
}

// GetRolloutGroup reads the group.
func (a *Activities) GetRolloutGroup(ctx context.Context, id string) (engine.RolloutGroup, error) {
	g, err := a.Store.GetRolloutGroup(ctx, id)
	if err != nil {
		return engine.RolloutGroup{}, classify(fmt.Errorf("read rollout group %s: %w", id, err))
	}
	return *g, nil
}

// SetRolloutGroupStatus records the group's status.
func (a *Activities) SetRolloutGroupStatus(ctx context.Context, c GroupStatusChange) error {
	var err error
	for range 5 {
		var g *engine.RolloutGroup
		if g, err = a.Store.GetRolloutGroup(ctx, c.GroupID); err != nil {
			return classify(fmt.Errorf("read rollout group %s: %w", c.GroupID, err))
		}
		g.Status, g.Message, g.Current, g.Skipped, g.UpdatedAt = c.Status, c.Message, max(c.Current, 0), c.Skipped, a.now()
		if err = a.Store.UpdateRolloutGroup(ctx, g); !engine.IsCode(err, engine.EConflict) {
			return classify(err)
		}
	}
	return fmt.Errorf("update rollout group %s: %w", c.GroupID, err)
}

// GroupHealthGate checks every node the component's rollout upgraded is
// healthy now, before the group moves to the next component.
func (a *Activities) GroupHealthGate(ctx context.Context, rolloutID string) (GateResult, error) {
	ns, err := a.Store.ListRolloutNodes(ctx, rolloutID, -1)
	if err != nil {
		return GateResult{}, classify(fmt.Errorf("list nodes of rollout %s: %w", rolloutID, err))
	}
	for _, rn := range ns {
		if rn.Status != engine.RolloutSucceeded {
			continue
		}
		if why, err := a.nodeTrouble(ctx, rn.NodeID); err != nil || why != "" {
			return GateResult{Reason: why}, err
		}
	}
	return GateResult{Passed: true}, nil
}
