package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// fleet is a chain's nodes as the rollout activities see them, in memory:
// rollouts and groups, each rollout's node records and the release each
// node runs of each component. It fakes the rollout activities and
// UpgradeNodeWorkflow, logs what happened in order, and plays the
// operator, who signals the top workflow as told by when, whenGroup and
// duringUpgradeOf.
type fleet struct {
	mu sync.Mutex
	// ids are the chain's nodes; base is what each runs of a component
	// until upgraded (a node's own entry in releases wins).
	ids      []string
	base     engine.Release
	releases map[string]engine.Release // "node/component"
	rollouts map[string]*engine.Rollout
	records  map[string]map[string]*engine.RolloutNode // rollout, node
	groups   map[string]*engine.RolloutGroup

	// breaks: nodes, components or "node/component"s whose upgrade fails.
	breaks map[string]bool
	// gateFails: the batches whose gates fail, and why; canaryFails,
	// why the canary's observation fails ("" passes). groupGateFails:
	// the rollouts after which a group's health gate fails.
	gateFails      map[int]string
	unlisted       map[int]bool // batches the store cannot list
	canaryFails    string
	groupGateFails map[string]string

	react      map[engine.RolloutStatus][][]RolloutSignalRequest
	reactGroup map[engine.RolloutStatus][][]RolloutSignalRequest
	during     map[string][]RolloutSignalRequest

	log       []string
	upgrades  []UpgradeNodeInput
	changes   []RolloutStatusChange
	groupSets []GroupStatusChange
	incidents []IncidentRequest
	watches   []CanaryWatch

	// send signals the top workflow's current run.
	send func(RolloutSignalRequest)
	runs []*runCount
}

// runCount is what one run of the top workflow started.
type runCount struct{ children, activities int }

var baseRelease = engine.Release{Version: "v1.0.0", URL: "https://example.com/v1.0.0.tar.gz", SHA256: "aa"}

// newFleet is a chain of n nodes (node-01 …) running baseRelease.
func newFleet(n int) *fleet {
	f := &fleet{base: baseRelease, releases: map[string]engine.Release{}, rollouts: map[string]*engine.Rollout{},
		records: map[string]map[string]*engine.RolloutNode{}, groups: map[string]*engine.RolloutGroup{},
		breaks: map[string]bool{}, gateFails: map[int]string{}, unlisted: map[int]bool{}, groupGateFails: map[string]string{},
		react: map[engine.RolloutStatus][][]RolloutSignalRequest{}, reactGroup: map[engine.RolloutStatus][][]RolloutSignalRequest{},
		during: map[string][]RolloutSignalRequest{}}
	width := len(fmt.Sprint(n))
	for i := 1; i <= n; i++ {
		f.ids = append(f.ids, fmt.Sprintf("node-%0*d", max(width, 2), i))
	}
	return f
}

// when: the next time a rollout enters status, the operator sends sigs.
func (f *fleet) when(status engine.RolloutStatus, sigs ...RolloutSignalRequest) {
	f.react[status] = append(f.react[status], sigs)
}

// whenGroup is when for the group's status.
func (f *fleet) whenGroup(status engine.RolloutStatus, sigs ...RolloutSignalRequest) {
	f.reactGroup[status] = append(f.reactGroup[status], sigs)
}

// duringUpgradeOf: as the node's (first) upgrade starts, the operator
// sends sigs; the batch in flight goes on.
func (f *fleet) duringUpgradeOf(node string, sigs ...RolloutSignalRequest) {
	f.during[node] = sigs
}

// release is what the node runs of the component.
func (f *fleet) release(node, component string) engine.Release {
	if r, ok := f.releases[node+"/"+component]; ok {
		return r
	}
	return f.base
}

// add records a pending rollout of the component to version.
func (f *fleet) add(ro engine.Rollout) *engine.Rollout {
	if ro.Component == "" {
		ro.Component = "node"
	}
	if ro.TargetVersion == "" {
		ro.TargetVersion = "v2.0.0"
	}
	if ro.Spec.Release.Version == "" {
		ro.Spec.Release = engine.Release{Version: ro.TargetVersion, URL: "https://example.com/" + ro.TargetVersion + ".tar.gz", SHA256: "bb"}
	}
	if ro.Spec.Compatibility == "" {
		ro.Spec.Compatibility = engine.Compatible
	}
	if ro.Plan.HealthWait == 0 {
		ro.Plan.HealthWait = 5 * time.Minute
	}
	ro.Status = engine.RolloutPending
	f.rollouts[ro.ID] = &ro
	return &ro
}

// group records a group of one rollout per component, in order.
func (f *fleet) group(id, policy string, components ...string) *engine.RolloutGroup {
	g := &engine.RolloutGroup{ID: id, ChainProfileID: "chain", Components: components, FailurePolicy: policy, Status: engine.RolloutPending}
	for _, c := range components {
		ro := f.add(engine.Rollout{ID: id + "-" + c, GroupID: id, Component: c, Strategy: engine.StrategyRolling, BatchSize: 2, FailureThreshold: 1})
		g.Rollouts = append(g.Rollouts, ro.ID)
	}
	f.groups[id] = g
	return g
}

// newEnv is a fresh test environment whose rollout activities and node
// upgrades are the fleet's; signals of the operator go to it.
func (f *fleet) newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.SetTestTimeout(time.Minute)
	env.RegisterWorkflow(RolloutWorkflow)
	env.RegisterWorkflow(UpgradeNodeWorkflow)
	env.RegisterActivity(&Activities{})
	on := func(fn, impl any) { env.OnActivity(fn, mock.Anything, mock.Anything).Return(impl) }
	on(acts.ResolveRolloutTargets, f.resolve)
	on(acts.RolloutBatch, f.batch)
	on(acts.UpdateRolloutProgress, f.progress)
	on(acts.SetRolloutStatus, f.setStatus)
	on(acts.EvaluateRolloutGate, f.evaluateGate)
	on(acts.ValidateCanaryHealth, f.validateCanary)
	on(acts.OpenIncident, f.openIncident)
	on(acts.GetRolloutGroup, f.getGroup)
	on(acts.SetRolloutGroupStatus, f.setGroupStatus)
	on(acts.GroupHealthGate, f.groupGate)
	env.OnWorkflow(UpgradeNodeWorkflow, mock.Anything, mock.Anything).Return(f.upgradeNode)
	f.mu.Lock()
	f.send = func(s RolloutSignalRequest) { env.SignalWorkflow(RolloutSignalName, s) }
	f.runs = append(f.runs, &runCount{})
	f.mu.Unlock()
	return env
}

// maxRuns bounds a rollout's runs in a test: a workflow that continues as
// new forever fails instead of hanging.
const maxRuns = 100

// rollout runs RolloutWorkflow from in as the server would: each time a
// run continues as new, the next starts in a fresh environment with the
// input it handed over, against the same fleet.
func (f *fleet) rollout(t *testing.T, in RolloutInput) RolloutOutcome {
	t.Helper()
	var out RolloutOutcome
	f.runToEnd(t, RolloutWorkflow, in, &out, func(can *workflow.ContinueAsNewError) any {
		next := RolloutInput{}
		if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
			t.Fatalf("decode the next run's input: %v", err)
		}
		if next.RolloutID != in.RolloutID || next.Grouped != in.Grouped {
			t.Fatalf("run continued as %+v, from %+v", next, in)
		}
		return next
	})
	return out
}

// runGroup runs RolloutGroupWorkflow to its end; its rollouts run as
// children (and continue as new as children do).
func (f *fleet) runGroup(t *testing.T, id string) RolloutOutcome {
	t.Helper()
	var out RolloutOutcome
	f.runToEnd(t, RolloutGroupWorkflow, RolloutGroupInput{GroupID: id}, &out, func(*workflow.ContinueAsNewError) any {
		t.Fatal("a group continued as new")
		return nil
	})
	return out
}

func (f *fleet) runToEnd(t *testing.T, wf, in, out any, next func(*workflow.ContinueAsNewError) any) {
	t.Helper()
	for range maxRuns {
		env := f.newEnv(t)
		env.ExecuteWorkflow(wf, in)
		if !env.IsWorkflowCompleted() {
			t.Fatal("the workflow did not complete")
		}
		err := env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if errors.As(err, &can) {
			in = next(can)
			continue
		}
		if err != nil {
			t.Fatalf("workflow failed: %v", err)
		}
		if err := env.GetWorkflowResult(out); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("still running after %d runs", maxRuns)
}

// continued counts the runs that continued as new.
func (f *fleet) continued() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.runs) - 1
}

func (f *fleet) note(format string, args ...any) {
	f.log = append(f.log, fmt.Sprintf(format, args...))
}

// counted notes an activity of the current run; f.mu is held.
func (f *fleet) counted() { f.runs[len(f.runs)-1].activities++ }

// signal sends the operator's signals to the top workflow's current run.
func (f *fleet) signal(sigs ...RolloutSignalRequest) {
	for _, s := range sigs {
		f.send(s)
	}
}

// react sends the operator's next signals for status; f.mu is held.
func (f *fleet) reactTo(m map[engine.RolloutStatus][][]RolloutSignalRequest, s engine.RolloutStatus) {
	if q := m[s]; len(q) > 0 {
		m[s] = q[1:]
		f.signal(q[0]...)
	}
}

func notFound(what, id string) error {
	return temporal.NewNonRetryableApplicationError(what+" "+id+" not found", string(engine.ENotFound), nil)
}

func (f *fleet) resolve(_ context.Context, id string) (RolloutSpec, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counted()
	ro, ok := f.rollouts[id]
	if !ok {
		return RolloutSpec{}, notFound("rollout", id)
	}
	if ro.Status == engine.RolloutPending {
		var nodes []*engine.RolloutNode
		f.records[id] = map[string]*engine.RolloutNode{}
		for _, n := range f.ids {
			rn := &engine.RolloutNode{RolloutID: id, NodeID: n, Status: engine.RolloutPending}
			nodes = append(nodes, rn)
			f.records[id][n] = rn
		}
		ro.Batches = assignBatches(ro, nodes)
		ro.Status = engine.RolloutRunning
	}
	return RolloutSpec{Rollout: *ro, Batches: ro.Batches}, nil
}

// nodesOf lists the rollout's records of a batch (all when batch < 0) by
// batch then node; f.mu is held.
func (f *fleet) nodesOf(id string, batch int) []*engine.RolloutNode {
	var out []*engine.RolloutNode
	for _, rn := range f.records[id] {
		if batch < 0 || rn.BatchIndex == batch {
			c := *rn
			out = append(out, &c)
		}
	}
	slices.SortFunc(out, func(a, b *engine.RolloutNode) int {
		if a.BatchIndex != b.BatchIndex {
			return a.BatchIndex - b.BatchIndex
		}
		return strings.Compare(a.NodeID, b.NodeID)
	})
	return out
}

func (f *fleet) batch(_ context.Context, req BatchRequest) ([]*engine.RolloutNode, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counted()
	if f.unlisted[req.Batch] {
		return nil, temporal.NewNonRetryableApplicationError("store unavailable", "test", nil)
	}
	return slices.DeleteFunc(f.nodesOf(req.RolloutID, req.Batch), func(n *engine.RolloutNode) bool {
		if req.Rollback {
			return n.NewVersion == "" || n.Status == engine.RolloutRolledBack
		}
		return n.Status.Finished()
	}), nil
}

func (f *fleet) progress(_ context.Context, req ProgressRequest) (RolloutProgress, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counted()
	p := countProgress(f.nodesOf(req.RolloutID, -1))
	ro := f.rollouts[req.RolloutID]
	ro.CurrentBatch, ro.Succeeded, ro.Failed = req.Batch, p.Succeeded+p.Skipped, p.Failed
	return p, nil
}

func (f *fleet) setStatus(_ context.Context, c RolloutStatusChange) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counted()
	ro, ok := f.rollouts[c.RolloutID]
	if !ok {
		return notFound("rollout", c.RolloutID)
	}
	ro.Status, ro.Message, ro.Forced = c.Status, c.Message, ro.Forced || c.Forced
	f.changes = append(f.changes, c)
	f.note("%s %s", c.RolloutID, c.Status)
	f.reactTo(f.react, c.Status)
	return nil
}

func (f *fleet) evaluateGate(_ context.Context, req ProgressRequest) (GateResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counted()
	if why, ok := f.gateFails[req.Batch]; ok {
		return GateResult{Reason: why}, nil
	}
	return GateResult{Passed: true}, nil
}

func (f *fleet) validateCanary(_ context.Context, w CanaryWatch) (GateResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counted()
	f.watches = append(f.watches, w)
	f.note("%s canary watched", w.RolloutID)
	if f.canaryFails != "" {
		return GateResult{Reason: f.canaryFails}, nil
	}
	return GateResult{Passed: true}, nil
}

func (f *fleet) openIncident(_ context.Context, r IncidentRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counted()
	f.incidents = append(f.incidents, r)
	f.note("incident %s", r.DedupeKey)
	return nil
}

func (f *fleet) getGroup(_ context.Context, id string) (engine.RolloutGroup, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counted()
	g, ok := f.groups[id]
	if !ok {
		return engine.RolloutGroup{}, notFound("rollout group", id)
	}
	return *g, nil
}

func (f *fleet) setGroupStatus(_ context.Context, c GroupStatusChange) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counted()
	g := f.groups[c.GroupID]
	g.Status, g.Message, g.Current, g.Skipped = c.Status, c.Message, c.Current, c.Skipped
	f.groupSets = append(f.groupSets, c)
	f.note("%s %s", c.GroupID, c.Status)
	f.reactTo(f.reactGroup, c.Status)
	return nil
}

func (f *fleet) groupGate(_ context.Context, rolloutID string) (GateResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counted()
	if why, ok := f.groupGateFails[rolloutID]; ok {
		return GateResult{Reason: why}, nil
	}
	return GateResult{Passed: true}, nil
}

// upgradeNode stands for UpgradeNodeWorkflow: the node's record and
// release change as the real one's activities would change them.
func (f *fleet) upgradeNode(_ workflow.Context, in UpgradeNodeInput) (NodeUpgradeResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs[len(f.runs)-1].children++
	f.upgrades = append(f.upgrades, in)
	verb := "upgraded"
	if in.Rollback {
		verb = "rolled back"
	}
	f.note("%s %s %s", in.RolloutID, in.NodeID, verb)
	if sigs, ok := f.during[in.NodeID]; ok && !in.Rollback {
		delete(f.during, in.NodeID)
		f.signal(sigs...)
	}
	rn := f.records[in.RolloutID][in.NodeID]
	key := in.NodeID + "/" + in.Component
	cur := f.release(in.NodeID, in.Component)
	switch {
	case in.Rollback:
		f.releases[key] = in.Target
		rn.Status = engine.RolloutRolledBack
	case cur.Version == in.Target.Version:
		rn.Status = engine.RolloutSkipped
	case f.breaks[in.NodeID] || f.breaks[in.Component] || f.breaks[key]:
		rn.Status, rn.Error = engine.RolloutFailed, "upgrade command: injected failure"
	default:
		rn.Previous, rn.PreviousVersion, rn.NewVersion = cur, cur.Version, in.Target.Version
		f.releases[key] = in.Target
		rn.Status = engine.RolloutSucceeded
	}
	return NodeUpgradeResult{Status: rn.Status, Error: rn.Error}, nil
}

// batches are the nodes the rollout upgraded (not rolled back), batch by
// batch as they ran, by id within a batch (a batch's children run
// concurrently).
func (f *fleet) batches(rolloutID string) [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]string
	last := -1
	for _, in := range f.upgrades {
		if in.RolloutID != rolloutID || in.Rollback {
			continue
		}
		if len(out) == 0 || in.Batch != last {
			out = append(out, nil)
			last = in.Batch
		}
		out[len(out)-1] = append(out[len(out)-1], in.NodeID)
	}
	for _, b := range out {
		slices.Sort(b)
	}
	return out
}

// rolledBack are the inputs of the rollout's rollback upgrades, by node.
func (f *fleet) rolledBack(rolloutID string) map[string]UpgradeNodeInput {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]UpgradeNodeInput{}
	for _, in := range f.upgrades {
		if in.RolloutID == rolloutID && in.Rollback {
			out[in.NodeID] = in
		}
	}
	return out
}

// trail is the statuses the rollout was set to, a repeat shown once.
func (f *fleet) trail(rolloutID string) []engine.RolloutStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []engine.RolloutStatus
	for _, c := range f.changes {
		if c.RolloutID == rolloutID && (len(out) == 0 || out[len(out)-1] != c.Status) {
			out = append(out, c.Status)
		}
	}
	return out
}

// groupTrail is trail for the group.
func (f *fleet) groupTrail() []engine.RolloutStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []engine.RolloutStatus
	for _, c := range f.groupSets {
		if len(out) == 0 || out[len(out)-1] != c.Status {
			out = append(out, c.Status)
		}
	}
	return out
}

// lastChange is the rollout's latest status change.
func (f *fleet) lastChange(rolloutID string, status engine.RolloutStatus) (RolloutStatusChange, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range slices.Backward(f.changes) {
		if c.RolloutID == rolloutID && c.Status == status {
			return c, true
		}
	}
	return RolloutStatusChange{}, false
}

// events is the log, those lines that contain one of the words.
func (f *fleet) events(words ...string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, l := range f.log {
		if len(words) == 0 || slices.ContainsFunc(words, func(w string) bool { return strings.Contains(l, w) }) {
			out = append(out, l)
		}
	}
	return out
}
