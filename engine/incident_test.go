package engine_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/store/bolt"
)

func incidentStore(t *testing.T) *bolt.Store {
	t.Helper()
	s := bolt.New(filepath.Join(t.TempDir(), "hoodcloud.db"))
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var incidentT0 = time.Date(2031, 5, 4, 10, 0, 0, 0, time.UTC)

func TestRaisingAndResolvingRecordTheHistoryAndMakeTheIncidentDue(t *testing.T) {
	ctx, s := context.Background(), incidentStore(t)
	spec := engine.IncidentSpec{NodeID: "node_a", DedupeKey: "policy:stuck", Severity: engine.SeverityWarning, Summary: "node is stuck"}
	in, opened, err := engine.RaiseIncident(ctx, s, spec, incidentT0)
	if err != nil || !opened || !in.NotifyAt.Equal(incidentT0) {
		t.Fatalf("raise: %+v, %v, %v; want opened and due at once", in, opened, err)
	}
	again, opened, err := engine.RaiseIncident(ctx, s, spec, incidentT0.Add(time.Minute))
	if err != nil || opened || again.ID != in.ID || len(again.Transitions) != 1 {
		t.Fatalf("raise again: %+v, %v, %v; want the same incident untouched", again, opened, err)
	}
	// The dispatcher told everyone and set the next look far off.
	again.NotifyAt = incidentT0.Add(time.Hour)
	if err := s.UpdateIncident(ctx, again); err != nil {
		t.Fatal(err)
	}
	done, err := engine.ResolveIncident(ctx, s, "node_a", "policy:stuck", incidentT0.Add(2*time.Minute))
	if err != nil || done.Open() || !done.NotifyAt.Equal(incidentT0.Add(2*time.Minute)) {
		t.Fatalf("resolve: %+v, %v; want resolved and due at once", done, err)
	}
	want := []engine.IncidentTransition{
		{At: incidentT0, Kind: engine.TransitionOpened, Note: "node is stuck"},
		{At: incidentT0.Add(2 * time.Minute), Kind: engine.TransitionResolved},
	}
	got, _ := s.GetIncident(ctx, in.ID)
	if len(got.Transitions) != 2 || got.Transitions[0] != want[0] || got.Transitions[1] != want[1] {
		t.Fatalf("history = %+v, want %+v", got.Transitions, want)
	}
}

func TestAcknowledgingAnIncident(t *testing.T) {
	ctx, s := context.Background(), incidentStore(t)
	raise := func(node string) *engine.Incident {
		in, _, err := engine.RaiseIncident(ctx, s, engine.IncidentSpec{NodeID: node, DedupeKey: "k", Severity: engine.SeverityCritical, Summary: "down"}, incidentT0)
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	open, gone := raise("node_a"), raise("node_b")
	if _, err := engine.ResolveIncident(ctx, s, "node_b", "k", incidentT0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}

	in, err := engine.AcknowledgeIncident(ctx, s, open.ID, "user_ann", incidentT0.Add(time.Minute))
	if err != nil || in.AcknowledgedBy != "user_ann" || !in.AcknowledgedAt.Equal(incidentT0.Add(time.Minute)) {
		t.Fatalf("acknowledge: %+v, %v", in, err)
	}
	if last := in.Transitions[len(in.Transitions)-1]; last.Kind != engine.TransitionAcknowledged || last.Note != "by user_ann" {
		t.Fatalf("last transition = %+v, want the acknowledgement by user_ann", last)
	}
	again, err := engine.AcknowledgeIncident(ctx, s, open.ID, "user_bob", incidentT0.Add(2*time.Minute))
	if err != nil || again.AcknowledgedBy != "user_ann" || again.Version != in.Version {
		t.Fatalf("acknowledge again: %+v, %v; want the first acknowledgement, unchanged", again, err)
	}
	if _, err := engine.AcknowledgeIncident(ctx, s, gone.ID, "user_ann", incidentT0.Add(time.Minute)); !engine.IsCode(err, engine.EConflict) {
		t.Fatalf("acknowledge a resolved incident: %v, want a conflict", err)
	}
	if _, err := engine.AcknowledgeIncident(ctx, s, "inc_missing", "user_ann", incidentT0); !engine.IsCode(err, engine.ENotFound) {
		t.Fatalf("acknowledge a missing incident: %v, want not found", err)
	}
}
