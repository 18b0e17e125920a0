package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// conflictMessages names, per unique constraint, what a caller did wrong.
var conflictMessages = map[string]string{
	"users_email_key":               "the email is already taken",
	"api_keys_hash_key":             "an API key with this hash already exists",
	"subscriptions_one_pending_key": "a pending subscription for this purchase already exists",
	"payments_external_id_key":      "a payment with this external id already exists",
	"nodes_subscription_key":        "the subscription already has a node",
	"incidents_open_key":            "an open incident with this dedupe key already exists for the node",
}

// translate turns a pgx error into a domain error where one applies; what
// names the record for messages ("node", "user"). Other errors are wrapped
// with what (EInternal); the caller's context ending is returned as it is.
func translate(err error, what string) error {
	var (
		connErr   *pgconn.ConnectError
		pgErr     *pgconn.PgError
		domainErr *engine.Error
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &domainErr): // already translated
		return err
	case errors.Is(err, pgx.ErrNoRows):
		return engine.Errorf(engine.ENotFound, "%s not found", what)
	case errors.As(err, &connErr):
		// Before the context check: a connect timeout is a dead server, not
		// the caller giving up.
		return unavailable(err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case connectionFailed(err):
		return unavailable(err)
	case errors.As(err, &pgErr):
		return translateServerError(pgErr, what)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// translateServerError maps SQLSTATE codes to domain codes.
func translateServerError(e *pgconn.PgError, what string) error {
	switch {
	case e.Code == "23505": // unique_violation
		if msg, ok := conflictMessages[e.ConstraintName]; ok {
			return engine.Errorf(engine.EConflict, "%s", msg)
		}
		return engine.Errorf(engine.EConflict, "%s already exists", what)
	case e.Code == "23503": // foreign_key_violation
		return engine.Errorf(engine.EInvalid, "%s refers to a record that does not exist", what)
	case e.Code == "40001", e.Code == "40P01": // serialization failure, deadlock
		return engine.Errorf(engine.EConflict, "%s was changed concurrently; retry", what)
	case strings.HasPrefix(e.Code, "22"), e.Code == "23502", e.Code == "23514":
		// Data exceptions and NOT NULL/CHECK violations: the input breaks a rule.
		return engine.Errorf(engine.EInvalid, "%s is invalid: %s", what, e.Message)
	}
	return fmt.Errorf("%s: %w", what, e)
}

// connectionFailed reports whether err means the server could not be
// reached or dropped us, rather than that it refused a statement.
func connectionFailed(err error) bool {
	var (
		connErr *pgconn.ConnectError
		netErr  net.Error
		pgErr   *pgconn.PgError
	)
	switch {
	case errors.As(err, &connErr), errors.As(err, &netErr), pgconn.Timeout(err):
		return true
	case errors.As(err, &pgErr):
		// 08: connection exception; 53: insufficient resources (too many
		// connections); 57P01-57P03: the server is shutting down or starting.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "53") ||
			pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	return false
}

// unavailable wraps a connection failure as EUnavailable. The cause is kept
// for logs, minus pgx's ConnectError prefix, which names the user and
// database of the URL.
func unavailable(err error) error {
	cause := err
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) && connErr.Unwrap() != nil {
		cause = connErr.Unwrap()
	}
	return fmt.Errorf("%w: %w", engine.Errorf(engine.EUnavailable, "the database is unavailable"), oneLine{cause})
}

// oneLine shows a multi-line error (pgx lists each connection attempt on
// its own line) on one line, without repeats, for logs.
type oneLine struct{ err error }

func (e oneLine) Unwrap() error { return e.err }

func (e oneLine) Error() string {
	var lines []string
	for _, l := range strings.Split(e.err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" && !slices.Contains(lines, l) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "; ")
}

// notFoundIfMissingParent turns a foreign key violation into ENotFound, for
// the methods whose contract says a missing parent is "not found".
func notFoundIfMissingParent(err error, parent string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" {
		return engine.Errorf(engine.ENotFound, "%s not found", parent)
	}
	return err
}

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
