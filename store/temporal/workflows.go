package temporal

import (
	"context"
	"errors"
	"fmt"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/workflows"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
)

// Workflows starts our workflows on the client's cluster. Workflow ids come
// from domain ids, and a start for an id that is running (or, for provision
// and terminate, has ever run) is a no-op.
type Workflows struct {
	client *Client
	// Nodes, when set, lets StartMigrate refuse an unknown node with
	// ENotFound before anything starts.
	Nodes engine.NodeStore
}

var (
	_ engine.Workflows        = (*Workflows)(nil)
	_ engine.RolloutWorkflows = (*Workflows)(nil)
)

// NewWorkflows returns the engine.Workflows of c; it does no I/O (c may be
// opened later, but before the first start).
func NewWorkflows(c *Client, nodes engine.NodeStore) *Workflows {
	return &Workflows{client: c, Nodes: nodes}
}

// RegisterWorkflows registers the provision, terminate and migrate
// workflows and acts' activities on c's worker; call before c.Open.
func RegisterWorkflows(c *Client, acts *workflows.Activities) {
	c.Register(func(r worker.Registry) {
		r.RegisterWorkflow(workflows.ProvisionWorkflow)
		r.RegisterWorkflow(workflows.TerminateWorkflow)
		r.RegisterWorkflow(workflows.MigrateWorkflow)
		r.RegisterWorkflow(workflows.RolloutGroupWorkflow)
		r.RegisterWorkflow(workflows.RolloutWorkflow)
		r.RegisterWorkflow(workflows.UpgradeNodeWorkflow)
		r.RegisterActivity(acts)
	})
}

// once: a finished run of the id blocks another (provision, terminate).
// again: a finished run does not (a node may migrate many times).
const (
	once  = enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE
	again = enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
)

func (w *Workflows) StartProvision(ctx context.Context, subscriptionID string) error {
	in := workflows.ProvisionInput{SubscriptionID: subscriptionID}
	return w.start(ctx, workflows.ProvisionID(subscriptionID), once, workflows.ProvisionWorkflow, in)
}

func (w *Workflows) StartTerminate(ctx context.Context, nodeID, reason string) error {
	in := workflows.TerminateInput{NodeID: nodeID, Reason: reason}
	return w.start(ctx, workflows.TerminateID(nodeID), once, workflows.TerminateWorkflow, in)
}

func (w *Workflows) StartMigrate(ctx context.Context, nodeID string) error {
	if w.Nodes != nil {
		if _, err := w.Nodes.GetNode(ctx, nodeID); err != nil {
			return fmt.Errorf("migrate node %s: %w", nodeID, err)
		}
	}
	return w.start(ctx, workflows.MigrateID(nodeID), again, workflows.MigrateWorkflow, workflows.MigrateInput{NodeID: nodeID})
}

func (w *Workflows) ConfirmSignerStopped(ctx context.Context, nodeID, by string) error {
	return w.signal(ctx, workflows.MigrateID(nodeID), workflows.ConfirmOldSignerStopped, workflows.SignerConfirmation{By: by},
		"node "+nodeID+" has no migration running")
}

func (w *Workflows) StartRollout(ctx context.Context, rolloutID string, rollback bool) error {
	in := workflows.RolloutInput{RolloutID: rolloutID, Rollback: rollback}
	return w.start(ctx, engine.RolloutWorkflowID(rolloutID), again, workflows.RolloutWorkflow, in)
}

func (w *Workflows) StartRolloutGroup(ctx context.Context, groupID string) error {
	in := workflows.RolloutGroupInput{GroupID: groupID}
	return w.start(ctx, engine.RolloutGroupWorkflowID(groupID), once, workflows.RolloutGroupWorkflow, in)
}

func (w *Workflows) SignalRollout(ctx context.Context, rolloutID string, sig engine.RolloutSignal) error {
	return w.signal(ctx, engine.RolloutWorkflowID(rolloutID), workflows.RolloutSignalName, workflows.RolloutSignalRequest{Signal: sig},
		"rollout "+rolloutID+" is not running")
}

func (w *Workflows) SignalRolloutGroup(ctx context.Context, groupID string, sig engine.RolloutSignal, component string) error {
	return w.signal(ctx, engine.RolloutGroupWorkflowID(groupID), workflows.RolloutSignalName,
		workflows.RolloutSignalRequest{Signal: sig, Component: component}, "rollout group "+groupID+" is not running")
}

// signal sends a signal to the running workflow id; ENotFound (with
// missing as its message) when none runs.
func (w *Workflows) signal(ctx context.Context, id, name string, arg any, missing string) error {
	sdk := w.client.SDK()
	if sdk == nil {
		return engine.Errorf(engine.EUnavailable, "temporal is not connected")
	}
	err := sdk.SignalWorkflow(ctx, id, "", name, arg)
	var notFound *serviceerror.NotFound
	switch {
	case err == nil:
		return nil
	case errors.As(err, &notFound):
		return engine.Errorf(engine.ENotFound, "%s", missing)
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return engine.Errorf(engine.EUnavailable, "signal workflow %s: %v", id, err)
}

// start runs fn under id unless a run of id is going (then it is used), or
// reuse forbids another run (then the earlier one stands): both are success.
func (w *Workflows) start(ctx context.Context, id string, reuse enumspb.WorkflowIdReusePolicy, fn, in any) error {
	sdk := w.client.SDK()
	if sdk == nil {
		return engine.Errorf(engine.EUnavailable, "temporal is not connected")
	}
	_, err := sdk.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                TaskQueue,
		WorkflowIDReusePolicy:    reuse,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, fn, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case err == nil, errors.As(err, &started):
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return engine.Errorf(engine.EUnavailable, "start workflow %s: %v", id, err)
}
