package workflows

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
)

type activityInfo = activity.Info

// aValidator is the custody plan of a node that signs with one key, held
// by its first host at epoch 1.
func aValidator() CustodyPlan {
	return CustodyPlan{
		NodeID: "node_1", ChainProfileID: "chain", Keys: []string{"priv_validator_key"},
		Leases:     []engine.SigningLease{{NodeID: "node_1", KeyName: "priv_validator_key", Holder: engine.LeaseHolder{NodeID: "node_1"}, Epoch: 1}},
		StateFiles: []profile.StateFile{{Name: "priv_validator_state", Path: "data/priv_validator_state.json"}},
		Exclude:    []string{"config/priv_validator_key.json", "data/priv_validator_state.json"},
		Gap:        30 * time.Second, GapBlocks: 2,
	}
}

// holders follows the leases through the activities that ran: who holds
// the key at the end ("" when released), and whether it ever had two.
func holders(calls []string) (holder string, two bool) {
	holder = "first"
	for _, c := range calls {
		switch {
		case strings.HasPrefix(c, "ReleaseSigningLeases:"), strings.HasPrefix(c, "ReleaseHeldLeases:"):
			holder = ""
		case strings.HasPrefix(c, "GrantSigningLeases:"):
			to := strings.TrimPrefix(c, "GrantSigningLeases:")
			two = two || (holder != "" && holder != to) // a holder granted again keeps its lease
			holder = to
		}
	}
	return holder, two
}

func TestAMigrationInCustodyStopsTheOldSignerBeforeTheNewOneHasTheKey(t *testing.T) {
	w := &world{custody: aValidator(), caughtUp: true}
	env := newEnv(t, w)
	env.ExecuteWorkflow(MigrateWorkflow, MigrateInput{NodeID: "node_1"})
	var res MigrateResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"SetNodeState:maintenance", "NodeHost", "AgentRegistration", "PlanCustody",
		"StopNode", "CaptureSigningState", "SendSnapshotCommand", "WaitForCommandCompletion", "ReleaseSigningLeases:first:stopped",
		"ProvisionMigrationHost", "WaitForAgentReady", "SendRestoreCommand", "WaitForCommandCompletion", "DeleteSnapshot",
		"WaitForChainBlocks", "GrantSigningLeases:new",
		"NodeRecord", "InjectKeys", "SendConfigureCommand", "WaitForCommandCompletion", "StartNode", "WaitForCommandCompletion",
		"DestroyHost:old-1", "UpdateHostInfo:new-1", "SetNodeState:syncing", "WaitForCaughtUp", "SetNodeState:running",
	}
	if got := w.ran(); !slices.Equal(got, want) {
		t.Errorf("ran\n %v\nwant\n %v", got, want)
	}
	if holder, two := holders(w.ran()); holder != "new" || two {
		t.Errorf("the key ends held by %q (two holders at once: %v); want the new host alone", holder, two)
	}
	if len(w.starts) != 1 || !slices.Equal(w.starts[0], []StartLease{{KeyName: "priv_validator_key", Epoch: 1}}) {
		t.Errorf("START carried %v, want the new host's lease", w.starts)
	}
	if res.OldHost != oldHost || res.NewHost != newHost {
		t.Errorf("result = %+v", res)
	}
}

// releaseTime is where the workflow clock stood when the leases were
// released, once they are.
func releaseTime(env *testsuite.TestWorkflowEnvironment) *time.Time {
	var at time.Time
	env.SetOnActivityStartedListener(func(info *activityInfo, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name == "ReleaseSigningLeases" {
			at = env.Now()
		}
	})
	return &at
}

func TestTheNewSignerIsGrantedTheKeyOnlyAfterTheGap(t *testing.T) {
	w := &world{custody: aValidator()}
	env := newEnv(t, w)
	released := releaseTime(env)
	env.ExecuteWorkflow(MigrateWorkflow, MigrateInput{NodeID: "node_1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(w.grantedAt) != 1 || w.grantedAt[0].Sub(*released) < 30*time.Second {
		t.Fatalf("granted at %v, released at %v: want 30 s between", w.grantedAt, *released)
	}
}

func TestWithoutAnotherObserverTwiceTheTimeStandsInForTheBlocks(t *testing.T) {
	w := &world{custody: aValidator(), unobserved: true}
	env := newEnv(t, w)
	released := releaseTime(env)
	env.ExecuteWorkflow(MigrateWorkflow, MigrateInput{NodeID: "node_1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(w.grantedAt) != 1 || w.grantedAt[0].Sub(*released) < time.Minute {
		t.Fatalf("granted %v after the release, want a minute", w.grantedAt[0].Sub(*released))
	}
}

func TestAnUnreachableOldHostWaitsForAnOperator(t *testing.T) {
	w := &world{custody: aValidator(), fail: failing("StopNode")}
	env := newEnv(t, w)
	env.RegisterDelayedCallback(func() {
		if got := w.ran(); slices.Contains(got, "ProvisionMigrationHost") {
			t.Errorf("a new host before anyone confirmed the old signer stopped: %v", got)
		}
		env.SignalWorkflow(ConfirmOldSignerStopped, SignerConfirmation{By: "usr_ops"})
	}, time.Hour)
	env.ExecuteWorkflow(MigrateWorkflow, MigrateInput{NodeID: "node_1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	got := w.ran()
	want := []string{"StopNode", "OpenIncident:migration-old-signer", "OpenIncident:migration-signer-confirmed",
		"ReleaseSigningLeases:first:operator:usr_ops", "DestroyHost:old-1", "ProvisionMigrationHost"}
	if i := slices.Index(got, "StopNode"); i < 0 || !slices.Equal(got[i:i+len(want)], want) {
		t.Errorf("ran %v\nwant in it %v", got, want)
	}
	for _, never := range []string{"CaptureSigningState", "SendSnapshotCommand", "SendRestoreCommand"} {
		if slices.Contains(got, never) {
			t.Errorf("%s ran against an unreachable host: %v", never, got)
		}
	}
	if holder, two := holders(got); holder != "new" || two {
		t.Errorf("the key ends held by %q (two at once: %v)", holder, two)
	}
}

func TestWithoutAConfirmationNothingMoves(t *testing.T) {
	w := &world{custody: aValidator(), fail: failing("StopNode")}
	env := newEnv(t, w)
	env.ExecuteWorkflow(MigrateWorkflow, MigrateInput{NodeID: "node_1"})
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "no operator confirmed") {
		t.Fatalf("workflow error = %v, want no confirmation", err)
	}
	got := w.ran()
	if slices.Contains(got, "ProvisionMigrationHost") || slices.ContainsFunc(got, func(c string) bool { return strings.HasPrefix(c, "ReleaseSigningLeases") }) {
		t.Errorf("ran %v: the key moved without a confirmation", got)
	}
	if got[len(got)-1] != "SetNodeState:degraded" {
		t.Errorf("ran %v, want the node left degraded", got)
	}
}

// Every failure of a move in custody ends with one holder of the key: the
// old host signing again when its agent had stopped it and the new host
// never started, the new host once it was told to start (it may have
// signed, and the old host's state is older than its own).
func TestAFailedMoveInCustodyLeavesOneSigner(t *testing.T) {
	tests := []struct {
		fail   string
		holder string
		tail   []string
	}{
		{"CaptureSigningState", "first", []string{"CaptureSigningState", "GrantSigningLeases:first", "StartNode", "SetNodeState:degraded"}},
		{"ProvisionMigrationHost", "first", []string{"ProvisionMigrationHost", "GrantSigningLeases:first", "StartNode", "DeleteSnapshot", "SetNodeState:degraded"}},
		{"SendRestoreCommand", "first", []string{"SendRestoreCommand", "DestroyHost:new-1", "RestoreAgentRegistration:old-agent", "GrantSigningLeases:first", "StartNode", "DeleteSnapshot", "SetNodeState:degraded"}},
		{"InjectKeys", "first", []string{"InjectKeys", "DestroyHost:new-1", "RestoreAgentRegistration:old-agent", "ReleaseHeldLeases:new:never_started", "GrantSigningLeases:first", "StartNode", "DeleteSnapshot", "SetNodeState:degraded"}},
		{"StartNode", "new", []string{"StartNode", "OpenIncident:migration-new-signer-kept", "DeleteSnapshot", "SetNodeState:degraded"}},
	}
	for _, tt := range tests {
		t.Run(tt.fail, func(t *testing.T) {
			w := &world{custody: aValidator(), fail: failing(tt.fail)}
			env := newEnv(t, w)
			env.ExecuteWorkflow(MigrateWorkflow, MigrateInput{NodeID: "node_1"})
			if env.GetWorkflowError() == nil {
				t.Fatal("the migration succeeded")
			}
			got := w.ran()
			if tail := got[max(0, len(got)-len(tt.tail)):]; !slices.Equal(tail, tt.tail) {
				t.Errorf("ran %v\nwant it to end with %v", got, tt.tail)
			}
			if holder, two := holders(got); holder != tt.holder || two {
				t.Errorf("the key ends held by %q (two at once: %v), want %q alone", holder, two, tt.holder)
			}
			if slices.Contains(got, "DestroyHost:old-1") {
				t.Error("the old host was destroyed")
			}
			if tt.holder == "new" && (slices.Contains(got, "DestroyHost:new-1") || len(w.starts) != 1) {
				t.Errorf("ran %v: the new host, told to start, was undone or the old one started again", got)
			}
			if last := w.starts[len(w.starts)-1]; len(last) != 1 {
				t.Errorf("the old signer started again with leases %v, want its key's", last)
			}
		})
	}
}

// An agent that cannot snapshot (older than snapshots) costs the new host
// its head start, never the move.
func TestAMoveWithoutASnapshotGoesOn(t *testing.T) {
	w := &world{custody: aValidator(), fail: failing("SendSnapshotCommand")}
	env := newEnv(t, w)
	env.ExecuteWorkflow(MigrateWorkflow, MigrateInput{NodeID: "node_1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if got := w.ran(); slices.Contains(got, "SendRestoreCommand") || !slices.Contains(got, "UpdateHostInfo:new-1") {
		t.Errorf("ran %v: want the move done without a restore", got)
	}
}

// A grant the Store recorded before its activity failed is still undone:
// the new host's leases are released from what the Store holds.
func TestAGrantThatFailedIsStillReleased(t *testing.T) {
	w := &world{custody: aValidator(), fail: failing("NodeRecord")}
	env := newEnv(t, w)
	env.ExecuteWorkflow(MigrateWorkflow, MigrateInput{NodeID: "node_1"})
	if env.GetWorkflowError() == nil {
		t.Fatal("the migration succeeded")
	}
	if got := w.ran(); !slices.Contains(got, "ReleaseHeldLeases:new:never_started") {
		t.Errorf("ran %v: the new host's leases were never released", got)
	}
}
