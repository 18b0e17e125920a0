package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/agent/simnode"
	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// meteredSimnodeEnv makes the test binary, run with
// -test.run=^TestMeteredSimnodeChild$, a simulated chain node in the
// directory it names (relative to the chain data dir, where the process
// runtime runs it), steered by control.json there.
const meteredSimnodeEnv = "HOODCLOUD_AGENT_TEST_METERED_SIMNODE"

// TestMeteredSimnodeChild is not a test: it is the chain node the tests
// below have the process runtime run, until SIGTERM.
func TestMeteredSimnodeChild(t *testing.T) {
	dir := os.Getenv(meteredSimnodeEnv)
	if dir == "" {
		t.Skip("runs only as a child of the tests below")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := simnode.Run(ctx, simnode.Config{DataDir: dir, BlockInterval: 50 * time.Millisecond,
		ControlFile: filepath.Join(dir, "control.json"), ControlPoll: 20 * time.Millisecond, Version: "v1.0.0-sim"})
	if err != nil {
		t.Fatal(err)
	}
}

// meteredSimnode is a component running the simulated node in the chain
// data dir's "sim", with the metrics spec the control plane gives
// simulated components: the node's port comes from its address file.
func meteredSimnode() *agentv1.Component {
	return &agentv1.Component{
		Name: "sim", Version: "v1.0.0-sim",
		Args: []string{os.Args[0], "-test.run=^TestMeteredSimnodeChild$"},
		Env:  map[string]string{meteredSimnodeEnv: "sim"},
		Metrics: &agentv1.MetricsSpec{Url: "http://127.0.0.1" + simnode.MetricsPath, AddrFile: "sim/" + simnode.AddrFile,
			BlockHeight: simnode.MetricBlockHeight, HighestBlock: simnode.MetricHighestBlock,
			Peers: simnode.MetricPeers, Syncing: simnode.MetricSyncing},
	}
}

// meteredAgentConfig runs the process runtime and scrapes often.
func meteredAgentConfig(e *testEnv, t *testing.T) AgentConfig {
	cfg := e.agentConfig(t, "node_a", nil)
	cfg.ChainDir = filepath.Join(cfg.DataDir, "chain")
	cfg.Runtime = NewProcessRuntime(ProcessConfig{Dir: cfg.ChainDir, MinBackoff: 20 * time.Millisecond, StopTimeout: 5 * time.Second})
	cfg.ChainMetricsInterval, cfg.ChainStallSamples = 50*time.Millisecond, 4
	return cfg
}

// configureAndStart runs CONFIGURE with components, then START.
func (e *testEnv) configureAndStart(t *testing.T, components ...*agentv1.Component) {
	t.Helper()
	configure, err := agentv1.MarshalPayload(&agentv1.ConfigurePayload{ChainProfileId: "sim", Components: components})
	if err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandConfigure, configure), engine.CommandCompleted, 10*time.Second)
	e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandStart, nil), engine.CommandCompleted, 10*time.Second)
}

// waitAgentStatus waits for the gateway's stored status of node_a to
// satisfy ok, and returns it.
func (e *testEnv) waitAgentStatus(t *testing.T, what string, ok func(*engine.AgentStatus) bool) *engine.AgentStatus {
	t.Helper()
	var st *engine.AgentStatus
	waitFor(t, 15*time.Second, what, func() bool {
		got, err := e.cache.GetAgentStatus(context.Background(), "node_a")
		if err != nil || !ok(got) {
			return false
		}
		st = got
		return true
	})
	return st
}

// steer writes the simulated node's control file whole.
func steer(t *testing.T, chainDir string, c simnode.Control) {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(chainDir, "sim", "control.json")
	if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func TestAgentReportsTheSimulatedChainsHeightPeersAndStall(t *testing.T) {
	e := newTestEnv(t)
	e.createNode(t, "node_a")
	cfg := meteredAgentConfig(e, t)
	startAgent(t, cfg)
	e.configureAndStart(t, meteredSimnode())

	first := e.waitAgentStatus(t, "a healthy chain with a height", func(st *engine.AgentStatus) bool {
		return st.Health == engine.AppHealthHealthy && st.BlockHeight > 0
	})
	if first.Peers != 8 || first.Syncing || first.HighestBlock < first.BlockHeight || first.MetricsAt.IsZero() {
		t.Errorf("status %+v: want simnode's 8 peers, in sync, with a sample time", first)
	}
	if first.Metrics[simnode.MetricBlockHeight] != float64(first.BlockHeight) || first.Metrics[`chain_version_info{version="v1.0.0-sim"}`] != 1 {
		t.Errorf("metrics snapshot %v", first.Metrics)
	}
	e.waitAgentStatus(t, "the height to advance", func(st *engine.AgentStatus) bool { return st.BlockHeight > first.BlockHeight })

	peers := 3
	steer(t, cfg.ChainDir, simnode.Control{Peers: &peers})
	e.waitAgentStatus(t, "the peers simnode reports", func(st *engine.AgentStatus) bool { return st.Peers == 3 })

	steer(t, cfg.ChainDir, simnode.Control{Mode: simnode.ModeStall, Peers: &peers})
	stalled := e.waitAgentStatus(t, "a stalled chain", func(st *engine.AgentStatus) bool { return st.Health == engine.AppHealthDegraded })
	if !strings.Contains(stalled.HealthMessage, "sim stalled: height") {
		t.Errorf("health message %q, want the stall", stalled.HealthMessage)
	}

	steer(t, cfg.ChainDir, simnode.Control{Mode: simnode.ModeNormal})
	e.waitAgentStatus(t, "the chain healthy again", func(st *engine.AgentStatus) bool {
		return st.Health == engine.AppHealthHealthy && st.BlockHeight > stalled.BlockHeight
	})
}

func TestAgentWatchesTheChainAgainAfterItRestarts(t *testing.T) {
	e := newTestEnv(t)
	e.createNode(t, "node_a")
	cfg := meteredAgentConfig(e, t)
	ra := startAgent(t, cfg)
	e.configureAndStart(t, meteredSimnode())
	before := e.waitAgentStatus(t, "a height", func(st *engine.AgentStatus) bool { return st.BlockHeight > 0 })

	ra.stop(t)
	restartedAt := time.Now()
	next := cfg
	next.EnrollmentToken = ""
	next.Runtime = NewProcessRuntime(ProcessConfig{Dir: cfg.ChainDir, MinBackoff: 20 * time.Millisecond, StopTimeout: 5 * time.Second})
	startAgent(t, next)
	// No CONFIGURE this time: the saved configuration says what to scrape,
	// and the node found on its new port continues from its saved height.
	e.waitAgentStatus(t, "the restarted agent's report of the chain", func(st *engine.AgentStatus) bool {
		return st.ReportedAt.After(restartedAt) && st.Health == engine.AppHealthHealthy && st.BlockHeight > before.BlockHeight
	})
}

func TestASlowMetricsEndpointNeverDelaysAHeartbeat(t *testing.T) {
	e := newTestEnv(t)
	e.createNode(t, "node_a")
	var scrapes atomic.Int64
	hung := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		scrapes.Add(1)
		<-r.Context().Done()
	}))
	t.Cleanup(hung.Close)
	cfg := e.agentConfig(t, "node_a", &scriptedRuntime{})
	cfg.ChainMetricsInterval = 20 * time.Millisecond
	startAgent(t, cfg)
	e.configureAndStart(t, &agentv1.Component{Name: "geth", Args: []string{"geth"},
		Metrics: &agentv1.MetricsSpec{Url: hung.URL, BlockHeight: "chain_head_block"}})

	// Scrapes hang until the agent gives up on each after 2 s; heartbeats
	// go on every 20 ms. A heartbeat that waited for a scrape would make
	// each report cost a scrape.
	waitFor(t, 5*time.Second, "the first scrape", func() bool { return scrapes.Load() > 0 })
	var reports []time.Time
	waitFor(t, 5*time.Second, "10 heartbeats while the metrics endpoint hangs", func() bool {
		if st, err := e.cache.GetAgentStatus(context.Background(), "node_a"); err == nil && (len(reports) == 0 || st.ReportedAt.After(reports[len(reports)-1])) {
			reports = append(reports, st.ReportedAt)
		}
		return len(reports) >= 10
	})
	if n := scrapes.Load(); n >= int64(len(reports)) {
		t.Fatalf("%d heartbeats recorded over %d hung scrapes: the heartbeats waited for them", len(reports), n)
	}
	e.waitAgentStatus(t, "the hung endpoint reported", func(st *engine.AgentStatus) bool {
		return st.Health == engine.AppHealthDegraded && strings.Contains(st.HealthMessage, "metrics of geth unreachable")
	})
}
