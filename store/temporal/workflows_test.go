package temporal_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
	"github.com/hoodcloud/hoodcloud/engine/workflows"
	"github.com/hoodcloud/hoodcloud/store/temporal"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdktemporal "go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"
)

// openTestClient connects to the cluster at HOODCLOUD_TEST_TEMPORAL_ADDR
// (namespace HOODCLOUD_TEST_TEMPORAL_NAMESPACE, default "hoodcloud"), e.g.
// one `hoodcloud dev` started; it skips without one. CI has no such
// server: the root package runs the same checks on the embedded one.
func openTestClient(t *testing.T, register ...func(worker.Registry)) *temporal.Client {
	t.Helper()
	addr := os.Getenv("HOODCLOUD_TEST_TEMPORAL_ADDR")
	if addr == "" {
		t.Skip("SKIPPED: set HOODCLOUD_TEST_TEMPORAL_ADDR to a Temporal frontend (e.g. from `hoodcloud dev --output env`)")
	}
	ns := os.Getenv("HOODCLOUD_TEST_TEMPORAL_NAMESPACE")
	if ns == "" {
		ns = "hoodcloud"
	}
	c, err := temporal.New(temporal.Config{HostPort: addr, Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range register {
		c.Register(r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestWorkflowsStartEachProcessOnce(t *testing.T) {
	c := openTestClient(t)
	w := temporal.NewWorkflows(c, nil)
	ctx := context.Background()
	sub := engine.NewID("sub")
	id := workflows.ProvisionID(sub)
	for range 2 {
		if err := w.StartProvision(ctx, sub); err != nil {
			t.Fatalf("StartProvision: %v", err)
		}
	}
	first := describe(t, c, id)
	// A finished provision blocks another run for the same subscription.
	if err := c.SDK().TerminateWorkflow(ctx, id, "", "test"); err != nil {
		t.Fatal(err)
	}
	if err := w.StartProvision(ctx, sub); err != nil {
		t.Fatalf("StartProvision after the run ended: %v", err)
	}
	if again := describe(t, c, id); again.GetExecution().GetRunId() != first.GetExecution().GetRunId() {
		t.Errorf("a second provision run started: %s after %s", again.GetExecution().GetRunId(), first.GetExecution().GetRunId())
	}
	node := engine.NewID("node")
	for range 2 {
		if err := w.StartTerminate(ctx, node, "test"); err != nil {
			t.Fatalf("StartTerminate: %v", err)
		}
		if err := w.StartMigrate(ctx, node); err != nil {
			t.Fatalf("StartMigrate: %v", err)
		}
	}
	for _, id := range []string{workflows.TerminateID(node), workflows.MigrateID(node)} {
		if err := c.SDK().TerminateWorkflow(ctx, id, "", "test"); err != nil {
			t.Errorf("terminate %s: %v", id, err)
		}
	}
	_ = c.SDK().TerminateWorkflow(ctx, id, "", "test")
}

func describe(t *testing.T, c *temporal.Client, id string) *workflowpb.WorkflowExecutionInfo {
	t.Helper()
	d, err := c.SDK().DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	return d.GetWorkflowExecutionInfo()
}

// historyScenarios are the runs whose histories the replay tests in
// engine/workflows keep: a change to a workflow that breaks determinism
// fails them.
var historyScenarios = []struct {
	file string
	fn   any
	arg  any
	fail map[string]bool
}{
	{"provision_happy.json", workflows.ProvisionWorkflow, workflows.ProvisionInput{SubscriptionID: "sub_history"}, nil},
	{"provision_compensated.json", workflows.ProvisionWorkflow, workflows.ProvisionInput{SubscriptionID: "sub_history"}, map[string]bool{"WaitForAgentReady": true}},
	{"terminate_partial.json", workflows.TerminateWorkflow, workflows.TerminateInput{NodeID: "node_history", Reason: "expired"}, map[string]bool{"StopNode": true}},
	{"migrate_happy.json", workflows.MigrateWorkflow, workflows.MigrateInput{NodeID: "node_history"}, nil},
	// Signing leases and the migration in custody.
	{"provision_leases.json", workflows.ProvisionWorkflow, workflows.ProvisionInput{SubscriptionID: "sub_history"}, nil},
	{"migrate_custody.json", workflows.MigrateWorkflow, workflows.MigrateInput{NodeID: "node_history"}, nil},
	{"migrate_custody_compensated.json", workflows.MigrateWorkflow, workflows.MigrateInput{NodeID: "node_history"}, map[string]bool{"SendRestoreCommand": true}},
}

// TestRecordWorkflowHistories runs each scenario whose history is not
// recorded yet on a real cluster with stub activities and writes its
// history to engine/workflows/testdata: the recorded ones stand for runs of
// older versions. Run it with HOODCLOUD_UPDATE_HISTORIES=1 after a
// deliberate workflow change, versioned with workflow.GetVersion, with a
// new scenario for the new version.
func TestRecordWorkflowHistories(t *testing.T) {
	if os.Getenv("HOODCLOUD_UPDATE_HISTORIES") != "1" {
		t.Skip("set HOODCLOUD_UPDATE_HISTORIES=1 to record the replay histories")
	}
	c := openTestClient(t)
	queue := "histories-" + engine.NewID("q")
	w := worker.New(c.SDK(), queue, worker.Options{})
	w.RegisterWorkflow(workflows.ProvisionWorkflow)
	w.RegisterWorkflow(workflows.TerminateWorkflow)
	w.RegisterWorkflow(workflows.MigrateWorkflow)
	fails := map[string]map[string]bool{}
	registerStubs(w, fails)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	dir := filepath.Join("..", "..", "engine", "workflows", "testdata", "histories")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range historyScenarios {
		if _, err := os.Stat(filepath.Join(dir, s.file)); err == nil {
			continue
		}
		id := "history-" + engine.NewID("wf")
		fails[id] = s.fail
		recordHistory(t, c, queue, id, s.fn, s.arg, filepath.Join(dir, s.file))
	}
}

func recordHistory(t *testing.T, c *temporal.Client, queue, id string, fn, arg any, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := c.SDK().ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, fn, arg)
	if err != nil {
		t.Fatal(err)
	}
	_ = run.Get(ctx, nil) // failures are part of some scenarios
	h := &historypb.History{}
	it := c.SDK().GetWorkflowHistory(ctx, id, run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, e)
	}
	out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d events)", path, len(h.Events))
}

// registerStubs registers an activity under each name the workflows call;
// fails maps a workflow id to the activities that fail (for good) in it.
func registerStubs(r worker.Registry, fails map[string]map[string]bool) {
	hit := func(ctx context.Context, name string) error {
		if fails[activity.GetInfo(ctx).WorkflowExecution.ID][name] {
			return sdktemporal.NewNonRetryableApplicationError("recorded failure at "+name, "test", errors.New(name))
		}
		return nil
	}
	host := engine.Host{Provider: "local", ProviderID: "host-history", Address: "127.0.0.1"}
	newHost := engine.Host{Provider: "local", ProviderID: "host-history-2", Address: "127.0.0.1"}
	stubs := map[string]any{
		"ValidateProvisionInputs": func(ctx context.Context, id string) (*workflows.ProvisionPlan, error) {
			return &workflows.ProvisionPlan{SubscriptionID: id, ChainProfileID: "test-chain", Provider: "local",
				UserProvidedKeys: []string{"validator_key"}, ChainGeneratedKeys: []workflows.ChainKey{{Name: "node_key", Path: "config/node_key.json"}}}, hit(ctx, "ValidateProvisionInputs")
		},
		"CreateNodeRecord": func(ctx context.Context, _ workflows.ProvisionPlan) (string, error) {
			return "node_history", hit(ctx, "CreateNodeRecord")
		},
		"ProvisionHost": func(ctx context.Context, _ workflows.HostRequest) (*workflows.ProvisionedHost, error) {
			return &workflows.ProvisionedHost{Host: host, Since: time.Unix(1_800_000_000, 0).UTC()}, hit(ctx, "ProvisionHost")
		},
		"ProvisionMigrationHost": func(ctx context.Context, _ workflows.HostRequest) (*workflows.ProvisionedHost, error) {
			return &workflows.ProvisionedHost{Host: newHost, Since: time.Unix(1_800_000_000, 0).UTC()}, hit(ctx, "ProvisionMigrationHost")
		},
		"NodeHost": func(ctx context.Context, _ string) (engine.Host, error) { return host, hit(ctx, "NodeHost") },
		"NodeRecord": func(ctx context.Context, id string) (*engine.Node, error) {
			return &engine.Node{ID: id, SubscriptionID: "sub_history", ChainProfileID: "test-chain"}, hit(ctx, "NodeRecord")
		},
		"CaptureChainGeneratedKeys": func(ctx context.Context, _ workflows.CaptureRequest) error {
			return hit(ctx, "CaptureChainGeneratedKeys")
		},
		"WaitForAgentReady": func(ctx context.Context, _ workflows.AgentWait) error { return hit(ctx, "WaitForAgentReady") },
		"SetNodeState":      func(ctx context.Context, _ workflows.StateChange) error { return hit(ctx, "SetNodeState") },
		"OpenIncident":      func(ctx context.Context, _ workflows.IncidentRequest) error { return hit(ctx, "OpenIncident") },
		"DestroyHost":       func(ctx context.Context, _ engine.Host) error { return hit(ctx, "DestroyHost") },
		"UpdateHostInfo":    func(ctx context.Context, _ workflows.HostUpdate) error { return hit(ctx, "UpdateHostInfo") },
	}
	for _, n := range []string{"GenerateNodeKeys", "PrepareUserProvidedKeys", "InjectKeys"} {
		stubs[n] = func(ctx context.Context, _ workflows.KeysRequest) error { return hit(ctx, n) }
	}
	for _, n := range []string{"SendConfigureCommand", "StartNode", "StopNode", "WaitForCommandCompletion"} {
		stubs[n] = func(ctx context.Context, _ workflows.CommandRequest) error { return hit(ctx, n) }
	}
	for _, n := range []string{"MarkInputsApplied", "DestroyNodeHost", "DeleteNodeKeys", "RevokeAgent", "VerifyCleanup"} {
		stubs[n] = func(ctx context.Context, _ string) error { return hit(ctx, n) }
	}
	for _, n := range []string{"CheckBackup", "RestoreSnapshot"} {
		stubs[n] = func(ctx context.Context, id string) (*workflows.MigrationCheck, error) {
			return &workflows.MigrationCheck{NodeID: id, Note: n}, hit(ctx, n)
		}
	}
	custodyStubs(stubs, hit)
	for name, fn := range stubs {
		r.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
}

// custodyStubs: a node with one signing key and a state file, its lease
// held by its first host; a 1 s gap.
func custodyStubs(stubs map[string]any, hit func(context.Context, string) error) {
	at := time.Unix(1_800_000_000, 0).UTC()
	stubs["PlanCustody"] = func(ctx context.Context, id string) (*workflows.CustodyPlan, error) {
		return &workflows.CustodyPlan{NodeID: id, ChainProfileID: "test-chain", Keys: []string{"validator_key"},
			Leases:     []engine.SigningLease{{NodeID: id, KeyName: "validator_key", Holder: engine.LeaseHolder{NodeID: id}, Epoch: 1, GrantedAt: at}},
			StateFiles: []profile.StateFile{{Name: "sign_state", Path: "data/state.json"}}, Exclude: []string{"data/state.json"},
			Gap: time.Second, GapBlocks: 2}, hit(ctx, "PlanCustody")
	}
	stubs["GrantSigningLeases"] = func(ctx context.Context, r workflows.LeaseRequest) ([]workflows.StartLease, error) {
		return []workflows.StartLease{{KeyName: "validator_key", Epoch: 2}}, hit(ctx, "GrantSigningLeases")
	}
	stubs["ReleaseSigningLeases"] = func(ctx context.Context, _ workflows.LeaseRequest) (time.Time, error) {
		return time.Now().UTC(), hit(ctx, "ReleaseSigningLeases")
	}
	stubs["ReleaseHeldLeases"] = func(ctx context.Context, _ workflows.LeaseRequest) (time.Time, error) {
		return time.Now().UTC(), hit(ctx, "ReleaseHeldLeases")
	}
	stubs["CaptureSigningState"] = func(ctx context.Context, _ workflows.StateRequest) error { return hit(ctx, "CaptureSigningState") }
	for _, n := range []string{"SendSnapshotCommand", "SendRestoreCommand"} {
		stubs[n] = func(ctx context.Context, _ workflows.CommandRequest) error { return hit(ctx, n) }
	}
	stubs["WaitForChainBlocks"] = func(ctx context.Context, _ workflows.BlockGap) (bool, error) {
		return true, hit(ctx, "WaitForChainBlocks")
	}
	stubs["WaitForCaughtUp"] = func(ctx context.Context, _ workflows.CaughtUp) (bool, error) {
		return true, hit(ctx, "WaitForCaughtUp")
	}
	stubs["RecordMigrationStep"] = func(ctx context.Context, _ workflows.MigrationStepRecord) error {
		return hit(ctx, "RecordMigrationStep")
	}
	stubs["DeleteSnapshot"] = func(ctx context.Context, _ workflows.SnapshotRef) error { return hit(ctx, "DeleteSnapshot") }
	stubs["AgentRegistration"] = func(ctx context.Context, id string) (*engine.AgentRegistration, error) {
		return &engine.AgentRegistration{NodeID: id, CertSerial: "01"}, hit(ctx, "AgentRegistration")
	}
	stubs["RestoreAgentRegistration"] = func(ctx context.Context, _ engine.AgentRegistration) error {
		return hit(ctx, "RestoreAgentRegistration")
	}
}
