// Package testenv finds the external servers that adapter tests run
// against. A missing server skips the test loudly, or fails it when
// HOODCLOUD_TEST_REQUIRE_EXTERNAL=1 (as CI sets).
package testenv

import (
	"os"
	"testing"
)

// PostgresURL returns HOODCLOUD_TEST_POSTGRES_URL: a server URL whose user
// may create and drop databases.
func PostgresURL(tb testing.TB) string {
	return lookup(tb, "HOODCLOUD_TEST_POSTGRES_URL", "PostgreSQL")
}

// RedisURL returns HOODCLOUD_TEST_REDIS_URL.
func RedisURL(tb testing.TB) string { return lookup(tb, "HOODCLOUD_TEST_REDIS_URL", "Redis") }

// NATSURL returns HOODCLOUD_TEST_NATS_URL: a NATS server with JetStream.
func NATSURL(tb testing.TB) string { return lookup(tb, "HOODCLOUD_TEST_NATS_URL", "NATS") }

// RequireExternal reports whether absent servers must fail the tests.
func RequireExternal() bool { return os.Getenv("HOODCLOUD_TEST_REQUIRE_EXTERNAL") == "1" }

func lookup(tb testing.TB, name, server string) string {
	tb.Helper()
	if v := os.Getenv(name); v != "" {
		return v
	}
	if RequireExternal() {
		tb.Fatalf("%s is not set but HOODCLOUD_TEST_REQUIRE_EXTERNAL=1: the %s tests must run", name, server)
	}
	tb.Skipf("SKIPPING %s tests: set %s to run them against a real server", server, name)
	return ""
}
