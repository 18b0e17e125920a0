package web_test

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
	"github.com/hoodcloud/hoodcloud/engine/rollouts"
)

// memRollouts is an engine.RolloutStore in memory, to the port's contract.
type memRollouts struct {
	mu       sync.Mutex
	rollouts map[string]*engine.Rollout
	nodes    map[string]*engine.RolloutNode // by rollout id + "/" + node id
	groups   map[string]*engine.RolloutGroup
}

var _ engine.RolloutStore = (*memRollouts)(nil)

func newMemRollouts() *memRollouts {
	return &memRollouts{rollouts: map[string]*engine.Rollout{}, nodes: map[string]*engine.RolloutNode{}, groups: map[string]*engine.RolloutGroup{}}
}

func (m *memRollouts) CreateRollout(_ context.Context, r *engine.Rollout) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.rollouts[r.ID]; ok {
		return engine.Errorf(engine.EConflict, "rollout %s exists", r.ID)
	}
	r.Version = 1
	cp := *r
	m.rollouts[r.ID] = &cp
	return nil
}

func (m *memRollouts) GetRollout(_ context.Context, id string) (*engine.Rollout, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rollouts[id]
	if !ok {
		return nil, engine.Errorf(engine.ENotFound, "no rollout %s", id)
	}
	cp := *r
	return &cp, nil
}

func (m *memRollouts) UpdateRollout(_ context.Context, r *engine.Rollout) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.rollouts[r.ID]
	switch {
	case !ok:
		return engine.Errorf(engine.ENotFound, "no rollout %s", r.ID)
	case old.Version != r.Version:
		return engine.Errorf(engine.EConflict, "rollout %s changed", r.ID)
	}
	r.Version++
	cp := *r
	m.rollouts[r.ID] = &cp
	return nil
}

func (m *memRollouts) ListRollouts(_ context.Context, before string, limit int) ([]*engine.Rollout, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	all := make([]*engine.Rollout, 0, len(m.rollouts))
	for _, r := range m.rollouts {
		cp := *r
		all = append(all, &cp)
	}
	slices.SortFunc(all, func(a, b *engine.Rollout) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(b.ID, a.ID))
	})
	return pageAfter(all, before, limit, func(r *engine.Rollout) string { return r.ID }), nil
}

// pageAfter is the items after the one with id before ("" for the start),
// at most limit.
func pageAfter[T any](all []*T, before string, limit int, id func(*T) string) []*T {
	if before != "" {
		i := slices.IndexFunc(all, func(t *T) bool { return id(t) == before })
		all = all[i+1:]
	}
	return all[:min(limit, len(all))]
}

func (m *memRollouts) PutRolloutNodes(_ context.Context, ns []*engine.RolloutNode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range ns {
		cp := *n
		m.nodes[n.RolloutID+"/"+n.NodeID] = &cp
	}
	return nil
}

func (m *memRollouts) ListRolloutNodes(_ context.Context, rolloutID string, batch int) ([]*engine.RolloutNode, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*engine.RolloutNode
	for _, n := range m.nodes {
		if n.RolloutID == rolloutID && (batch < 0 || n.BatchIndex == batch) {
			cp := *n
			out = append(out, &cp)
		}
	}
	slices.SortFunc(out, func(a, b *engine.RolloutNode) int {
		return cmp.Or(cmp.Compare(a.BatchIndex, b.BatchIndex), cmp.Compare(a.NodeID, b.NodeID))
	})
	return out, nil
}

func (m *memRollouts) CreateRolloutGroup(_ context.Context, g *engine.RolloutGroup) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.groups[g.ID]; ok {
		return engine.Errorf(engine.EConflict, "rollout group %s exists", g.ID)
	}
	g.Version = 1
	cp := *g
	m.groups[g.ID] = &cp
	return nil
}

func (m *memRollouts) GetRolloutGroup(_ context.Context, id string) (*engine.RolloutGroup, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.groups[id]
	if !ok {
		return nil, engine.Errorf(engine.ENotFound, "no rollout group %s", id)
	}
	cp := *g
	return &cp, nil
}

func (m *memRollouts) UpdateRolloutGroup(_ context.Context, g *engine.RolloutGroup) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.groups[g.ID]
	switch {
	case !ok:
		return engine.Errorf(engine.ENotFound, "no rollout group %s", g.ID)
	case old.Version != g.Version:
		return engine.Errorf(engine.EConflict, "rollout group %s changed", g.ID)
	}
	g.Version++
	cp := *g
	m.groups[g.ID] = &cp
	return nil
}

func (m *memRollouts) ListRolloutGroups(_ context.Context, before string, limit int) ([]*engine.RolloutGroup, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	all := make([]*engine.RolloutGroup, 0, len(m.groups))
	for _, g := range m.groups {
		cp := *g
		all = append(all, &cp)
	}
	slices.SortFunc(all, func(a, b *engine.RolloutGroup) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(b.ID, a.ID))
	})
	return pageAfter(all, before, limit, func(g *engine.RolloutGroup) string { return g.ID }), nil
}

// rolloutCall is one call the workflows received.
type rolloutCall struct {
	What      string // start, rollback, start-group, signal, signal-group
	ID        string
	Signal    engine.RolloutSignal
	Component string
}

// fakeRolloutWorkflows records what it is asked; notRunning answers
// signals as if no workflow ran.
type fakeRolloutWorkflows struct {
	mu         sync.Mutex
	calls      []rolloutCall
	notRunning bool
}

var _ engine.RolloutWorkflows = (*fakeRolloutWorkflows)(nil)

func (w *fakeRolloutWorkflows) record(c rolloutCall) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.notRunning && (c.What == "signal" || c.What == "signal-group") {
		return engine.Errorf(engine.ENotFound, "workflow %s is not running", c.ID)
	}
	w.calls = append(w.calls, c)
	return nil
}

func (w *fakeRolloutWorkflows) StartRollout(_ context.Context, id string, rollback bool) error {
	what := "start"
	if rollback {
		what = "rollback"
	}
	return w.record(rolloutCall{What: what, ID: id})
}

func (w *fakeRolloutWorkflows) StartRolloutGroup(_ context.Context, id string) error {
	return w.record(rolloutCall{What: "start-group", ID: id})
}

func (w *fakeRolloutWorkflows) SignalRollout(_ context.Context, id string, sig engine.RolloutSignal) error {
	return w.record(rolloutCall{What: "signal", ID: id, Signal: sig})
}

func (w *fakeRolloutWorkflows) SignalRolloutGroup(_ context.Context, id string, sig engine.RolloutSignal, component string) error {
	return w.record(rolloutCall{What: "signal-group", ID: id, Signal: sig, Component: component})
}

func (w *fakeRolloutWorkflows) received() []rolloutCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.calls)
}

// rolloutChain has two components, so that groups have an order to keep.
const rolloutChain = `id: duo-chain
name: Duo Chain
version: "1"
family: ethereum
components:
  - name: geth
    version: "1.15.11"
    url: https://example.com/geth.tar.gz
    sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
  - name: beacon
    version: "5.0.0"
    url: https://example.com/beacon.tar.gz
    sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
node_types:
  - name: full
    durations:
      1m: {provider: hetzner, region: fsn1, instance_type: cpx41}
`

// The manifests the rollout service finds, by chain and upgrade id.
var rolloutManifests = map[string]rollouts.Manifest{
	"duo-chain/geth-1.16": {Component: "geth", Hash: "5e1f2a", Spec: engine.UpgradeSpec{UpgradeID: "geth-1.16",
		Release:       engine.Release{Version: "1.16.0", URL: "https://example.com/geth-1.16.tar.gz", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
		Compatibility: engine.Breaking}},
	"duo-chain/beacon-6": {Component: "beacon", Hash: "77aa01", Spec: engine.UpgradeSpec{UpgradeID: "beacon-6",
		Release: engine.Release{Version: "6.0.0"}, Compatibility: engine.Compatible}},
}

// newRolloutService is the rollout use case over memory and fake workflows.
func newRolloutService(tb testing.TB) (*rollouts.Service, *memRollouts, *fakeRolloutWorkflows) {
	tb.Helper()
	chains, err := profile.LoadCatalog(profile.Source{Name: "test", FS: fstest.MapFS{"duo-chain.yaml": {Data: []byte(rolloutChain)}}})
	if err != nil {
		tb.Fatal(err)
	}
	st, wf := newMemRollouts(), &fakeRolloutWorkflows{}
	svc := &rollouts.Service{Store: st, Workflows: wf, Chains: chains.Get,
		Manifests: func(chainID, upgradeID string) (rollouts.Manifest, error) {
			m, ok := rolloutManifests[chainID+"/"+upgradeID]
			if !ok {
				return m, engine.Errorf(engine.ENotFound, "chain %s has no upgrade %q", chainID, upgradeID)
			}
			return m, nil
		}}
	return svc, st, wf
}
