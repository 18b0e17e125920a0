package workflows

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"go.temporal.io/sdk/temporal"
)

const testProfileYAML = `id: test-chain
name: Test Chain
version: "1"
family: cosmos
components:
  - name: appd
    version: "1.0.0"
    url: https://example.com/appd.tar.gz
    sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
node_types:
  - name: full
    durations:
      1m: {provider: local, region: here, instance_type: small}
  - name: validator
    durations:
      1m: {provider: local, region: here, instance_type: small}
provisioning_inputs:
  - name: moniker
    type: text
    required: true
    phase: pre_provision
  - name: node_key
    type: secret
    source: generated
    key_type: ed25519
  - name: jwt
    type: secret
    source: generated
    key_type: hex32
  - name: validator_key
    type: secret
    source: user_provided
    key_type: secp256k1
  - name: priv_validator
    type: secret
    source: chain_generated
    key_type: ed25519
    key_path: config/priv_validator_key.json
  - name: signer_key
    type: secret
    source: user_provided
    key_type: ed25519
    format: cometbft_priv_validator_key
    required: true
    node_types: [validator]
  - name: consensus_key
    type: secret
    source: generated
    key_type: ed25519
    format: cometbft_node_key
    node_types: [validator]
`

// fakeSecrets wraps data keys by prefixing them: enough to tell wrapped
// from plain in tests.
type fakeSecrets struct{ engine.Secrets }

func (fakeSecrets) GenerateDataKey(context.Context, string) ([]byte, []byte, error) {
	k := make([]byte, engine.DataKeySize)
	rand.Read(k)
	return bytes.Clone(k), append([]byte("wrapped:"), k...), nil
}

func (fakeSecrets) Decrypt(_ context.Context, _ string, ct []byte) ([]byte, error) {
	if !bytes.HasPrefix(ct, []byte("wrapped:")) {
		return nil, engine.Errorf(engine.EInvalid, "not wrapped")
	}
	return bytes.Clone(ct[len("wrapped:"):]), nil
}

// fakeStatuses is the agents' latest heartbeats.
type fakeStatuses struct {
	mu sync.Mutex
	m  map[string]*engine.AgentStatus
}

func (s *fakeStatuses) SetAgentStatus(_ context.Context, st *engine.AgentStatus, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[st.NodeID] = st
	return nil
}

func (s *fakeStatuses) GetAgentStatus(_ context.Context, nodeID string) (*engine.AgentStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.m[nodeID]; st != nil {
		return st, nil
	}
	return nil, engine.Errorf(engine.ENotFound, "no status")
}

// heartbeat records a heartbeat of node_1's agent, running ids.
func (s *fakeStatuses) heartbeat(ids ...string) {
	s.SetAgentStatus(context.Background(), &engine.AgentStatus{NodeID: "node_1", RunningCommandIDs: ids, ReportedAt: time.Now().UTC()}, time.Minute)
}

type fakeCache struct {
	engine.Cache
	mu       sync.Mutex
	progress map[string]*engine.CommandProgress
}

func (c *fakeCache) EnqueueCommand(context.Context, string, string) error { return nil }

func (c *fakeCache) GetProgress(_ context.Context, id string) (*engine.CommandProgress, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.progress[id]; ok {
		cp := *p
		return &cp, nil
	}
	return nil, engine.Errorf(engine.ENotFound, "no progress")
}

func (c *fakeCache) set(p engine.CommandProgress) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.progress[p.CommandID] = &p
}

type fakeEvents struct{ engine.Events }

func (fakeEvents) Announce(context.Context, string, []byte) error { return nil }

// fakeProvisioner keeps one host per node, as the port promises.
type fakeProvisioner struct {
	engine.Provisioner
	mu     sync.Mutex
	hosts  map[string]engine.Host
	tokens []string
	cas    []string // the CA bundle each creation was given
}

func (p *fakeProvisioner) CreateHost(_ context.Context, spec engine.HostSpec) (engine.Host, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tokens = append(p.tokens, spec.Bootstrap.EnrollmentToken)
	p.cas = append(p.cas, string(spec.Bootstrap.CACertPEM))
	if h, ok := p.hosts[spec.NodeID]; ok {
		return h, nil
	}
	h := engine.Host{Provider: "local", ProviderID: "host-" + spec.NodeID}
	p.hosts[spec.NodeID] = h
	return h, nil
}

// fakeEnroller records the incarnation of each token it issues.
type fakeEnroller struct{ incarnations []string }

func (e *fakeEnroller) IssueEnrollmentToken(_ context.Context, _, incarnation string, _ time.Duration) (string, error) {
	e.incarnations = append(e.incarnations, incarnation)
	return "hcenroll_secret", nil
}

func (e *fakeEnroller) Revoke(context.Context, string) error { return nil }

type fixture struct {
	acts     *Activities
	store    *bolt.Store
	cache    *fakeCache
	statuses *fakeStatuses
	prov     *fakeProvisioner
	chain    *profile.ChainProfile
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st := bolt.New(t.TempDir() + "/hoodcloud.db")
	if err := st.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	chain, err := profile.Parse("test/test-chain.yaml", []byte(testProfileYAML))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: st, cache: &fakeCache{progress: map[string]*engine.CommandProgress{}}, statuses: &fakeStatuses{m: map[string]*engine.AgentStatus{}},
		prov: &fakeProvisioner{hosts: map[string]engine.Host{}}, chain: chain}
	f.acts = &Activities{
		Store: st, Cache: f.cache, Statuses: f.statuses, Events: fakeEvents{}, Secrets: fakeSecrets{}, Provisioner: f.prov, Enroller: &fakeEnroller{},
		Chains: func(id string) (*profile.ChainProfile, error) {
			if id != chain.ID {
				return nil, engine.Errorf(engine.ENotFound, "no chain %q", id)
			}
			return chain, nil
		},
		OpenSealed: func(b []byte) ([]byte, error) { return bytes.TrimPrefix(b, []byte("sealed:")), nil },
		Timing:     Timing{Poll: 2 * time.Millisecond, Ack: time.Second, LivenessGrace: 200 * time.Millisecond, StallThreshold: 3, CaptureWait: testenv.Patience},
	}
	return f
}

// subscription stores an active subscription of a full node with its inputs.
func (f *fixture) subscription(t *testing.T, inputs ...*engine.ProvisioningInput) string {
	t.Helper()
	return f.subscriptionOf(t, "full", inputs...)
}

// subscriptionOf stores an active subscription of a nodeType node.
func (f *fixture) subscriptionOf(t *testing.T, nodeType string, inputs ...*engine.ProvisioningInput) string {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	s := &engine.Subscription{ID: engine.NewID("sub"), UserID: "user_1", ChainProfileID: f.chain.ID, NodeType: nodeType, Duration: "1m",
		Provider: "local", Region: "here", InstanceType: "small", Status: engine.SubscriptionActive, ExpiresAt: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now}
	if err := f.store.CreateSubscription(ctx, s); err != nil {
		t.Fatal(err)
	}
	for _, in := range inputs {
		in.SubscriptionID, in.Status, in.CreatedAt, in.UpdatedAt = s.ID, engine.InputPending, now, now
		if err := f.store.PutInput(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	return s.ID
}

func (f *fixture) node(t *testing.T, subID string) string {
	t.Helper()
	plan, err := f.acts.ValidateProvisionInputs(context.Background(), subID)
	if err != nil {
		t.Fatal(err)
	}
	id, err := f.acts.CreateNodeRecord(context.Background(), *plan)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func keysOf(t *testing.T, st engine.KeyStore, nodeID string) map[string]*engine.NodeKey {
	t.Helper()
	ks, err := st.ListNodeKeys(context.Background(), nodeID)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]*engine.NodeKey{}
	for _, k := range ks {
		m[k.Name] = k
	}
	return m
}

var (
	moniker = &engine.ProvisioningInput{Name: "moniker", Type: engine.InputText, Value: "my-node"}
	// validatorSecret is a valid secp256k1 scalar; the fake opener strips "sealed:".
	validatorSecret = bytes.Repeat([]byte{0x42}, 32)
	sealed          = &engine.ProvisioningInput{Name: "validator_key", Type: engine.InputSecret, Ciphertext: append([]byte("sealed:"), validatorSecret...)}
)

func isPermanent(err error) bool {
	var app *temporal.ApplicationError
	return errors.As(err, &app) && app.NonRetryable()
}

func TestValidateProvisionInputsPlansFromTheProfile(t *testing.T) {
	f := newFixture(t)
	plan, err := f.acts.ValidateProvisionInputs(context.Background(), f.subscription(t, moniker, sealed))
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.UserProvidedKeys) != 1 || plan.UserProvidedKeys[0] != "validator_key" {
		t.Errorf("user-provided keys = %v", plan.UserProvidedKeys)
	}
	if len(plan.ChainGeneratedKeys) != 1 || plan.ChainGeneratedKeys[0].Path != "config/priv_validator_key.json" {
		t.Errorf("chain-generated keys = %+v", plan.ChainGeneratedKeys)
	}
	if plan.Provider != "local" || plan.InstanceType != "small" {
		t.Errorf("placement = %+v", plan)
	}
}

func TestValidateProvisionInputsRefusesForGood(t *testing.T) {
	f := newFixture(t)
	for name, subID := range map[string]string{
		"a required input is missing": f.subscription(t),
		"the subscription is unknown": "sub_missing",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.acts.ValidateProvisionInputs(context.Background(), subID)
			if !isPermanent(err) {
				t.Fatalf("err = %v, want a non-retryable error", err)
			}
		})
	}
}

func TestCreateNodeRecordTwiceMakesOneNode(t *testing.T) {
	f := newFixture(t)
	subID := f.subscription(t, moniker)
	first, second := f.node(t, subID), f.node(t, subID)
	if first != second {
		t.Fatalf("node ids %s and %s: a retry made a second node", first, second)
	}
	n, err := f.store.GetNodeBySubscription(context.Background(), subID)
	if err != nil || n.ID != first || n.State != engine.NodeProvisioning {
		t.Fatalf("node = %+v, %v", n, err)
	}
}

func TestGenerateNodeKeysTwiceKeepsTheKeys(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	nodeID := f.node(t, f.subscription(t, moniker))
	req := KeysRequest{NodeID: nodeID, ChainProfileID: f.chain.ID}
	if err := f.acts.GenerateNodeKeys(ctx, req); err != nil {
		t.Fatal(err)
	}
	first := keysOf(t, f.store, nodeID)
	if err := f.acts.GenerateNodeKeys(ctx, req); err != nil {
		t.Fatal(err)
	}
	second := keysOf(t, f.store, nodeID)
	for _, name := range []string{DEKName, "node_key", "jwt"} {
		if first[name] == nil || !bytes.Equal(first[name].Ciphertext, second[name].Ciphertext) {
			t.Errorf("key %q changed or is missing after a retry", name)
		}
	}
	if len(second) != 3 {
		t.Errorf("keys = %d, want the DEK and the two generated ones", len(second))
	}
	dek, err := f.acts.loadDEK(ctx, nodeID)
	if err != nil {
		t.Fatal(err)
	}
	jwt, err := engine.OpenWithDataKey(dek, second["jwt"].Ciphertext)
	if err != nil || len(jwt) != 64 {
		t.Fatalf("jwt opens to %d bytes, %v; want 64 hex digits", len(jwt), err)
	}
}

func TestPrepareUserProvidedKeysResealsUnderTheDEKOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	subID := f.subscription(t, moniker, sealed)
	nodeID := f.node(t, subID)
	req := KeysRequest{NodeID: nodeID, SubscriptionID: subID, ChainProfileID: f.chain.ID}
	if err := f.acts.GenerateNodeKeys(ctx, req); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := f.acts.PrepareUserProvidedKeys(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	k := keysOf(t, f.store, nodeID)["validator_key"]
	if k == nil || k.Source != sourceUserProvided {
		t.Fatalf("validator_key = %+v", k)
	}
	dek, _ := f.acts.loadDEK(ctx, nodeID)
	plain, err := engine.OpenWithDataKey(dek, k.Ciphertext)
	if err != nil || !bytes.Equal(plain, validatorSecret) {
		t.Fatalf("validator_key opens to %q, %v", plain, err)
	}
}

func TestProvisionHostTwiceMakesOneHostWithAFreshToken(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	nodeID := f.node(t, f.subscription(t, moniker))
	req := HostRequest{NodeID: nodeID, Provider: "local"}
	a, err := f.acts.ProvisionHost(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.acts.ProvisionHost(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if a.Host != b.Host || len(f.prov.hosts) != 1 {
		t.Fatalf("hosts %+v and %+v; provisioner holds %d", a.Host, b.Host, len(f.prov.hosts))
	}
	if len(f.prov.tokens) != 2 || f.prov.tokens[0] == "" {
		t.Errorf("tokens = %d, want one fresh token per attempt", len(f.prov.tokens))
	}
	if n, _ := f.store.GetNode(ctx, nodeID); n.Host != a.Host {
		t.Errorf("node host = %+v, want %+v", n.Host, a.Host)
	}
	if out, _ := json.Marshal(a); bytes.Contains(out, []byte("hcenroll_")) {
		t.Error("the activity result carries the enrollment token")
	}
}

// The agent of a migration's host enrols for that host's incarnation, which
// signing leases name their holder by.
func TestProvisionHostIssuesTheTokenForTheHostIncarnation(t *testing.T) {
	f := newFixture(t)
	nodeID := f.node(t, f.subscription(t, moniker))
	if _, err := f.acts.ProvisionHost(context.Background(), HostRequest{NodeID: nodeID, Incarnation: "m1f", Provider: "local"}); err != nil {
		t.Fatal(err)
	}
	if got := f.acts.Enroller.(*fakeEnroller).incarnations; !slices.Equal(got, []string{"m1f"}) {
		t.Errorf("tokens issued for incarnations %q, want [m1f]", got)
	}
}

// An appliance restart retries ProvisionHost after the agent enrolled: the
// agent still counts as the new host's.
func TestAgentEnrolledBeforeARetriedProvisionHostIsReady(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	nodeID := f.node(t, f.subscription(t, moniker))
	asked := time.Now().UTC().Add(-time.Minute)
	req := HostRequest{NodeID: nodeID, Provider: "local", Since: asked}
	if _, err := f.acts.ProvisionHost(ctx, req); err != nil {
		t.Fatal(err)
	}
	enrolled := asked.Add(10 * time.Second)
	if err := f.store.PutAgentRegistration(ctx, &engine.AgentRegistration{NodeID: nodeID, CertSerial: "1", EnrolledAt: enrolled}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.TouchNode(ctx, nodeID, enrolled, "1.0.0"); err != nil {
		t.Fatal(err)
	}
	retried, err := f.acts.ProvisionHost(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !retried.Since.Equal(asked) {
		t.Fatalf("retry counts the agent from %s, want %s (when the workflow asked)", retried.Since, asked)
	}
	if err := f.acts.WaitForAgentReady(ctx, AgentWait{NodeID: nodeID, Since: retried.Since}); err != nil {
		t.Fatalf("agent enrolled before the retry is not ready: %v", err)
	}
}

// A CA rotated while the appliance runs reaches the next host made.
func TestEachHostGetsTheCABundleOfTheMoment(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	bundle := "ca-1"
	f.acts.CACertPEM = func() []byte { return []byte(bundle) }
	first := f.node(t, f.subscription(t, moniker))
	if _, err := f.acts.ProvisionHost(ctx, HostRequest{NodeID: first, Provider: "local"}); err != nil {
		t.Fatal(err)
	}
	bundle = "ca-2 ca-1"
	second := f.node(t, f.subscription(t, moniker))
	if _, err := f.acts.ProvisionHost(ctx, HostRequest{NodeID: second, Provider: "local"}); err != nil {
		t.Fatal(err)
	}
	if got := f.prov.cas; len(got) != 2 || got[0] != "ca-1" || got[1] != "ca-2 ca-1" {
		t.Fatalf("hosts were given CA bundles %q, want the bundle current at each creation", got)
	}
}

func TestOpenIncidentTwiceOpensOne(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	nodeID := f.node(t, f.subscription(t, moniker))
	r := IncidentRequest{NodeID: nodeID, DedupeKey: "provision-failed", Severity: engine.SeverityCritical, Summary: "boom"}
	for range 2 {
		if err := f.acts.OpenIncident(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if is, _ := f.store.ListIncidents(ctx, nodeID); len(is) != 1 {
		t.Fatalf("incidents = %d, want 1", len(is))
	}
}

// command records an acknowledged command as the gateway would.
func (f *fixture) command(t *testing.T, nodeID string, status engine.CommandStatus) *engine.Command {
	t.Helper()
	ctx := context.Background()
	c := &engine.Command{NodeID: nodeID, Type: engine.CommandConfigure}
	if err := engine.EnqueueCommand(ctx, f.store, f.cache, c); err != nil {
		t.Fatal(err)
	}
	f.setStatus(t, c.ID, status, nil)
	return c
}

func (f *fixture) setStatus(t *testing.T, id string, status engine.CommandStatus, result []byte) {
	t.Helper()
	ctx := context.Background()
	c, err := f.store.GetCommand(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	c.Status, c.Result, c.UpdatedAt = status, result, time.Now().UTC()
	if status == engine.CommandAcknowledged {
		c.AckedAt = c.UpdatedAt
	}
	if err := f.store.UpdateCommand(ctx, c); err != nil {
		t.Fatal(err)
	}
}

// testClock is the activities' time in tests that judge liveness: it moves
// only when the test moves it, so a slow machine never looks like a silent
// agent.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Now().UTC()} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestWaitForCommandCompletion(t *testing.T) {
	tests := []struct {
		name      string
		status    engine.CommandStatus
		progress  func(f *fixture, clock *testClock, id string) // runs while waiting
		wantError bool
	}{
		{"completed", engine.CommandCompleted, nil, false},
		{"failed by the agent", engine.CommandFailed, nil, true},
		{"alive while progress is fresh, then completed", engine.CommandAcknowledged, func(f *fixture, clock *testClock, id string) {
			for range 5 {
				clock.Add(100 * time.Millisecond)
				f.cache.set(engine.CommandProgress{CommandID: id, Percent: 50, UpdatedAt: clock.Now()})
				time.Sleep(10 * time.Millisecond) // a few polls see each step
			}
		}, false},
		{"stalled too often", engine.CommandAcknowledged, func(f *fixture, _ *testClock, id string) {
			f.cache.set(engine.CommandProgress{CommandID: id, Stalled: true, UpdatedAt: time.Now().UTC().Add(time.Hour)})
		}, true},
		{"silent past the grace window", engine.CommandAcknowledged, func(_ *fixture, clock *testClock, _ string) {
			clock.Add(time.Second)
		}, true},
		{"listed as running by every heartbeat, then completed", engine.CommandAcknowledged, func(f *fixture, clock *testClock, id string) {
			for range 5 {
				clock.Add(100 * time.Millisecond)
				f.statuses.heartbeat(id)
				f.cache.set(engine.CommandProgress{CommandID: id, Percent: 50, UpdatedAt: clock.Now()})
				time.Sleep(10 * time.Millisecond)
			}
		}, false},
		{"left out by one heartbeat just before its outcome", engine.CommandAcknowledged, func(f *fixture, _ *testClock, id string) {
			f.statuses.heartbeat()
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			clock := newTestClock()
			f.acts.Now = clock.Now
			c := f.command(t, "node_1", tt.status)
			done := make(chan error, 1)
			go func() {
				done <- f.acts.WaitForCommandCompletion(context.Background(), CommandRequest{NodeID: "node_1", CommandID: c.ID})
			}()
			if tt.progress != nil {
				tt.progress(f, clock, c.ID)
				if !tt.wantError {
					f.setStatus(t, c.ID, engine.CommandCompleted, nil)
				}
			}
			select {
			case err := <-done:
				if (err != nil) != tt.wantError {
					t.Fatalf("err = %v, want error %v", err, tt.wantError)
				}
			case <-time.After(testenv.Patience):
				t.Fatal("the wait never ended")
			}
		})
	}
}

func TestWaitForCommandCompletionNoticesALostCommand(t *testing.T) {
	f := newFixture(t)
	clock := newTestClock() // still: the progress never goes stale
	f.acts.Now = clock.Now
	c := f.command(t, "node_1", engine.CommandAcknowledged)
	done := make(chan error, 1)
	go func() {
		done <- f.acts.WaitForCommandCompletion(context.Background(), CommandRequest{NodeID: "node_1", CommandID: c.ID})
	}()
	// The agent was restarted: its heartbeats go on, fresh, without the command.
	giveUp := time.After(testenv.Patience)
	for {
		f.statuses.heartbeat("cmd_other")
		f.cache.set(engine.CommandProgress{CommandID: c.ID, Percent: 10, UpdatedAt: clock.Now()})
		select {
		case err := <-done:
			var app *temporal.ApplicationError
			if !errors.As(err, &app) || app.Type() != ErrCommandLost || !app.NonRetryable() {
				t.Fatalf("err = %v, want a non-retryable %s", err, ErrCommandLost)
			}
			return
		case <-giveUp:
			t.Fatal("the lost command was never noticed")
		case <-time.After(150 * time.Millisecond):
		}
	}
}

func TestCaptureChainGeneratedKeysStoresTheAgentsCiphertextOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	nodeID := f.node(t, f.subscription(t, moniker))
	dek, err := f.acts.ensureDEK(ctx, nodeID)
	if err != nil {
		t.Fatal(err)
	}
	// The agent seals what it read under the node's data key.
	sealed, err := engine.SealWithDataKey(dek, []byte(`{"priv_key":"chain made"}`))
	if err != nil {
		t.Fatal(err)
	}
	req := CaptureRequest{NodeID: nodeID, Keys: []ChainKey{{Name: "priv_validator", Path: "config/priv_validator_key.json", KeyType: "ed25519"}}, CommandIDs: []string{"cmd_capture_1"}}
	done := make(chan error, 1)
	go func() { done <- f.acts.CaptureChainGeneratedKeys(ctx, req) }()
	for {
		if _, err := f.store.GetCommand(ctx, "cmd_capture_1"); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	result, _ := json.Marshal(captureKeyResult{KeyName: "priv_validator", EncryptedKey: sealed})
	f.setStatus(t, "cmd_capture_1", engine.CommandCompleted, result)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A retry finds the key and sends nothing.
	req.CommandIDs = []string{"cmd_capture_2"}
	if err := f.acts.CaptureChainGeneratedKeys(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.GetCommand(ctx, "cmd_capture_2"); !engine.IsCode(err, engine.ENotFound) {
		t.Errorf("a retry sent another CAPTURE_KEY: %v", err)
	}
	k := keysOf(t, f.store, nodeID)["priv_validator"]
	if k == nil || !bytes.Equal(k.Ciphertext, sealed) || k.Source != sourceChainGenerated {
		t.Fatalf("captured key = %+v", k)
	}
}

func TestCapturedKeyNotSealedWithTheNodesDataKeyIsRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	nodeID := f.node(t, f.subscription(t, moniker))
	if _, err := f.acts.ensureDEK(ctx, nodeID); err != nil {
		t.Fatal(err)
	}
	other := make([]byte, engine.DataKeySize)
	sealed, _ := engine.SealWithDataKey(other, []byte("key"))
	req := CaptureRequest{NodeID: nodeID, Keys: []ChainKey{{Name: "priv_validator", Path: "k", KeyType: "ed25519"}}, CommandIDs: []string{"cmd_capture_x"}}
	done := make(chan error, 1)
	go func() { done <- f.acts.CaptureChainGeneratedKeys(ctx, req) }()
	for {
		if _, err := f.store.GetCommand(ctx, "cmd_capture_x"); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	result, _ := json.Marshal(captureKeyResult{KeyName: "priv_validator", EncryptedKey: sealed})
	f.setStatus(t, "cmd_capture_x", engine.CommandCompleted, result)
	if err := <-done; !isPermanent(err) {
		t.Fatalf("capture sealed with another key = %v, want a permanent failure", err)
	}
	if k := keysOf(t, f.store, nodeID)["priv_validator"]; k != nil {
		t.Fatal("a key that cannot be opened was stored")
	}
}

func TestRestoreAgentRegistrationGivesTheNodeBackToTheOldAgent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	nodeID := f.node(t, f.subscription(t, moniker))
	if reg, err := f.acts.AgentRegistration(ctx, nodeID); err != nil || reg != nil {
		t.Fatalf("registration of a node never enrolled = %+v, %v; want nil, nil", reg, err)
	}
	at := time.Now().UTC().Truncate(time.Second)
	old := engine.AgentRegistration{NodeID: nodeID, CertSerial: "old", EnrolledAt: at}
	if err := f.store.PutAgentRegistration(ctx, &old); err != nil {
		t.Fatal(err)
	}
	saved, err := f.acts.AgentRegistration(ctx, nodeID)
	if err != nil || saved == nil || saved.CertSerial != "old" {
		t.Fatalf("saved registration = %+v, %v", saved, err)
	}
	// The new host's agent enrols for the same node, then the migration fails.
	if err := f.store.PutAgentRegistration(ctx, &engine.AgentRegistration{NodeID: nodeID, CertSerial: "new", EnrolledAt: at.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // activities run at least once
		if err := f.acts.RestoreAgentRegistration(ctx, *saved); err != nil {
			t.Fatal(err)
		}
	}
	if reg, _ := f.store.GetAgentRegistration(ctx, nodeID); reg.CertSerial != "old" {
		t.Fatalf("registration after restore = %+v, want the old agent's", reg)
	}

	if err := f.store.RevokeAgentRegistration(ctx, nodeID, at.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := f.acts.RestoreAgentRegistration(ctx, *saved); err != nil {
		t.Fatal(err)
	}
	if reg, _ := f.store.GetAgentRegistration(ctx, nodeID); reg.RevokedAt.IsZero() {
		t.Fatal("restoring un-revoked a terminated node's agent")
	}
}
