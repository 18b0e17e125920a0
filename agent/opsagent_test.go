package agent

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/agent/simnode"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// runningAgent is an ops-agent started by a test.
type runningAgent struct {
	cfg    AgentConfig
	cancel context.CancelFunc
	done   chan error
	logs   *testenv.LogBuffer
}

// agentConfig is a fast agent for nodeID against e's gateway.
func (e *testEnv) agentConfig(t *testing.T, nodeID string, rt Runtime) AgentConfig {
	t.Helper()
	return AgentConfig{
		GatewayAddr: e.addr, NodeID: nodeID, EnrollmentToken: e.token(t, nodeID), CAFile: e.caFile,
		DataDir: t.TempDir(), HeartbeatInterval: 20 * time.Millisecond, ProgressCheckInterval: 20 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Runtime: rt, Version: "test",
	}
}

func startAgent(t *testing.T, cfg AgentConfig) *runningAgent {
	t.Helper()
	ra := &runningAgent{cfg: cfg, done: make(chan error, 1), logs: &testenv.LogBuffer{}}
	cfg.Logger = slog.New(slog.NewTextHandler(ra.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	ra.cancel = cancel
	go func() { ra.done <- RunAgent(ctx, cfg) }()
	t.Cleanup(func() { ra.stop(t) })
	return ra
}

// stop ends the agent and returns once RunAgent has.
func (ra *runningAgent) stop(t *testing.T) {
	t.Helper()
	if ra.cancel == nil {
		return
	}
	ra.cancel()
	ra.cancel = nil
	select {
	case err := <-ra.done:
		if err != nil {
			t.Errorf("RunAgent: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunAgent did not return after cancel")
	}
}

// assertNoSecretsIn fails if logs hold key material or any of secrets.
func assertNoSecretsIn(t *testing.T, what, logs string, secrets ...string) {
	t.Helper()
	if strings.Contains(logs, "PRIVATE KEY") {
		t.Errorf("%s logs hold a private key", what)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("%s logs hold secret material", what)
		}
	}
}

func TestAgentRunsSimnodeUnderTheProcessRuntimeAndCapturesItsKey(t *testing.T) {
	e := newTestEnv(t)
	e.createNode(t, "node_a")
	cfg := e.agentConfig(t, "node_a", nil)
	cfg.ChainDir = filepath.Join(cfg.DataDir, "chain")
	cfg.Runtime = NewProcessRuntime(ProcessConfig{Dir: cfg.ChainDir, MinBackoff: 20 * time.Millisecond, StopTimeout: 5 * time.Second})
	ra := startAgent(t, cfg)

	configure, _ := agentv1.MarshalPayload(&agentv1.ConfigurePayload{
		ChainProfileId: "sim",
		Components:     []*agentv1.Component{{Name: "simnode", Args: []string{os.Args[0]}, Env: map[string]string{simnodeEnv: cfg.ChainDir}}},
		Files:          []*agentv1.ConfigFile{{Path: "config/app.toml", Content: []byte("moniker = \"a\"\n")}},
	})
	cfgID := e.enqueue(t, "node_a", engine.CommandConfigure, configure)
	startID := e.enqueue(t, "node_a", engine.CommandStart, nil)
	e.waitStatus(t, cfgID, engine.CommandCompleted, 10*time.Second)
	e.waitStatus(t, startID, engine.CommandCompleted, 10*time.Second)

	if b, err := os.ReadFile(filepath.Join(cfg.ChainDir, "config/app.toml")); err != nil || string(b) != "moniker = \"a\"\n" {
		t.Errorf("configured file = %q, %v", b, err)
	}
	health := waitHealthy(t, cfg.ChainDir)
	node, err := e.store.GetNode(context.Background(), "node_a")
	if err != nil || node.LastSeenAt.IsZero() || node.AgentVersion != "test" {
		t.Errorf("node after heartbeats: %+v, %v", node, err)
	}
	for _, name := range []string{keyFile, certFile, caFile} {
		if fi, err := os.Stat(filepath.Join(cfg.DataDir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", name, fi.Mode(), err)
		}
	}

	capture, _ := agentv1.MarshalPayload(&agentv1.CaptureKeyPayload{KeyName: "node_key", KeyPath: simnode.NodeKeyPath, KeyType: "ed25519"})
	capID := e.enqueue(t, "node_a", engine.CommandCaptureKey, capture)
	done := e.waitStatus(t, capID, engine.CommandCompleted, 10*time.Second)
	var res agentv1.CaptureKeyResult
	if err := agentv1.UnmarshalPayload(done.Result, &res); err != nil {
		t.Fatal(err)
	}
	plain, err := engine.OpenWithDataKey(testDEK("node_a"), res.EncryptedKey)
	keyFileContent, _ := os.ReadFile(filepath.Join(cfg.ChainDir, simnode.NodeKeyPath))
	if err != nil || string(plain) != string(keyFileContent) || res.KeyName != "node_key" {
		t.Fatalf("captured key does not open under the node's data key to the key file: %v", err)
	}
	if strings.Contains(string(done.Result), string(keyFileContent)) {
		t.Error("the result holds the plaintext key")
	}

	stopID := e.enqueue(t, "node_a", engine.CommandStop, nil)
	e.waitStatus(t, stopID, engine.CommandCompleted, 10*time.Second)
	if resp, err := http.Get("http://" + health + "/health"); err == nil {
		resp.Body.Close()
		t.Error("simnode still answers after STOP")
	}
	ra.stop(t)
	assertNoSecretsIn(t, "agent", ra.logs.String(), string(keyFileContent), cfg.EnrollmentToken)
	assertNoSecretsIn(t, "gateway", e.logs.String(), string(keyFileContent), cfg.EnrollmentToken)
}

func TestFetchDataKeyOnlyForARunningCaptureOrDeliveryOfTheCallersNode(t *testing.T) {
	e := newTestEnv(t)
	e.createNode(t, "node_a")
	e.createNode(t, "node_b")
	a, _ := e.enrolled(t, "node_a")
	capture, _ := agentv1.MarshalPayload(&agentv1.CaptureKeyPayload{KeyName: "k", KeyPath: "key"})
	capA := e.enqueue(t, "node_a", engine.CommandCaptureKey, capture)
	capB := e.enqueue(t, "node_b", engine.CommandCaptureKey, capture)
	startA := e.enqueue(t, "node_a", engine.CommandStart, nil)
	deliverA := e.enqueue(t, "node_a", engine.CommandDeliverKeys, []byte(`{"keys":[]}`))
	ctx := context.Background()
	if resp, err := a.FetchDataKey(ctx, &agentv1.FetchDataKeyRequest{NodeId: "node_a", CommandId: deliverA}); err != nil || !bytes.Equal(resp.GetDataKey(), testDEK("node_a")) {
		t.Fatalf("data key for node_a's key delivery = %v; want node_a's key", err)
	}

	resp, err := a.FetchDataKey(ctx, &agentv1.FetchDataKeyRequest{NodeId: "node_a", CommandId: capA})
	if err != nil || !bytes.Equal(resp.GetDataKey(), testDEK("node_a")) {
		t.Fatalf("data key for node_a's capture = %v; want node_a's key", err)
	}
	for _, tt := range []struct {
		name string
		req  *agentv1.FetchDataKeyRequest
		want codes.Code
	}{
		{"another node's capture", &agentv1.FetchDataKeyRequest{NodeId: "node_a", CommandId: capB}, codes.NotFound},
		{"acting for another node", &agentv1.FetchDataKeyRequest{NodeId: "node_b", CommandId: capB}, codes.PermissionDenied},
		{"a command that is no capture", &agentv1.FetchDataKeyRequest{NodeId: "node_a", CommandId: startA}, codes.PermissionDenied},
		{"an unknown command", &agentv1.FetchDataKeyRequest{NodeId: "node_a", CommandId: "cmd_nope"}, codes.NotFound},
	} {
		if _, err := a.FetchDataKey(ctx, tt.req); status.Code(err) != tt.want {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.want)
		}
	}
	c, _ := e.store.GetCommand(ctx, capA)
	c.Status = engine.CommandCompleted
	if err := e.store.UpdateCommand(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := a.FetchDataKey(ctx, &agentv1.FetchDataKeyRequest{NodeId: "node_a", CommandId: capA}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a finished capture: %v, want PermissionDenied", err)
	}
}

// waitHealthy waits for the simnode in chainDir to answer /health and
// returns its address.
func waitHealthy(t *testing.T, chainDir string) string {
	t.Helper()
	var addr string
	waitFor(t, 10*time.Second, "simnode /health", func() bool {
		b, err := os.ReadFile(filepath.Join(chainDir, "addr"))
		if err != nil {
			return false
		}
		resp, err := http.Get("http://" + string(b) + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		addr = string(b)
		return resp.StatusCode == http.StatusOK
	})
	return addr
}

// scriptedRuntime is a Runtime whose Configure the test scripts; it counts
// every call so a command run twice shows.
type scriptedRuntime struct {
	configure func(ctx context.Context, progress ProgressFunc) error
	mu        sync.Mutex
	calls     map[string]int
}

func (r *scriptedRuntime) count(op string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls = map[string]int{}
	}
	r.calls[op]++
}

func (r *scriptedRuntime) Calls(op string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[op]
}

func (r *scriptedRuntime) Configure(ctx context.Context, _ *agentv1.ConfigurePayload, progress ProgressFunc) (*agentv1.ConfigureResult, error) {
	r.count("configure")
	if r.configure == nil {
		return &agentv1.ConfigureResult{}, nil
	}
	return &agentv1.ConfigureResult{}, r.configure(ctx, progress)
}
func (r *scriptedRuntime) Restore(*agentv1.ConfigurePayload) error { r.count("restore"); return nil }
func (r *scriptedRuntime) Upgrade(context.Context, *agentv1.UpgradePayload, ChainHeight, ProgressFunc) (*agentv1.UpgradeOutcome, error) {
	r.count("upgrade")
	return &agentv1.UpgradeOutcome{}, nil
}
func (r *scriptedRuntime) Start(context.Context) error   { r.count("start"); return nil }
func (r *scriptedRuntime) Stop(context.Context) error    { r.count("stop"); return nil }
func (r *scriptedRuntime) Restart(context.Context) error { r.count("restart"); return nil }
func (r *scriptedRuntime) Status(context.Context) (RuntimeStatus, error) {
	return RuntimeStatus{Configured: true, Running: true}, nil
}

func TestAgentKeepsHeartbeatingAndReportsProgressDuringALongCommand(t *testing.T) {
	e := newTestEnv(t)
	beats := &slowNodes{NodeStore: e.store}
	e.nodes, e.cfg.TouchInterval = beats, time.Nanosecond
	stopGateway(e.gw)
	e.startGateway(t)
	release := make(chan struct{})
	rt := &scriptedRuntime{configure: func(ctx context.Context, progress ProgressFunc) error {
		for pct := 1.0; ; pct++ {
			progress(Progress{Percent: pct, BytesDone: uint64(pct) * 1000, BytesTotal: 100_000, Message: "downloading snapshot"})
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
	}}
	startAgent(t, e.agentConfig(t, "node_a", rt))
	id := e.enqueue(t, "node_a", engine.CommandConfigure, nil)
	e.waitStatus(t, id, engine.CommandAcknowledged, 5*time.Second)

	before := beats.touches.Load()
	waitFor(t, 5*time.Second, "progress to be recorded", func() bool {
		p, err := e.cache.GetProgress(context.Background(), id)
		return err == nil && p.Percent > 5 && !p.Stalled && p.Message == "downloading snapshot"
	})
	waitFor(t, 5*time.Second, "heartbeats during the command", func() bool { return beats.touches.Load() >= before+5 })
	close(release)
	e.waitStatus(t, id, engine.CommandCompleted, 5*time.Second)
	if n := rt.Calls("configure"); n != 1 {
		t.Errorf("configure ran %d times", n)
	}
}

func TestAgentMarksACommandWithoutProgressStalled(t *testing.T) {
	e := newTestEnv(t)
	rt := &scriptedRuntime{configure: func(ctx context.Context, progress ProgressFunc) error {
		progress(Progress{Percent: 3, Message: "stuck"})
		<-ctx.Done()
		return ctx.Err()
	}}
	startAgent(t, e.agentConfig(t, "node_a", rt))
	id := e.enqueue(t, "node_a", engine.CommandConfigure, nil)
	waitFor(t, 5*time.Second, "the command to be reported stalled", func() bool {
		p, err := e.cache.GetProgress(context.Background(), id)
		return err == nil && p.Stalled && p.Percent == 3
	})
}

func TestStallIsDeclaredAfterFiveChecksWithoutProgress(t *testing.T) {
	tests := []struct {
		name     string
		percents []float64
		want     []bool
	}{
		{"never moves", []float64{0, 0, 0, 0, 0, 0}, []bool{false, false, false, false, true, true}},
		{"moves then stops", []float64{1, 2, 2, 2, 2, 2, 2}, []bool{false, false, false, false, false, false, true}},
		{"moving again clears it", []float64{1, 1, 1, 1, 1, 1, 2}, []bool{false, false, false, false, false, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := stallCounter{limit: 5}
			for i, p := range tt.percents {
				if got := s.check(Progress{Percent: p}); got != tt.want[i] {
					t.Fatalf("check %d (%v): stalled=%v; want %v", i+1, p, got, tt.want[i])
				}
			}
		})
	}
}

func TestAgentSurvivesAGatewayRestartWithoutLosingOrRepeatingCommands(t *testing.T) {
	e := newTestEnv(t)
	release := make(chan struct{})
	rt := configureUntil(release)
	cfg := e.agentConfig(t, "node_a", rt)
	ra := startAgent(t, cfg)
	cfgID := e.enqueue(t, "node_a", engine.CommandConfigure, nil)
	e.waitStatus(t, cfgID, engine.CommandAcknowledged, 5*time.Second)

	// The gateway goes away; the command finishes meanwhile and another
	// is queued.
	stopGateway(e.gw)
	close(release)
	outbox := filepath.Join(cfg.DataDir, outboxFile)
	waitFor(t, 5*time.Second, "the result to wait in the outbox", func() bool {
		b, err := os.ReadFile(outbox)
		return err == nil && strings.Contains(string(b), cfgID)
	})
	startID := e.enqueue(t, "node_a", engine.CommandStart, nil)
	failed := strings.Count(ra.logs.String(), "heartbeat failed")
	waitFor(t, 5*time.Second, "several failed heartbeats", func() bool {
		return strings.Count(ra.logs.String(), "heartbeat failed") >= failed+3
	})
	e.startGateway(t)

	e.waitStatus(t, cfgID, engine.CommandCompleted, 10*time.Second)
	e.waitStatus(t, startID, engine.CommandCompleted, 10*time.Second)

	// The agent restarts from its data dir, and the queue is rebuilt as if
	// the acknowledgement of START had been lost: START is not run again.
	ra.stop(t)
	c := e.command(t, startID)
	c.Status = engine.CommandDelivered
	if err := e.store.UpdateCommand(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if err := e.cache.EnqueueCommand(context.Background(), "node_a", startID); err != nil {
		t.Fatal(err)
	}
	cfg.EnrollmentToken = "" // enrolled already: the token is spent
	startAgent(t, cfg)
	waitFor(t, 5*time.Second, "the repeated command to leave the queue", func() bool {
		ids, err := e.cache.PendingCommands(context.Background(), "node_a", 10)
		return err == nil && len(ids) == 0
	})
	if n, m := rt.Calls("configure"), rt.Calls("start"); n != 1 || m != 1 {
		t.Errorf("configure ran %d times, start %d times; want once each", n, m)
	}
}

// configureUntil is a runtime whose CONFIGURE lasts until release closes
// (or the agent stops).
func configureUntil(release <-chan struct{}) *scriptedRuntime {
	return &scriptedRuntime{configure: func(ctx context.Context, progress ProgressFunc) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
}

// A command an agent process took and did not finish (it was stopped
// mid-way, its acknowledgement lost) comes back to the next process, which
// runs it again when running it twice is safe, instead of ignoring it.
func TestACommandCutShortByARestartRunsAgain(t *testing.T) {
	e := newTestEnv(t)
	release := make(chan struct{})
	rt := configureUntil(release)
	cfg := e.agentConfig(t, "node_a", rt)
	ra := startAgent(t, cfg)
	id := e.enqueue(t, "node_a", engine.CommandConfigure, nil)
	e.waitStatus(t, id, engine.CommandAcknowledged, 5*time.Second)
	ra.stop(t) // mid-CONFIGURE

	c := e.command(t, id)
	c.Status = engine.CommandDelivered // its acknowledgement never arrived
	if err := e.store.UpdateCommand(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if err := e.cache.EnqueueCommand(context.Background(), "node_a", id); err != nil {
		t.Fatal(err)
	}
	close(release)
	cfg.EnrollmentToken = ""
	again := startAgent(t, cfg)
	e.waitStatus(t, id, engine.CommandCompleted, 10*time.Second)
	if n := rt.Calls("configure"); n != 2 {
		t.Errorf("configure ran %d times, want twice: once cut short, once whole", n)
	}
	if !strings.Contains(again.logs.String(), "interrupted by an agent restart; running it again") {
		t.Errorf("the agent did not say why it ran the command again:\n%s", again.logs)
	}
}

func TestAgentWithoutCredentialsOrTokenRefusesToStart(t *testing.T) {
	err := RunAgent(context.Background(), AgentConfig{GatewayAddr: "127.0.0.1:1", NodeID: "n", DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "enrollment token") {
		t.Fatalf("RunAgent = %v", err)
	}
}

func TestAgentStateFilesSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	seen, err := loadSeenCommands(filepath.Join(dir, seenFile))
	if err != nil {
		t.Fatal(err)
	}
	if isNew, err := seen.add("cmd_1"); !isNew || err != nil {
		t.Fatalf("add = %v, %v", isNew, err)
	}
	ob, _ := loadOutbox(filepath.Join(dir, outboxFile))
	_ = ob.add(event{Kind: "acknowledged", CommandID: "cmd_1"})
	_ = ob.add(event{Kind: "completed", CommandID: "cmd_1", Result: []byte("{}")})
	e, _ := ob.peek()
	_ = ob.done(e.Seq)

	seen, _ = loadSeenCommands(filepath.Join(dir, seenFile))
	ob, _ = loadOutbox(filepath.Join(dir, outboxFile))
	if isNew, _ := seen.add("cmd_1"); isNew {
		t.Error("a seen command is new after a restart")
	}
	if e, ok := ob.peek(); !ok || e.Kind != "completed" || ob.len() != 1 {
		t.Errorf("outbox after restart: %+v, %d events", e, ob.len())
	}
	if _, err := os.Stat(filepath.Join(dir, seenFile)); errors.Is(err, fs.ErrNotExist) {
		t.Error("no seen file")
	}
}

func TestAgentRefusesADataDirEnrolledForAnotherNode(t *testing.T) {
	e := newTestEnv(t)
	cfg := e.agentConfig(t, "node_a", &scriptedRuntime{})
	if _, err := enroll(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	cfg.NodeID = "node_b"
	err := RunAgent(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), `"node_a", not "node_b"`) {
		t.Fatalf("RunAgent for another node = %v", err)
	}
}

// TestTheNextCommandIsTakenSoonAfterOneFinishes: commands travel in
// heartbeat answers, so after a command the agent heartbeats briskly for a
// while instead of waiting its interval (here an hour) for the next step
// of the workflow.
func TestTheNextCommandIsTakenSoonAfterOneFinishes(t *testing.T) {
	e := newTestEnv(t)
	e.createNode(t, "node_brisk")
	cfg := e.agentConfig(t, "node_brisk", &scriptedRuntime{})
	cfg.HeartbeatInterval = time.Hour
	configure, _ := agentv1.MarshalPayload(&agentv1.ConfigurePayload{ChainProfileId: "sim"})
	cfgID := e.enqueue(t, "node_brisk", engine.CommandConfigure, configure)
	startAgent(t, cfg) // its first heartbeat takes CONFIGURE
	e.waitStatus(t, cfgID, engine.CommandCompleted, testenv.Patience)

	startID := e.enqueue(t, "node_brisk", engine.CommandStart, nil)
	e.waitStatus(t, startID, engine.CommandCompleted, testenv.Patience)
}
