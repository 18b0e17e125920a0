package workflows

import (
	"fmt"

	"github.com/hoodcloud/hoodcloud/engine"
	"go.temporal.io/sdk/workflow"
)

// ProvisionInput starts ProvisionWorkflow.
type ProvisionInput struct {
	SubscriptionID string
}

// ProvisionResult is what a successful provision made.
type ProvisionResult struct {
	NodeID string
	Host   engine.Host
}

// ProvisionWorkflow turns an active subscription into a running node. Once
// the node record exists, any failure is compensated: the host destroyed,
// the keys deleted, the node failed and an incident opened.
func ProvisionWorkflow(ctx workflow.Context, in ProvisionInput) (*ProvisionResult, error) {
	var plan ProvisionPlan
	if err := run(ctx, quick, &plan, acts.ValidateProvisionInputs, in.SubscriptionID); err != nil {
		return nil, fmt.Errorf("validate inputs: %w", err)
	}
	var nodeID string
	if err := run(ctx, quick, &nodeID, acts.CreateNodeRecord, plan); err != nil {
		return nil, fmt.Errorf("create node record: %w", err)
	}
	host, err := provisionNode(ctx, plan, nodeID)
	if err != nil {
		compensateProvision(ctx, nodeID, err)
		return nil, err
	}
	return &ProvisionResult{NodeID: nodeID, Host: host}, nil
}

// provisionNode runs the steps after the node record exists.
func provisionNode(ctx workflow.Context, plan ProvisionPlan, nodeID string) (engine.Host, error) {
	keys := KeysRequest{NodeID: nodeID, SubscriptionID: plan.SubscriptionID, ChainProfileID: plan.ChainProfileID}
	if err := prepareKeys(ctx, plan, keys); err != nil {
		return engine.Host{}, err
	}
	var ph ProvisionedHost
	req := HostRequest{NodeID: nodeID, Provider: plan.Provider, Region: plan.Region, InstanceType: plan.InstanceType, Since: workflow.Now(ctx)}
	if err := run(ctx, hostOp, &ph, acts.ProvisionHost, req); err != nil {
		return engine.Host{}, fmt.Errorf("provision host: %w", err)
	}
	if err := bringUp(ctx, plan, keys, ph); err != nil {
		return ph.Host, err
	}
	if err := run(ctx, quick, nil, acts.MarkInputsApplied, plan.SubscriptionID); err != nil {
		return ph.Host, fmt.Errorf("mark inputs applied: %w", err)
	}
	if err := run(ctx, quick, nil, acts.SetNodeState, stateChange(nodeID, engine.NodeRunning, "provisioned")); err != nil {
		return ph.Host, fmt.Errorf("mark node running: %w", err)
	}
	return ph.Host, nil
}

func prepareKeys(ctx workflow.Context, plan ProvisionPlan, keys KeysRequest) error {
	if err := run(ctx, quick, nil, acts.GenerateNodeKeys, keys); err != nil {
		return fmt.Errorf("generate node keys: %w", err)
	}
	if len(plan.UserProvidedKeys) == 0 {
		return nil
	}
	if err := run(ctx, quick, nil, acts.PrepareUserProvidedKeys, keys); err != nil {
		return fmt.Errorf("prepare user-provided keys: %w", err)
	}
	return nil
}

// bringUp waits for the new host's agent, configures the chain, captures
// the keys it generated, injects keys and starts the node.
func bringUp(ctx workflow.Context, plan ProvisionPlan, keys KeysRequest, ph ProvisionedHost) error {
	if err := run(ctx, waiting, nil, acts.WaitForAgentReady, AgentWait{NodeID: keys.NodeID, Since: ph.Since}); err != nil {
		return fmt.Errorf("wait for agent: %w", err)
	}
	keysFirst := workflow.GetVersion(ctx, keysBeforeConfigure, workflow.DefaultVersion, 1) >= 1
	if keysFirst {
		if err := injectKeys(ctx, keys); err != nil {
			return err
		}
	}
	if err := awaitCommand(ctx, acts.SendConfigureCommand, keys.NodeID, "configure"); err != nil {
		return err
	}
	before, after := plan.ChainGeneratedKeys, []ChainKey(nil)
	if workflow.GetVersion(ctx, captureAfterStart, workflow.DefaultVersion, 1) >= 1 {
		before, after = splitByStart(plan.ChainGeneratedKeys)
	}
	if err := captureKeys(ctx, keys.NodeID, before); err != nil {
		return err
	}
	if !keysFirst {
		// Waiting, not quick: InjectKeys now waits for the delivery.
		if err := run(ctx, waiting, nil, acts.InjectKeys, keys); err != nil {
			return fmt.Errorf("inject keys: %w", err)
		}
	}
	if err := startUnderLeases(ctx, keys.NodeID); err != nil {
		return err
	}
	return captureKeys(ctx, keys.NodeID, after)
}

// signingLeases is the version of ProvisionWorkflow that grants the
// node's first host the leases of the keys its chain signs with and starts
// the chain under them; runs begun before it replay starting without.
const signingLeases = "signing-leases"

// startUnderLeases starts the node's chain on its first host, holding the
// leases of its signing keys.
func startUnderLeases(ctx workflow.Context, nodeID string) error {
	if workflow.GetVersion(ctx, signingLeases, workflow.DefaultVersion, 1) < 1 {
		return awaitCommand(ctx, acts.StartNode, nodeID, "start")
	}
	var plan CustodyPlan
	if err := run(ctx, quick, &plan, acts.PlanCustody, nodeID); err != nil {
		return fmt.Errorf("plan custody: %w", err)
	}
	var leases []StartLease
	if len(plan.Keys) > 0 {
		req := LeaseRequest{NodeID: nodeID, Keys: plan.Keys, Holder: engine.LeaseHolder{NodeID: nodeID}}
		if err := run(ctx, quick, &leases, acts.GrantSigningLeases, req); err != nil {
			return fmt.Errorf("grant the signing leases: %w", err)
		}
	}
	return awaitRequest(ctx, acts.StartNode, CommandRequest{NodeID: nodeID, Leases: leases}, "start")
}

// keysBeforeConfigure is the version of ProvisionWorkflow and
// MigrateWorkflow that delivers the node's keys to the host before
// CONFIGURE, so that the chain's init steps find the customer's key (a
// CometBFT validator's genesis names it); runs begun before it replay
// injecting keys after CONFIGURE, when nothing was delivered.
const keysBeforeConfigure = "keys-before-configure"

// injectKeys delivers the node's keys and waits for the agent to write them.
func injectKeys(ctx workflow.Context, keys KeysRequest) error {
	keys.CommandID = commandID(ctx, "deliver-keys")
	if err := run(ctx, waiting, nil, acts.InjectKeys, keys); err != nil {
		return fmt.Errorf("inject keys: %w", err)
	}
	return nil
}

// captureAfterStart is the version of ProvisionWorkflow that captures the
// keys a chain writes when it first runs after START; runs begun before it
// replay capturing every key before.
const captureAfterStart = "capture-after-start"

// splitByStart parts keys into those to capture before START and after.
func splitByStart(keys []ChainKey) (before, after []ChainKey) {
	for _, k := range keys {
		if k.AfterStart {
			after = append(after, k)
		} else {
			before = append(before, k)
		}
	}
	return before, after
}

func captureKeys(ctx workflow.Context, nodeID string, keys []ChainKey) error {
	if len(keys) == 0 {
		return nil
	}
	req := CaptureRequest{NodeID: nodeID, Keys: keys}
	for _, k := range keys {
		req.CommandIDs = append(req.CommandIDs, commandID(ctx, "capture/"+k.Name))
	}
	if err := run(ctx, waiting, nil, acts.CaptureChainGeneratedKeys, req); err != nil {
		return fmt.Errorf("capture chain-generated keys: %w", err)
	}
	return nil
}

// compensateProvision undoes a failed provision. It runs on a disconnected
// context so that a cancelled workflow still cleans up, and tries every
// step even when one fails: a leftover host is found later by the reaper.
func compensateProvision(ctx workflow.Context, nodeID string, cause error) {
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	logger := workflow.GetLogger(ctx)
	steps := []struct {
		name string
		fn   any
		arg  any
	}{
		{"destroy host", acts.DestroyNodeHost, nodeID},
		{"delete keys", acts.DeleteNodeKeys, nodeID},
		{"mark node failed", acts.SetNodeState, stateChange(nodeID, engine.NodeFailed, summary("provisioning failed", cause))},
		{"open incident", acts.OpenIncident, IncidentRequest{
			NodeID: nodeID, DedupeKey: "provision-failed", Severity: engine.SeverityCritical,
			Summary: summary("provisioning failed", cause),
		}},
	}
	for _, s := range steps {
		p := quick
		if s.name == "destroy host" {
			p = hostOp
		}
		if err := run(ctx, p, nil, s.fn, s.arg); err != nil {
			logger.Error("provision compensation step failed", "step", s.name, "node_id", nodeID, "error", err)
		}
	}
}
