package agent

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestHeartbeatStatusIsKeptInTheCache(t *testing.T) {
	e := newTestEnv(t)
	client, _ := e.enrolled(t, "node_a")
	collected := time.Now().Add(-time.Second).UTC().Truncate(time.Millisecond)
	_, err := client.Heartbeat(rpcCtx(t), &agentv1.HeartbeatRequest{
		NodeId: "node_a", AgentVersion: "1.4.0", RunningCommandIds: []string{"cmd_1", "cmd_2"},
		AppHealth: agentv1.AppHealth_APP_HEALTH_DEGRADED, AppHealthMessage: "12 blocks behind",
		Sync:    &agentv1.SyncStatus{Syncing: true, CurrentHeight: 100, HighestHeight: 112, Peers: 9},
		Metrics: &agentv1.MetricsSnapshot{Values: map[string]float64{"chain_block_height": 100}, CollectedAt: timestamppb.New(collected)},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got *engine.AgentStatus
	waitFor(t, 5*time.Second, "the status in the cache", func() bool {
		got, err = e.cache.GetAgentStatus(context.Background(), "node_a")
		return err == nil
	})
	if !got.Running("cmd_2") || got.Running("cmd_3") || got.Health != engine.AppHealthDegraded || got.HealthMessage != "12 blocks behind" ||
		!got.Syncing || got.BlockHeight != 100 || got.HighestBlock != 112 || got.Peers != 9 || got.AgentVersion != "1.4.0" ||
		got.Metrics["chain_block_height"] != 100 || !got.MetricsAt.Equal(collected) || time.Since(got.ReportedAt) > 5*time.Second {
		t.Errorf("status = %+v", got)
	}
	if _, err := e.cache.GetAgentStatus(context.Background(), "node_b"); !engine.IsCode(err, engine.ENotFound) {
		t.Errorf("status of a silent node: %v; want not found", err)
	}
}

// slowStatuses holds each status write until release is closed, as a
// cache that hangs, and counts them.
type slowStatuses struct {
	release chan struct{}
	holding atomic.Int64 // writes waiting for release
	writes  atomic.Int64
	last    atomic.Pointer[engine.AgentStatus]
}

func (s *slowStatuses) SetAgentStatus(ctx context.Context, st *engine.AgentStatus, _ time.Duration) error {
	s.holding.Add(1)
	defer s.holding.Add(-1)
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.writes.Add(1)
	s.last.Store(st)
	return nil
}

func (s *slowStatuses) GetAgentStatus(context.Context, string) (*engine.AgentStatus, error) {
	return nil, engine.Errorf(engine.ENotFound, "none")
}

func TestHeartbeatsDoNotWaitForTheStatusWriteAndTheLatestStatusWins(t *testing.T) {
	e := newTestEnv(t)
	slow := &slowStatuses{release: make(chan struct{})}
	e.cfg.Statuses = slow
	stopGateway(e.gw)
	e.startGateway(t)
	client, _ := e.enrolled(t, "node_a")
	// The cache holds every write until the heartbeats are done: a write
	// still held once they all returned is one no heartbeat waited for.
	for i := range 20 {
		req := &agentv1.HeartbeatRequest{NodeId: "node_a", Sync: &agentv1.SyncStatus{CurrentHeight: uint64(i)}}
		if _, err := client.Heartbeat(rpcCtx(t), req); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, time.Second, "a status write held by the cache after the heartbeats returned (a heartbeat waited for it)", func() bool {
		return slow.holding.Load() > 0
	})
	close(slow.release)
	waitFor(t, 5*time.Second, "the latest status to be written", func() bool {
		st := slow.last.Load()
		return st != nil && st.BlockHeight == 19
	})
	if n := slow.writes.Load(); n >= 20 {
		t.Errorf("%d writes for 20 heartbeats of one node; superseded statuses should be skipped", n)
	}
}

func TestAgentStatusListsTheCommandItIsRunning(t *testing.T) {
	e := newTestEnv(t)
	release := make(chan struct{})
	rt := &scriptedRuntime{configure: func(ctx context.Context, _ ProgressFunc) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	startAgent(t, e.agentConfig(t, "node_a", rt))
	id := e.enqueue(t, "node_a", engine.CommandConfigure, nil)
	waitFor(t, 5*time.Second, "the command among the running ids", func() bool {
		st, err := e.cache.GetAgentStatus(context.Background(), "node_a")
		return err == nil && st.Running(id) && st.Health == engine.AppHealthHealthy
	})
	close(release)
	e.waitStatus(t, id, engine.CommandCompleted, 5*time.Second)
	waitFor(t, 5*time.Second, "the command to leave the running ids", func() bool {
		st, err := e.cache.GetAgentStatus(context.Background(), "node_a")
		return err == nil && !st.Running(id)
	})
}
