// Package postgres implements engine.Store on PostgreSQL with pgx: native
// tables, embedded SQL migrations with a version and a dirty flag (see
// migrate.go), optimistic concurrency on a version column and backend
// errors translated into engine error codes.
package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// defaultConnectTimeout bounds a connection attempt when the URL does not
// set connect_timeout, so a dead server fails fast instead of hanging.
const defaultConnectTimeout = 10 * time.Second

// Store is engine.Store on a pgx connection pool.
type Store struct {
	url     string // may hold a password: never logged or put in an error
	reg     prometheus.Registerer
	pool    *pgxpool.Pool
	metrics *metrics
}

var _ engine.Store = (*Store)(nil)

// New returns a Store for the database at url (postgres://…); it does no
// I/O. reg receives the store's metrics; nil registers none.
func New(url string, reg prometheus.Registerer) *Store {
	return &Store{url: url, reg: reg, metrics: newMetrics()}
}

// Open connects the pool and refuses to proceed unless the schema is
// exactly the one this binary's migrations describe: pending migrations or
// a dirty schema must be dealt with by `hoodcloud migrate` first.
func (s *Store) Open(ctx context.Context) error {
	cfg, err := pgxpool.ParseConfig(s.url)
	if err != nil {
		return errInvalidURL
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("open postgres store: %w", translate(err, "database"))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return fmt.Errorf("open postgres store: connect: %w", translate(err, "database"))
	}
	if err := checkSchema(ctx, pool); err != nil {
		pool.Close()
		return fmt.Errorf("open postgres store: %w", err)
	}
	if err := s.metrics.register(s.reg, pool); err != nil {
		pool.Close()
		return fmt.Errorf("open postgres store: %w", err)
	}
	s.pool = pool
	return nil
}

// Close unregisters the metrics and closes the pool, waiting for
// connections in use to be returned.
func (s *Store) Close() error {
	if s.pool == nil {
		return nil
	}
	s.metrics.unregister(s.reg)
	s.pool.Close()
	s.pool = nil
	return nil
}

// Ping checks a connection can be acquired and answers.
func (s *Store) Ping(ctx context.Context) error {
	defer s.observe("ping")()
	if s.pool == nil {
		return engine.Errorf(engine.EUnavailable, "postgres store is not open")
	}
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", translate(err, "database"))
	}
	return nil
}

// errInvalidURL hides the parser's message: it quotes the URL, which may
// hold a password.
var errInvalidURL = engine.Errorf(engine.EInvalid,
	"invalid postgres url (not shown: it may hold a password); expected postgres://user:password@host:port/database?sslmode=…")

// querier is what the pool and a transaction have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// inTx runs fn in a transaction, committing if it returns nil. A
// leader-only write is fenced by its epoch.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) (err error) {
	defer func() { fenceDone(ctx, err) }()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit this is a no-op
	if err := fence(ctx, tx); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// updateVersioned runs an UPDATE whose WHERE clause ends with
// "id = $1 AND version = $2" and bumps *version when a row matched. No row
// means the record is missing or the version is stale; a second look tells
// which.
func (s *Store) updateVersioned(ctx context.Context, table, what, id string, version *int64, sql string, args ...any) error {
	tag, err := s.exec(ctx, sql, append([]any{id, *version}, args...)...)
	if err != nil {
		return translate(err, what)
	}
	if tag.RowsAffected() == 1 {
		*version++
		return nil
	}
	return s.missingOrStale(ctx, table, what, id)
}

// missingOrStale explains why a versioned write matched no row.
func (s *Store) missingOrStale(ctx context.Context, table, what, id string) error {
	var exists bool
	err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+table+" WHERE id = $1)", id).Scan(&exists)
	switch {
	case err != nil:
		return translate(err, what)
	case !exists:
		return engine.Errorf(engine.ENotFound, "%s not found", what)
	default:
		return engine.Errorf(engine.EConflict, "%s was changed by someone else (stale version)", what)
	}
}

// collect reads every row with scan, closing rows.
func collect[T any](rows pgx.Rows, err error, what string, scan func(pgx.Row) (*T, error)) ([]*T, error) {
	if err != nil {
		return nil, translate(err, what)
	}
	defer rows.Close()
	var out []*T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, translate(err, what)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, what)
	}
	return out, nil
}

// noLimit maps a non-positive limit to SQL's LIMIT NULL (no limit).
func noLimit(limit int) any {
	if limit <= 0 {
		return nil
	}
	return limit
}
