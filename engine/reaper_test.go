package engine_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/mock"
)

// nodeFake is an in-memory engine.NodeStore with only the methods the
// use-cases here call; any other call panics on the nil embedded interface.
type nodeFake struct {
	engine.NodeStore

	mu    sync.Mutex
	nodes map[string]engine.Node
	log   []engine.NodeStateChange
	// getErr, when set, is returned by GetNode.
	getErr error
	// beforeChange runs inside ChangeNodeState before the version check,
	// to play another writer racing with the caller.
	beforeChange func(f *nodeFake)
}

func newNodeFake(nodes ...engine.Node) *nodeFake {
	f := &nodeFake{nodes: map[string]engine.Node{}}
	for _, n := range nodes {
		if n.Version == 0 {
			n.Version = 1
		}
		f.nodes[n.ID] = n
	}
	return f
}

func (f *nodeFake) GetNode(_ context.Context, id string) (*engine.Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.getErr != nil {
		return nil, f.getErr
	}
	n, ok := f.nodes[id]
	if !ok {
		return nil, engine.Errorf(engine.ENotFound, "node %s not found", id)
	}
	return &n, nil
}

func (f *nodeFake) ChangeNodeState(_ context.Context, version int64, c *engine.NodeStateChange) (*engine.Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.beforeChange != nil {
		f.beforeChange(f)
	}
	n, ok := f.nodes[c.NodeID]
	switch {
	case !ok:
		return nil, engine.Errorf(engine.ENotFound, "node %s not found", c.NodeID)
	case n.Version != version:
		return nil, engine.Errorf(engine.EConflict, "node %s changed meanwhile", c.NodeID)
	case !n.State.CanBecome(c.To):
		return nil, engine.Errorf(engine.EInvalid, "forbidden move")
	}
	c.From, c.Seq = n.State, int64(len(f.log)+1)
	n.State, n.Version = c.To, n.Version+1
	f.nodes[n.ID] = n
	f.log = append(f.log, *c)
	return &n, nil
}

// bump plays a concurrent UpdateNode: the version moves, the state does not.
func (f *nodeFake) bump(id string) {
	n := f.nodes[id]
	n.Version++
	f.nodes[id] = n
}

func (f *nodeFake) changes() []engine.NodeStateChange {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

// hostsProvisioner is a mock.Provisioner listing hosts and recording the
// ProviderIDs it destroys; destroyErr fails the destruction of one id.
func hostsProvisioner(hosts []engine.ManagedHost, destroyed *[]string, destroyErr map[string]error) *mock.Provisioner {
	return &mock.Provisioner{
		ListHostsFn: func(context.Context) ([]engine.ManagedHost, error) { return hosts, nil },
		DestroyHostFn: func(_ context.Context, h engine.Host) error {
			if err := destroyErr[h.ProviderID]; err != nil {
				return err
			}
			*destroyed = append(*destroyed, h.ProviderID)
			return nil
		},
	}
}

func managedHost(providerID, nodeID string) engine.ManagedHost {
	return engine.ManagedHost{Host: engine.Host{Provider: "hetzner", ProviderID: providerID}, NodeID: nodeID}
}

// reapFixture is one host per case: which are reaped and why.
func reapFixture() ([]engine.ManagedHost, *nodeFake) {
	nodes := newNodeFake(
		engine.Node{ID: "n-running", State: engine.NodeRunning},
		engine.Node{ID: "n-provisioning", State: engine.NodeProvisioning},
		engine.Node{ID: "n-terminating", State: engine.NodeTerminating},
		engine.Node{ID: "n-terminated", State: engine.NodeTerminated},
		engine.Node{ID: "n-failed", State: engine.NodeFailed},
	)
	hosts := []engine.ManagedHost{
		managedHost("1", "n-running"),
		managedHost("2", "n-gone"),
		managedHost("3", "n-terminated"),
		managedHost("4", "n-provisioning"),
		managedHost("5", "n-failed"),
		managedHost("6", ""),
		managedHost("7", "n-terminating"), // the terminate workflow destroys it
	}
	return hosts, nodes
}

func reapedIDs(rs []engine.Reaped) []string {
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.Host.Host.ProviderID)
	}
	return ids
}

func TestReapHostsDestroysHostsNoNodeNeeds(t *testing.T) {
	hosts, nodes := reapFixture()
	var destroyed []string
	prov := hostsProvisioner(hosts, &destroyed, nil)

	reaped, err := engine.ReapHosts(context.Background(), prov, nodes, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"2", "3", "5", "6"}
	if got := reapedIDs(reaped); !slices.Equal(got, want) {
		t.Errorf("reaped %v, want %v", got, want)
	}
	if !slices.Equal(destroyed, want) {
		t.Errorf("destroyed %v, want %v", destroyed, want)
	}
	wantReasons := map[string]string{
		"2": "node n-gone does not exist",
		"3": "node n-terminated is terminated",
		"5": "node n-failed is failed",
		"6": "host has no hoodcloud-node-id label",
	}
	for _, r := range reaped {
		if r.Reason != wantReasons[r.Host.Host.ProviderID] {
			t.Errorf("host %s reaped because %q, want %q", r.Host.Host.ProviderID, r.Reason, wantReasons[r.Host.Host.ProviderID])
		}
	}
}

func TestReapHostsDryRunDestroysNothing(t *testing.T) {
	hosts, nodes := reapFixture()
	prov := &mock.Provisioner{ListHostsFn: func(context.Context) ([]engine.ManagedHost, error) { return hosts, nil }}
	// DestroyHostFn is nil: a call would panic.

	reaped, err := engine.ReapHosts(context.Background(), prov, nodes, true)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := reapedIDs(reaped), []string{"2", "3", "5", "6"}; !slices.Equal(got, want) {
		t.Errorf("dry run would reap %v, want %v", got, want)
	}
}

func TestReapHostsKeepsGoingPastFailures(t *testing.T) {
	hosts, nodes := reapFixture()
	var destroyed []string
	prov := hostsProvisioner(hosts, &destroyed, map[string]error{"3": engine.Errorf(engine.EUnavailable, "provider down")})

	reaped, err := engine.ReapHosts(context.Background(), prov, nodes, false)
	if !engine.IsCode(err, engine.EUnavailable) || !strings.Contains(err.Error(), "reap host 3") {
		t.Errorf("err = %v, want the EUnavailable of host 3", err)
	}
	if got, want := reapedIDs(reaped), []string{"2", "5", "6"}; !slices.Equal(got, want) {
		t.Errorf("reaped %v, want %v (host 3 failed, the others still reaped)", got, want)
	}
}

func TestReapHostsSkipsHostsWhoseNodeCannotBeRead(t *testing.T) {
	nodes := newNodeFake()
	nodes.getErr = engine.Errorf(engine.EUnavailable, "store down")
	prov := &mock.Provisioner{ListHostsFn: func(context.Context) ([]engine.ManagedHost, error) {
		return []engine.ManagedHost{managedHost("1", "n-1")}, nil
	}}

	reaped, err := engine.ReapHosts(context.Background(), prov, nodes, false)
	if !engine.IsCode(err, engine.EUnavailable) {
		t.Errorf("err = %v, want EUnavailable", err)
	}
	if len(reaped) != 0 {
		t.Errorf("reaped %v although its node could not be read", reapedIDs(reaped))
	}
}

func TestReapHostsFailsWhenHostsCannotBeListed(t *testing.T) {
	listErr := errors.New("boom")
	prov := &mock.Provisioner{ListHostsFn: func(context.Context) ([]engine.ManagedHost, error) { return nil, listErr }}

	reaped, err := engine.ReapHosts(context.Background(), prov, newNodeFake(), false)
	if !errors.Is(err, listErr) || reaped != nil {
		t.Errorf("ReapHosts = %v, %v; want nil and the list error", reaped, err)
	}
}
