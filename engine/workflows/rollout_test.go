package workflows

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
)

func TestAssignBatchesByStrategy(t *testing.T) {
	tests := []struct {
		name     string
		ro       engine.Rollout
		nodes    int
		want     []int
		batches  int
		describe string
	}{
		{name: "rolling: batches of the batch size, the last one short",
			ro: engine.Rollout{Strategy: engine.StrategyRolling, BatchSize: 2}, nodes: 5, want: []int{0, 0, 1, 1, 2}, batches: 3},
		{name: "rolling: a batch size over the fleet is one batch",
			ro: engine.Rollout{Strategy: engine.StrategyRolling, BatchSize: 10}, nodes: 3, want: []int{0, 0, 0}, batches: 1},
		{name: "rolling: no batch size is one node a batch",
			ro: engine.Rollout{Strategy: engine.StrategyRolling}, nodes: 3, want: []int{0, 1, 2}, batches: 3},
		{name: "canary: the canary first, then batches",
			ro: engine.Rollout{Strategy: engine.StrategyCanary, CanarySize: 1, BatchSize: 2}, nodes: 5, want: []int{0, 1, 1, 2, 2}, batches: 3},
		{name: "canary: a canary of two",
			ro: engine.Rollout{Strategy: engine.StrategyCanary, CanarySize: 2, BatchSize: 3}, nodes: 5, want: []int{0, 0, 1, 1, 1}, batches: 2},
		{name: "canary: no canary size is a canary of one",
			ro: engine.Rollout{Strategy: engine.StrategyCanary, BatchSize: 4}, nodes: 3, want: []int{0, 1, 1}, batches: 2},
		{name: "canary: a canary as large as the fleet is the only batch",
			ro: engine.Rollout{Strategy: engine.StrategyCanary, CanarySize: 9, BatchSize: 2}, nodes: 3, want: []int{0, 0, 0}, batches: 1},
		{name: "all at once: one batch whatever the batch size",
			ro: engine.Rollout{Strategy: engine.StrategyAllAtOnce, BatchSize: 2}, nodes: 5, want: []int{0, 0, 0, 0, 0}, batches: 1},
		{name: "at height: one batch whatever the batch size",
			ro: engine.Rollout{Strategy: engine.StrategyAtHeight, BatchSize: 1}, nodes: 3, want: []int{0, 0, 0}, batches: 1},
		{name: "no node: no batch",
			ro: engine.Rollout{Strategy: engine.StrategyRolling, BatchSize: 2}, nodes: 0, want: nil, batches: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var nodes []*engine.RolloutNode
			for i := range tt.nodes {
				nodes = append(nodes, &engine.RolloutNode{NodeID: fmt.Sprintf("node-%02d", i+1), BatchIndex: -1})
			}
			batches := assignBatches(&tt.ro, nodes)
			var got []int
			for _, n := range nodes {
				got = append(got, n.BatchIndex)
			}
			if batches != tt.batches || !slices.Equal(got, tt.want) {
				t.Errorf("assignBatches = %d batches %v, want %d batches %v", batches, got, tt.batches, tt.want)
			}
		})
	}
}

var (
	pause  = RolloutSignalRequest{Signal: engine.SignalPause}
	resume = RolloutSignalRequest{Signal: engine.SignalResume}
	cancel = RolloutSignalRequest{Signal: engine.SignalCancel}
	force  = RolloutSignalRequest{Signal: engine.SignalForce}
	// rollbackSignal: rollback is the workflow's method's name.
	rollbackSignal = RolloutSignalRequest{Signal: engine.SignalRollback}
	approve        = RolloutSignalRequest{Signal: engine.SignalApproveCanary}
)

func statuses(s ...engine.RolloutStatus) []engine.RolloutStatus { return s }

func nodes(ids ...string) []string { return ids }

func wantOutcome(t *testing.T, got RolloutOutcome, status engine.RolloutStatus, msg string) {
	t.Helper()
	if got.Status != status || !strings.HasPrefix(got.Message, msg) {
		t.Errorf("outcome = %s %q, want %s %q", got.Status, got.Message, status, msg)
	}
}

func wantBatches(t *testing.T, f *fleet, rolloutID string, want ...[]string) {
	t.Helper()
	if got := f.batches(rolloutID); !reflect.DeepEqual(got, want) {
		t.Errorf("upgraded %v, want batches %v", got, want)
	}
}

func wantTrail(t *testing.T, f *fleet, rolloutID string, want ...engine.RolloutStatus) {
	t.Helper()
	if got := f.trail(rolloutID); !slices.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
}

// before checks that the log shows a before b.
func before(t *testing.T, f *fleet, a, b string) {
	t.Helper()
	log := f.events()
	i, j := slices.Index(log, a), slices.Index(log, b)
	if i < 0 || j < 0 || i > j {
		t.Errorf("want %q before %q in\n %s", a, b, strings.Join(log, "\n "))
	}
}

func TestARollingRolloutUpgradesBatchesInNodeOrderAcrossRuns(t *testing.T) {
	f := newFleet(5)
	ro := f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyRolling, BatchSize: 2, FailureThreshold: 1})
	out := f.rollout(t, RolloutInput{RolloutID: "r1"})
	wantOutcome(t, out, engine.RolloutSucceeded, "5 nodes upgraded")
	wantBatches(t, f, "r1", nodes("node-01", "node-02"), nodes("node-03", "node-04"), nodes("node-05"))
	wantTrail(t, f, "r1", statuses(engine.RolloutRunning, engine.RolloutSucceeded)...)
	if n := f.continued(); n != 2 {
		t.Errorf("continued as new %d times, want once after each batch but the last (2)", n)
	}
	for _, in := range f.upgrades {
		if in.Target.Version != "v2.0.0" || in.Component != "node" || in.HealthWait != ro.Plan.HealthWait || in.TargetHeight != 0 || in.Rollback {
			t.Errorf("node input %+v", in)
		}
	}
	for _, id := range f.ids {
		if got := f.release(id, "node"); got.Version != "v2.0.0" {
			t.Errorf("%s runs %s", id, got.Version)
		}
	}
}

func TestARolloutOfNoNodeSucceeds(t *testing.T) {
	f := newFleet(0)
	f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyRolling, BatchSize: 2})
	wantOutcome(t, f.rollout(t, RolloutInput{RolloutID: "r1"}), engine.RolloutSucceeded, "no node to upgrade")
}

func TestNodesAlreadyAtTheTargetAreCountedApart(t *testing.T) {
	f := newFleet(3)
	f.releases["node-02/node"] = engine.Release{Version: "v2.0.0"}
	f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyRolling, BatchSize: 3, FailureThreshold: 1})
	wantOutcome(t, f.rollout(t, RolloutInput{RolloutID: "r1"}), engine.RolloutSucceeded, "2 nodes upgraded, 1 already at the version")
}

func TestACanaryIsObservedBeforeTheRest(t *testing.T) {
	f := newFleet(5)
	ro := f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyCanary, CanarySize: 1, BatchSize: 2, FailureThreshold: 1})
	out := f.rollout(t, RolloutInput{RolloutID: "r1"})
	wantOutcome(t, out, engine.RolloutSucceeded, "5 nodes upgraded")
	wantBatches(t, f, "r1", nodes("node-01"), nodes("node-02", "node-03"), nodes("node-04", "node-05"))
	want := []CanaryWatch{{RolloutID: "r1", For: 2 * ro.Plan.HealthWait}}
	if !slices.Equal(f.watches, want) {
		t.Errorf("canary watched %v, want once for twice the health wait: %v", f.watches, want)
	}
	before(t, f, "r1 node-01 upgraded", "r1 canary watched")
	before(t, f, "r1 canary watched", "r1 node-02 upgraded")
	wantTrail(t, f, "r1", statuses(engine.RolloutRunning, engine.RolloutSucceeded)...)
}

func TestABreakingUpgradeWaitsAfterItsCanaryForApproval(t *testing.T) {
	f := newFleet(5)
	f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyCanary, CanarySize: 1, BatchSize: 2, FailureThreshold: 1,
		Spec: engine.UpgradeSpec{Compatibility: engine.Breaking}})
	f.when(engine.RolloutAwaitingApproval, approve)
	out := f.rollout(t, RolloutInput{RolloutID: "r1"})
	wantOutcome(t, out, engine.RolloutSucceeded, "5 nodes upgraded")
	wantTrail(t, f, "r1", statuses(engine.RolloutRunning, engine.RolloutAwaitingApproval, engine.RolloutRunning, engine.RolloutSucceeded)...)
	before(t, f, "r1 canary watched", "r1 awaiting_approval")
	before(t, f, "r1 awaiting_approval", "r1 node-02 upgraded")
	if c, _ := f.lastChange("r1", engine.RolloutAwaitingApproval); !strings.Contains(c.Message, "approve_canary") {
		t.Errorf("awaiting approval with %q, want it to name approve_canary", c.Message)
	}
}

func TestABreakingUpgradeCancelledWhileAwaitingApprovalGoesNoFurther(t *testing.T) {
	f := newFleet(5)
	f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyCanary, CanarySize: 1, BatchSize: 2, FailureThreshold: 1,
		Spec: engine.UpgradeSpec{Compatibility: engine.Breaking}})
	// Resume and force are not approval: the rollout waits on.
	f.when(engine.RolloutAwaitingApproval, resume, force, cancel)
	out := f.rollout(t, RolloutInput{RolloutID: "r1"})
	wantOutcome(t, out, engine.RolloutCancelled, "cancelled by an operator")
	wantBatches(t, f, "r1", nodes("node-01"))
	wantTrail(t, f, "r1", statuses(engine.RolloutRunning, engine.RolloutAwaitingApproval, engine.RolloutCancelled)...)
}

func TestABreakingUpgradeResumedPastAFailedCanaryStillWaitsForApproval(t *testing.T) {
	f := newFleet(3)
	f.canaryFails = "node node-01: app health is critical: rpc down"
	f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyCanary, CanarySize: 1, BatchSize: 2, FailureThreshold: 1,
		Spec: engine.UpgradeSpec{Compatibility: engine.Breaking}})
	f.when(engine.RolloutPaused, resume)
	f.when(engine.RolloutAwaitingApproval, approve)
	out := f.rollout(t, RolloutInput{RolloutID: "r1"})
	wantOutcome(t, out, engine.RolloutSucceeded, "3 nodes upgraded")
	// Resume overrides the gate; approval of a breaking upgrade is its own decision.
	wantTrail(t, f, "r1", statuses(engine.RolloutRunning, engine.RolloutPaused, engine.RolloutAwaitingApproval, engine.RolloutRunning, engine.RolloutSucceeded)...)
}

func TestACompatibleUpgradeNeedsNoApproval(t *testing.T) {
	f := newFleet(3)
	f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyCanary, CanarySize: 1, BatchSize: 2, FailureThreshold: 1})
	f.rollout(t, RolloutInput{RolloutID: "r1"})
	if slices.Contains(f.trail("r1"), engine.RolloutAwaitingApproval) {
		t.Errorf("statuses %v: a compatible upgrade waited for approval", f.trail("r1"))
	}
}

func TestAllAtOnceAndAtHeightUpgradeEveryNodeInOneBatch(t *testing.T) {
	for _, tt := range []struct {
		strategy string
		height   int64
	}{{engine.StrategyAllAtOnce, 0}, {engine.StrategyAtHeight, 1_200_000}} {
		t.Run(tt.strategy, func(t *testing.T) {
			f := newFleet(5)
			f.add(engine.Rollout{ID: "r1", Strategy: tt.strategy, BatchSize: 2, FailureThreshold: 1,
				Spec: engine.UpgradeSpec{TargetHeight: 1_200_000}})
			out := f.rollout(t, RolloutInput{RolloutID: "r1"})
			wantOutcome(t, out, engine.RolloutSucceeded, "5 nodes upgraded")
			wantBatches(t, f, "r1", f.ids)
			if n := f.continued(); n != 0 {
				t.Errorf("continued as new %d times, want none", n)
			}
			for _, in := range f.upgrades {
				if in.TargetHeight != tt.height {
					t.Errorf("%s asked to switch at height %d, want %d", in.NodeID, in.TargetHeight, tt.height)
				}
			}
		})
	}
}

func TestTheFailureThresholdPausesTheRolloutUntilForced(t *testing.T) {
	f := newFleet(5)
	f.breaks["node-02"] = true
	f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyRolling, BatchSize: 2, FailureThreshold: 1})
	f.when(engine.RolloutPaused, force)
	out := f.rollout(t, RolloutInput{RolloutID: "r1"})
	wantOutcome(t, out, engine.RolloutSucceeded, "4 nodes upgraded, 1 failed")
	wantBatches(t, f, "r1", nodes("node-01", "node-02"), nodes("node-03", "node-04"), nodes("node-05"))
	// Once forced, the failures counted so far stop it no more.
	wantTrail(t, f, "r1", statuses(engine.RolloutRunning, engine.RolloutPaused, engine.RolloutRunning, engine.RolloutSucceeded)...)
	paused, _ := f.lastChange("r1", engine.RolloutPaused)
	if want := "failure threshold reached: 1 nodes failed, threshold 1: force to go on, rollback or cancel"; paused.Message != want {
		t.Errorf("paused with %q, want %q", paused.Message, want)
	}
	if len(f.incidents) != 1 || f.incidents[0].DedupeKey != "rollout:r1" || f.incidents[0].Severity != engine.SeverityCritical ||
		!strings.Contains(f.incidents[0].Summary, "failure threshold reached") {
		t.Errorf("incidents %+v, want one critical of rollout:r1", f.incidents)
	}
	before(t, f, "incident rollout:r1", "r1 paused")
	before(t, f, "r1 paused", "r1 node-03 upgraded")
	if !f.rollouts["r1"].Forced {
		t.Error("the rollout is not recorded as forced")
	}
}

func TestResumeAtTheFailureThresholdStopsAgainAfterTheNextBatch(t *testing.T) {
	f := newFleet(5)
	f.breaks["node-02"] = true
	f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyRolling, BatchSize: 2, FailureThreshold: 1})
	f.when(engine.RolloutPaused, resume)
	f.when(engine.RolloutPaused, cancel)
	out := f.rollout(t, RolloutInput{RolloutID: "r1"})
	wantOutcome(t, out, engine.RolloutCancelled, "cancelled by an operator")
	wantBatches(t, f, "r1", nodes("node-01", "node-02"), nodes("node-03", "node-04"))
}

func TestAGroupedRolloutFailsAtTheFailureThreshold(t *testing.T) {
	f := newFleet(5)
	f.breaks["node-02"] = true
	f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyRolling, BatchSize: 2, FailureThreshold: 1})
	out := f.rollout(t, RolloutInput{RolloutID: "r1", Grouped: true})
	wantOutcome(t, out, engine.RolloutFailed, "failure threshold reached: 1 nodes failed, threshold 1")
	wantBatches(t, f, "r1", nodes("node-01", "node-02"))
	wantTrail(t, f, "r1", statuses(engine.RolloutRunning, engine.RolloutFailed)...)
	if len(f.incidents) != 0 {
		t.Errorf("incidents %+v: the group's policy decides, not an operator", f.incidents)
	}
}

func TestAPauseSentDuringABatchHoldsBeforeTheNext(t *testing.T) {
	f := newFleet(5)
	f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyRolling, BatchSize: 2, FailureThreshold: 1})
	f.duringUpgradeOf("node-01", pause)
	f.when(engine.RolloutPaused, resume)
	out := f.rollout(t, RolloutInput{RolloutID: "r1"})
	wantOutcome(t, out, engine.RolloutSucceeded, "5 nodes upgraded")
	wantBatches(t, f, "r1", nodes("node-01", "node-02"), nodes("node-03", "node-04"), nodes("node-05"))
	wantTrail(t, f, "r1", statuses(engine.RolloutRunning, engine.RolloutPaused, engine.RolloutRunning, engine.RolloutSucceeded)...)
	// The batch in flight finished; the pause crossed into the next run.
	before(t, f, "r1 node-02 upgraded", "r1 paused")
	before(t, f, "r1 paused", "r1 node-03 upgraded")
	if c, _ := f.lastChange("r1", engine.RolloutPaused); c.Batch != 1 || c.Message != "paused by an operator" {
		t.Errorf("paused at %+v, want before batch 1 by an operator", c)
	}
	if len(f.incidents) != 0 {
		t.Errorf("an operator's pause opened incidents %+v", f.incidents)
	}
}

func TestAResumeSentBeforeThePauseTakesEffectCancelsIt(t *testing.T) {
	f := newFleet(3)
	f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyRolling, BatchSize: 1, FailureThreshold: 1})
	f.duringUpgradeOf("node-01", pause, resume)
	out := f.rollout(t, RolloutInput{RolloutID: "r1"})
	wantOutcome(t, out, engine.RolloutSucceeded, "3 nodes upgraded")
	wantTrail(t, f, "r1", statuses(engine.RolloutRunning, engine.RolloutSucceeded)...)
}

func TestCancelStartsNoNewBatch(t *testing.T) {
	f := newFleet(5)
	f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyRolling, BatchSize: 2, FailureThreshold: 1})
	f.duringUpgradeOf("node-01", cancel)
	out := f.rollout(t, RolloutInput{RolloutID: "r1"})
	wantOutcome(t, out, engine.RolloutCancelled, "cancelled by an operator")
	wantBatches(t, f, "r1", nodes("node-01", "node-02"))
	wantTrail(t, f, "r1", statuses(engine.RolloutRunning, engine.RolloutCancelled)...)
}

func TestCancelWhilePausedEndsTheRollout(t *testing.T) {
	f := newFleet(5)
	f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyRolling, BatchSize: 2, FailureThreshold: 1})
	f.duringUpgradeOf("node-01", pause)
	f.when(engine.RolloutPaused, cancel)
	out := f.rollout(t, RolloutInput{RolloutID: "r1"})
	wantOutcome(t, out, engine.RolloutCancelled, "cancelled by an operator")
	wantBatches(t, f, "r1", nodes("node-01", "node-02"))
	wantTrail(t, f, "r1", statuses(engine.RolloutRunning, engine.RolloutPaused, engine.RolloutCancelled)...)
}

// wantRolledBack checks that exactly the nodes named were put back, each
// to the release it ran before.
func wantRolledBack(t *testing.T, f *fleet, rolloutID string, was map[string]engine.Release) {
	t.Helper()
	got := f.rolledBack(rolloutID)
	if len(got) != len(was) {
		t.Errorf("rolled back %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(was)))
	}
	for id, prev := range was {
		in, ok := got[id]
		switch {
		case !ok:
			t.Errorf("%s was not rolled back", id)
		case !in.Rollback || !reflect.DeepEqual(in.Target, prev) || in.TargetHeight != 0 || len(in.ConfigChanges) != 0:
			t.Errorf("%s rolled back with %+v, want its previous release %+v", id, in, prev)
		}
		if now := f.release(id, in.Component); !reflect.DeepEqual(now, prev) {
			t.Errorf("%s runs %+v after the rollback, want %+v", id, now, prev)
		}
	}
}

func TestARollbackPutsEveryUpgradedNodeBackOnItsPreviousRelease(t *testing.T) {
	f := newFleet(5)
	older := engine.Release{Version: "v0.9.0", URL: "https://example.com/v0.9.0.tar.gz", SHA256: "99"}
	f.releases["node-03/node"] = older
	f.breaks["node-02"] = true
	f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyRolling, BatchSize: 2, FailureThreshold: 2,
		Spec: engine.UpgradeSpec{ConfigChanges: []engine.ConfigChange{{Path: "config/app.toml", Template: "x"}}}})
	f.duringUpgradeOf("node-03", rollbackSignal)
	out := f.rollout(t, RolloutInput{RolloutID: "r1"})
	wantOutcome(t, out, engine.RolloutRolledBack, "3 nodes rolled back")
	wantBatches(t, f, "r1", nodes("node-01", "node-02"), nodes("node-03", "node-04"))
	// node-02 failed (it runs what it ran), node-05 was never reached.
	wantRolledBack(t, f, "r1", map[string]engine.Release{"node-01": baseRelease, "node-03": older, "node-04": baseRelease})
	wantTrail(t, f, "r1", statuses(engine.RolloutRunning, engine.RolloutRollingBack, engine.RolloutRolledBack)...)
}

func TestARollbackOfAFinishedRolloutPutsEveryNodeBack(t *testing.T) {
	f := newFleet(3)
	f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyRolling, BatchSize: 2, FailureThreshold: 1})
	wantOutcome(t, f.rollout(t, RolloutInput{RolloutID: "r1"}), engine.RolloutSucceeded, "3 nodes upgraded")
	out := f.rollout(t, RolloutInput{RolloutID: "r1", Rollback: true})
	wantOutcome(t, out, engine.RolloutRolledBack, "3 nodes rolled back")
	wantRolledBack(t, f, "r1", map[string]engine.Release{"node-01": baseRelease, "node-02": baseRelease, "node-03": baseRelease})
}

func TestAFailingGateDoesWhatThePlanSays(t *testing.T) {
	why := `node node-01 fails gate "block_height_lag < 10"`
	t.Run("pause: an incident, then the operator resumes", func(t *testing.T) {
		f := newFleet(4)
		f.gateFails[0] = why
		f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyRolling, BatchSize: 2, FailureThreshold: 1})
		f.when(engine.RolloutPaused, resume)
		out := f.rollout(t, RolloutInput{RolloutID: "r1"})
		wantOutcome(t, out, engine.RolloutSucceeded, "4 nodes upgraded")
		wantTrail(t, f, "r1", statuses(engine.RolloutRunning, engine.RolloutPaused, engine.RolloutRunning, engine.RolloutSucceeded)...)
		if c, _ := f.lastChange("r1", engine.RolloutPaused); c.Message != "gate failed: "+why {
			t.Errorf("paused with %q", c.Message)
		}
		if len(f.incidents) != 1 || f.incidents[0].DedupeKey != "rollout:r1" {
			t.Errorf("incidents %+v, want one of rollout:r1", f.incidents)
		}
	})
	t.Run("rollback: the batch is put back at once", func(t *testing.T) {
		f := newFleet(4)
		f.gateFails[0] = why
		f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyRolling, BatchSize: 2, FailureThreshold: 1,
			Plan: engine.RolloutPlan{GateFailure: engine.GateRollback}})
		out := f.rollout(t, RolloutInput{RolloutID: "r1"})
		wantOutcome(t, out, engine.RolloutRolledBack, "2 nodes rolled back")
		wantBatches(t, f, "r1", nodes("node-01", "node-02"))
		wantRolledBack(t, f, "r1", map[string]engine.Release{"node-01": baseRelease, "node-02": baseRelease})
		wantTrail(t, f, "r1", statuses(engine.RolloutRunning, engine.RolloutRollingBack, engine.RolloutRolledBack)...)
		if len(f.incidents) != 0 {
			t.Errorf("incidents %+v: nobody needs to act", f.incidents)
		}
	})
	t.Run("a canary that fails its observation pauses", func(t *testing.T) {
		f := newFleet(3)
		f.canaryFails = "node node-01: component node is crash looping"
		f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyCanary, CanarySize: 1, BatchSize: 2, FailureThreshold: 1})
		f.when(engine.RolloutPaused, rollbackSignal)
		out := f.rollout(t, RolloutInput{RolloutID: "r1"})
		wantOutcome(t, out, engine.RolloutRolledBack, "1 nodes rolled back")
		if c, _ := f.lastChange("r1", engine.RolloutPaused); c.Message != "gate failed: "+f.canaryFails {
			t.Errorf("paused with %q", c.Message)
		}
		wantBatches(t, f, "r1", nodes("node-01"))
	})
}

// TestARolloutsHistoryStaysBounded: each run upgrades one batch and
// continues as new, so however large the fleet, a run's history holds one
// batch of child workflows and a handful of activities.
func TestARolloutsHistoryStaysBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("a thousand nodes")
	}
	const size, batch = 1000, 50
	f := newFleet(size)
	f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyRolling, BatchSize: batch, FailureThreshold: 1})
	out := f.rollout(t, RolloutInput{RolloutID: "r1"})
	wantOutcome(t, out, engine.RolloutSucceeded, "1000 nodes upgraded")
	if n := f.continued(); n != size/batch-1 {
		t.Errorf("continued as new %d times, want %d", n, size/batch-1)
	}
	for i, r := range f.runs {
		// resolve, running, the batch, progress, gate; the last run also
		// records the end.
		if r.children != batch || r.activities > 6 {
			t.Errorf("run %d started %d children and %d activities, want %d and at most 6", i, r.children, r.activities, batch)
		}
	}
	wantEachNodeOnce(t, f, false)

	// Its rollback too.
	f.runs = nil
	out = f.rollout(t, RolloutInput{RolloutID: "r1", Rollback: true})
	wantOutcome(t, out, engine.RolloutRolledBack, "1000 nodes rolled back")
	for i, r := range f.runs {
		if r.children != batch || r.activities > 6 {
			t.Errorf("rollback run %d started %d children and %d activities, want %d and at most 6", i, r.children, r.activities, batch)
		}
	}
	wantEachNodeOnce(t, f, true)
}

func wantEachNodeOnce(t *testing.T, f *fleet, rollback bool) {
	t.Helper()
	times := map[string]int{}
	for _, in := range f.upgrades {
		if in.Rollback == rollback {
			times[in.NodeID]++
		}
	}
	for _, id := range f.ids {
		if times[id] != 1 {
			t.Errorf("%s upgraded (rollback %v) %d times", id, rollback, times[id])
		}
	}
}

func TestABatchThatCannotBeListedFailsTheRollout(t *testing.T) {
	f := newFleet(5)
	f.unlisted[1] = true
	f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyRolling, BatchSize: 2, FailureThreshold: 1})
	out := f.rollout(t, RolloutInput{RolloutID: "r1"})
	wantOutcome(t, out, engine.RolloutFailed, "list batch 2 of 3: ")
	// Nodes left pending are not a rollout done.
	wantBatches(t, f, "r1", nodes("node-01", "node-02"))
}

func TestARollbackThatCannotListABatchFails(t *testing.T) {
	f := newFleet(5)
	f.add(engine.Rollout{ID: "r1", Strategy: engine.StrategyRolling, BatchSize: 2, FailureThreshold: 1})
	f.rollout(t, RolloutInput{RolloutID: "r1"})
	f.unlisted[1] = true
	out := f.rollout(t, RolloutInput{RolloutID: "r1", Rollback: true})
	wantOutcome(t, out, engine.RolloutFailed, "rollback: list batch 2 of 3: ")
}
