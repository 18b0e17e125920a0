package postgres_test

import (
	"io/fs"
	"reflect"
	"strconv"
	"testing"
	"testing/fstest"

	"github.com/hoodcloud/hoodcloud/internal/testenv"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/store/postgres"
)

func TestMigrateUpFromEmptyThenAgainIsANoOp(t *testing.T) {
	m := postgres.NewMigrator(testenv.PostgresDatabase(t))
	all := builtIn(t)
	mustStatus(t, m, 0, false, all)

	applied, err := m.Up(t.Context())
	if err != nil {
		t.Fatalf("first up: %v", err)
	}
	if got := versions(applied); !reflect.DeepEqual(got, all) {
		t.Fatalf("first up applied %v, want %v", got, all)
	}
	mustStatus(t, m, latest(t), false, nil)

	applied, err = m.Up(t.Context())
	if err != nil || len(applied) != 0 {
		t.Fatalf("second up applied %v, %v; want nothing", versions(applied), err)
	}
	mustStatus(t, m, latest(t), false, nil)
}

func TestFailedMigrationLeavesSchemaDirtyUntilForced(t *testing.T) {
	dbURL := testenv.PostgresDatabase(t)
	broken := postgres.NewMigratorFS(dbURL, migrationsWith(t, map[string]string{
		"0900_widgets.up.sql": "CREATE TABLE widgets (id int); SELECT 1/0;",
	}))

	_, err := broken.Up(t.Context())
	mustRefuse(t, err, postgres.ErrSchemaDirty, "0900_widgets failed")
	mustStatus(t, broken, 900, true, nil)

	_, err = broken.Up(t.Context())
	for _, step := range []string{"inspect the database", "fix the schema by hand", "hoodcloud migrate force VERSION", "re-run `hoodcloud migrate up`"} {
		mustRefuse(t, err, postgres.ErrSchemaDirty, step)
	}

	// The operator looked: the failed migration left nothing behind, so the
	// schema matches the last built-in version.
	if err := broken.Force(t.Context(), latest(t)); err != nil {
		t.Fatalf("force: %v", err)
	}
	fixed := postgres.NewMigratorFS(dbURL, migrationsWith(t, map[string]string{
		"0900_widgets.up.sql": "CREATE TABLE widgets (id int);",
	}))
	mustStatus(t, fixed, latest(t), false, []int64{900})
	applied, err := fixed.Up(t.Context())
	if err != nil || !reflect.DeepEqual(versions(applied), []int64{900}) {
		t.Fatalf("up after force applied %v, %v; want [900]", versions(applied), err)
	}
	mustStatus(t, fixed, 900, false, nil)
}

func TestForceAcceptsOnlyKnownVersions(t *testing.T) {
	m := postgres.NewMigrator(testenv.PostgresDatabase(t))
	if err := m.Force(t.Context(), 42); !engine.IsCode(err, engine.EInvalid) {
		t.Fatalf("force 42: %v, want code %q", err, engine.EInvalid)
	}
	if err := m.Force(t.Context(), 0); err != nil {
		t.Fatalf("force 0: %v", err)
	}
	mustStatus(t, m, 0, false, builtIn(t))
}

// builtIn returns the versions of the built-in migrations, in order.
func builtIn(t *testing.T) []int64 {
	t.Helper()
	entries, err := fs.ReadDir(postgres.Migrations(), ".")
	if err != nil || len(entries) == 0 {
		t.Fatalf("read the built-in migrations: %v, %d files", err, len(entries))
	}
	var out []int64
	for _, e := range entries { // NNNN_name.up.sql, sorted by name
		v, err := strconv.ParseInt(e.Name()[:4], 10, 64)
		if err != nil {
			t.Fatalf("migration %s: %v", e.Name(), err)
		}
		out = append(out, v)
	}
	return out
}

// latest is the version of the last built-in migration.
func latest(t *testing.T) int64 {
	all := builtIn(t)
	return all[len(all)-1]
}

// migrationsWith returns the built-in migrations plus (or replaced by) extra.
func migrationsWith(t *testing.T, extra map[string]string) fs.FS {
	t.Helper()
	fsys := fstest.MapFS{}
	entries, err := fs.ReadDir(postgres.Migrations(), ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := fs.ReadFile(postgres.Migrations(), e.Name())
		if err != nil {
			t.Fatal(err)
		}
		fsys[e.Name()] = &fstest.MapFile{Data: b}
	}
	for name, sql := range extra {
		fsys[name] = &fstest.MapFile{Data: []byte(sql)}
	}
	return fsys
}

func mustStatus(t *testing.T, m *postgres.Migrator, version int64, dirty bool, pending []int64) {
	t.Helper()
	st, err := m.Status(t.Context())
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if st.Version != version || st.Dirty != dirty || !reflect.DeepEqual(versions(st.Pending), pending) {
		t.Fatalf("status = version %d dirty %v pending %v; want %d, %v, %v",
			st.Version, st.Dirty, versions(st.Pending), version, dirty, pending)
	}
}

func versions(migs []postgres.Migration) []int64 {
	var out []int64
	for _, m := range migs {
		out = append(out, m.Version)
	}
	return out
}
