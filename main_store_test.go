package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
)

func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, func(k string) string { return env[k] }, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestMigrateThenServeOnPostgresAndRedis(t *testing.T) {
	db := testenv.PostgresDatabase(t)
	env := map[string]string{"HOODCLOUD_STORE": db}

	code, out, _ := runCLI(t, env, "migrate", "status")
	if code != 0 || !strings.Contains(out, "version: 0") || strings.Contains(out, "pending: 0") {
		t.Fatalf("status before = %d %q, want version 0 with a pending migration", code, out)
	}
	code, _, errOut := runCLI(t, env, append(serveArgs(t), "--store", db)...)
	if code != 2 || !strings.Contains(errOut, "hoodcloud migrate") {
		t.Fatalf("serve on an unmigrated database = %d %q, want exit 2 telling to run hoodcloud migrate", code, errOut)
	}
	if code, out, _ = runCLI(t, env, "migrate", "up"); code != 0 || !strings.Contains(out, "applied 0001_init") {
		t.Fatalf("migrate up = %d %q", code, out)
	}
	if code, out, _ = runCLI(t, env, "migrate", "up"); code != 0 || !strings.Contains(out, "schema is up to date") {
		t.Fatalf("second migrate up = %d %q, want a no-op", code, out)
	}

	cfg := testConfig(t, t.TempDir())
	cfg.Store = db
	cfg.Cache = testenv.RedisURL(t)
	m := MustOpenMain(t, cfg)
	ctx := context.Background()
	cmd := &engine.Command{NodeID: "node_a", Type: engine.CommandStart}
	if err := engine.EnqueueCommand(ctx, m.Store, m.Cache, cmd); err != nil {
		t.Fatal(err)
	}
	pending, err := m.Cache.PendingCommands(ctx, "node_a", 10)
	if err != nil || len(pending) != 1 || pending[0] != cmd.ID {
		t.Fatalf("pending = %v, %v; want the command queued in Redis", pending, err)
	}
	m.Cache.AckCommand(ctx, "node_a", cmd.ID)
}

func TestMigrateBadInput(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no action", nil, []string{"migrate"}, "usage: hoodcloud migrate"},
		{"embedded store", nil, []string{"migrate", "up"}, "the embedded store needs no migrations"},
		{"unknown action", map[string]string{"HOODCLOUD_STORE": "postgres://u@127.0.0.1:1/x"}, []string{"migrate", "sideways"}, `unknown action "sideways"`},
		{"force without version", map[string]string{"HOODCLOUD_STORE": "postgres://u@127.0.0.1:1/x"}, []string{"migrate", "force"}, "want exactly one VERSION"},
		{"force with a word", map[string]string{"HOODCLOUD_STORE": "postgres://u@127.0.0.1:1/x"}, []string{"migrate", "force", "latest"}, `VERSION must be a non-negative number, got "latest"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, tt.env, tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 mentioning %q", code, errOut, tt.want)
			}
		})
	}
}

func TestEmbeddedQueueIsRebuiltFromTheStoreOnRestart(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	ctx := context.Background()
	m := MustOpenMain(t, cfg)
	cmd := &engine.Command{NodeID: "node_b", Type: engine.CommandConfigure}
	if err := engine.EnqueueCommand(ctx, m.Store, m.Cache, cmd); err != nil {
		t.Fatal(err)
	}
	m.Close()

	m = MustOpenMain(t, cfg) // a new miniredis: empty until rebuilt
	pending, err := m.Cache.PendingCommands(ctx, "node_b", 10)
	if err != nil || len(pending) != 1 || pending[0] != cmd.ID {
		t.Fatalf("pending after restart = %v, %v; want the queued command back", pending, err)
	}
}
