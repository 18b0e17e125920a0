package rollouts

import (
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

func TestAPlanTakesDefaultsAndRefusesWhatCannotWork(t *testing.T) {
	plain := engine.UpgradeSpec{Release: engine.Release{Version: "2"}, Compatibility: engine.Compatible}
	atHeight := plain
	atHeight.TargetHeight = 120
	got, err := checkPlan(Plan{}, plain)
	if err != nil {
		t.Fatal(err)
	}
	want := Plan{Strategy: engine.StrategyRolling, BatchSize: 1, CanarySize: 1, FailureThreshold: 1, HealthWait: DefaultHealthWait, GateFailure: engine.GatePause}
	if got.Strategy != want.Strategy || got.BatchSize != 1 || got.CanarySize != 1 || got.FailureThreshold != 1 ||
		got.HealthWait != want.HealthWait || got.GateFailure != want.GateFailure {
		t.Fatalf("defaults %+v; want %+v", got, want)
	}
	for _, tc := range []struct {
		name  string
		plan  Plan
		spec  engine.UpgradeSpec
		field string
	}{
		{"an unknown strategy", Plan{Strategy: "blue_green"}, plain, "strategy:"},
		{"at_height without a height", Plan{Strategy: engine.StrategyAtHeight}, plain, "target_height:"},
		{"a height without at_height", Plan{Strategy: engine.StrategyRolling}, atHeight, "strategy:"},
		{"a negative batch", Plan{BatchSize: -1}, plain, "batch_size:"},
		{"a negative threshold", Plan{FailureThreshold: -2}, plain, "failure_threshold:"},
		{"a health wait too short", Plan{HealthWait: time.Millisecond}, plain, "health_wait:"},
		{"an unknown gate failure", Plan{GateFailure: "ignore"}, plain, "gate_failure:"},
		{"a gate that does not compile", Plan{Gates: []string{"peers >"}}, plain, "gates[0]:"},
		{"a gate that is not a bool", Plan{Gates: []string{"!crash_loop", "height + 1"}}, plain, "gates[1]:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := checkPlan(tc.plan, tc.spec)
			if !engine.IsCode(err, engine.EInvalid) || !strings.HasPrefix(engine.ErrorMessage(err), tc.field) {
				t.Fatalf("checkPlan = %v; want invalid naming %s", err, tc.field)
			}
		})
	}
	if _, err := checkPlan(Plan{Strategy: engine.StrategyAtHeight}, atHeight); err != nil {
		t.Fatalf("at_height with a height: %v", err)
	}
}
