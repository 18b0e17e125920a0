package postgres

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var embedded embed.FS

// Migrations returns the SQL migrations built into the binary: files named
// NNNN_name.up.sql, applied in version order.
func Migrations() fs.FS {
	sub, err := fs.Sub(embedded, "migrations")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}

// The schema states that stop Open and Up; the errors returned wrap these,
// so the CLI can tell them apart with errors.Is.
var (
	ErrMigrationsPending = errors.New("database migrations are pending")
	ErrSchemaDirty       = errors.New("the database schema is dirty")
	ErrSchemaTooNew      = errors.New("the database schema is newer than this binary")
)

// Migration is one step of the schema.
type Migration struct {
	Version int64
	Name    string // from the file name, e.g. "init"
	sql     string
}

// String names the migration as its file does, e.g. "0001_init".
func (m Migration) String() string { return fmt.Sprintf("%04d_%s", m.Version, m.Name) }

// MigrationStatus is where the database's schema is.
type MigrationStatus struct {
	Version int64       // the last migration applied, or being applied when Dirty
	Dirty   bool        // a migration started and did not finish
	Pending []Migration // known migrations above Version, in order
}

// Migrator applies migrations to the database at a URL. Each call connects,
// takes an advisory lock so two migrators never interleave, and
// disconnects.
type Migrator struct {
	url  string
	fsys fs.FS
}

// NewMigrator returns a Migrator for the built-in migrations; no I/O.
func NewMigrator(url string) *Migrator { return NewMigratorFS(url, Migrations()) }

// NewMigratorFS returns a Migrator for the migrations in fsys (its root
// holds the NNNN_name.up.sql files): tests use it to inject a failing one.
func NewMigratorFS(url string, fsys fs.FS) *Migrator { return &Migrator{url: url, fsys: fsys} }

// migrateLockKey is the advisory lock held while migrating ("hood" in ASCII).
const migrateLockKey = 0x686f6f64

// Up applies every pending migration, each in its own transaction, and
// returns those applied (none when the schema is current). Before each it
// marks the schema dirty at the migration's version, and clears the flag in
// the migration's transaction: a failure leaves the schema dirty. Up
// refuses to run on a dirty schema.
func (m *Migrator) Up(ctx context.Context) ([]Migration, error) {
	migs, err := loadMigrations(m.fsys)
	if err != nil {
		return nil, err
	}
	var applied []Migration
	err = m.locked(ctx, func(conn *pgx.Conn) error {
		st, err := readState(ctx, conn)
		if err != nil {
			return err
		}
		if st.Dirty {
			return dirtyError(st.Version)
		}
		if err := checkNotTooNew(st.Version, migs); err != nil {
			return err
		}
		for _, mig := range pendingAfter(st.Version, migs) {
			if err := apply(ctx, conn, mig); err != nil {
				return err
			}
			applied = append(applied, mig)
		}
		return nil
	})
	return applied, err
}

// Status reports the schema's version, dirty flag and pending migrations.
func (m *Migrator) Status(ctx context.Context) (MigrationStatus, error) {
	migs, err := loadMigrations(m.fsys)
	if err != nil {
		return MigrationStatus{}, err
	}
	var st MigrationStatus
	err = m.connected(ctx, func(conn *pgx.Conn) error {
		st, err = readState(ctx, conn)
		st.Pending = pendingAfter(st.Version, migs)
		return err
	})
	return st, err
}

// Force records the schema as being at version, clean: the last step of a
// recovery, once an operator has made the schema match that version by
// hand. version is 0 (nothing applied) or a known migration's.
func (m *Migrator) Force(ctx context.Context, version int64) error {
	migs, err := loadMigrations(m.fsys)
	if err != nil {
		return err
	}
	if version != 0 && !slices.ContainsFunc(migs, func(mig Migration) bool { return mig.Version == version }) {
		return engine.Errorf(engine.EInvalid, "no migration has version %d", version)
	}
	return m.locked(ctx, func(conn *pgx.Conn) error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			return writeState(ctx, tx, version, false)
		})
	})
}

// connected runs fn on a fresh connection.
func (m *Migrator) connected(ctx context.Context, fn func(*pgx.Conn) error) error {
	cfg, err := pgx.ParseConfig(m.url)
	if err != nil {
		return errInvalidURL
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("migrate: %w", translate(err, "database"))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return fn(conn)
}

// locked runs fn on a connection holding the migration lock, with the
// schema_migrations table in place.
func (m *Migrator) locked(ctx context.Context, fn func(*pgx.Conn) error) error {
	return m.connected(ctx, func(conn *pgx.Conn) error {
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
			return fmt.Errorf("migrate: take the migration lock: %w", translate(err, "database"))
		}
		// Closing the connection would release the lock too; unlocking keeps
		// it short when the caller's context is still alive.
		defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLockKey) //nolint:errcheck
		if _, err := conn.Exec(ctx, createStateTable); err != nil {
			return fmt.Errorf("migrate: create schema_migrations: %w", translate(err, "database"))
		}
		return fn(conn)
	})
}

// apply runs one migration: dirty first, in its own committed write, then
// the SQL and the clean flag in one transaction.
func apply(ctx context.Context, conn *pgx.Conn, mig Migration) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		return writeState(ctx, tx, mig.Version, true)
	})
	if err != nil {
		return fmt.Errorf("migrate: mark version %d dirty: %w", mig.Version, translate(err, "database"))
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, mig.sql); err != nil {
			return err
		}
		return writeState(ctx, tx, mig.Version, false)
	})
	if err != nil {
		return fmt.Errorf("migrate: migration %s failed: %w; %w", mig, err, dirtyError(mig.Version))
	}
	return nil
}

const createStateTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version bigint NOT NULL,
	dirty   boolean NOT NULL
)`

// readState returns the recorded version and dirty flag; a database never
// migrated is at version 0, clean.
func readState(ctx context.Context, q querier) (MigrationStatus, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return MigrationStatus{}, fmt.Errorf("read schema version: %w", translate(err, "database"))
	}
	if !exists {
		return MigrationStatus{}, nil
	}
	var st MigrationStatus
	err := q.QueryRow(ctx, "SELECT version, dirty FROM schema_migrations LIMIT 1").Scan(&st.Version, &st.Dirty)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return MigrationStatus{}, fmt.Errorf("read schema version: %w", translate(err, "database"))
	}
	return st, nil
}

// writeState replaces the single row of schema_migrations.
func writeState(ctx context.Context, tx pgx.Tx, version int64, dirty bool) error {
	if _, err := tx.Exec(ctx, "DELETE FROM schema_migrations"); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, dirty) VALUES ($1, $2)", version, dirty)
	return err
}

// checkSchema is Open's gate: the schema must be clean and exactly at the
// newest built-in migration.
func checkSchema(ctx context.Context, q querier) error {
	migs, err := loadMigrations(Migrations())
	if err != nil {
		return err
	}
	st, err := readState(ctx, q)
	if err != nil {
		return err
	}
	if st.Dirty {
		return dirtyError(st.Version)
	}
	if err := checkNotTooNew(st.Version, migs); err != nil {
		return err
	}
	if pending := pendingAfter(st.Version, migs); len(pending) > 0 {
		return fmt.Errorf("%w: the schema is at version %d and this binary needs version %d (%d pending): run `hoodcloud migrate up`",
			ErrMigrationsPending, st.Version, migs[len(migs)-1].Version, len(pending))
	}
	return nil
}

// dirtyError explains how to recover from a migration that failed part-way.
func dirtyError(version int64) error {
	return fmt.Errorf("%w at version %d: migration %d started and did not finish. To recover: "+
		"(1) inspect the database and the migration's SQL; "+
		"(2) fix the schema by hand, finishing or undoing migration %d; "+
		"(3) run `hoodcloud migrate force VERSION` with the version the schema now matches (%d if finished, %d if undone); "+
		"(4) re-run `hoodcloud migrate up`",
		ErrSchemaDirty, version, version, version, version, version-1)
}

func checkNotTooNew(version int64, migs []Migration) error {
	latest := int64(0)
	if len(migs) > 0 {
		latest = migs[len(migs)-1].Version
	}
	if version > latest {
		return fmt.Errorf("%w: the schema is at version %d and this binary knows up to %d: upgrade hoodcloud",
			ErrSchemaTooNew, version, latest)
	}
	return nil
}

func pendingAfter(version int64, migs []Migration) []Migration {
	var out []Migration
	for _, m := range migs {
		if m.Version > version {
			out = append(out, m)
		}
	}
	return out
}

var migrationName = regexp.MustCompile(`^(\d+)_([A-Za-z0-9_-]+)\.up\.sql$`)

// loadMigrations reads fsys's NNNN_name.up.sql files, sorted by version.
// Other files (such as .down.sql) are ignored.
func loadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var migs []Migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if e.IsDir() || m == nil {
			continue
		}
		version, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %s: the version must be a positive number", e.Name())
		}
		sql, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		migs = append(migs, Migration{Version: version, Name: m[2], sql: string(sql)})
	}
	slices.SortFunc(migs, func(a, b Migration) int { return cmp.Compare(a.Version, b.Version) })
	for i := 1; i < len(migs); i++ {
		if migs[i].Version == migs[i-1].Version {
			return nil, fmt.Errorf("two migrations have version %d", migs[i].Version)
		}
	}
	return migs, nil
}
