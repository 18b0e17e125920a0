package workflows

import (
	"slices"
	"strings"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
)

// components of a three-binary chain, in the order they are upgraded.
var components = []string{"consensus", "execution", "sidecar"}

func skip(component string) RolloutSignalRequest {
	return RolloutSignalRequest{Signal: engine.SignalSkip, Component: component}
}

// componentOrder is the rollouts of the group's upgrades and rollbacks as
// they ran, a repeat shown once: "g-consensus", "-g-consensus" for its
// rollback.
func componentOrder(f *fleet) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, in := range f.upgrades {
		id := in.RolloutID
		if in.Rollback {
			id = "-" + id
		}
		if len(out) == 0 || out[len(out)-1] != id {
			out = append(out, id)
		}
	}
	return out
}

func wantComponentOrder(t *testing.T, f *fleet, want ...string) {
	t.Helper()
	if got := componentOrder(f); !slices.Equal(got, want) {
		t.Errorf("ran %v, want %v", got, want)
	}
}

func wantGroupTrail(t *testing.T, f *fleet, want ...engine.RolloutStatus) {
	t.Helper()
	if got := f.groupTrail(); !slices.Equal(got, want) {
		t.Errorf("group statuses %v, want %v", got, want)
	}
}

func TestAGroupUpgradesItsComponentsInOrder(t *testing.T) {
	f := newFleet(3)
	f.group("g", engine.PolicyPartialOK, components...)
	out := f.runGroup(t, "g")
	wantOutcome(t, out, engine.RolloutSucceeded, "3 components upgraded, 0 skipped")
	wantComponentOrder(t, f, "g-consensus", "g-execution", "g-sidecar")
	for _, c := range components {
		wantBatches(t, f, "g-"+c, nodes("node-01", "node-02"), nodes("node-03"))
		if got := f.rollouts["g-"+c].Status; got != engine.RolloutSucceeded {
			t.Errorf("rollout of %s is %s", c, got)
		}
	}
	wantGroupTrail(t, f, engine.RolloutRunning, engine.RolloutSucceeded)
	var current []int
	for _, c := range f.groupSets {
		current = append(current, c.Current)
	}
	if want := []int{0, 1, 2, 2}; !slices.Equal(current, want) {
		t.Errorf("group's current component %v, want %v", current, want)
	}
}

func TestPartialOKGoesOnAfterAFailedComponent(t *testing.T) {
	f := newFleet(3)
	f.breaks["execution"] = true
	f.group("g", engine.PolicyPartialOK, components...)
	out := f.runGroup(t, "g")
	wantOutcome(t, out, engine.RolloutSucceeded, "2 components upgraded, 1 failed (execution), 0 skipped")
	wantComponentOrder(t, f, "g-consensus", "g-execution", "g-sidecar")
	if got := f.rollouts["g-execution"].Status; got != engine.RolloutFailed {
		t.Errorf("rollout of execution is %s, want failed", got)
	}
	if len(f.incidents) != 0 {
		t.Errorf("incidents %+v: the policy accepts a partial upgrade", f.incidents)
	}
}

func TestAFailedHealthGateIsAFailedComponent(t *testing.T) {
	f := newFleet(3)
	f.groupGateFails["g-consensus"] = "node node-02 sends no heartbeat"
	f.group("g", engine.PolicyManual, components...)
	f.whenGroup(engine.RolloutPaused, cancel)
	out := f.runGroup(t, "g")
	wantOutcome(t, out, engine.RolloutCancelled, "cancelled by an operator")
	wantComponentOrder(t, f, "g-consensus")
	paused := f.groupSets[len(f.groupSets)-2]
	if want := "health gate after consensus: node node-02 sends no heartbeat"; !strings.HasPrefix(paused.Message, want) {
		t.Errorf("group paused with %q, want %q", paused.Message, want)
	}
}

func TestRollbackAllRollsBackTheComponentsDoneLastFirst(t *testing.T) {
	f := newFleet(3)
	f.breaks["node-02/execution"] = true
	f.group("g", engine.PolicyRollbackAll, components...)
	out := f.runGroup(t, "g")
	wantOutcome(t, out, engine.RolloutRolledBack, "component execution: failed: failure threshold reached")
	if !strings.HasSuffix(out.Message, "; every component rolled back") {
		t.Errorf("outcome message %q", out.Message)
	}
	// node-01 had execution upgraded before node-02 failed.
	wantComponentOrder(t, f, "g-consensus", "g-execution", "-g-execution", "-g-consensus")
	wantRolledBack(t, f, "g-execution", map[string]engine.Release{"node-01": baseRelease})
	wantRolledBack(t, f, "g-consensus", map[string]engine.Release{"node-01": baseRelease, "node-02": baseRelease, "node-03": baseRelease})
	wantGroupTrail(t, f, engine.RolloutRunning, engine.RolloutRollingBack, engine.RolloutRolledBack)
	if got := f.rollouts["g-sidecar"].Status; got != engine.RolloutPending {
		t.Errorf("rollout of sidecar is %s, want it never started", got)
	}
}

func TestManualPausesTheGroupAfterAFailedComponent(t *testing.T) {
	t.Run("resume goes on with the next component", func(t *testing.T) {
		f := newFleet(3)
		f.breaks["execution"] = true
		f.group("g", engine.PolicyManual, components...)
		f.whenGroup(engine.RolloutPaused, resume)
		out := f.runGroup(t, "g")
		wantOutcome(t, out, engine.RolloutSucceeded, "2 components upgraded, 1 failed (execution)")
		wantComponentOrder(t, f, "g-consensus", "g-execution", "g-sidecar")
		wantGroupTrail(t, f, engine.RolloutRunning, engine.RolloutPaused, engine.RolloutRunning, engine.RolloutSucceeded)
		paused := f.groupSets[2]
		if !strings.HasPrefix(paused.Message, "component execution: failed: failure threshold reached") ||
			!strings.HasSuffix(paused.Message, ": resume to go on, skip, rollback or cancel") || paused.Current != 1 {
			t.Errorf("paused with %+v", paused)
		}
	})
	t.Run("skip leaves a component out", func(t *testing.T) {
		f := newFleet(3)
		f.breaks["consensus"] = true
		f.group("g", engine.PolicyManual, components...)
		f.whenGroup(engine.RolloutPaused, skip("execution"))
		out := f.runGroup(t, "g")
		wantOutcome(t, out, engine.RolloutSucceeded, "1 components upgraded, 1 failed (consensus), 1 skipped")
		wantComponentOrder(t, f, "g-consensus", "g-sidecar")
		if ro := f.rollouts["g-execution"]; ro.Status != engine.RolloutSkipped || ro.Message != "skipped by an operator" {
			t.Errorf("rollout of execution is %s %q, want skipped", ro.Status, ro.Message)
		}
		if g := f.groups["g"]; !slices.Equal(g.Skipped, []string{"execution"}) {
			t.Errorf("group records %v skipped", g.Skipped)
		}
	})
	t.Run("rollback puts back every component done", func(t *testing.T) {
		f := newFleet(3)
		f.breaks["node-03/execution"] = true
		f.group("g", engine.PolicyManual, components...)
		f.whenGroup(engine.RolloutPaused, rollbackSignal)
		out := f.runGroup(t, "g")
		wantOutcome(t, out, engine.RolloutRolledBack, "rollback requested by an operator; every component rolled back")
		wantComponentOrder(t, f, "g-consensus", "g-execution", "-g-execution", "-g-consensus")
	})
}

func TestSkipOfALaterComponentLeavesItOut(t *testing.T) {
	f := newFleet(3)
	f.group("g", engine.PolicyPartialOK, components...)
	f.duringUpgradeOf("node-01", skip("sidecar"))
	out := f.runGroup(t, "g")
	wantOutcome(t, out, engine.RolloutSucceeded, "2 components upgraded, 1 skipped")
	wantComponentOrder(t, f, "g-consensus", "g-execution")
	if got := f.rollouts["g-sidecar"].Status; got != engine.RolloutSkipped {
		t.Errorf("rollout of sidecar is %s, want skipped", got)
	}
}

func TestSkipOfTheRunningComponentCancelsItsRollout(t *testing.T) {
	f := newFleet(5)
	f.group("g", engine.PolicyManual, components...)
	f.duringUpgradeOf("node-01", skip(""))
	out := f.runGroup(t, "g")
	wantOutcome(t, out, engine.RolloutSucceeded, "2 components upgraded, 1 skipped")
	// consensus's batch in flight finished; it started no other.
	wantBatches(t, f, "g-consensus", nodes("node-01", "node-02"))
	wantComponentOrder(t, f, "g-consensus", "g-execution", "g-sidecar")
	if got := f.rollouts["g-consensus"].Status; got != engine.RolloutCancelled {
		t.Errorf("rollout of consensus is %s, want cancelled", got)
	}
}

// The operator's cancel and rollback, forwarded to the running
// component's rollout, end it early: that is the operator's decision,
// not a failure for the policy to judge.
func TestCancelAndRollbackOfTheGroupAreNotJudgedByItsPolicy(t *testing.T) {
	for _, policy := range []string{engine.PolicyPartialOK, engine.PolicyRollbackAll, engine.PolicyManual} {
		t.Run("cancel under "+policy, func(t *testing.T) {
			f := newFleet(5)
			f.group("g", policy, components...)
			f.duringUpgradeOf("node-01", pause)
			f.when(engine.RolloutPaused, cancel)
			out := f.runGroup(t, "g")
			wantOutcome(t, out, engine.RolloutCancelled, "cancelled by an operator")
			wantComponentOrder(t, f, "g-consensus")
			wantGroupTrail(t, f, engine.RolloutRunning, engine.RolloutPaused, engine.RolloutCancelled)
		})
		t.Run("rollback under "+policy, func(t *testing.T) {
			f := newFleet(5)
			f.group("g", policy, components...)
			f.duringUpgradeOf("node-03", rollbackSignal)
			out := f.runGroup(t, "g")
			wantOutcome(t, out, engine.RolloutRolledBack, "rollback requested by an operator; every component rolled back")
			wantComponentOrder(t, f, "g-consensus", "-g-consensus")
			wantRolledBack(t, f, "g-consensus", map[string]engine.Release{"node-01": baseRelease, "node-02": baseRelease, "node-03": baseRelease, "node-04": baseRelease})
		})
	}
}

func TestAPausedGroupHoldsBeforeItsNextComponent(t *testing.T) {
	f := newFleet(2)
	f.group("g", engine.PolicyManual, components...)
	// The pause reaches the consensus rollout on its last batch, which
	// has nothing left to pause: the group shows paused at once and holds
	// before execution until resumed.
	f.duringUpgradeOf("node-01", pause)
	f.whenGroup(engine.RolloutPaused, resume)
	out := f.runGroup(t, "g")
	wantOutcome(t, out, engine.RolloutSucceeded, "3 components upgraded")
	wantGroupTrail(t, f, engine.RolloutRunning, engine.RolloutPaused, engine.RolloutRunning, engine.RolloutSucceeded)
	if c := f.groupSets[1]; c.Message != "paused by an operator" || c.Current != 0 {
		t.Errorf("group paused with %+v, want during consensus", c)
	}
}

func TestAGroupPausedDuringAComponentResumesIt(t *testing.T) {
	f := newFleet(5)
	f.group("g", engine.PolicyManual, components...)
	f.duringUpgradeOf("node-01", pause)
	f.when(engine.RolloutPaused, resume)
	out := f.runGroup(t, "g")
	wantOutcome(t, out, engine.RolloutSucceeded, "3 components upgraded")
	wantTrail(t, f, "g-consensus", engine.RolloutRunning, engine.RolloutPaused, engine.RolloutRunning, engine.RolloutSucceeded)
	// The group shows the pause, and the resume the rollout got is the
	// group's too: it does not pause again.
	wantGroupTrail(t, f, engine.RolloutRunning, engine.RolloutPaused, engine.RolloutRunning, engine.RolloutSucceeded)
}
