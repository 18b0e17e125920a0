package workflows

import (
	"fmt"

	"github.com/hoodcloud/hoodcloud/engine"
	"go.temporal.io/sdk/workflow"
)

// TerminateInput starts TerminateWorkflow.
type TerminateInput struct {
	NodeID string
	Reason string
}

// TerminateResult lists the steps that failed; the node is terminated
// anyway, and an operator (or the reaper) finishes what they left.
type TerminateResult struct {
	NodeID          string
	PartialFailures []string
}

// TerminateWorkflow takes a node away, best effort: each step's failure is
// recorded and the next step runs. Only the final move to terminated fails
// the workflow.
func TerminateWorkflow(ctx workflow.Context, in TerminateInput) (*TerminateResult, error) {
	res := &TerminateResult{NodeID: in.NodeID}
	steps := []struct {
		name string
		fn   any
		arg  any
	}{
		{"mark terminating", acts.SetNodeState, stateChange(in.NodeID, engine.NodeTerminating, in.Reason)},
		{"stop node", acts.StopNode, CommandRequest{NodeID: in.NodeID, CommandID: commandID(ctx, "stop")}},
		{"delete keys", acts.DeleteNodeKeys, in.NodeID},
		{"destroy host", acts.DestroyNodeHost, in.NodeID},
		{"revoke agent", acts.RevokeAgent, in.NodeID},
		{"verify cleanup", acts.VerifyCleanup, in.NodeID},
	}
	for _, s := range steps {
		if err := run(ctx, once, nil, s.fn, s.arg); err != nil {
			res.PartialFailures = append(res.PartialFailures, s.name+": "+err.Error())
		}
	}
	if err := run(ctx, critical, nil, acts.SetNodeState, stateChange(in.NodeID, engine.NodeTerminated, in.Reason)); err != nil {
		return res, fmt.Errorf("mark node terminated: %w", err)
	}
	return res, nil
}
