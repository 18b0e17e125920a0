package workflows

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

var (
	oldHost = engine.Host{Provider: "local", ProviderID: "old-1", Address: "10.0.0.1"}
	newHost = engine.Host{Provider: "local", ProviderID: "new-1", Address: "10.0.0.2"}
)

// world records the activities a workflow ran, in order, and fails the
// ones named in fail (for good, so each runs once).
type world struct {
	mu    sync.Mutex
	calls []string
	fail  map[string]bool
	plan  ProvisionPlan
	lose  int // waits that find their command lost by the agent
	// custody is what PlanCustody answers; caughtUp, WaitForCaughtUp.
	custody  CustodyPlan
	caughtUp bool
	// unobserved: no other node sees the chain's blocks.
	unobserved bool
	starts     [][]StartLease // the leases of each START, in order
	// grantedAt: the workflow clock at each grant.
	grantedAt []time.Time
}

func (w *world) hit(name string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, name)
	if w.fail[name] {
		return temporal.NewNonRetryableApplicationError("injected failure at "+name, "test", nil)
	}
	return nil
}

func (w *world) ran() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.calls)
}

// newEnv returns a test environment whose every activity is a recorded fake.
func newEnv(t *testing.T, w *world) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterActivity(&Activities{})
	any2 := []any{mock.Anything, mock.Anything}
	on := func(fn any, impl any) { env.OnActivity(fn, any2...).Return(impl) }
	on(acts.ValidateProvisionInputs, func(_ context.Context, id string) (*ProvisionPlan, error) {
		p := w.plan
		return &p, w.hit("ValidateProvisionInputs")
	})
	on(acts.CreateNodeRecord, func(context.Context, ProvisionPlan) (string, error) {
		return "node_1", w.hit("CreateNodeRecord")
	})
	for name, fn := range map[string]any{"GenerateNodeKeys": acts.GenerateNodeKeys, "PrepareUserProvidedKeys": acts.PrepareUserProvidedKeys, "InjectKeys": acts.InjectKeys} {
		on(fn, func(context.Context, KeysRequest) error { return w.hit(name) })
	}
	on(acts.ProvisionHost, func(context.Context, HostRequest) (*ProvisionedHost, error) {
		return &ProvisionedHost{Host: oldHost}, w.hit("ProvisionHost")
	})
	on(acts.ProvisionMigrationHost, func(_ context.Context, r HostRequest) (*ProvisionedHost, error) {
		if !engine.ValidIncarnation(r.Incarnation) || r.Incarnation == "" {
			return nil, fmt.Errorf("migration host asked with incarnation %q: want a new host's", r.Incarnation)
		}
		if err := w.hit("ProvisionMigrationHost"); err != nil {
			return nil, err
		}
		return &ProvisionedHost{Host: newHost}, nil
	})
	on(acts.AgentRegistration, func(context.Context, string) (*engine.AgentRegistration, error) {
		return &engine.AgentRegistration{NodeID: "node_1", CertSerial: "old-agent"}, w.hit("AgentRegistration")
	})
	on(acts.RestoreAgentRegistration, func(_ context.Context, r engine.AgentRegistration) error {
		return w.hit("RestoreAgentRegistration:" + r.CertSerial)
	})
	on(acts.WaitForAgentReady, func(context.Context, AgentWait) error { return w.hit("WaitForAgentReady") })
	for name, fn := range map[string]any{"SendConfigureCommand": acts.SendConfigureCommand, "StopNode": acts.StopNode, "SendSnapshotCommand": acts.SendSnapshotCommand, "SendRestoreCommand": acts.SendRestoreCommand} {
		on(fn, func(context.Context, CommandRequest) error { return w.hit(name) })
	}
	on(acts.StartNode, func(_ context.Context, r CommandRequest) error {
		w.mu.Lock()
		w.starts = append(w.starts, r.Leases)
		w.mu.Unlock()
		return w.hit("StartNode")
	})
	mockCustody(env, w)
	on(acts.WaitForCommandCompletion, func(context.Context, CommandRequest) error {
		if err := w.hit("WaitForCommandCompletion"); err != nil {
			return err
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.lose > 0 {
			w.lose--
			return temporal.NewNonRetryableApplicationError("lost", ErrCommandLost, nil)
		}
		return nil
	})
	on(acts.CaptureChainGeneratedKeys, func(context.Context, CaptureRequest) error { return w.hit("CaptureChainGeneratedKeys") })
	on(acts.MarkInputsApplied, func(context.Context, string) error { return w.hit("MarkInputsApplied") })
	on(acts.SetNodeState, func(_ context.Context, c StateChange) error { return w.hit("SetNodeState:" + string(c.To)) })
	for name, fn := range map[string]any{"DestroyNodeHost": acts.DestroyNodeHost, "DeleteNodeKeys": acts.DeleteNodeKeys, "RevokeAgent": acts.RevokeAgent, "VerifyCleanup": acts.VerifyCleanup} {
		on(fn, func(context.Context, string) error { return w.hit(name) })
	}
	on(acts.OpenIncident, func(_ context.Context, r IncidentRequest) error {
		return w.hit("OpenIncident:" + r.DedupeKey)
	})
	on(acts.NodeHost, func(context.Context, string) (engine.Host, error) { return oldHost, w.hit("NodeHost") })
	on(acts.NodeRecord, func(context.Context, string) (*engine.Node, error) {
		return &engine.Node{ID: "node_1", SubscriptionID: "sub_1", ChainProfileID: "chain"}, w.hit("NodeRecord")
	})
	on(acts.DestroyHost, func(_ context.Context, h engine.Host) error { return w.hit("DestroyHost:" + h.ProviderID) })
	on(acts.UpdateHostInfo, func(_ context.Context, u HostUpdate) error { return w.hit("UpdateHostInfo:" + u.Host.ProviderID) })
	for name, fn := range map[string]any{"CheckBackup": acts.CheckBackup, "RestoreSnapshot": acts.RestoreSnapshot} {
		on(fn, func(_ context.Context, id string) (*MigrationCheck, error) {
			return &MigrationCheck{NodeID: id, Note: name}, w.hit(name)
		})
	}
	return env
}

// mockCustody fakes the custody activities: the leases of w.custody's
// keys, granted at the next epoch to whoever asks.
func mockCustody(env *testsuite.TestWorkflowEnvironment, w *world) {
	any2 := []any{mock.Anything, mock.Anything}
	on := func(fn any, impl any) { env.OnActivity(fn, any2...).Return(impl) }
	on(acts.PlanCustody, func(context.Context, string) (*CustodyPlan, error) {
		p := w.custody
		return &p, w.hit("PlanCustody")
	})
	epoch := uint64(1)
	on(acts.GrantSigningLeases, func(_ context.Context, r LeaseRequest) ([]StartLease, error) {
		var out []StartLease
		for _, k := range r.Keys {
			out = append(out, StartLease{KeyName: k, Epoch: epoch})
		}
		epoch++
		w.mu.Lock()
		w.grantedAt = append(w.grantedAt, env.Now())
		w.mu.Unlock()
		return out, w.hit("GrantSigningLeases:" + holderName(r.Holder))
	})
	on(acts.ReleaseSigningLeases, func(_ context.Context, r LeaseRequest) (time.Time, error) {
		return env.Now(), w.hit("ReleaseSigningLeases:" + holderName(r.Holder) + ":" + r.Reason)
	})
	on(acts.ReleaseHeldLeases, func(_ context.Context, r LeaseRequest) (time.Time, error) {
		return env.Now(), w.hit("ReleaseHeldLeases:" + holderName(r.Holder) + ":" + r.Reason)
	})
	on(acts.CaptureSigningState, func(context.Context, StateRequest) error { return w.hit("CaptureSigningState") })
	on(acts.WaitForChainBlocks, func(context.Context, BlockGap) (bool, error) { return !w.unobserved, w.hit("WaitForChainBlocks") })
	on(acts.WaitForCaughtUp, func(context.Context, CaughtUp) (bool, error) { return w.caughtUp, w.hit("WaitForCaughtUp") })
	on(acts.RecordMigrationStep, func(context.Context, MigrationStepRecord) error { return nil })
	on(acts.DeleteSnapshot, func(context.Context, SnapshotRef) error { return w.hit("DeleteSnapshot") })
}

// holderName: "first" for a node's first host, else its incarnation's
// kind ("new": a migration's host).
func holderName(h engine.LeaseHolder) string {
	if h.Incarnation == "" {
		return "first"
	}
	return "new"
}

func failing(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

var (
	// Keys reach the host before CONFIGURE: the chain's init steps use them.
	bringUpSteps = []string{"WaitForAgentReady", "InjectKeys", "SendConfigureCommand", "WaitForCommandCompletion"}
	startSteps   = []string{"PlanCustody", "StartNode", "WaitForCommandCompletion", "MarkInputsApplied", "SetNodeState:running"}
	compensation = []string{"DestroyNodeHost", "DeleteNodeKeys", "SetNodeState:failed", "OpenIncident:provision-failed"}
)

func seq(parts ...[]string) []string { return slices.Concat(parts...) }

func TestProvisionRunsEveryStepOfItsPlan(t *testing.T) {
	head := []string{"ValidateProvisionInputs", "CreateNodeRecord", "GenerateNodeKeys"}
	tests := []struct {
		name string
		plan ProvisionPlan
		want []string
	}{
		{"appliance-generated keys only", ProvisionPlan{},
			seq(head, []string{"ProvisionHost"}, bringUpSteps, startSteps)},
		{"user-provided keys are prepared before the host", ProvisionPlan{UserProvidedKeys: []string{"validator_key"}},
			seq(head, []string{"PrepareUserProvidedKeys", "ProvisionHost"}, bringUpSteps, startSteps)},
		{"chain-generated keys are captured after CONFIGURE", ProvisionPlan{ChainGeneratedKeys: []ChainKey{{Name: "node_key", Path: "config/node_key.json"}}},
			seq(head, []string{"ProvisionHost"}, bringUpSteps, []string{"CaptureChainGeneratedKeys"}, startSteps)},
		{"keys the chain writes when it first runs are captured after START", ProvisionPlan{ChainGeneratedKeys: []ChainKey{{Name: "node_key", Path: "geth/nodekey", AfterStart: true}}},
			seq(head, []string{"ProvisionHost"}, bringUpSteps, []string{"PlanCustody", "StartNode", "WaitForCommandCompletion", "CaptureChainGeneratedKeys", "MarkInputsApplied", "SetNodeState:running"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &world{plan: tt.plan}
			env := newEnv(t, w)
			env.ExecuteWorkflow(ProvisionWorkflow, ProvisionInput{SubscriptionID: "sub_1"})
			var res ProvisionResult
			if err := env.GetWorkflowResult(&res); err != nil {
				t.Fatalf("provision failed: %v", err)
			}
			if res.NodeID != "node_1" || res.Host != oldHost {
				t.Errorf("result = %+v", res)
			}
			if got := w.ran(); !slices.Equal(got, tt.want) {
				t.Errorf("ran\n %v\nwant\n %v", got, tt.want)
			}
		})
	}
}

func TestProvisionFailureAfterTheNodeExistsIsCompensated(t *testing.T) {
	full := ProvisionPlan{UserProvidedKeys: []string{"k"}, ChainGeneratedKeys: []ChainKey{{Name: "c"}}}
	steps := []string{
		"GenerateNodeKeys", "PrepareUserProvidedKeys", "ProvisionHost", "WaitForAgentReady",
		"SendConfigureCommand", "WaitForCommandCompletion", "CaptureChainGeneratedKeys", "InjectKeys",
		"StartNode", "MarkInputsApplied", "SetNodeState:running",
	}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			w := &world{plan: full, fail: failing(step)}
			env := newEnv(t, w)
			env.ExecuteWorkflow(ProvisionWorkflow, ProvisionInput{SubscriptionID: "sub_1"})
			err := env.GetWorkflowError()
			if err == nil || !strings.Contains(err.Error(), "injected failure at "+step) {
				t.Fatalf("workflow error = %v, want the injected failure", err)
			}
			got := w.ran()
			if tail := got[len(got)-len(compensation):]; !slices.Equal(tail, compensation) {
				t.Errorf("ran %v\nwant it to end with %v", got, compensation)
			}
		})
	}
}

func TestProvisionFailureBeforeTheNodeExistsCompensatesNothing(t *testing.T) {
	for _, step := range []string{"ValidateProvisionInputs", "CreateNodeRecord"} {
		t.Run(step, func(t *testing.T) {
			w := &world{fail: failing(step)}
			env := newEnv(t, w)
			env.ExecuteWorkflow(ProvisionWorkflow, ProvisionInput{SubscriptionID: "sub_1"})
			if env.GetWorkflowError() == nil {
				t.Fatal("provision succeeded")
			}
			if got := w.ran(); got[len(got)-1] != step {
				t.Errorf("ran %v after the failure at %s", got, step)
			}
		})
	}
}

func TestTerminateIsBestEffort(t *testing.T) {
	all := []string{"SetNodeState:terminating", "StopNode", "DeleteNodeKeys", "DestroyNodeHost", "RevokeAgent", "VerifyCleanup", "SetNodeState:terminated"}
	tests := []struct {
		name     string
		fail     []string
		partial  []string
		wantFail bool
	}{
		{"every step succeeds", nil, nil, false},
		{"a dead agent and a stuck host are recorded", []string{"StopNode", "DestroyNodeHost", "VerifyCleanup"},
			[]string{"stop node", "destroy host", "verify cleanup"}, false},
		{"only the final state change is critical", []string{"SetNodeState:terminated"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &world{fail: failing(tt.fail...)}
			env := newEnv(t, w)
			env.ExecuteWorkflow(TerminateWorkflow, TerminateInput{NodeID: "node_1", Reason: "expired"})
			if got := w.ran(); !slices.Equal(got, all) {
				t.Errorf("ran %v, want every step %v", got, all)
			}
			err := env.GetWorkflowError()
			if (err != nil) != tt.wantFail {
				t.Fatalf("workflow error = %v, want failure %v", err, tt.wantFail)
			}
			if tt.wantFail {
				return
			}
			var res TerminateResult
			if err := env.GetWorkflowResult(&res); err != nil {
				t.Fatal(err)
			}
			if len(res.PartialFailures) != len(tt.partial) {
				t.Fatalf("partial failures = %q, want %q", res.PartialFailures, tt.partial)
			}
			for i, p := range tt.partial {
				if !strings.HasPrefix(res.PartialFailures[i], p+": ") {
					t.Errorf("partial failure %d = %q, want %q", i, res.PartialFailures[i], p)
				}
			}
		})
	}
}

func TestALostCommandIsSentAgainAsANewOne(t *testing.T) {
	for _, tt := range []struct {
		lost    int
		sends   int
		succeed bool
	}{{1, 2, true}, {2, 3, true}, {3, 3, false}} {
		t.Run(fmt.Sprintf("lost %d times", tt.lost), func(t *testing.T) {
			w := &world{lose: tt.lost}
			env := newEnv(t, w)
			env.ExecuteWorkflow(ProvisionWorkflow, ProvisionInput{SubscriptionID: "sub_1"})
			if err := env.GetWorkflowError(); (err == nil) != tt.succeed {
				t.Fatalf("workflow error = %v, want success %v", err, tt.succeed)
			}
			sends := 0
			for _, c := range w.ran() {
				if c == "SendConfigureCommand" {
					sends++
				}
			}
			if sends != tt.sends {
				t.Errorf("CONFIGURE sent %d times, want %d", sends, tt.sends)
			}
		})
	}
}

// legacyMigration runs MigrateWorkflow as runs begun before custody do.
func legacyMigration(env *testsuite.TestWorkflowEnvironment) {
	env.OnGetVersion(custodyOrder, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
}

func TestMigrateMovesTheNodeToANewHost(t *testing.T) {
	w := &world{}
	env := newEnv(t, w)
	legacyMigration(env)
	env.ExecuteWorkflow(MigrateWorkflow, MigrateInput{NodeID: "node_1"})
	var res MigrateResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"SetNodeState:maintenance", "NodeHost", "AgentRegistration", "StopNode", "ProvisionMigrationHost", "WaitForAgentReady",
		"NodeRecord", "InjectKeys", "SendConfigureCommand", "WaitForCommandCompletion", "CheckBackup", "RestoreSnapshot",
		"StartNode", "WaitForCommandCompletion", "DestroyHost:old-1", "UpdateHostInfo:new-1",
		"SetNodeState:syncing",
	}
	if got := w.ran(); !slices.Equal(got, want) {
		t.Errorf("ran\n %v\nwant\n %v", got, want)
	}
	if res.OldHost != oldHost || res.NewHost != newHost || len(res.Notes) != 2 {
		t.Errorf("result = %+v", res)
	}
}

func TestMigrateCompensation(t *testing.T) {
	tests := []struct {
		name, fail string
		tail       []string
	}{
		{"the old host does not stop: nothing moves", "StopNode", []string{"AgentRegistration", "StopNode", "SetNodeState:degraded"}},
		{"no new host: nothing destroyed, the old chain started again", "ProvisionMigrationHost", []string{"ProvisionMigrationHost", "StartNode", "SetNodeState:degraded"}},
		{"new host destroyed, old kept, its agent served again and its chain started", "StartNode", []string{"StartNode", "DestroyHost:new-1", "RestoreAgentRegistration:old-agent", "StartNode", "SetNodeState:degraded"}},
		{"started on the new host: it is kept", "UpdateHostInfo:new-1", []string{"UpdateHostInfo:new-1", "SetNodeState:degraded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &world{fail: failing(tt.fail)}
			env := newEnv(t, w)
			legacyMigration(env)
			env.ExecuteWorkflow(MigrateWorkflow, MigrateInput{NodeID: "node_1"})
			if env.GetWorkflowError() == nil {
				t.Fatal("migration succeeded")
			}
			got := w.ran()
			if tail := got[len(got)-len(tt.tail):]; !slices.Equal(tail, tt.tail) {
				t.Errorf("ran %v\nwant it to end with %v", got, tt.tail)
			}
			if slices.Contains(got, "DestroyHost:old-1") && tt.fail != "UpdateHostInfo:new-1" {
				t.Error("the old host was destroyed")
			}
			if tt.fail == "UpdateHostInfo:new-1" && slices.Contains(got, "DestroyHost:new-1") {
				t.Error("the new host was destroyed though the chain runs on it")
			}
		})
	}
}

func TestMigrateKeepsTheNewHostWhenTheOldOneWillNotGo(t *testing.T) {
	w := &world{fail: failing("DestroyHost:old-1")}
	env := newEnv(t, w)
	legacyMigration(env)
	env.ExecuteWorkflow(MigrateWorkflow, MigrateInput{NodeID: "node_1"})
	var res MigrateResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatalf("migration failed: %v", err)
	}
	got := w.ran()
	want := []string{"DestroyHost:old-1", "OpenIncident:migration-old-host", "UpdateHostInfo:new-1", "SetNodeState:syncing"}
	if tail := got[len(got)-len(want):]; !slices.Equal(tail, want) {
		t.Errorf("ran %v\nwant it to end with %v", got, want)
	}
	if slices.Contains(got, "DestroyHost:new-1") {
		t.Error("the new host was destroyed")
	}
}
