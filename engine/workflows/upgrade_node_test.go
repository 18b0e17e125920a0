package workflows

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"
)

// upgradeWorld is a node under UpgradeNodeWorkflow: it runs pre (or its
// target already, atTarget) and records what the workflow asked.
type upgradeWorld struct {
	world
	pre     NodePrecheck
	plan    *UpgradePlan
	reports []UpgradeReport
	checks  []HealthCheck
	marks   []NodeMark
}

// recordedAt is when RecordNodeUpgrade says it recorded the release.
var recordedAt = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func newUpgradeEnv(t *testing.T, w *upgradeWorld) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterActivity(&Activities{})
	on := func(fn, impl any) { env.OnActivity(fn, mock.Anything, mock.Anything).Return(impl) }
	on(acts.PreCheckNode, func(context.Context, UpgradeNodeInput) (NodePrecheck, error) {
		return w.pre, w.hit("PreCheckNode")
	})
	on(acts.PublishUpgradePhase, func(_ context.Context, e PhaseEvent) error { return w.hit("phase:" + e.Phase) })
	on(acts.SetNodeState, func(_ context.Context, c StateChange) error { return w.hit("SetNodeState:" + string(c.To)) })
	on(acts.SendUpgradeCommand, func(_ context.Context, r CommandRequest) error {
		w.mu.Lock()
		w.plan = r.Upgrade
		w.mu.Unlock()
		return w.hit("SendUpgradeCommand")
	})
	on(acts.WaitForCommandCompletion, func(context.Context, CommandRequest) error { return w.hit("WaitForCommandCompletion") })
	on(acts.RecordNodeUpgrade, func(_ context.Context, r UpgradeReport) (UpgradeDone, error) {
		w.mu.Lock()
		w.reports = append(w.reports, r)
		w.mu.Unlock()
		outcome := "succeeded"
		if r.Error != "" {
			outcome = "rolled_back"
		}
		return UpgradeDone{At: recordedAt, Error: outcome + ": " + r.Error}, w.hit("RecordNodeUpgrade")
	})
	on(acts.WaitForHealthValidation, func(_ context.Context, h HealthCheck) error {
		w.mu.Lock()
		w.checks = append(w.checks, h)
		w.mu.Unlock()
		return w.hit("WaitForHealthValidation")
	})
	on(acts.MarkNodeUpgrade, func(_ context.Context, m NodeMark) error {
		w.mu.Lock()
		w.marks = append(w.marks, m)
		w.mu.Unlock()
		return w.hit("MarkNodeUpgrade:" + string(m.Status))
	})
	return env
}

var (
	v1 = engine.Release{Version: "v1.0.0", URL: "https://example.com/v1.tar.gz", SHA256: "aa"}
	v2 = engine.Release{Version: "v2.0.0", URL: "https://example.com/v2.tar.gz", SHA256: "bb", Args: []string{"start", "--new-flag"}}
)

func nodeUpgrade() UpgradeNodeInput {
	return UpgradeNodeInput{RolloutID: "r1", NodeID: "node-01", Batch: 2, Component: "node", Target: v2,
		ConfigChanges: []engine.ConfigChange{{Path: "config/app.toml", Template: "min-gas = 0"}}, HealthWait: 5 * time.Minute}
}

// upgradeNode runs UpgradeNodeWorkflow for in on w's node.
func upgradeNode(t *testing.T, w *upgradeWorld, in UpgradeNodeInput) NodeUpgradeResult {
	t.Helper()
	if w.pre.Current.Version == "" {
		w.pre = NodePrecheck{Current: v1, State: engine.NodeRunning}
	}
	env := newUpgradeEnv(t, w)
	env.ExecuteWorkflow(UpgradeNodeWorkflow, in)
	var res NodeUpgradeResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatalf("the workflow failed (it never should): %v", err)
	}
	return res
}

var (
	upgradeHead = []string{"PreCheckNode", "phase:maintenance", "SetNodeState:maintenance", "phase:upgrading", "SendUpgradeCommand", "WaitForCommandCompletion", "RecordNodeUpgrade"}
	upgradeTail = []string{"phase:health_validation", "WaitForHealthValidation", "SetNodeState:running", "phase:done"}
)

func TestAnUpgradeOfANodeRunsItsStepsInOrder(t *testing.T) {
	w := &upgradeWorld{}
	in := nodeUpgrade()
	res := upgradeNode(t, w, in)
	if res != (NodeUpgradeResult{Status: engine.RolloutSucceeded}) {
		t.Errorf("result = %+v", res)
	}
	if got, want := w.ran(), seq(upgradeHead, upgradeTail, []string{"MarkNodeUpgrade:succeeded"}); !slices.Equal(got, want) {
		t.Errorf("ran\n %v\nwant\n %v", got, want)
	}
	want := &UpgradePlan{RolloutID: "r1", Component: "node", Target: v2, Previous: v1, ConfigChanges: in.ConfigChanges}
	if !reflect.DeepEqual(w.plan, want) {
		t.Errorf("upgrade command %+v, want %+v", w.plan, want)
	}
	if len(w.checks) != 1 || w.checks[0] != (HealthCheck{NodeID: "node-01", Since: recordedAt, Wait: in.HealthWait}) {
		t.Errorf("health checks %+v: want one since the release was recorded, for the health wait", w.checks)
	}
	if len(w.marks) != 1 || w.marks[0] != (NodeMark{RolloutID: "r1", NodeID: "node-01", Batch: 2, Status: engine.RolloutSucceeded}) {
		t.Errorf("marks %+v", w.marks)
	}
}

func TestAnUpgradeAtAHeightAsksTheAgentToSwitchThere(t *testing.T) {
	w := &upgradeWorld{}
	in := nodeUpgrade()
	in.TargetHeight = 1_200_000
	upgradeNode(t, w, in)
	if w.plan == nil || w.plan.TargetHeight != 1_200_000 {
		t.Errorf("upgrade command %+v, want it staged for height 1200000", w.plan)
	}
}

func TestANodeAlreadyAtTheTargetIsSkippedWithoutACommand(t *testing.T) {
	w := &upgradeWorld{pre: NodePrecheck{Current: v2, State: engine.NodeRunning, AtTarget: true}}
	res := upgradeNode(t, w, nodeUpgrade())
	if res.Status != engine.RolloutSkipped || res.Error != "already at v2.0.0" {
		t.Errorf("result = %+v", res)
	}
	if got, want := w.ran(), []string{"PreCheckNode", "MarkNodeUpgrade:skipped"}; !slices.Equal(got, want) {
		t.Errorf("ran %v, want %v", got, want)
	}
}

func TestAFailedUpgradeCommandIsRecordedThenFailsTheNode(t *testing.T) {
	for _, step := range []string{"SendUpgradeCommand", "WaitForCommandCompletion"} {
		t.Run(step, func(t *testing.T) {
			w := &upgradeWorld{world: world{fail: failing(step)}}
			res := upgradeNode(t, w, nodeUpgrade())
			if res.Status != engine.RolloutFailed || !strings.Contains(res.Error, "injected failure at "+step) {
				t.Errorf("result = %+v", res)
			}
			got := w.ran()
			want := []string{"RecordNodeUpgrade", "phase:failed", "MarkNodeUpgrade:failed"}
			if tail := got[max(len(got)-len(want), 0):]; !slices.Equal(tail, want) {
				t.Errorf("ran %v\nwant it to end with %v", got, want)
			}
			if slices.Contains(got, "WaitForHealthValidation") || slices.Contains(got, "SetNodeState:running") {
				t.Errorf("ran %v: a failed upgrade is not validated", got)
			}
			if len(w.reports) != 1 || !strings.Contains(w.reports[0].Error, "injected failure at "+step) {
				t.Errorf("reports %+v, want the command's error recorded", w.reports)
			}
			// The mark says what the record made of it (the agent rolled back).
			if m := w.marks[0]; !strings.HasPrefix(m.Error, "rolled_back: ") {
				t.Errorf("marked %+v", m)
			}
		})
	}
}

func TestANodeUnhealthyAfterItsUpgradeIsDegradedAndFailed(t *testing.T) {
	w := &upgradeWorld{world: world{fail: failing("WaitForHealthValidation")}}
	res := upgradeNode(t, w, nodeUpgrade())
	if res.Status != engine.RolloutFailed || !strings.HasPrefix(res.Error, "health validation: ") {
		t.Errorf("result = %+v", res)
	}
	want := seq(upgradeHead, []string{"phase:health_validation", "WaitForHealthValidation", "SetNodeState:degraded", "phase:failed", "MarkNodeUpgrade:failed"})
	if got := w.ran(); !slices.Equal(got, want) {
		t.Errorf("ran\n %v\nwant\n %v", got, want)
	}
}

func TestANodeThatMayNotBeUpgradedFailsBeforeAnyChange(t *testing.T) {
	for _, step := range []string{"PreCheckNode", "SetNodeState:maintenance"} {
		t.Run(step, func(t *testing.T) {
			w := &upgradeWorld{world: world{fail: failing(step)}}
			res := upgradeNode(t, w, nodeUpgrade())
			if res.Status != engine.RolloutFailed {
				t.Errorf("result = %+v", res)
			}
			got := w.ran()
			if slices.Contains(got, "SendUpgradeCommand") || got[len(got)-1] != "MarkNodeUpgrade:failed" {
				t.Errorf("ran %v", got)
			}
		})
	}
}

func TestARollbackOfANodeIsMarkedAsSuch(t *testing.T) {
	in := nodeUpgrade()
	in.Target, in.ConfigChanges, in.Rollback = v1, nil, true
	t.Run("put back", func(t *testing.T) {
		w := &upgradeWorld{pre: NodePrecheck{Current: v2, State: engine.NodeRunning}}
		if res := upgradeNode(t, w, in); res.Status != engine.RolloutRolledBack {
			t.Errorf("result = %+v", res)
		}
		if !reflect.DeepEqual(w.plan.Target, v1) || !reflect.DeepEqual(w.plan.Previous, v2) {
			t.Errorf("rollback command %+v", w.plan)
		}
		if m := w.marks[0]; m.Status != engine.RolloutRolledBack || !m.Rollback {
			t.Errorf("marked %+v", m)
		}
	})
	t.Run("already back", func(t *testing.T) {
		w := &upgradeWorld{pre: NodePrecheck{Current: v1, State: engine.NodeRunning, AtTarget: true}}
		if res := upgradeNode(t, w, in); res.Status != engine.RolloutRolledBack {
			t.Errorf("result = %+v", res)
		}
	})
	t.Run("failed: the record says it was a rollback", func(t *testing.T) {
		w := &upgradeWorld{world: world{fail: failing("SendUpgradeCommand")}, pre: NodePrecheck{Current: v2, State: engine.NodeRunning}}
		if res := upgradeNode(t, w, in); res.Status != engine.RolloutFailed {
			t.Errorf("result = %+v", res)
		}
		if m := w.marks[0]; m.Status != engine.RolloutFailed || !strings.HasPrefix(m.Error, "rollback: ") {
			t.Errorf("marked %+v", m)
		}
	})
}
