package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/enginetest"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/hoodcloud/hoodcloud/store/postgres"
	"github.com/prometheus/client_golang/prometheus"
)

func TestStore(t *testing.T) {
	enginetest.RunStore(t, func(t *testing.T) engine.Store {
		return mustOpen(t, mustMigratedDatabase(t))
	})
}

func TestStoreKeepsEverythingAcrossReopen(t *testing.T) {
	dbURL := mustMigratedDatabase(t)
	open := func(t *testing.T) engine.Store { return mustOpen(t, dbURL) }
	enginetest.RunStoreRestart(t, open, open)
}

func BenchmarkStore(b *testing.B) {
	s := mustOpen(b, mustMigratedDatabase(b))
	b.Cleanup(func() { s.Close() })
	enginetest.BenchStore(b, s, enginetest.WithNodeSeeder(s.CreateNodes))
}

// mustMigratedDatabase is mustDatabase with the built-in migrations applied.
func mustMigratedDatabase(tb testing.TB) string {
	tb.Helper()
	dbURL := testenv.PostgresDatabase(tb)
	if _, err := postgres.NewMigrator(dbURL).Up(context.Background()); err != nil {
		tb.Fatalf("migrate up: %v", err)
	}
	return dbURL
}

// mustOpen opens a store on dbURL with a registry of its own.
func mustOpen(tb testing.TB, dbURL string) *postgres.Store {
	tb.Helper()
	s := postgres.New(dbURL, prometheus.NewRegistry())
	if err := s.Open(context.Background()); err != nil {
		tb.Fatalf("open store: %v", err)
	}
	return s
}

func TestOpenRefusesUntilMigrated(t *testing.T) {
	dbURL := testenv.PostgresDatabase(t)
	err := postgres.New(dbURL, nil).Open(t.Context())
	mustRefuse(t, err, postgres.ErrMigrationsPending, "run `hoodcloud migrate up`")

	if _, err := postgres.NewMigrator(dbURL).Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, dbURL)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("ping after migrating: %v", err)
	}
	s.Close()
}

func TestOpenRefusesDirtySchema(t *testing.T) {
	dbURL := testenv.PostgresDatabase(t)
	broken := migrationsWith(t, map[string]string{"0001_init.up.sql": "SELECT 1/0"})
	if _, err := postgres.NewMigratorFS(dbURL, broken).Up(t.Context()); err == nil {
		t.Fatal("a failing migration succeeded")
	}
	err := postgres.New(dbURL, nil).Open(t.Context())
	t.Log(err)
	mustRefuse(t, err, postgres.ErrSchemaDirty, "hoodcloud migrate force")
}

func TestOpenRefusesSchemaNewerThanBinary(t *testing.T) {
	dbURL := testenv.PostgresDatabase(t)
	newer := migrationsWith(t, map[string]string{"0099_future.up.sql": "CREATE TABLE future (id int)"})
	if _, err := postgres.NewMigratorFS(dbURL, newer).Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	err := postgres.New(dbURL, nil).Open(t.Context())
	mustRefuse(t, err, postgres.ErrSchemaTooNew, "upgrade hoodcloud")
}

const testPassword = "s3cr3t-pw"

func TestBadURLsFailClearlyWithoutEchoingThePassword(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  string
		code engine.Code
	}{
		{"Unparsable", "postgres://hood:" + testPassword + "@[::1", engine.EInvalid},
		{"UnknownParameter", "postgres://hood:" + testPassword + "@127.0.0.1/db?sslmode=sometimes", engine.EInvalid},
		{"NothingListening", "postgres://hood:" + testPassword + "@127.0.0.1:1/db?connect_timeout=2", engine.EUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) { mustFailQuietly(t, tc.url, tc.code) })
	}
}

func TestUnknownDatabaseFailsWithoutEchoingThePassword(t *testing.T) {
	mustFailQuietly(t, testenv.PostgresDatabaseURL(t, "hoodcloud_test_missing", testPassword), engine.EUnavailable)
}

// mustFailQuietly fails unless opening and migrating dbURL fail with code
// and without showing testPassword.
func mustFailQuietly(t *testing.T, dbURL string, code engine.Code) {
	t.Helper()
	errs := map[string]error{"Open": postgres.New(dbURL, nil).Open(t.Context())}
	_, errs["Migrator.Up"] = postgres.NewMigrator(dbURL).Up(t.Context())
	_, errs["Migrator.Status"] = postgres.NewMigrator(dbURL).Status(t.Context())
	for op, err := range errs {
		t.Logf("%s: %v", op, err)
		if got := engine.ErrorCode(err); got != code {
			t.Fatalf("%s: error %v (code %q), want code %q", op, err, got, code)
		}
		if strings.Contains(err.Error(), testPassword) {
			t.Fatalf("%s: the error shows the password: %v", op, err)
		}
	}
}

func TestMetricsAreRegisteredWhileOpen(t *testing.T) {
	dbURL := mustMigratedDatabase(t)
	reg := prometheus.NewRegistry()
	for round := range 2 { // a reopened store registers again on the same registry
		s := postgres.New(dbURL, reg)
		if err := s.Open(t.Context()); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if _, err := s.GetNode(t.Context(), "node_missing"); !engine.IsCode(err, engine.ENotFound) {
			t.Fatalf("GetNode: %v", err)
		}
		got := gatheredNames(t, reg)
		for _, want := range []string{
			"hoodcloud_store_query_duration_seconds",
			"hoodcloud_store_pool_acquired_connections",
			"hoodcloud_store_pool_idle_connections",
			"hoodcloud_store_pool_total_connections",
		} {
			if !got[want] {
				t.Fatalf("round %d: metric %s missing from %v", round, want, got)
			}
		}
		s.Close()
	}
}

func gatheredNames(t *testing.T, reg *prometheus.Registry) map[string]bool {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	return names
}

// serverURL returns the test server's URL for database, with password set
// (which a trust-auth test server ignores) unless it is empty.
// mustRefuse fails unless err wraps want and tells the operator what to do.
func mustRefuse(t *testing.T, err, want error, advice string) {
	t.Helper()
	if !errors.Is(err, want) || !strings.Contains(err.Error(), advice) {
		t.Fatalf("error = %v; want %q saying %q", err, want, advice)
	}
}
