package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/observe"
	"go.temporal.io/sdk/activity"
)

// ProgressRequest names a rollout's batch.
type ProgressRequest struct {
	RolloutID string
	Batch     int
}

// BatchRequest asks for the nodes of a batch to upgrade, or to roll back.
type BatchRequest struct {
	RolloutID string
	Batch     int
	Rollback  bool `json:",omitempty"`
}

// RolloutProgress counts the rollout's nodes by outcome.
type RolloutProgress struct {
	Succeeded, Failed, Skipped, RolledBack, RollbackFailed int
}

// GateResult is whether a batch passed the rollout's gates, and if not why.
type GateResult struct {
	Passed bool
	Reason string `json:",omitempty"`
}

// CanaryWatch asks ValidateCanaryHealth to watch the canary batch For long.
type CanaryWatch struct {
	RolloutID string
	For       time.Duration
}

// RolloutStatusChange records a rollout's status and announces it.
type RolloutStatusChange struct {
	RolloutID string
	Status    engine.RolloutStatus
	Message   string
	Batch     int
	Batches   int
	Forced    bool `json:",omitempty"`
}

// targetStates are the states of the nodes a rollout upgrades: nodes being
// provisioned, moved or taken away are left alone.
var targetStates = []engine.NodeState{engine.NodeRunning, engine.NodeSyncing, engine.NodeDegraded}

// targetPage is how many nodes ResolveRolloutTargets reads and writes at once.
const targetPage = 500

// ResolveRolloutTargets assigns the chain's nodes to batches by the
// rollout's strategy, once: a later call (the next run after a batch)
// returns what the first one resolved.
func (a *Activities) ResolveRolloutTargets(ctx context.Context, rolloutID string) (RolloutSpec, error) {
	ro, err := a.Store.GetRollout(ctx, rolloutID)
	if err != nil {
		return RolloutSpec{}, classify(fmt.Errorf("read rollout %s: %w", rolloutID, err))
	}
	if ro.Status != engine.RolloutPending {
		return RolloutSpec{Rollout: *ro, Batches: ro.Batches}, nil
	}
	nodes, err := a.rolloutTargets(ctx, ro)
	if err != nil {
		return RolloutSpec{}, err
	}
	batches := assignBatches(ro, nodes)
	for chunk := range slices.Chunk(nodes, targetPage) {
		if err := a.Store.PutRolloutNodes(ctx, chunk); err != nil {
			return RolloutSpec{}, classify(fmt.Errorf("record nodes of rollout %s: %w", rolloutID, err))
		}
	}
	ro, err = a.changeRollout(ctx, rolloutID, func(r *engine.Rollout) {
		r.Status, r.Batches, r.Message = engine.RolloutRunning, batches, fmt.Sprintf("%d nodes in %d batches", len(nodes), batches)
	})
	if err != nil {
		return RolloutSpec{}, err
	}
	a.announceRollout(ctx, ro, "started")
	return RolloutSpec{Rollout: *ro, Batches: batches}, nil
}

// rolloutTargets lists the chain's nodes that can be upgraded, by id.
func (a *Activities) rolloutTargets(ctx context.Context, ro *engine.Rollout) ([]*engine.RolloutNode, error) {
	var out []*engine.RolloutNode
	now := a.now()
	for after := ""; ; {
		page, err := a.Store.ListNodesByChain(ctx, ro.ChainProfileID, after, targetPage)
		if err != nil {
			return nil, classify(fmt.Errorf("list nodes of chain %s: %w", ro.ChainProfileID, err))
		}
		for _, n := range page {
			if slices.Contains(targetStates, n.State) {
				out = append(out, &engine.RolloutNode{RolloutID: ro.ID, NodeID: n.ID, Status: engine.RolloutPending, NewVersion: "", UpdatedAt: now})
			}
		}
		if len(page) < targetPage {
			return out, nil
		}
		after = page[len(page)-1].ID
	}
}

// assignBatches numbers the nodes' batches by the strategy and returns how
// many there are: a canary batch first, then batches of BatchSize; one
// batch for all_at_once and at_height.
func assignBatches(ro *engine.Rollout, nodes []*engine.RolloutNode) int {
	if len(nodes) == 0 {
		return 0
	}
	size, first := ro.BatchSize, 0
	switch ro.Strategy {
	case engine.StrategyAllAtOnce, engine.StrategyAtHeight:
		size = len(nodes)
	case engine.StrategyCanary:
		first = min(max(ro.CanarySize, 1), len(nodes))
	}
	size = max(size, 1)
	batch := 0
	for i, n := range nodes {
		switch {
		case i < first:
			batch = 0
		case first > 0:
			batch = 1 + (i-first)/size
		default:
			batch = i / size
		}
		n.BatchIndex = batch
	}
	return batch + 1
}

// RolloutBatch returns the batch's nodes to upgrade (those not finished),
// or to roll back (those the rollout upgraded and not yet put back).
func (a *Activities) RolloutBatch(ctx context.Context, req BatchRequest) ([]*engine.RolloutNode, error) {
	ns, err := a.Store.ListRolloutNodes(ctx, req.RolloutID, req.Batch)
	if err != nil {
		return nil, classify(fmt.Errorf("list batch %d of rollout %s: %w", req.Batch, req.RolloutID, err))
	}
	return slices.DeleteFunc(ns, func(n *engine.RolloutNode) bool {
		if req.Rollback {
			return n.NewVersion == "" || n.Status == engine.RolloutRolledBack
		}
		return n.Status.Finished()
	}), nil
}

// UpdateRolloutProgress counts the rollout's nodes by outcome into the
// rollout and announces its progress.
func (a *Activities) UpdateRolloutProgress(ctx context.Context, req ProgressRequest) (RolloutProgress, error) {
	ns, err := a.Store.ListRolloutNodes(ctx, req.RolloutID, -1)
	if err != nil {
		return RolloutProgress{}, classify(fmt.Errorf("list nodes of rollout %s: %w", req.RolloutID, err))
	}
	p := countProgress(ns)
	ro, err := a.changeRollout(ctx, req.RolloutID, func(r *engine.Rollout) {
		r.CurrentBatch, r.Succeeded, r.Failed = req.Batch, p.Succeeded+p.Skipped, p.Failed
	})
	if err != nil {
		return p, err
	}
	a.announceRollout(ctx, ro, "progress")
	return p, nil
}

// countProgress counts a rollout's nodes by outcome; a node upgraded and
// not put back, whose error is a rollback's, failed its rollback.
func countProgress(ns []*engine.RolloutNode) RolloutProgress {
	var p RolloutProgress
	for _, n := range ns {
		switch n.Status {
		case engine.RolloutSucceeded:
			p.Succeeded++
		case engine.RolloutFailed:
			p.Failed++
		case engine.RolloutSkipped:
			p.Skipped++
		case engine.RolloutRolledBack:
			p.RolledBack++
		}
		if n.NewVersion != "" && n.Status != engine.RolloutRolledBack && strings.HasPrefix(n.Error, "rollback: ") {
			p.RollbackFailed++
		}
	}
	return p
}

// SetRolloutStatus records the rollout's status and announces it:
// completed once it is finished, progress otherwise.
func (a *Activities) SetRolloutStatus(ctx context.Context, c RolloutStatusChange) error {
	ro, err := a.changeRollout(ctx, c.RolloutID, func(r *engine.Rollout) {
		r.Status, r.Message = c.Status, c.Message
		r.Forced = r.Forced || c.Forced
		if c.Batches > 0 {
			r.CurrentBatch = min(c.Batch, c.Batches-1)
		}
	})
	if err != nil {
		return err
	}
	event := "progress"
	if c.Status.Finished() {
		event = "completed"
	}
	a.announceRollout(ctx, ro, event)
	if c.Status != engine.RolloutPaused {
		// An operator moved it on: the incident of its stop is over.
		if _, err := engine.ResolveIncident(ctx, a.Store, "", "rollout:"+c.RolloutID, a.now()); err != nil {
			return classify(err)
		}
	}
	return nil
}

// EvaluateRolloutGate checks every gate of the rollout on each node of
// the batch it upgraded; a node that fails one fails the batch.
func (a *Activities) EvaluateRolloutGate(ctx context.Context, req ProgressRequest) (GateResult, error) {
	ro, err := a.Store.GetRollout(ctx, req.RolloutID)
	if err != nil {
		return GateResult{}, classify(fmt.Errorf("read rollout %s: %w", req.RolloutID, err))
	}
	gates, err := compileGates(ro.Plan.Gates)
	if err != nil || len(gates) == 0 {
		return GateResult{Passed: err == nil, Reason: errText(err)}, nil
	}
	ns, err := a.Store.ListRolloutNodes(ctx, req.RolloutID, req.Batch)
	if err != nil {
		return GateResult{}, classify(fmt.Errorf("list batch %d of rollout %s: %w", req.Batch, req.RolloutID, err))
	}
	for _, rn := range ns {
		if rn.Status != engine.RolloutSucceeded {
			continue
		}
		if why, err := a.gateNode(ctx, rn.NodeID, gates); err != nil || why != "" {
			return GateResult{Reason: why}, err
		}
	}
	return GateResult{Passed: true}, nil
}

// gateNode returns why the node fails a gate, "" when it passes all.
func (a *Activities) gateNode(ctx context.Context, nodeID string, gates []*observe.Gate) (string, error) {
	f, err := a.nodeFacts(ctx, nodeID)
	if err != nil {
		return "", err
	}
	for _, g := range gates {
		ok, err := g.Holds(f)
		switch {
		case err != nil:
			return fmt.Sprintf("node %s: %v", nodeID, err), nil
		case !ok:
			return fmt.Sprintf("node %s fails gate %q", nodeID, g.Expr), nil
		}
	}
	return "", nil
}

func (a *Activities) nodeFacts(ctx context.Context, nodeID string) (*observe.Facts, error) {
	n, err := a.Store.GetNode(ctx, nodeID)
	if err != nil {
		return nil, classify(fmt.Errorf("read node %s: %w", nodeID, err))
	}
	var s *engine.AgentStatus
	if a.Statuses != nil {
		if s, err = a.Statuses.GetAgentStatus(ctx, nodeID); err != nil && !engine.IsCode(err, engine.ENotFound) {
			return nil, fmt.Errorf("read status of node %s: %w", nodeID, err)
		}
	}
	return observe.FactsOf(n, s, a.now()), nil
}

func compileGates(exprs []string) ([]*observe.Gate, error) {
	var out []*observe.Gate
	for _, e := range exprs {
		g, err := observe.CompileGate(e)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// ValidateCanaryHealth watches the canary batch's upgraded nodes for the
// time asked: each must keep sending heartbeats with app health not
// critical and no crash loop; at the end, the rollout's gates must hold.
func (a *Activities) ValidateCanaryHealth(ctx context.Context, w CanaryWatch) (GateResult, error) {
	ns, err := a.Store.ListRolloutNodes(ctx, w.RolloutID, 0)
	if err != nil {
		return GateResult{}, classify(fmt.Errorf("list the canary of rollout %s: %w", w.RolloutID, err))
	}
	ns = slices.DeleteFunc(ns, func(n *engine.RolloutNode) bool { return n.Status != engine.RolloutSucceeded })
	end := a.now().Add(w.For)
	for {
		for _, rn := range ns {
			if why, err := a.nodeTrouble(ctx, rn.NodeID); err != nil || why != "" {
				return GateResult{Reason: why}, err
			}
		}
		if a.now().After(end) {
			return a.EvaluateRolloutGate(ctx, ProgressRequest{RolloutID: w.RolloutID, Batch: 0})
		}
		heartbeat(ctx)
		if err := sleep(ctx, min(canaryPoll, a.timing().Poll)); err != nil {
			return GateResult{}, err
		}
	}
}

// nodeTrouble says what is wrong with a canary node now, "" if nothing.
func (a *Activities) nodeTrouble(ctx context.Context, nodeID string) (string, error) {
	if a.Statuses == nil {
		return "", nil
	}
	s, err := a.Statuses.GetAgentStatus(ctx, nodeID)
	switch {
	case engine.IsCode(err, engine.ENotFound):
		return fmt.Sprintf("node %s sends no heartbeat", nodeID), nil
	case err != nil:
		return "", fmt.Errorf("read status of node %s: %w", nodeID, err)
	}
	if why := unhealthy(s, 0); why != "" && s.BlockHeight > 0 {
		return fmt.Sprintf("node %s: %s", nodeID, why), nil
	}
	return "", nil
}

// changeRollout applies change to the rollout and writes it, reading again
// after a concurrent writer.
func (a *Activities) changeRollout(ctx context.Context, id string, change func(*engine.Rollout)) (*engine.Rollout, error) {
	var err error
	for range 5 {
		var ro *engine.Rollout
		if ro, err = a.Store.GetRollout(ctx, id); err != nil {
			return nil, classify(fmt.Errorf("read rollout %s: %w", id, err))
		}
		change(ro)
		ro.UpdatedAt = a.now()
		if err = a.Store.UpdateRollout(ctx, ro); err == nil {
			return ro, nil
		}
		if !engine.IsCode(err, engine.EConflict) {
			return nil, classify(err)
		}
	}
	return nil, fmt.Errorf("update rollout %s: %w", id, err)
}

// announceRollout publishes the rollout's event; a lost announcement is
// not worth failing the step for (the Store holds the truth).
func (a *Activities) announceRollout(ctx context.Context, ro *engine.Rollout, event string) {
	ev := engine.RolloutEvent{RolloutID: ro.ID, GroupID: ro.GroupID, Status: ro.Status, Component: ro.Component,
		Version: ro.TargetVersion, CurrentBatch: ro.CurrentBatch, Batches: ro.Batches, Succeeded: ro.Succeeded,
		Failed: ro.Failed, Message: ro.Message, At: ro.UpdatedAt}
	b, err := json.Marshal(ev)
	if err == nil && a.Events != nil {
		id := fmt.Sprintf("%s/%s/%d", ro.ID, event, ro.Version)
		err = a.Events.Publish(ctx, engine.RolloutEventSubject(ro.ID, event), id, b)
	}
	if err != nil && !errors.Is(err, context.Canceled) && activity.IsActivity(ctx) {
		activity.GetLogger(ctx).Warn("announce a rollout event", "rollout_id", ro.ID, "event", event, "error", err)
	}
}
