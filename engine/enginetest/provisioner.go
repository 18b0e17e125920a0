package enginetest

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
)

// Provisioner is one adapter of engine.Provisioner as the conformance suite
// drives it.
type Provisioner struct {
	engine.Provisioner
	// Installation is the installation id the provisioner was made for.
	Installation string
	// Spec returns a spec for nodeID the adapter can satisfy, with
	// Labels {"tier": "test"}.
	Spec func(nodeID string) engine.HostSpec
	// Gone is a host of this provider that never existed.
	Gone engine.Host
	// Labels returns the labels the provider keeps on h.
	Labels func(t *testing.T, h engine.Host) map[string]string
}

// RunProvisioner is the conformance suite of engine.Provisioner. open
// returns a provisioner with no hosts; its cleanup closes it.
func RunProvisioner(t *testing.T, open func(t *testing.T) Provisioner) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, p Provisioner)
	}{
		{"CreateTwiceReturnsTheSameHost", testCreateTwice},
		{"DestroyOfNothingIsNotAnError", testDestroyNothing},
		{"DestroyOfAnotherProvidersHostIsInvalid", testDestroyForeign},
		{"HostsCarryTheirLabels", testHostLabels},
		{"IncarnationsAreSeparateHosts", testIncarnations},
		{"DescribeAfterDestroyIsNotFound", testDescribeAfterDestroy},
		{"CreateWithoutNodeIsInvalid", testCreateWithoutNode},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open(t)) })
	}
}

func mustCreateHost(t *testing.T, p Provisioner, spec engine.HostSpec) engine.Host {
	t.Helper()
	h, err := p.CreateHost(context.Background(), spec)
	if err != nil {
		t.Fatalf("create host of %s/%q: %v", spec.NodeID, spec.Incarnation, err)
	}
	if h.ProviderID == "" || h.Provider == "" {
		t.Fatalf("created host %+v lacks its provider or id", h)
	}
	return h
}

func testCreateTwice(t *testing.T, p Provisioner) {
	first := mustCreateHost(t, p, p.Spec("node_1"))
	if second := mustCreateHost(t, p, p.Spec("node_1")); second != first {
		t.Fatalf("second create = %+v, want the first host %+v", second, first)
	}
	hosts, err := p.ListHosts(context.Background())
	if err != nil || len(hosts) != 1 {
		t.Fatalf("list after two creates = %+v, %v; want one host", hosts, err)
	}
}

func testDestroyNothing(t *testing.T, p Provisioner) {
	for _, h := range []engine.Host{{}, {Provider: p.Gone.Provider}, p.Gone} {
		if err := p.DestroyHost(context.Background(), h); err != nil {
			t.Errorf("destroy %+v: %v, want nil", h, err)
		}
	}
}

func testDestroyForeign(t *testing.T, p Provisioner) {
	foreign := engine.Host{Provider: "elsewhere-" + p.Gone.Provider, ProviderID: "1"}
	if err := p.DestroyHost(context.Background(), foreign); !engine.IsCode(err, engine.EInvalid) {
		t.Errorf("destroy %+v: %v, want EInvalid", foreign, err)
	}
}

// testHostLabels: the provisioner's own labels win over the spec's, which
// are kept otherwise; Describe and List name the node.
func testHostLabels(t *testing.T, p Provisioner) {
	spec := p.Spec("node_1")
	spec.Labels = maps.Clone(spec.Labels)
	spec.Labels[engine.LabelNodeID] = "forged"
	spec.Labels[engine.LabelInstallation] = "spoofed"
	h := mustCreateHost(t, p, spec)
	want := maps.Clone(p.Spec("node_1").Labels)
	want[engine.LabelNodeID] = "node_1"
	want[engine.LabelManaged] = engine.LabelManagedValue
	want[engine.LabelInstallation] = p.Installation
	if got := p.Labels(t, h); !maps.Equal(got, want) {
		t.Errorf("labels = %v, want %v", got, want)
	}
	st, err := p.DescribeHost(context.Background(), h)
	if err != nil || st.NodeID != "node_1" || st.Host.ProviderID != h.ProviderID {
		t.Errorf("describe = %+v, %v; want node_1's host", st, err)
	}
}

func testIncarnations(t *testing.T, p Provisioner) {
	first := mustCreateHost(t, p, p.Spec("node_1"))
	next := p.Spec("node_1")
	next.Incarnation = "m7"
	second := mustCreateHost(t, p, next)
	if second.ProviderID == first.ProviderID {
		t.Fatalf("incarnation m7 got the first host %+v", first)
	}
	if again := mustCreateHost(t, p, next); again != second {
		t.Fatalf("second create of m7 = %+v, want %+v", again, second)
	}
	if got := p.Labels(t, second)[engine.LabelIncarnation]; got != "m7" {
		t.Errorf("incarnation label = %q, want m7", got)
	}
	hosts, err := p.ListHosts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range hosts {
		if h.NodeID != "node_1" {
			t.Errorf("listed %+v, want only node_1's hosts", h)
		}
		ids = append(ids, h.Host.ProviderID)
	}
	want := []string{first.ProviderID, second.ProviderID}
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("listed %v, want %v", ids, want)
	}
}

func testDescribeAfterDestroy(t *testing.T, p Provisioner) {
	ctx := context.Background()
	gone := mustCreateHost(t, p, p.Spec("node_1"))
	kept := mustCreateHost(t, p, p.Spec("node_2"))
	if err := p.DestroyHost(ctx, gone); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if err := p.DestroyHost(ctx, gone); err != nil {
		t.Errorf("destroy again: %v, want nil", err)
	}
	if _, err := p.DescribeHost(ctx, gone); !engine.IsCode(err, engine.ENotFound) {
		t.Errorf("describe a destroyed host = %v, want ENotFound", err)
	}
	if st, err := p.DescribeHost(ctx, kept); err != nil || st.NodeID != "node_2" {
		t.Errorf("describe the other host = %+v, %v; want node_2's", st, err)
	}
	hosts, err := p.ListHosts(ctx)
	if err != nil || len(hosts) != 1 || hosts[0].NodeID != "node_2" {
		t.Errorf("list after destroy = %+v, %v; want node_2's host only", hosts, err)
	}
}

func testCreateWithoutNode(t *testing.T, p Provisioner) {
	for name, spec := range map[string]engine.HostSpec{
		"no node":         p.Spec(""),
		"bad incarnation": func() engine.HostSpec { s := p.Spec("node_1"); s.Incarnation = "Not/Valid"; return s }(),
	} {
		if _, err := p.CreateHost(context.Background(), spec); !engine.IsCode(err, engine.EInvalid) {
			t.Errorf("%s: create = %v, want EInvalid", name, err)
		}
	}
}
