package observe_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/observe"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"github.com/hoodcloud/hoodcloud/store/redis"
)

// fleet is an evaluator over a real bbolt store and embedded Redis, on a
// clock the test moves one heartbeat interval per cycle.
type fleet struct {
	t         *testing.T
	store     *bolt.Store
	cache     *redis.Embedded
	statuses  engine.AgentStatusLister
	eval      *observe.Evaluator
	announced *announcements
	now       time.Time
}

const interval = 10 * time.Second

func newFleet(t *testing.T, tweak func(*observe.Config)) *fleet {
	t.Helper()
	st := bolt.New(filepath.Join(t.TempDir(), "hoodcloud.db"))
	if err := st.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cache := redis.NewEmbedded(redis.Options{})
	if err := cache.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	f := &fleet{t: t, store: st, cache: cache, statuses: cache, announced: &announcements{}, now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	cfg := observe.Config{
		Nodes: st, Incidents: st, Commands: st, Cache: cache, Statuses: f, Events: f.announced,
		Now: func() time.Time { return f.now }, HeartbeatInterval: interval,
		StuckAfter: time.Minute, Confirmations: 3, Remediate: true, EscalateAfter: time.Minute,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	f.eval = observe.NewEvaluator(cfg)
	return f
}

// GetAgentStatuses reads through f.statuses, which a test may swap for a
// failing one.
func (f *fleet) GetAgentStatuses(ctx context.Context, ids []string) (map[string]*engine.AgentStatus, error) {
	return f.statuses.GetAgentStatuses(ctx, ids)
}

func (f *fleet) node(id string, state engine.NodeState) {
	f.t.Helper()
	n := &engine.Node{ID: id, SubscriptionID: "sub_" + id, OwnerID: "usr_1", ChainProfileID: "sim", NodeType: "full",
		State: state, CreatedAt: f.now, UpdatedAt: f.now, LastSeenAt: f.now}
	if err := f.store.CreateNode(context.Background(), n); err != nil {
		f.t.Fatal(err)
	}
}

// report is a heartbeat of a caught-up chain with peers at height.
func (f *fleet) report(id string, height uint64, change func(*engine.AgentStatus)) {
	f.t.Helper()
	s := &engine.AgentStatus{NodeID: id, Health: engine.AppHealthHealthy, BlockHeight: height, HighestBlock: height,
		Peers: 5, MetricsAt: f.now, ReportedAt: f.now}
	if change != nil {
		change(s)
	}
	if err := f.cache.SetAgentStatus(context.Background(), s, time.Hour); err != nil {
		f.t.Fatal(err)
	}
}

// cycle moves the clock one interval and evaluates.
func (f *fleet) cycle() observe.Stats {
	f.t.Helper()
	f.now = f.now.Add(interval)
	st, err := f.eval.Cycle(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

func (f *fleet) state(id string) engine.NodeState {
	f.t.Helper()
	n, err := f.store.GetNode(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return n.State
}

// incidents returns the node's incidents by dedupe key: "open" or "resolved".
func (f *fleet) incidents(id string) map[string]string {
	f.t.Helper()
	all, err := f.store.ListIncidents(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]string{}
	for _, in := range all {
		if in.Open() {
			out[in.DedupeKey] = "open"
		} else {
			out[in.DedupeKey] = "resolved"
		}
	}
	return out
}

func TestAVerdictChangesTheNodeOnlyAfterConsecutiveCycles(t *testing.T) {
	f := newFleet(t, nil)
	f.node("node_a", engine.NodeRunning)
	noPeers := func(s *engine.AgentStatus) { s.Peers = 0 }
	height := uint64(10)
	for range 4 { // flapping: bad, good, bad, good…
		f.report("node_a", height, noPeers)
		f.cycle()
		height++
		f.report("node_a", height, nil)
		f.cycle()
		height++
	}
	if got := f.state("node_a"); got != engine.NodeRunning || len(f.incidents("node_a")) != 0 {
		t.Fatalf("a flapping verdict moved the node: %s, incidents %v", got, f.incidents("node_a"))
	}
	for i := range 3 {
		if got := f.state("node_a"); got != engine.NodeRunning {
			t.Fatalf("degraded after %d bad cycles; want 3", i)
		}
		f.report("node_a", height, noPeers)
		f.cycle()
		height++
	}
	if got := f.state("node_a"); got != engine.NodeDegraded {
		t.Fatalf("state %s after 3 bad cycles; want degraded", got)
	}
	if got := f.incidents("node_a"); got["policy:no-peers"] != "open" {
		t.Fatalf("incidents %v; want policy:no-peers open", got)
	}
	for range 3 {
		f.report("node_a", height, nil)
		f.cycle()
		height++
	}
	if got := f.state("node_a"); got != engine.NodeRunning {
		t.Fatalf("state %s after 3 good cycles; want running", got)
	}
	if got := f.incidents("node_a"); got["policy:no-peers"] != "resolved" {
		t.Fatalf("incidents %v; want policy:no-peers resolved", got)
	}
	if got := f.announced.count("events.node.node_a.state_changed"); got != 2 {
		t.Errorf("%d state changes announced; want 2", got)
	}
}

func TestASilentNodeIsCriticalAfterThreeIntervals(t *testing.T) {
	f := newFleet(t, func(c *observe.Config) { c.Confirmations = 1 })
	f.node("node_a", engine.NodeRunning)
	// Silent since long before the evaluator began: the silence counts
	// from its first look, so agents reconnecting after an appliance
	// restart are not called dead at once.
	f.now = f.now.Add(time.Hour)
	for i := range 3 {
		f.cycle()
		if got := f.state("node_a"); got != engine.NodeRunning {
			t.Fatalf("state %s after %d watched silent intervals", got, i)
		}
	}
	f.cycle()
	if got := f.state("node_a"); got != engine.NodeDegraded {
		t.Fatalf("state %s after 3 silent intervals; want degraded", got)
	}
	in, err := f.store.FindOpenIncident(context.Background(), "node_a", "policy:no-heartbeat")
	if err != nil || in.Severity != engine.SeverityCritical {
		t.Fatalf("incident %+v, %v; want a critical one", in, err)
	}
}

func TestASyncingNodeRunsOnceCaughtUp(t *testing.T) {
	f := newFleet(t, func(c *observe.Config) { c.Confirmations = 2 })
	f.node("node_a", engine.NodeSyncing)
	f.report("node_a", 10, func(s *engine.AgentStatus) { s.Syncing, s.HighestBlock = true, 90 })
	f.cycle()
	f.cycle()
	if got := f.state("node_a"); got != engine.NodeSyncing {
		t.Fatalf("state %s while behind", got)
	}
	f.report("node_a", 90, nil)
	f.cycle()
	f.cycle()
	if got := f.state("node_a"); got != engine.NodeRunning {
		t.Fatalf("state %s once caught up; want running", got)
	}
}

func TestAStuckNodeGetsOneRestartThenEscalates(t *testing.T) {
	f := newFleet(t, func(c *observe.Config) { c.Confirmations = 1 })
	f.node("node_a", engine.NodeRunning)
	// The height stands still at 10 for a minute: stuck.
	for range 7 {
		f.report("node_a", 10, nil)
		f.cycle()
	}
	if got := f.state("node_a"); got != engine.NodeDegraded {
		t.Fatalf("state %s; want degraded", got)
	}
	restarts := func() int {
		cs, err := f.store.ListCommandsByNode(context.Background(), "node_a")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range cs {
			if c.Type == engine.CommandRestart {
				n++
			}
		}
		return n
	}
	// Still stuck for a while: one restart only, then the escalation.
	for range 6 {
		f.report("node_a", 10, nil)
		f.cycle()
	}
	if got := restarts(); got != 1 {
		t.Fatalf("%d restarts; want exactly 1 per incident", got)
	}
	if got := f.incidents("node_a"); got["policy:stuck"] != "open" || got["policy:stuck-escalated"] != "open" {
		t.Fatalf("incidents %v; want stuck and its escalation open", got)
	}
	// A new evaluator (a new leader) sends no second restart.
	f2 := newFleetOn(t, f)
	for range 3 {
		f2.report("node_a", 10, nil)
		f2.cycle()
	}
	if got := restarts(); got != 1 {
		t.Fatalf("%d restarts after a leader change; want 1", got)
	}
	f2.report("node_a", 11, nil)
	f2.cycle()
	if got := f.state("node_a"); got != engine.NodeRunning {
		t.Fatalf("state %s once the height grows; want running", got)
	}
	if got := f.incidents("node_a"); got["policy:stuck"] != "resolved" || got["policy:stuck-escalated"] != "resolved" {
		t.Fatalf("incidents %v; want both resolved", got)
	}
}

// newFleetOn is a second evaluator over f's store and cache, as a new
// leader would start.
func newFleetOn(t *testing.T, f *fleet) *fleet {
	g := *f
	g.eval = observe.NewEvaluator(observe.Config{
		Nodes: f.store, Incidents: f.store, Commands: f.store, Cache: f.cache, Statuses: &g, Events: f.announced,
		Now: func() time.Time { return g.now }, HeartbeatInterval: interval,
		StuckAfter: time.Minute, Confirmations: 1, Remediate: true, EscalateAfter: time.Minute,
	})
	return &g
}

func TestNodesOfWorkflowsAreNeverTouched(t *testing.T) {
	f := newFleet(t, func(c *observe.Config) { c.Confirmations = 1 })
	for id, s := range map[string]engine.NodeState{
		"node_m": engine.NodeMaintenance, "node_p": engine.NodeProvisioning, "node_t": engine.NodeTerminating,
	} {
		f.node(id, s)
	}
	for range 5 {
		st := f.cycle()
		if st.Nodes != 0 {
			t.Fatalf("judged %d nodes; want none", st.Nodes)
		}
	}
	for id, want := range map[string]engine.NodeState{
		"node_m": engine.NodeMaintenance, "node_p": engine.NodeProvisioning, "node_t": engine.NodeTerminating,
	} {
		if got := f.state(id); got != want || len(f.incidents(id)) != 0 {
			t.Errorf("%s: %s, incidents %v; want %s untouched", id, got, f.incidents(id), want)
		}
	}
}

func TestUnreadableHeartbeatsChangeNothingAndTripTheBreaker(t *testing.T) {
	f := newFleet(t, func(c *observe.Config) { c.Confirmations = 1 })
	f.node("node_a", engine.NodeRunning)
	failing := &failingStatuses{}
	f.statuses = failing
	for range 10 {
		st := f.cycle()
		if st.Unread != 1 {
			t.Fatalf("stats %+v; want the node unread", st)
		}
	}
	if got := f.state("node_a"); got != engine.NodeRunning {
		t.Fatalf("state %s while the cache is down; want running (unknown is not critical)", got)
	}
	// Three failures open the breaker; then one trial read per 30 s
	// cooldown: at cycles 6 and 9 of 10 s each.
	if got := failing.reads(); got != 5 {
		t.Errorf("%d reads of a failing cache in 10 cycles; want 5", got)
	}
}

func TestAFencedWriteEndsTheCycle(t *testing.T) {
	f := newFleet(t, func(c *observe.Config) { c.Confirmations = 1 })
	f.node("node_a", engine.NodeRunning)
	f.node("node_b", engine.NodeRunning)
	ctx := engine.WithLeaderEpoch(context.Background(), 1)
	f.eval = observe.NewEvaluator(observe.Config{
		Nodes: fencedNodes{f.store}, Incidents: f.store, Commands: f.store, Cache: f.cache, Statuses: f, Events: f.announced,
		Now: func() time.Time { return f.now }, HeartbeatInterval: interval, Confirmations: 1,
	})
	f.report("node_a", 10, func(s *engine.AgentStatus) { s.Peers = 0 })
	_, err := f.eval.Cycle(ctx)
	if !errors.Is(err, engine.ErrStaleLeader) {
		t.Fatalf("cycle: %v; want ErrStaleLeader", err)
	}
}

// fencedNodes refuses every state change as a deposed leader's.
type fencedNodes struct{ engine.NodeStore }

func (fencedNodes) ChangeNodeState(context.Context, int64, *engine.NodeStateChange) (*engine.Node, error) {
	return nil, engine.ErrStaleLeader
}

type failingStatuses struct {
	mu sync.Mutex
	n  int
}

func (s *failingStatuses) GetAgentStatuses(context.Context, []string) (map[string]*engine.AgentStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return nil, engine.Errorf(engine.EUnavailable, "cache down")
}

func (s *failingStatuses) reads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// announcements records what was announced; the evaluator uses no other
// part of the bus.
type announcements struct {
	engine.Events
	mu       sync.Mutex
	subjects []string
}

func (a *announcements) Announce(_ context.Context, subject string, _ []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.subjects = append(a.subjects, subject)
	return nil
}

func (a *announcements) count(subject string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, s := range a.subjects {
		if strings.EqualFold(s, subject) {
			n++
		}
	}
	return n
}

func TestTheEvaluatorPutsBackANodeSomeoneElseMoved(t *testing.T) {
	f := newFleet(t, func(c *observe.Config) { c.Confirmations = 1 })
	f.node("node_a", engine.NodeRunning)
	f.report("node_a", 10, func(s *engine.AgentStatus) { s.Peers = 0 })
	f.cycle()
	if got := f.state("node_a"); got != engine.NodeDegraded {
		t.Fatalf("state %s; want degraded", got)
	}
	// A workflow ends by setting running while the verdict stands.
	if _, err := engine.TransitionNode(context.Background(), f.store, f.announced, "node_a", engine.NodeRunning, "a workflow", f.now); err != nil {
		t.Fatal(err)
	}
	f.report("node_a", 11, func(s *engine.AgentStatus) { s.Peers = 0 })
	f.cycle()
	if got := f.state("node_a"); got != engine.NodeDegraded {
		t.Fatalf("state %s; want degraded again: the verdict still stands", got)
	}
}

func TestANodeThatLeavesTheWatchedStatesHasItsPolicyIncidentsResolved(t *testing.T) {
	f := newFleet(t, func(c *observe.Config) { c.Confirmations = 1 })
	f.node("node_a", engine.NodeRunning)
	f.report("node_a", 10, func(s *engine.AgentStatus) { s.Peers = 0 })
	f.cycle()
	if got := f.incidents("node_a"); got["policy:no-peers"] != "open" {
		t.Fatalf("incidents %v; want policy:no-peers open", got)
	}
	if _, err := engine.TransitionNode(context.Background(), f.store, f.announced, "node_a", engine.NodeTerminating, "cancelled", f.now); err != nil {
		t.Fatal(err)
	}
	f.cycle()
	if got := f.incidents("node_a"); got["policy:no-peers"] != "resolved" {
		t.Fatalf("incidents %v; want policy:no-peers resolved once the node is terminating", got)
	}
}
