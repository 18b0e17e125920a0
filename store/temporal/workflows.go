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

var _ engine.Workflows = (*Workflows)(nil)

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
	sdk := w.client.SDK()
	if sdk == nil {
		return engine.Errorf(engine.EUnavailable, "temporal is not connected")
	}
	err := sdk.SignalWorkflow(ctx, workflows.MigrateID(nodeID), "", workflows.ConfirmOldSignerStopped, workflows.SignerConfirmation{By: by})
	var missing *serviceerror.NotFound
	switch {
	case err == nil:
		return nil
	case errors.As(err, &missing):
		return engine.Errorf(engine.ENotFound, "node %s has no migration running", nodeID)
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return engine.Errorf(engine.EUnavailable, "signal the migration of node %s: %v", nodeID, err)
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
