package mock

import (
	"cmp"
	"context"
	"slices"
	"sync"

	"github.com/hoodcloud/hoodcloud/engine"
)

// RolloutStore is an engine.RolloutStore in memory, to the port's
// contract: records are copied in and out.
type RolloutStore struct {
	mu       sync.Mutex
	rollouts map[string]*engine.Rollout
	nodes    map[string]*engine.RolloutNode // by rollout id + "/" + node id
	groups   map[string]*engine.RolloutGroup
}

var _ engine.RolloutStore = (*RolloutStore)(nil)

// NewRolloutStore is an empty store.
func NewRolloutStore() *RolloutStore {
	return &RolloutStore{rollouts: map[string]*engine.Rollout{}, nodes: map[string]*engine.RolloutNode{}, groups: map[string]*engine.RolloutGroup{}}
}

func (m *RolloutStore) CreateRollout(_ context.Context, r *engine.Rollout) error {
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

func (m *RolloutStore) GetRollout(_ context.Context, id string) (*engine.Rollout, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rollouts[id]
	if !ok {
		return nil, engine.Errorf(engine.ENotFound, "no rollout %s", id)
	}
	cp := *r
	return &cp, nil
}

func (m *RolloutStore) UpdateRollout(_ context.Context, r *engine.Rollout) error {
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

func (m *RolloutStore) ListRollouts(_ context.Context, before string, limit int) ([]*engine.Rollout, error) {
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

func (m *RolloutStore) PutRolloutNodes(_ context.Context, ns []*engine.RolloutNode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range ns {
		cp := *n
		m.nodes[n.RolloutID+"/"+n.NodeID] = &cp
	}
	return nil
}

func (m *RolloutStore) ListRolloutNodes(_ context.Context, rolloutID string, batch int) ([]*engine.RolloutNode, error) {
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

func (m *RolloutStore) CreateRolloutGroup(_ context.Context, g *engine.RolloutGroup) error {
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

func (m *RolloutStore) GetRolloutGroup(_ context.Context, id string) (*engine.RolloutGroup, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.groups[id]
	if !ok {
		return nil, engine.Errorf(engine.ENotFound, "no rollout group %s", id)
	}
	cp := *g
	return &cp, nil
}

func (m *RolloutStore) UpdateRolloutGroup(_ context.Context, g *engine.RolloutGroup) error {
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

func (m *RolloutStore) ListRolloutGroups(_ context.Context, before string, limit int) ([]*engine.RolloutGroup, error) {
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

// RolloutCall is one call the workflows received.
type RolloutCall struct {
	What      string // start, rollback, start-group, signal, signal-group
	ID        string
	Signal    engine.RolloutSignal
	Component string
}

// RolloutWorkflows is an engine.RolloutWorkflows that records what it is
// asked. Set NotRunning to answer signals as if no workflow ran.
type RolloutWorkflows struct {
	mu         sync.Mutex
	calls      []RolloutCall
	NotRunning bool
}

var _ engine.RolloutWorkflows = (*RolloutWorkflows)(nil)

func (w *RolloutWorkflows) record(c RolloutCall) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.NotRunning && (c.What == "signal" || c.What == "signal-group") {
		return engine.Errorf(engine.ENotFound, "workflow %s is not running", c.ID)
	}
	w.calls = append(w.calls, c)
	return nil
}

func (w *RolloutWorkflows) StartRollout(_ context.Context, id string, rollback bool) error {
	what := "start"
	if rollback {
		what = "rollback"
	}
	return w.record(RolloutCall{What: what, ID: id})
}

func (w *RolloutWorkflows) StartRolloutGroup(_ context.Context, id string) error {
	return w.record(RolloutCall{What: "start-group", ID: id})
}

func (w *RolloutWorkflows) SignalRollout(_ context.Context, id string, sig engine.RolloutSignal) error {
	return w.record(RolloutCall{What: "signal", ID: id, Signal: sig})
}

func (w *RolloutWorkflows) SignalRolloutGroup(_ context.Context, id string, sig engine.RolloutSignal, component string) error {
	return w.record(RolloutCall{What: "signal-group", ID: id, Signal: sig, Component: component})
}

// Calls returns what the workflows were asked, in order.
func (w *RolloutWorkflows) Calls() []RolloutCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.calls)
}
