package workflows

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
	"go.temporal.io/sdk/activity"
)

// ProvisionPlan is what ValidateProvisionInputs found: everything later
// steps decide on, and nothing secret.
type ProvisionPlan struct {
	SubscriptionID string
	OwnerID        string
	ChainProfileID string
	NodeType       string
	Provider       string
	Region         string
	InstanceType   string
	// UserProvidedKeys names the sealed secrets the customer supplied.
	UserProvidedKeys []string
	// ChainGeneratedKeys are the keys the chain writes and the agent captures.
	ChainGeneratedKeys []ChainKey
}

// ChainKey is a key file the chain generates on the host.
type ChainKey struct {
	Name    string
	Path    string // relative to the chain data dir
	KeyType string
	// AfterStart: the chain writes the key when it first runs (the
	// profile's post_provision phase), so it is captured after START.
	AfterStart bool
}

// HostRequest asks for a host of a node.
type HostRequest struct {
	NodeID      string
	Incarnation string // engine.HostSpec.Incarnation: empty for the node's first host
	// Since is when the workflow asked for the host: its agent's enrolment
	// counts from then, also when the activity is retried after the agent
	// enrolled (an appliance restart in between, say). Zero: the attempt's
	// start, as in runs recorded before it existed.
	Since        time.Time
	Provider     string
	Region       string
	InstanceType string
}

// ProvisionedHost is a host and the time just before it was asked for, from
// which its agent's enrolment and heartbeats count.
type ProvisionedHost struct {
	Host  engine.Host
	Since time.Time
}

// AgentWait asks for the node's agent to enrol and heartbeat after Since.
type AgentWait struct {
	NodeID string
	Since  time.Time
}

// ValidateProvisionInputs checks the subscription is active, its chain
// profile known and every required pre-provision input supplied.
func (a *Activities) ValidateProvisionInputs(ctx context.Context, subscriptionID string) (*ProvisionPlan, error) {
	sub, err := a.Store.GetSubscription(ctx, subscriptionID)
	if err != nil {
		return nil, classify(fmt.Errorf("read subscription %s: %w", subscriptionID, err))
	}
	if sub.Status != engine.SubscriptionActive {
		return nil, permanent(engine.EInvalid, "subscription %s is %s, not active", subscriptionID, sub.Status)
	}
	p, err := a.Chains(sub.ChainProfileID)
	if err != nil {
		return nil, classify(fmt.Errorf("chain profile of subscription %s: %w", subscriptionID, err))
	}
	inputs, err := a.Store.ListInputs(ctx, subscriptionID)
	if err != nil {
		return nil, fmt.Errorf("list inputs of %s: %w", subscriptionID, err)
	}
	plan := planOf(sub, p, inputs)
	if missing := p.MissingInputs(sub.NodeType, profile.PhasePreProvision, suppliedNames(inputs)); len(missing) > 0 {
		return nil, permanent(engine.EInvalid, "subscription %s lacks required inputs %v", subscriptionID, missing)
	}
	return plan, nil
}

func planOf(sub *engine.Subscription, p *profile.ChainProfile, inputs []*engine.ProvisioningInput) *ProvisionPlan {
	plan := &ProvisionPlan{
		SubscriptionID: sub.ID, OwnerID: sub.UserID, ChainProfileID: sub.ChainProfileID, NodeType: sub.NodeType,
		Provider: sub.Provider, Region: sub.Region, InstanceType: sub.InstanceType,
	}
	for _, in := range inputs {
		if spec, err := p.InputFor(sub.NodeType, in.Name); err == nil && in.Type == engine.InputSecret && spec.Source == profile.SourceUserProvided {
			plan.UserProvidedKeys = append(plan.UserProvidedKeys, in.Name)
		}
	}
	for _, s := range p.Secrets(sub.NodeType, profile.SourceChainGenerated) {
		plan.ChainGeneratedKeys = append(plan.ChainGeneratedKeys, ChainKey{Name: s.Name, Path: s.KeyPath, KeyType: string(s.KeyType),
			AfterStart: s.Phase == profile.PhasePostProvision})
	}
	return plan
}

func suppliedNames(inputs []*engine.ProvisioningInput) []string {
	var names []string
	for _, in := range inputs {
		if in.Value != "" || len(in.Ciphertext) > 0 {
			names = append(names, in.Name)
		}
	}
	return names
}

// CreateNodeRecord returns the id of the subscription's node, creating it
// in state provisioning if it has none. A node left failed by an earlier
// attempt is moved back to provisioning.
func (a *Activities) CreateNodeRecord(ctx context.Context, plan ProvisionPlan) (string, error) {
	n, err := a.Store.GetNodeBySubscription(ctx, plan.SubscriptionID)
	if engine.IsCode(err, engine.ENotFound) {
		n, err = a.createNode(ctx, plan)
	}
	if err != nil {
		return "", classify(err)
	}
	if n.State == engine.NodeFailed {
		if err := a.transition(ctx, n.ID, engine.NodeProvisioning, "provisioning again"); err != nil {
			return "", err
		}
	}
	return n.ID, nil
}

func (a *Activities) createNode(ctx context.Context, plan ProvisionPlan) (*engine.Node, error) {
	now := a.now().Truncate(time.Microsecond)
	n := &engine.Node{
		ID: engine.NewID("node"), SubscriptionID: plan.SubscriptionID, OwnerID: plan.OwnerID,
		ChainProfileID: plan.ChainProfileID, NodeType: plan.NodeType, State: engine.NodeProvisioning,
		CreatedAt: now, UpdatedAt: now,
	}
	err := a.Store.CreateNode(ctx, n)
	if engine.IsCode(err, engine.EConflict) {
		// Another attempt created it between our read and write.
		return a.Store.GetNodeBySubscription(ctx, plan.SubscriptionID)
	}
	if err != nil {
		return nil, fmt.Errorf("create node of subscription %s: %w", plan.SubscriptionID, err)
	}
	return n, nil
}

// ProvisionHost creates the node's host with a fresh enrollment token and
// records the host on the node. The provisioner finds a host an earlier
// attempt created, so a retry creates none.
func (a *Activities) ProvisionHost(ctx context.Context, req HostRequest) (*ProvisionedHost, error) {
	ph, err := a.createHost(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := a.recordHost(ctx, req.NodeID, ph.Host); err != nil {
		return nil, err
	}
	return ph, nil
}

func (a *Activities) createHost(ctx context.Context, req HostRequest) (*ProvisionedHost, error) {
	defer keepBeating(ctx)()
	since := req.Since
	if since.IsZero() {
		since = a.now()
	}
	token, err := a.Enroller.IssueEnrollmentToken(ctx, req.NodeID, req.Incarnation, a.timing().EnrollmentTTL)
	if err != nil {
		return nil, classify(fmt.Errorf("enrollment token of node %s: %w", req.NodeID, err))
	}
	boot := a.Bootstrap
	boot.EnrollmentToken = token
	if a.CACertPEM != nil {
		boot.CACertPEM = a.CACertPEM()
	}
	h, err := a.Provisioner.CreateHost(ctx, engine.HostSpec{
		NodeID: req.NodeID, Incarnation: req.Incarnation, Provider: req.Provider, Region: req.Region, InstanceType: req.InstanceType, Bootstrap: boot,
	})
	if err != nil {
		return nil, classify(fmt.Errorf("create host of node %s: %w", req.NodeID, err))
	}
	return &ProvisionedHost{Host: h, Since: since}, nil
}

// recordHost writes h on the node.
func (a *Activities) recordHost(ctx context.Context, nodeID string, h engine.Host) error {
	return a.updateNode(ctx, nodeID, func(n *engine.Node) bool {
		if n.Host == h {
			return false
		}
		n.Host = h
		return true
	})
}

// WaitForAgentReady polls until the node's agent has enrolled and
// heartbeated after w.Since, and fails (for good) after Timing.AgentReady.
func (a *Activities) WaitForAgentReady(ctx context.Context, w AgentWait) error {
	t := a.timing()
	deadline := a.now().Add(t.AgentReady)
	for {
		ready, err := a.agentReady(ctx, w)
		if err != nil || ready {
			return classify(err)
		}
		if a.now().After(deadline) {
			return permanent(engine.EUnavailable, "the agent of node %s did not report within %s", w.NodeID, t.AgentReady)
		}
		heartbeat(ctx)
		if err := sleep(ctx, t.Poll); err != nil {
			return err
		}
	}
}

// agentReady: enrolled after Since (so not an old host's agent) and seen
// since.
func (a *Activities) agentReady(ctx context.Context, w AgentWait) (bool, error) {
	reg, err := a.Store.GetAgentRegistration(ctx, w.NodeID)
	if engine.IsCode(err, engine.ENotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read agent of node %s: %w", w.NodeID, err)
	}
	if reg.EnrolledAt.Before(w.Since) || !reg.RevokedAt.IsZero() {
		return false, nil
	}
	n, err := a.Store.GetNode(ctx, w.NodeID)
	if err != nil {
		return false, fmt.Errorf("read node %s: %w", w.NodeID, err)
	}
	return !n.LastSeenAt.Before(w.Since) && !n.LastSeenAt.IsZero(), nil
}

// MarkInputsApplied records that the subscription's inputs reached the node.
func (a *Activities) MarkInputsApplied(ctx context.Context, subscriptionID string) error {
	if err := a.Store.MarkInputsApplied(ctx, subscriptionID, a.now()); err != nil {
		return classify(fmt.Errorf("mark inputs of %s applied: %w", subscriptionID, err))
	}
	return nil
}

// InjectKeys delivers the node's stored keys to its host: one DELIVER_KEYS
// command carries every key that has a file on the host (generated,
// user-provided, and chain-generated ones carried from an earlier host),
// still encrypted under the node's data key, and the activity waits for the
// agent to write them. A required key that is not stored fails it.
func (a *Activities) InjectKeys(ctx context.Context, req KeysRequest) error {
	p, nodeType, err := a.keysProfile(ctx, req)
	if err != nil {
		return classify(err)
	}
	var keys []deliveredKey
	for _, spec := range p.InputsFor(nodeType) {
		if spec.Type != engine.InputSecret {
			continue
		}
		k, err := a.Store.GetNodeKey(ctx, req.NodeID, spec.Name)
		switch {
		case engine.IsCode(err, engine.ENotFound) && spec.Source == profile.SourceChainGenerated:
			continue // the chain writes it on this host; captured after CONFIGURE
		case engine.IsCode(err, engine.ENotFound) && spec.Required:
			return permanent(engine.EInvalid, "node %s has no key %q to deliver", req.NodeID, spec.Name)
		case engine.IsCode(err, engine.ENotFound):
			continue
		case err != nil:
			return classify(fmt.Errorf("read key %q of node %s: %w", spec.Name, req.NodeID, err))
		}
		if spec.KeyPath != "" {
			keys = append(keys, deliveredKey{Name: spec.Name, Path: spec.KeyPath, KeyType: string(spec.KeyType), EncryptedKey: k.Ciphertext})
		}
	}
	state, err := a.stateKeys(ctx, req.NodeID, p)
	if err != nil {
		return classify(err)
	}
	keys = append(keys, state...)
	if len(keys) == 0 {
		return nil
	}
	return a.deliverKeys(ctx, a.deliveryRequest(ctx, req), keys)
}

// deliveredKey is the protocol's DeliveredKey.
type deliveredKey struct {
	Name         string `json:"name"`
	Path         string `json:"path"`
	KeyType      string `json:"key_type,omitempty"`
	EncryptedKey []byte `json:"encrypted_key"`
}

func (a *Activities) deliverKeys(ctx context.Context, req CommandRequest, keys []deliveredKey) error {
	payload, err := json.Marshal(struct {
		Keys []deliveredKey `json:"keys"`
	}{keys})
	if err != nil {
		return err
	}
	c, err := a.runCommand(ctx, req, engine.CommandDeliverKeys, payload)
	if err != nil {
		return err
	}
	return commandOutcome(c)
}

// deliveryRequest names the DELIVER_KEYS command: the workflow's id for
// it, or, in runs recorded before the workflow chose one, an id of the
// run, so that a retried attempt finds the command an earlier one queued.
func (a *Activities) deliveryRequest(ctx context.Context, req KeysRequest) CommandRequest {
	id := req.CommandID
	if id == "" && activity.IsActivity(ctx) {
		sum := sha256.Sum256([]byte(activity.GetInfo(ctx).WorkflowExecution.RunID + "/deliver-keys"))
		id = "cmd_" + hex.EncodeToString(sum[:12])
	}
	if id == "" {
		id = engine.NewID("cmd")
	}
	return CommandRequest{NodeID: req.NodeID, CommandID: id}
}

// heartbeat tells Temporal the activity is alive; outside an activity (unit
// tests calling the method directly) it does nothing.
func heartbeat(ctx context.Context, details ...any) {
	if activity.IsActivity(ctx) {
		activity.RecordHeartbeat(ctx, details...)
	}
}

// keepBeating heartbeats every beatEvery until stop is called, for an
// activity blocked in one long call (a provider's API) that cannot
// heartbeat itself.
func keepBeating(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(beatEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				heartbeat(ctx)
			}
		}
	}()
	return func() { close(done) }
}

// beatEvery is well inside beatTimeout.
const beatEvery = 3 * time.Second

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
