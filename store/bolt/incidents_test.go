package bolt

import (
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/hoodcloud/hoodcloud/engine"
)

// TestIncidentsOpenedBeforeThePipelineJoinIt: a file written before the
// pipeline had its indexes gets them on open, and its incidents a history;
// the open ones become due for notification.
func TestIncidentsOpenedBeforeThePipelineJoinIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hoodcloud.db")
	opened := time.Date(2031, 5, 4, 10, 0, 0, 0, time.UTC)
	resolved := opened.Add(time.Hour)
	s := openAt(t, path)
	err := s.db.Update(func(tx *bbolt.Tx) error {
		for _, in := range []*engine.Incident{
			{ID: "inc_open", NodeID: "node_a", DedupeKey: "provision", Severity: engine.SeverityCritical, Summary: "provisioning failed", OpenedAt: opened, Version: 1},
			{ID: "inc_done", NodeID: "node_a", DedupeKey: "stuck", Severity: engine.SeverityWarning, Summary: "node is stuck", OpenedAt: opened, ResolvedAt: resolved, Version: 2},
		} {
			if err := putJSON(tx.Bucket(bIncidents), key(in.ID), in); err != nil {
				return err
			}
			if err := tx.Bucket(bIncByNode).Put(key(in.NodeID, newestFirst(in.OpenedAt), in.ID), key(in.ID)); err != nil {
				return err
			}
		}
		return tx.Bucket(bIncOpen).Put(key("node_a", "provision"), key("inc_open"))
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openAt(t, path)
	defer s.Close()
	open, err := s.GetIncident(t.Context(), "inc_open")
	if err != nil {
		t.Fatal(err)
	}
	wantHistory(t, open, engine.IncidentTransition{At: opened, Kind: engine.TransitionOpened, Note: "provisioning failed"})
	if !open.NotifyAt.Equal(opened) {
		t.Errorf("open incident due at %v, want %v", open.NotifyAt, opened)
	}
	done, err := s.GetIncident(t.Context(), "inc_done")
	if err != nil {
		t.Fatal(err)
	}
	wantHistory(t, done, engine.IncidentTransition{At: opened, Kind: engine.TransitionOpened, Note: "node is stuck"},
		engine.IncidentTransition{At: resolved, Kind: engine.TransitionResolved})
	if !done.NotifyAt.IsZero() {
		t.Errorf("resolved incident due at %v, want never", done.NotifyAt)
	}
	due, err := s.ListIncidentsToNotify(t.Context(), resolved, 0)
	if err != nil || len(due) != 1 || due[0].ID != "inc_open" {
		t.Fatalf("due = %v, %v; want inc_open", due, err)
	}
	all, err := s.QueryIncidents(t.Context(), engine.IncidentQuery{State: engine.IncidentsResolved})
	if err != nil || len(all) != 1 || all[0].ID != "inc_done" {
		t.Fatalf("resolved = %v, %v; want inc_done", all, err)
	}
	if _, err := s.FindOpenIncident(t.Context(), "node_a", "provision"); err != nil {
		t.Fatalf("the open incident is no longer found by its dedupe key: %v", err)
	}
}

func wantHistory(t *testing.T, in *engine.Incident, want ...engine.IncidentTransition) {
	t.Helper()
	if len(in.Transitions) != len(want) {
		t.Fatalf("history of %s = %+v, want %+v", in.ID, in.Transitions, want)
	}
	for k, tr := range in.Transitions {
		if !tr.At.Equal(want[k].At) || tr.Kind != want[k].Kind || tr.Note != want[k].Note {
			t.Fatalf("history of %s = %+v, want %+v", in.ID, in.Transitions, want)
		}
	}
}
