package bolt

import (
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/hoodcloud/hoodcloud/engine"
)

// TestRolloutsWrittenBeforeTheirIndexesAreListed: a file written before
// rollouts and groups had their newest-first indexes gets them on open.
func TestRolloutsWrittenBeforeTheirIndexesAreListed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hoodcloud.db")
	at := time.Date(2031, 5, 4, 10, 0, 0, 0, time.UTC)
	s := openAt(t, path)
	err := s.db.Update(func(tx *bbolt.Tx) error {
		for i, id := range []string{"old", "new"} {
			created := at.Add(time.Duration(i) * time.Hour)
			r := &engine.Rollout{ID: "ro_" + id, Status: engine.RolloutRunning, CreatedAt: created, Version: 1}
			if err := putJSON(tx.Bucket(bRollouts), key(r.ID), r); err != nil {
				return err
			}
			g := &engine.RolloutGroup{ID: "rg_" + id, Status: engine.RolloutRunning, CreatedAt: created, Version: 1}
			if err := putJSON(tx.Bucket(bRolloutGroups), key(g.ID), g); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openAt(t, path)
	defer s.Close()
	rs, err := s.ListRollouts(t.Context(), "", 0)
	if err != nil || len(rs) != 2 || rs[0].ID != "ro_new" || rs[1].ID != "ro_old" {
		t.Fatalf("rollouts = %v, %v; want ro_new, ro_old", rs, err)
	}
	gs, err := s.ListRolloutGroups(t.Context(), "ro_missing", 0)
	if !engine.IsCode(err, engine.EInvalid) {
		t.Fatalf("groups before an unknown cursor = %v, %v; want EInvalid", gs, err)
	}
	gs, err = s.ListRolloutGroups(t.Context(), "rg_new", 0)
	if err != nil || len(gs) != 1 || gs[0].ID != "rg_old" {
		t.Fatalf("groups before rg_new = %v, %v; want rg_old", gs, err)
	}
}
