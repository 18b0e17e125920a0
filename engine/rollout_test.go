package engine_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
)

var (
	allStatuses = []engine.RolloutStatus{
		engine.RolloutPending, engine.RolloutRunning, engine.RolloutPaused, engine.RolloutAwaitingApproval,
		engine.RolloutRollingBack, engine.RolloutSucceeded, engine.RolloutFailed, engine.RolloutCancelled,
		engine.RolloutRolledBack, engine.RolloutSkipped,
	}
	allSignals = []engine.RolloutSignal{
		engine.SignalPause, engine.SignalResume, engine.SignalCancel, engine.SignalForce,
		engine.SignalApproveCanary, engine.SignalRollback, engine.SignalSkip,
	}
)

// signalRules checks check against the signals each status accepts: every
// other known signal is a conflict naming the status; unknown ones are
// invalid.
func signalRules(t *testing.T, what string, check func(engine.RolloutStatus, engine.RolloutSignal) error,
	accepts map[engine.RolloutStatus][]engine.RolloutSignal, unknown ...engine.RolloutSignal) {
	t.Helper()
	for _, s := range allStatuses {
		for _, sig := range allSignals {
			err := check(s, sig)
			switch {
			case slices.Contains(unknown, sig):
				if !engine.IsCode(err, engine.EInvalid) {
					t.Errorf("%s %s of a %s = %v, want EInvalid", what, sig, s, err)
				}
			case slices.Contains(accepts[s], sig):
				if err != nil {
					t.Errorf("%s %s of a %s = %v, want accepted", what, sig, s, err)
				}
			default:
				if !engine.IsCode(err, engine.EConflict) || !strings.Contains(err.Error(), "that is "+string(s)) {
					t.Errorf("%s %s of a %s = %v, want EConflict naming the status", what, sig, s, err)
				}
			}
		}
		if err := check(s, "explode"); !engine.IsCode(err, engine.EInvalid) || !strings.Contains(err.Error(), `"explode"`) {
			t.Errorf("unknown signal to a %s %s = %v, want EInvalid naming it", s, what, err)
		}
	}
}

func TestWhichSignalsARolloutAcceptsInEachStatus(t *testing.T) {
	signalRules(t, "rollout", engine.CheckRolloutSignal, map[engine.RolloutStatus][]engine.RolloutSignal{
		engine.RolloutPending: {engine.SignalCancel, engine.SignalPause},
		engine.RolloutRunning: {engine.SignalPause, engine.SignalCancel, engine.SignalForce, engine.SignalRollback},
		engine.RolloutPaused:  {engine.SignalResume, engine.SignalCancel, engine.SignalForce, engine.SignalRollback},
		// Only approval moves a breaking upgrade past its canary.
		engine.RolloutAwaitingApproval: {engine.SignalApproveCanary, engine.SignalCancel, engine.SignalRollback},
		// A rollback in progress and every finished rollout take no signal.
	}, engine.SignalSkip)
}

func TestWhichSignalsARolloutGroupAcceptsInEachStatus(t *testing.T) {
	signalRules(t, "rollout group", engine.CheckGroupSignal, map[engine.RolloutStatus][]engine.RolloutSignal{
		engine.RolloutPending: {engine.SignalCancel, engine.SignalPause, engine.SignalSkip},
		engine.RolloutRunning: {engine.SignalPause, engine.SignalCancel, engine.SignalRollback, engine.SignalSkip},
		engine.RolloutPaused:  {engine.SignalResume, engine.SignalCancel, engine.SignalRollback, engine.SignalSkip},
		// A group has no canary and no threshold of its own.
	}, engine.SignalForce, engine.SignalApproveCanary)
}

func TestASignalAtTheWrongTimeSaysWhy(t *testing.T) {
	err := engine.CheckRolloutSignal(engine.RolloutRunning, engine.SignalResume)
	if want := "cannot resume a rollout that is running"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want %q", err, want)
	}
	err = engine.CheckGroupSignal(engine.RolloutSucceeded, engine.SignalSkip)
	if want := "cannot skip a rollout group that is succeeded"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestWhichRolloutStatusesAreFinished(t *testing.T) {
	finished := []engine.RolloutStatus{engine.RolloutSucceeded, engine.RolloutFailed, engine.RolloutCancelled, engine.RolloutRolledBack, engine.RolloutSkipped}
	for _, s := range allStatuses {
		if got := s.Finished(); got != slices.Contains(finished, s) {
			t.Errorf("%s.Finished() = %v", s, got)
		}
	}
}
