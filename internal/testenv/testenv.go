// Package testenv finds the external servers that adapter tests run
// against. A missing server skips the test loudly, or fails it when
// HOODCLOUD_TEST_REQUIRE_EXTERNAL=1 (as CI sets).
package testenv

import (
	"net"
	"net/url"
	"os"
	"testing"
	"time"
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
	v := os.Getenv(name)
	switch {
	case v == "" && RequireExternal():
		tb.Fatalf("%s is not set but HOODCLOUD_TEST_REQUIRE_EXTERNAL=1: the %s tests must run", name, server)
	case v == "":
		tb.Skipf("SKIPPING %s tests: set %s to run them against a real server", server, name)
	case !reachable(v) && RequireExternal():
		tb.Fatalf("the %s server of %s does not answer but HOODCLOUD_TEST_REQUIRE_EXTERNAL=1", server, name)
	case !reachable(v):
		tb.Skipf("SKIPPING %s tests: the server of %s does not answer", server, name)
	}
	return v
}

// reachable dials the URL's host so a machine without the server skips
// instead of failing on connection errors.
func reachable(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return true // let the test report the malformed URL
	}
	conn, err := net.DialTimeout("tcp", u.Host, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}
