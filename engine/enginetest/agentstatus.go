package enginetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// RunAgentStatusCache is the conformance suite of engine.AgentStatusCache.
// open must return an empty cache and close it in its cleanup; a cache that
// implements CacheClock has its clock moved instead of waited on.
//
// Besides the contract written on each method, every adapter must hold to:
//   - A status comes back equal to what was set: times time.Equal and in
//     UTC, empty and nil lists and maps interchangeable.
//   - Statuses of different nodes are separate.
func RunAgentStatusCache(t *testing.T, open func(t *testing.T) engine.AgentStatusCache) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, c engine.AgentStatusCache)
	}{
		{"RoundTripAndReplace", testAgentStatusRoundTrip},
		{"UnknownNodeIsNotFound", testAgentStatusUnknown},
		{"Expires", testAgentStatusExpires},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, open(t))
		})
	}
}

func asStatus(nodeID string, height uint64) *engine.AgentStatus {
	return &engine.AgentStatus{
		NodeID: nodeID, AgentVersion: "1.2.3", RunningCommandIDs: []string{"cmd_1", "cmd_2"},
		Health: engine.AppHealthDegraded, HealthMessage: "behind", Syncing: true,
		BlockHeight: height, HighestBlock: height + 10, Peers: 7,
		Metrics:   map[string]float64{"chain_block_height": float64(height)},
		MetricsAt: stAt(1), ReportedAt: stAt(2),
	}
}

func testAgentStatusRoundTrip(t *testing.T, c engine.AgentStatusCache) {
	ctx := context.Background()
	a, b := asStatus("node_a", 100), asStatus("node_b", 5)
	cacheOK(t, c.SetAgentStatus(ctx, a, time.Hour))
	cacheOK(t, c.SetAgentStatus(ctx, b, time.Hour))
	agentStatusIs(t, c, a)
	newer := asStatus("node_a", 101)
	newer.RunningCommandIDs, newer.Metrics, newer.MetricsAt = nil, nil, time.Time{}
	cacheOK(t, c.SetAgentStatus(ctx, newer, time.Hour))
	agentStatusIs(t, c, newer)
	agentStatusIs(t, c, b)
}

func testAgentStatusUnknown(t *testing.T, c engine.AgentStatusCache) {
	_, err := c.GetAgentStatus(context.Background(), "node_never")
	cacheCode(t, err, engine.ENotFound)
}

func testAgentStatusExpires(t *testing.T, c engine.AgentStatusCache) {
	ctx := context.Background()
	cacheOK(t, c.SetAgentStatus(ctx, asStatus("node_a", 1), cacheTTL))
	cacheOK(t, c.SetAgentStatus(ctx, asStatus("node_b", 1), time.Hour))
	if clock, ok := c.(CacheClock); ok {
		clock.Advance(cacheWait)
	} else {
		time.Sleep(cacheWait)
	}
	_, err := c.GetAgentStatus(ctx, "node_a")
	cacheCode(t, err, engine.ENotFound)
	agentStatusIs(t, c, asStatus("node_b", 1))
}

// agentStatusIs fails unless the cache holds want for want.NodeID.
func agentStatusIs(t *testing.T, c engine.AgentStatusCache, want *engine.AgentStatus) {
	t.Helper()
	got, err := c.GetAgentStatus(context.Background(), want.NodeID)
	cacheOK(t, err)
	if !got.ReportedAt.Equal(want.ReportedAt) || !got.MetricsAt.Equal(want.MetricsAt) ||
		got.ReportedAt.Location() != time.UTC || got.MetricsAt.Location() != time.UTC {
		t.Fatalf("times = %v, %v; want %v, %v in UTC", got.ReportedAt, got.MetricsAt, want.ReportedAt, want.MetricsAt)
	}
	g, w := *got, *want
	g.ReportedAt, g.MetricsAt, w.ReportedAt, w.MetricsAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if len(g.RunningCommandIDs) == 0 && len(w.RunningCommandIDs) == 0 {
		g.RunningCommandIDs, w.RunningCommandIDs = nil, nil
	}
	if len(g.Metrics) == 0 && len(w.Metrics) == 0 {
		g.Metrics, w.Metrics = nil, nil
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("status of %s = %+v, want %+v", want.NodeID, g, w)
	}
}
