package postgres_test

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/hoodcloud/hoodcloud/store/postgres"
	"github.com/jackc/pgx/v5"
)

// TestIncidentsOpenedBeforeThePipelineJoinIt: 0008 gives the incidents
// already there a history, and makes the open ones due for notification.
func TestIncidentsOpenedBeforeThePipelineJoinIt(t *testing.T) {
	dbURL := testenv.PostgresDatabase(t)
	if _, err := postgres.NewMigratorFS(dbURL, migrationsBefore(t, "0008_")).Up(t.Context()); err != nil {
		t.Fatalf("migrate to 0007: %v", err)
	}
	opened := time.Date(2031, 5, 4, 10, 0, 0, 0, time.UTC)
	resolved := opened.Add(time.Hour)
	execSQL(t, dbURL, `INSERT INTO incidents (id, node_id, dedupe_key, severity, summary, opened_at, resolved_at, version) VALUES
		('inc_open', 'node_a', 'provision', 'critical', 'provisioning failed', $1, NULL, 1),
		('inc_done', 'node_a', 'stuck', 'warning', 'node is stuck', $1, $2, 2)`, opened, resolved)
	if _, err := postgres.NewMigrator(dbURL).Up(t.Context()); err != nil {
		t.Fatalf("migrate up: %v", err)
	}
	s := mustOpen(t, dbURL)
	defer s.Close()

	open, err := s.GetIncident(t.Context(), "inc_open")
	if err != nil {
		t.Fatal(err)
	}
	wantHistory(t, open, "opened@"+opened.Format(time.RFC3339)+":provisioning failed")
	if !open.NotifyAt.Equal(opened) {
		t.Errorf("open incident due at %v, want %v", open.NotifyAt, opened)
	}
	done, err := s.GetIncident(t.Context(), "inc_done")
	if err != nil {
		t.Fatal(err)
	}
	wantHistory(t, done, "opened@"+opened.Format(time.RFC3339)+":node is stuck", "resolved@"+resolved.Format(time.RFC3339)+":")
	if !done.NotifyAt.IsZero() {
		t.Errorf("resolved incident due at %v, want never", done.NotifyAt)
	}
	due, err := s.ListIncidentsToNotify(t.Context(), resolved, 0)
	if err != nil || len(due) != 1 || due[0].ID != "inc_open" {
		t.Fatalf("due = %v, %v; want inc_open", due, err)
	}
}

// migrationsBefore is the built-in migrations whose names sort before name.
func migrationsBefore(t *testing.T, name string) fs.FS {
	t.Helper()
	out := fstest.MapFS{}
	entries, err := fs.ReadDir(postgres.Migrations(), ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() < name {
			b, err := fs.ReadFile(postgres.Migrations(), e.Name())
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = &fstest.MapFile{Data: b}
		}
	}
	return out
}

func wantHistory(t *testing.T, in *engine.Incident, want ...string) {
	t.Helper()
	var got []string
	for _, tr := range in.Transitions {
		got = append(got, string(tr.Kind)+"@"+tr.At.UTC().Format(time.RFC3339)+":"+tr.Note)
		if tr.At.Location() != time.UTC {
			t.Errorf("transition time %v is not in UTC", tr.At)
		}
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("history of %s = %q, want %q", in.ID, got, want)
	}
}

func execSQL(t *testing.T, dbURL, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("exec: %v", err)
	}
}
