package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
)

// PostgresDatabase creates an empty database of the test's own on the
// server at HOODCLOUD_TEST_POSTGRES_URL, drops it when the test ends, and
// returns its URL.
func PostgresDatabase(tb testing.TB) string {
	tb.Helper()
	server := PostgresURL(tb)
	var b [6]byte
	rand.Read(b[:])
	name := "hoodcloud_test_" + hex.EncodeToString(b[:])
	if err := adminExec(server, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		if err := adminExec(server, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop test database %s: %v", name, err)
		}
	})
	return PostgresDatabaseURL(tb, name, "")
}

// PostgresDatabaseURL is the server URL pointed at database, with password
// replaced when not empty.
func PostgresDatabaseURL(tb testing.TB, database, password string) string {
	tb.Helper()
	u, err := url.Parse(PostgresURL(tb))
	if err != nil {
		tb.Fatal("HOODCLOUD_TEST_POSTGRES_URL is not a URL")
	}
	u.Path = "/" + database
	if password != "" {
		u.User = url.UserPassword(u.User.Username(), password)
	}
	return u.String()
}

func adminExec(server, sql string) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}
