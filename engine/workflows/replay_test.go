package workflows

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
)

// TestWorkflowsReplayRecordedHistories replays histories recorded on a real
// cluster (store/temporal's TestRecordWorkflowHistories; the rollouts',
// TestRecordRolloutHistories): a workflow change that would break runs in
// flight fails here. Re-record only on purpose.
func TestWorkflowsReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no recorded histories in testdata/histories")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflow(ProvisionWorkflow)
			r.RegisterWorkflow(TerminateWorkflow)
			r.RegisterWorkflow(MigrateWorkflow)
			r.RegisterWorkflow(RolloutWorkflow)
			r.RegisterWorkflow(RolloutGroupWorkflow)
			r.RegisterWorkflow(UpgradeNodeWorkflow)
			fh, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			h, err := client.HistoryFromJSON(fh, client.HistoryJSONOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.ReplayWorkflowHistory(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)), h); err != nil {
				t.Fatalf("replay: %v", err)
			}
		})
	}
}
