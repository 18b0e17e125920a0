package workflows

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"
)

// rolloutHistories are the rollout runs whose histories the replay test
// keeps, recorded as store/temporal's TestRecordWorkflowHistories records
// the others (it cannot see the fleet). Each run's fleet is a real
// UpgradeNodeWorkflow's world: its node activities change the fleet.
var rolloutHistories = []struct {
	name  string
	fleet func() *fleet
	run   func(*fleet) (any, any) // the workflow and its input
	// runs: the files of the chain's runs, first to last; "" skips one.
	runs []string
}{
	{name: "rolling", fleet: func() *fleet {
		f := newFleet(5)
		f.add(engine.Rollout{ID: "r-rolling", Strategy: engine.StrategyRolling, BatchSize: 2, FailureThreshold: 1})
		return f
	}, run: func(*fleet) (any, any) { return RolloutWorkflow, RolloutInput{RolloutID: "r-rolling"} },
		runs: []string{"rollout_rolling_first.json", "", "rollout_rolling_last.json"}},
	{name: "breaking canary approved", fleet: func() *fleet {
		f := newFleet(3)
		f.add(engine.Rollout{ID: "r-canary", Strategy: engine.StrategyCanary, CanarySize: 1, BatchSize: 2, FailureThreshold: 1,
			Spec: engine.UpgradeSpec{Compatibility: engine.Breaking}})
		f.when(engine.RolloutAwaitingApproval, approve)
		return f
	}, run: func(*fleet) (any, any) { return RolloutWorkflow, RolloutInput{RolloutID: "r-canary"} },
		runs: []string{"rollout_canary_approved.json", ""}},
	{name: "threshold forced", fleet: func() *fleet {
		f := newFleet(4)
		f.breaks["node-01"] = true
		f.add(engine.Rollout{ID: "r-forced", Strategy: engine.StrategyRolling, BatchSize: 2, FailureThreshold: 1})
		f.when(engine.RolloutPaused, force)
		return f
	}, run: func(*fleet) (any, any) { return RolloutWorkflow, RolloutInput{RolloutID: "r-forced"} },
		runs: []string{"rollout_threshold_forced.json", ""}},
	{name: "rolled back", fleet: func() *fleet {
		f := newFleet(4)
		f.add(engine.Rollout{ID: "r-back", Strategy: engine.StrategyRolling, BatchSize: 2, FailureThreshold: 1})
		return f
	}, run: func(f *fleet) (any, any) {
		f.upgraded("r-back")
		return RolloutWorkflow, RolloutInput{RolloutID: "r-back", Rollback: true}
	}, runs: []string{"rollout_rollback_first.json", ""}},
	{name: "upgrade node", fleet: func() *fleet {
		f := newFleet(1)
		f.add(engine.Rollout{ID: "r-node", Strategy: engine.StrategyRolling, BatchSize: 1, FailureThreshold: 1})
		return f
	}, run: func(f *fleet) (any, any) {
		if _, err := f.resolve(context.Background(), "r-node"); err != nil {
			panic(err)
		}
		return UpgradeNodeWorkflow, UpgradeNodeInput{RolloutID: "r-node", NodeID: "node-01", Component: "node",
			Target: f.rollouts["r-node"].Spec.Release, HealthWait: time.Minute}
	}, runs: []string{"upgrade_node.json"}},
	{name: "group", fleet: func() *fleet {
		f := newFleet(2)
		f.group("g-happy", engine.PolicyPartialOK, "consensus", "execution")
		return f
	}, run: func(*fleet) (any, any) { return RolloutGroupWorkflow, RolloutGroupInput{GroupID: "g-happy"} },
		runs: []string{"rollout_group.json"}},
	{name: "group rolled back", fleet: func() *fleet {
		f := newFleet(2)
		f.breaks["node-02/execution"] = true
		f.group("g-back", engine.PolicyRollbackAll, "consensus", "execution")
		return f
	}, run: func(*fleet) (any, any) { return RolloutGroupWorkflow, RolloutGroupInput{GroupID: "g-back"} },
		runs: []string{"rollout_group_rollback_all.json"}},
}

// TestRecordRolloutHistories runs each rollout scenario on a real cluster
// (HOODCLOUD_TEST_TEMPORAL_ADDR, e.g. from `hoodcloud dev --output env`)
// and writes the histories of its runs to testdata/histories, unless
// recorded already: they stand for runs of older versions. Run it with
// HOODCLOUD_UPDATE_HISTORIES=1 after a deliberate change of a rollout
// workflow, versioned with workflow.GetVersion, with a new scenario.
func TestRecordRolloutHistories(t *testing.T) {
	addr := os.Getenv("HOODCLOUD_TEST_TEMPORAL_ADDR")
	if os.Getenv("HOODCLOUD_UPDATE_HISTORIES") != "1" || addr == "" {
		t.Skip("set HOODCLOUD_UPDATE_HISTORIES=1 and HOODCLOUD_TEST_TEMPORAL_ADDR to record the rollout histories")
	}
	ns := os.Getenv("HOODCLOUD_TEST_TEMPORAL_NAMESPACE")
	if ns == "" {
		ns = "hoodcloud"
	}
	c, err := client.Dial(client.Options{HostPort: addr, Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := filepath.Join("testdata", "histories")
	for _, s := range rolloutHistories {
		if recorded(dir, s.runs) {
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			f := s.fleet()
			f.runs = []*runCount{{}}
			wf, in := s.run(f)
			recordRuns(t, c, f, wf, in, dir, s.runs)
		})
	}
}

func recorded(dir string, files []string) bool {
	for _, name := range files {
		if _, err := os.Stat(filepath.Join(dir, name)); name != "" && err != nil {
			return false
		}
	}
	return true
}

// recordRuns runs wf on a worker of its own whose activities are f's and
// writes the history of each run of the chain to its file.
func recordRuns(t *testing.T, c client.Client, f *fleet, wf, in any, dir string, files []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	queue := "rollout-histories-" + engine.NewID("q")
	id := "history-" + engine.NewID("wf")
	f.send = func(s RolloutSignalRequest) {
		go func() { // not from inside the activity's call: it may be retried
			if err := c.SignalWorkflow(ctx, id, "", RolloutSignalName, s); err != nil {
				t.Errorf("signal %s: %v", s.Signal, err)
			}
		}()
	}
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflow(RolloutWorkflow)
	w.RegisterWorkflow(RolloutGroupWorkflow)
	w.RegisterWorkflow(UpgradeNodeWorkflow)
	for name, fn := range f.activities() {
		w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, wf, in)
	if err != nil {
		t.Fatal(err)
	}
	runID := run.GetRunID() // the first run's; Get follows the chain
	var out any
	if err := run.Get(ctx, &out); err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Logf("%s ended: %v", id, out)
	for i, name := range files {
		h := fetchHistory(ctx, t, c, id, runID)
		if name != "" {
			writeHistory(t, h, filepath.Join(dir, name))
		}
		runID = h.Events[len(h.Events)-1].GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
		if (runID == "") != (i == len(files)-1) {
			t.Fatalf("run %d of %s: want %d runs", i, id, len(files))
		}
	}
}

func fetchHistory(ctx context.Context, t *testing.T, c client.Client, id, runID string) *historypb.History {
	t.Helper()
	h := &historypb.History{}
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, e)
	}
	return h
}

func writeHistory(t *testing.T, h *historypb.History, path string) {
	t.Helper()
	out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d events)", path, len(h.Events))
}

// activities are the fleet's activities by the names workflows call:
// the rollouts' and, for a real UpgradeNodeWorkflow, a node's.
func (f *fleet) activities() map[string]any {
	return map[string]any{
		"ResolveRolloutTargets": f.resolve, "RolloutBatch": f.batch, "UpdateRolloutProgress": f.progress,
		"SetRolloutStatus": f.setStatus, "EvaluateRolloutGate": f.evaluateGate, "ValidateCanaryHealth": f.validateCanary,
		"OpenIncident": f.openIncident, "GetRolloutGroup": f.getGroup, "SetRolloutGroupStatus": f.setGroupStatus,
		"GroupHealthGate": f.groupGate,
		"PreCheckNode":    f.precheck, "RecordNodeUpgrade": f.recordUpgrade, "MarkNodeUpgrade": f.mark,
		"SendUpgradeCommand": func(_ context.Context, r CommandRequest) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.breaks[r.NodeID] || f.breaks[r.Upgrade.Component] || f.breaks[r.NodeID+"/"+r.Upgrade.Component] {
				return temporal.NewNonRetryableApplicationError("injected failure", "test", nil)
			}
			return nil
		},
		"WaitForCommandCompletion": func(context.Context, CommandRequest) error { return nil },
		"WaitForHealthValidation":  func(context.Context, HealthCheck) error { return nil },
		"SetNodeState":             func(context.Context, StateChange) error { return nil },
		"PublishUpgradePhase":      func(context.Context, PhaseEvent) error { return nil },
	}
}

// upgraded makes the rollout succeeded on every node, as if it ran.
func (f *fleet) upgraded(rolloutID string) {
	if _, err := f.resolve(context.Background(), rolloutID); err != nil {
		panic(err)
	}
	ro := f.rollouts[rolloutID]
	ro.Status = engine.RolloutSucceeded
	for _, rn := range f.records[rolloutID] {
		rn.Status, rn.Previous, rn.PreviousVersion, rn.NewVersion = engine.RolloutSucceeded, f.base, f.base.Version, ro.TargetVersion
		f.releases[rn.NodeID+"/"+ro.Component] = ro.Spec.Release
	}
}

func (f *fleet) precheck(_ context.Context, in UpgradeNodeInput) (NodePrecheck, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rn, ok := f.records[in.RolloutID][in.NodeID]
	if !ok {
		return NodePrecheck{}, notFound("node", in.NodeID)
	}
	cur := f.release(in.NodeID, in.Component)
	rn.Status = engine.RolloutRunning
	if !in.Rollback {
		rn.Previous, rn.PreviousVersion = cur, cur.Version
	}
	return NodePrecheck{Current: cur, State: engine.NodeRunning, AtTarget: cur.Version == in.Target.Version}, nil
}

func (f *fleet) recordUpgrade(_ context.Context, r UpgradeReport) (UpgradeDone, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := r.Input
	if r.Error != "" {
		return UpgradeDone{At: time.Now().UTC(), Error: "rolled_back: " + r.Error}, nil
	}
	f.releases[in.NodeID+"/"+in.Component] = in.Target
	if !in.Rollback {
		f.records[in.RolloutID][in.NodeID].NewVersion = in.Target.Version
	}
	return UpgradeDone{At: time.Now().UTC(), Error: "succeeded: "}, nil
}

func (f *fleet) mark(_ context.Context, m NodeMark) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	rn := f.records[m.RolloutID][m.NodeID]
	rn.Status, rn.Error = m.Status, m.Error
	f.note("%s %s %s", m.RolloutID, m.NodeID, m.Status)
	return nil
}
