package agent

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const validatorKey = "priv_validator_key"

// chainRuntime is a scriptedRuntime whose chain runs from Start or Restart
// until Stop, as a supervisor's would; failStart makes Start fail.
type chainRuntime struct {
	scriptedRuntime
	running   atomic.Bool
	failStart atomic.Bool
}

func (r *chainRuntime) Start(ctx context.Context) error {
	if r.failStart.Load() {
		return errors.New("the unit did not start")
	}
	r.running.Store(true)
	return r.scriptedRuntime.Start(ctx)
}

func (r *chainRuntime) Restart(ctx context.Context) error {
	r.running.Store(true)
	return r.scriptedRuntime.Restart(ctx)
}

func (r *chainRuntime) Stop(ctx context.Context) error {
	r.running.Store(false)
	return r.scriptedRuntime.Stop(ctx)
}

func (r *chainRuntime) Status(context.Context) (RuntimeStatus, error) {
	return RuntimeStatus{Configured: true, Running: r.running.Load()}, nil
}

// leaseHost is an ops-agent over dataDir, driven without a gateway: its
// commands run as the executor runs them.
type leaseHost struct {
	t       *testing.T
	dataDir string
	rt      *chainRuntime
	agent   *opsAgent
	logs    *testenv.LogBuffer
}

func newLeaseHost(t *testing.T) *leaseHost {
	t.Helper()
	return openLeaseHost(t, t.TempDir())
}

// openLeaseHost starts an agent over dataDir with a runtime that runs
// nothing yet, as after the agent process restarted.
func openLeaseHost(t *testing.T, dataDir string) *leaseHost {
	t.Helper()
	h := &leaseHost{t: t, dataDir: dataDir, rt: &chainRuntime{}, logs: &testenv.LogBuffer{}}
	cfg := AgentConfig{NodeID: "node_a", DataDir: dataDir, Runtime: h.rt,
		Logger: slog.New(slog.NewTextHandler(h.logs, nil))}.withDefaults()
	if err := os.MkdirAll(cfg.ChainDir, 0o700); err != nil {
		t.Fatal(err)
	}
	a, err := newOpsAgent(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.agent = a
	return h
}

// restart is the same host after its agent process restarted.
func (h *leaseHost) restart() *leaseHost {
	h.t.Helper()
	return openLeaseHost(h.t, h.dataDir)
}

func (h *leaseHost) run(typ agentv1.CommandType, payload []byte) error {
	h.t.Helper()
	_, err := h.agent.execute(context.Background(), &agentv1.Command{Id: engine.NewID("cmd"), Type: typ, Payload: payload}, func(Progress) {})
	return err
}

func (h *leaseHost) configure(p *agentv1.ConfigurePayload) {
	h.t.Helper()
	b, err := agentv1.MarshalPayload(p)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.run(agentv1.CommandType_COMMAND_TYPE_CONFIGURE, b); err != nil {
		h.t.Fatalf("CONFIGURE: %v", err)
	}
}

func (h *leaseHost) start(leases ...*agentv1.SigningLease) error {
	h.t.Helper()
	return h.run(agentv1.CommandType_COMMAND_TYPE_START, startPayload(h.t, leases...))
}

func (h *leaseHost) mustStart(leases ...*agentv1.SigningLease) {
	h.t.Helper()
	if err := h.start(leases...); err != nil {
		h.t.Fatalf("START under %v: %v", leases, err)
	}
}

func startPayload(t *testing.T, leases ...*agentv1.SigningLease) []byte {
	t.Helper()
	b, err := agentv1.MarshalPayload(&agentv1.StartPayload{Leases: leases})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func lease(key string, epoch uint64) *agentv1.SigningLease {
	return &agentv1.SigningLease{KeyName: key, Epoch: epoch}
}

// signingChain is a validator: a node that signs with the validator key
// beside a sidecar that signs with nothing.
func signingChain() *agentv1.ConfigurePayload {
	return &agentv1.ConfigurePayload{ChainProfileId: "cometbft",
		Components: []*agentv1.Component{
			{Name: "node", Args: []string{"node", "start"}, SignsWith: []string{validatorKey}},
			{Name: "sidecar", Args: []string{"sidecar"}},
		},
		KeyPaths: map[string]string{validatorKey: "config/priv_validator_key.json"},
	}
}

// assertRefusedForGood fails unless err is a permanent failure whose
// message holds every one of want.
func assertRefusedForGood(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	var ce *commandError
	if !errors.As(err, &ce) || ce.retryable {
		t.Fatalf("%s = %v; want a permanent refusal", what, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: %q does not say %q", what, err, w)
		}
	}
}

func TestASignerStartsOnlyUnderALeaseNoOlderThanAnyItWasGiven(t *testing.T) {
	h := newLeaseHost(t)
	h.configure(signingChain())

	assertRefusedForGood(t, "START without a lease", h.start(), validatorKey)
	assertRefusedForGood(t, "START with a lease on another key", h.start(lease("node_key", 4)), validatorKey)
	if n := h.rt.Calls("start"); n != 0 {
		t.Fatalf("the runtime started %d times without a lease", n)
	}

	h.mustStart(lease(validatorKey, 2))
	assertRefusedForGood(t, "START at a stale epoch", h.start(lease(validatorKey, 1)), validatorKey, "epoch 1", "epoch 2")
	h.mustStart(lease(validatorKey, 2)) // the same holder again
	h.mustStart(lease(validatorKey, 3))
	if n := h.rt.Calls("start"); n != 3 {
		t.Errorf("the runtime started %d times; want once per admitted START (3)", n)
	}

	again := h.restart()
	assertRefusedForGood(t, "START at a stale epoch after the agent restarted", again.start(lease(validatorKey, 2)), "epoch 2", "epoch 3")
	if again.rt.Calls("start") != 0 {
		t.Fatal("the restarted agent started under a stale lease")
	}
	again.mustStart(lease(validatorKey, 3))
}

func TestTheHighestEpochsAreAPrivateFileWrittenBeforeTheChainStarts(t *testing.T) {
	h := newLeaseHost(t)
	h.configure(signingChain())
	h.rt.failStart.Store(true)
	if err := h.start(lease(validatorKey, 5)); err == nil {
		t.Fatal("START succeeded although the runtime failed")
	}
	path := filepath.Join(h.dataDir, signingEpochsFile)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing epochs: %v, %v; want a 0600 file", fi, err)
	}
	h.rt.failStart.Store(false)
	assertRefusedForGood(t, "START below the epoch of a START whose chain failed to start", h.start(lease(validatorKey, 4)), "epoch 4", "epoch 5")
}

func TestAChainThatSignsWithNothingStartsWithAnyPayload(t *testing.T) {
	h := newLeaseHost(t)
	p := signingChain()
	p.Components[0].SignsWith = nil
	h.configure(p)
	for _, payload := range [][]byte{nil, []byte("{}"), startPayload(t, lease(validatorKey, 1))} {
		if err := h.run(agentv1.CommandType_COMMAND_TYPE_START, payload); err != nil {
			t.Errorf("START %q of a chain that does not sign: %v", payload, err)
		}
	}
}

func TestStartLeasesThatCannotBeRightAreRefused(t *testing.T) {
	twoKeys := signingChain()
	twoKeys.Components[1].SignsWith = []string{"oracle_key"}
	for _, tt := range []struct {
		name    string
		payload []byte
		want    string
	}{
		{"a lease for one of two keys", startPayload(t, lease(validatorKey, 1)), `"oracle_key"`},
		{"a lease without a key name", startPayload(t, lease(validatorKey, 1), lease("", 1), lease("oracle_key", 1)), "names no key"},
		{"a lease without an epoch", startPayload(t, lease(validatorKey, 0), lease("oracle_key", 1)), `"priv_validator_key" has no epoch`},
		{"two leases for one key", startPayload(t, lease(validatorKey, 1), lease(validatorKey, 2), lease("oracle_key", 1)), "two signing leases"},
		{"a payload that is not JSON", []byte("{leases"), "StartPayload"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newLeaseHost(t)
			h.configure(twoKeys)
			assertRefusedForGood(t, "START", h.run(agentv1.CommandType_COMMAND_TYPE_START, tt.payload), tt.want)
			if h.rt.Calls("start") != 0 {
				t.Error("the chain started")
			}
		})
	}
}

func TestRestartKeepsTheLeasesOfTheLastStartAndStopDropsThem(t *testing.T) {
	h := newLeaseHost(t)
	h.configure(signingChain())
	if err := h.run(agentv1.CommandType_COMMAND_TYPE_STOP, nil); err != nil {
		t.Fatalf("STOP before any START: %v", err)
	}
	assertRefusedForGood(t, "RESTART before any START", h.run(agentv1.CommandType_COMMAND_TYPE_RESTART, nil), validatorKey)

	h.mustStart(lease(validatorKey, 2))
	if err := h.run(agentv1.CommandType_COMMAND_TYPE_RESTART, nil); err != nil {
		t.Fatalf("RESTART of the holder's chain: %v", err)
	}
	if err := h.run(agentv1.CommandType_COMMAND_TYPE_STOP, nil); err != nil || h.rt.running.Load() {
		t.Fatalf("STOP: %v, running %v", err, h.rt.running.Load())
	}
	// The control plane may have released the lease once the signer stopped.
	assertRefusedForGood(t, "RESTART after a STOP", h.run(agentv1.CommandType_COMMAND_TYPE_RESTART, nil), validatorKey)
	assertRefusedForGood(t, "START after a STOP at an older epoch", h.start(lease(validatorKey, 1)), "epoch 1", "epoch 2")
	if err := h.run(agentv1.CommandType_COMMAND_TYPE_RESTART, startPayload(t, lease(validatorKey, 3))); err != nil {
		t.Fatalf("RESTART carrying a newer lease: %v", err)
	}
	if n := h.rt.Calls("restart"); n != 2 {
		t.Errorf("the runtime restarted %d times; want 2", n)
	}
}

func TestAnAgentThatRestartsResumesSigningUnderTheLeasesItStartedUnder(t *testing.T) {
	h := newLeaseHost(t)
	h.configure(signingChain())
	h.mustStart(lease(validatorKey, 2))

	again := h.restart()
	again.agent.resumeRuntime(context.Background())
	if n := again.rt.Calls("start"); n != 1 || !again.rt.running.Load() {
		t.Fatalf("after the agent restarted the chain started %d times; want it running again without a START", n)
	}
	// Still the holder at epoch 2: the control plane's START is accepted.
	again.mustStart(lease(validatorKey, 2))
}

func TestAnAgentThatRestartsDoesNotResumeASignerWithoutACurrentLease(t *testing.T) {
	for _, tt := range []struct {
		name string
		// after runs on a host whose chain runs under epoch 2 of the
		// validator key.
		after func(h *leaseHost)
		want  string
	}{
		{"a newer epoch was given", func(h *leaseHost) {
			h.rt.failStart.Store(true)
			_ = h.start(lease(validatorKey, 3))
		}, "epoch 2, and this host was given epoch 3"},
		{"a component signs with a key it was not started for", func(h *leaseHost) {
			p := signingChain()
			p.Components[1].SignsWith = []string{"oracle_key"}
			h.configure(p)
		}, `no signing lease for key \"oracle_key\"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newLeaseHost(t)
			h.configure(signingChain())
			h.mustStart(lease(validatorKey, 2))
			tt.after(h)

			again := h.restart()
			again.agent.resumeRuntime(context.Background())
			if again.rt.Calls("start") != 0 {
				t.Fatal("the signer was started again")
			}
			if !strings.Contains(again.logs.String(), tt.want) {
				t.Errorf("logs do not say %q:\n%s", tt.want, again.logs)
			}
		})
	}
}

// TestAStartWithoutALeaseFailsForGoodNamingTheKeyButNoKeyContent runs the
// refusal over the wire, with the key on the host already.
func TestAStartWithoutALeaseFailsForGoodNamingTheKeyButNoKeyContent(t *testing.T) {
	e := newTestEnv(t)
	e.createNode(t, "node_a")
	rt := &chainRuntime{}
	cfg := e.agentConfig(t, "node_a", rt)
	ra := startAgent(t, cfg)
	dek := testDEK("node_a")
	const secret = `{"priv_key":"the validator's secret signing key"}`
	deliver, _ := agentv1.MarshalPayload(&agentv1.DeliverKeysPayload{Keys: []*agentv1.DeliveredKey{
		sealedKey(t, dek, validatorKey, "config/priv_validator_key.json", secret)}})
	configure, _ := agentv1.MarshalPayload(signingChain())
	e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandDeliverKeys, deliver), engine.CommandCompleted, 10*time.Second)
	e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandConfigure, configure), engine.CommandCompleted, 10*time.Second)

	c := e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandStart, nil), engine.CommandFailed, 10*time.Second)
	if !strings.Contains(c.Error, validatorKey) || strings.Contains(c.Error, "secret") {
		t.Errorf("refusal %q: want it to name the key and hold none of it", c.Error)
	}
	if rt.Calls("start") != 0 {
		t.Error("the chain started without a lease")
	}
	// The payload as the control plane writes it, under the lease it
	// granted this host.
	if _, err := e.store.GrantSigningLease(context.Background(), engine.LeaseGrant{NodeID: "node_a", KeyName: validatorKey, Holder: engine.LeaseHolder{NodeID: "node_a"}, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	withLease := []byte(`{"leases":[{"key_name":"priv_validator_key","epoch":1}]}`)
	e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandStart, withLease), engine.CommandCompleted, 10*time.Second)
	if rt.Calls("start") != 1 {
		t.Error("the chain did not start under its lease")
	}
	assertNoSecretsIn(t, "agent", ra.logs.String(), secret)
	assertNoSecretsIn(t, "gateway", e.logs.String(), secret)
}

// A host that boots may start the chain by itself (a systemd unit, a
// container): a signer the control plane stopped is stopped again.
func TestAnAgentThatRestartsStopsASignerItWasNotToldToRun(t *testing.T) {
	h := newLeaseHost(t)
	h.configure(signingChain())
	h.mustStart(lease(validatorKey, 1))
	if err := h.run(agentv1.CommandType_COMMAND_TYPE_STOP, nil); err != nil {
		t.Fatal(err)
	}
	again := h.restart()
	again.rt.running.Store(true) // the host started it at boot
	again.agent.resumeRuntime(context.Background())
	if again.rt.running.Load() {
		t.Fatal("a signer the control plane stopped runs after the agent restarted")
	}
}

// An agent the gateway disowns (the node enrolled on another host) stops
// its signer: it can no longer hear a STOP, and the key may be live there.
func TestADisownedAgentStopsItsSigner(t *testing.T) {
	h := newLeaseHost(t)
	h.configure(signingChain())
	h.mustStart(lease(validatorKey, 1))
	ctx := context.Background()
	h.agent.fenceIfDisowned(ctx, status.Error(codes.Unavailable, "the appliance restarts"))
	if !h.rt.running.Load() {
		t.Fatal("the signer stopped while the gateway was only away")
	}
	h.agent.fenceIfDisowned(ctx, status.Error(codes.PermissionDenied, "the node's certificate is revoked"))
	if h.rt.running.Load() {
		t.Fatal("the signer runs though the gateway refuses its agent")
	}
	again := h.restart()
	again.agent.resumeRuntime(ctx)
	if again.rt.running.Load() || again.rt.Calls("start") != 0 {
		t.Fatal("the disowned signer started again when its agent restarted")
	}
}
