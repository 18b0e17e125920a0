package redis_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/enginetest"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/hoodcloud/hoodcloud/store/redis"
	goredis "github.com/redis/go-redis/v9"
)

func TestEmbeddedCache(t *testing.T) {
	enginetest.RunCache(t, func(t *testing.T) engine.Cache { return openEmbedded(t) })
}

func TestRedisCache(t *testing.T) {
	url := testenv.RedisURL(t)
	enginetest.RunCache(t, func(t *testing.T) engine.Cache { return openExternal(t, url) })
}

func TestKeysCarryPrefixAndAckLeavesNone(t *testing.T) {
	srv := startMiniredis(t)
	c := mustOpen(t, redis.New("redis://"+srv.Addr(), redis.Options{KeyPrefix: "tenant-a:"}))
	ctx := context.Background()
	must(t, c.EnqueueCommand(ctx, "n1", "c1"))
	must(t, c.SetProgress(ctx, &engine.CommandProgress{CommandID: "c1"}, time.Minute))
	_, err := c.SetIfAbsent(ctx, "payment:1", time.Minute)
	must(t, err)
	_, _, err = c.Lock(ctx, "rollout:1", time.Minute)
	must(t, err)
	for _, kind := range []engine.RateWindow{engine.FixedWindow, engine.SlidingWindow} {
		_, err = c.Allow(ctx, "client", 10, time.Minute, kind)
		must(t, err)
	}
	keys := srv.Keys()
	if len(keys) < 6 {
		t.Fatalf("keys = %q, want one or more per kind of state", keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "tenant-a:") {
			t.Errorf("key %q lacks the prefix", k)
		}
	}

	must(t, c.AckCommand(ctx, "n1", "c1"))
	for _, k := range srv.Keys() {
		if strings.Contains(k, "queue") {
			t.Errorf("key %q left behind by the ack of the last command", k)
		}
	}
}

// TestUnavailableWhenServerStops: every operation reports a cache that went
// away as EUnavailable, giving up rather than waiting on it, and without the
// server's address.
func TestUnavailableWhenServerStops(t *testing.T) {
	srv := startMiniredis(t)
	addr := srv.Addr()
	c := mustOpen(t, redis.New("redis://"+addr, redis.Options{}))
	srv.Close()

	ctx := context.Background()
	ops := map[string]func() error{
		"EnqueueCommand":  func() error { return c.EnqueueCommand(ctx, "n", "c") },
		"PendingCommands": func() error { _, err := c.PendingCommands(ctx, "n", 1); return err },
		"AckCommand":      func() error { return c.AckCommand(ctx, "n", "c") },
		"SetProgress": func() error {
			return c.SetProgress(ctx, &engine.CommandProgress{CommandID: "c"}, time.Minute)
		},
		"GetProgress":  func() error { _, err := c.GetProgress(ctx, "c"); return err },
		"SetIfAbsent":  func() error { _, err := c.SetIfAbsent(ctx, "k", time.Minute); return err },
		"DeleteKey":    func() error { return c.DeleteKey(ctx, "k") },
		"AllowFixed":   func() error { _, err := c.Allow(ctx, "k", 1, time.Minute, engine.FixedWindow); return err },
		"AllowSliding": func() error { _, err := c.Allow(ctx, "k", 1, time.Minute, engine.SlidingWindow); return err },
		"Lock":         func() error { _, _, err := c.Lock(ctx, "k", time.Minute); return err },
		"Unlock":       func() error { return c.Unlock(ctx, "k", "t") },
		"Ping":         func() error { return c.Ping(ctx) },
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			assertUnavailable(t, op, addr)
		})
	}
}

// TestUnavailableWhenServerHangs: a server that accepts connections but
// never answers is given up after the I/O timeout.
func TestUnavailableWhenServerHangs(t *testing.T) {
	addr := silentServer(t)
	c := redis.New("redis://"+addr, redis.Options{DialTimeout: 200 * time.Millisecond, IOTimeout: 200 * time.Millisecond})
	assertUnavailable(t, func() error { return c.Open(context.Background()) }, addr)
}

// TestCancelledCallIsNotAnOutage: a caller that gives up gets its own
// context error back, not EUnavailable (which would trip circuit breakers).
func TestCancelledCallIsNotAnOutage(t *testing.T) {
	c := openEmbedded(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := c.EnqueueCommand(ctx, "n1", "c1")
	if !errors.Is(err, context.Canceled) || engine.IsCode(err, engine.EUnavailable) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestOpenErrorsHideTheURL(t *testing.T) {
	closed := closedAddr(t)
	tests := []struct {
		name string
		url  string
		want engine.Code
	}{
		{"nothing listens", "redis://hood:s3cret@" + closed + "/0", engine.EUnavailable},
		{"bad port", "redis://hood:s3cret@127.0.0.1:port/0", engine.EInvalid},
		{"bad scheme", "http://hood:s3cret@127.0.0.1:6379/0", engine.EInvalid},
		{"bad database", "redis://hood:s3cret@127.0.0.1:6379/db", engine.EInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := redis.New(tc.url, redis.Options{})
			err := c.Open(context.Background())
			if got := engine.ErrorCode(err); got != tc.want {
				t.Fatalf("Open: %v (code %q), want code %q", err, got, tc.want)
			}
			if msg := err.Error(); strings.Contains(msg, "s3cret") || strings.Contains(msg, "hood") {
				t.Fatalf("error %q shows the URL's credentials", msg)
			}
		})
	}
}

func TestEmbeddedClose(t *testing.T) {
	c := redis.NewEmbedded(redis.Options{})
	must(t, c.Open(context.Background()))
	must(t, c.Close())
	assertUnavailable(t, func() error { return c.Ping(context.Background()) }, "")
	must(t, c.Close()) // twice
}

// TestEmbeddedServersAreSeparate: each embedded cache runs its own server
// on its own port, so tests and instances never share state.
func TestEmbeddedServersAreSeparate(t *testing.T) {
	a, b := openEmbedded(t), openEmbedded(t)
	ctx := context.Background()
	must(t, a.EnqueueCommand(ctx, "n1", "c1"))
	got, err := b.PendingCommands(ctx, "n1", 10)
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("the second server sees %q queued on the first", got)
	}
}

// TestEmbeddedExpiresOnTheWallClock: without a test moving its clock, the
// embedded server expires keys as real time passes, within a tick.
func TestEmbeddedExpiresOnTheWallClock(t *testing.T) {
	c := openEmbedded(t)
	ctx := context.Background()
	_, ok, err := c.Lock(ctx, "k", 100*time.Millisecond)
	must(t, err)
	if !ok {
		t.Fatal("first Lock refused")
	}
	deadline := time.Now().Add(testenv.Patience)
	for {
		_, ok, err := c.Lock(ctx, "k", time.Minute)
		must(t, err)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a lock with a 100ms TTL was still held after %s", testenv.Patience)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestInvalidArguments(t *testing.T) {
	c := openEmbedded(t)
	ctx := context.Background()
	tests := map[string]func() error{
		"progress without ttl": func() error {
			return c.SetProgress(ctx, &engine.CommandProgress{CommandID: "c"}, 0)
		},
		"idempotency key with sub-millisecond ttl": func() error {
			_, err := c.SetIfAbsent(ctx, "k", time.Microsecond)
			return err
		},
		"lock with negative ttl": func() error { _, _, err := c.Lock(ctx, "k", -time.Second); return err },
		"zero limit":             func() error { _, err := c.Allow(ctx, "k", 0, time.Minute, engine.FixedWindow); return err },
		"zero window":            func() error { _, err := c.Allow(ctx, "k", 1, 0, engine.SlidingWindow); return err },
		"unknown window kind":    func() error { _, err := c.Allow(ctx, "k", 1, time.Minute, engine.RateWindow(7)); return err },
	}
	for name, op := range tests {
		t.Run(name, func(t *testing.T) {
			if err := op(); !engine.IsCode(err, engine.EInvalid) {
				t.Fatalf("got %v, want EInvalid", err)
			}
		})
	}
}

// openEmbedded returns a started embedded cache, closed when t ends. Its
// type keeps the Advance method that lets the suite move its clock.
func openEmbedded(t testing.TB) *redis.Embedded {
	t.Helper()
	c := redis.NewEmbedded(redis.Options{})
	must(t, c.Open(context.Background()))
	t.Cleanup(func() { must(t, c.Close()) })
	return c
}

// openExternal returns a cache on the server at url under a prefix of its
// own, whose keys are deleted when t ends.
func openExternal(t testing.TB, url string) *redis.Cache {
	t.Helper()
	prefix := "hoodcloud-test:" + engine.NewID("t") + ":"
	c := mustOpen(t, redis.New(url, redis.Options{KeyPrefix: prefix}))
	t.Cleanup(func() { deleteKeys(t, url, prefix) })
	return c
}

func mustOpen(t testing.TB, c *redis.Cache) *redis.Cache {
	t.Helper()
	must(t, c.Open(context.Background()))
	t.Cleanup(func() { must(t, c.Close()) })
	return c
}

// deleteKeys removes the keys starting with prefix, and nothing else: the
// server may be shared.
func deleteKeys(t testing.TB, url, prefix string) {
	t.Helper()
	opts, err := goredis.ParseURL(url)
	must(t, err)
	client := goredis.NewClient(opts)
	defer client.Close()
	ctx := context.Background()
	iter := client.Scan(ctx, 0, prefix+"*", 100).Iterator()
	for iter.Next(ctx) {
		must(t, client.Del(ctx, iter.Val()).Err())
	}
	must(t, iter.Err())
}

// startMiniredis runs a bare miniredis on a random port, for tests that
// look at the keys or stop the server under a Cache.
func startMiniredis(t testing.TB) *miniredis.Miniredis {
	t.Helper()
	srv := miniredis.NewMiniRedis()
	must(t, srv.StartAddr("127.0.0.1:0"))
	t.Cleanup(srv.Close)
	return srv
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := l.Addr().String()
	must(t, l.Close())
	return addr
}

// silentServer accepts connections and never answers.
func silentServer(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		for {
			conn, err := l.Accept()
			if err != nil {
				break
			}
			conns = append(conns, conn)
		}
		for _, c := range conns {
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

// assertUnavailable runs op and checks it gives up with EUnavailable (the
// caller sets no deadline: a call that waited on the server for ever would
// fail the test after testenv.Patience), without naming addr.
func assertUnavailable(t testing.TB, op func() error, addr string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- op() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(testenv.Patience):
		t.Fatalf("still waiting on the server after %s", testenv.Patience)
	}
	if !engine.IsCode(err, engine.EUnavailable) {
		t.Fatalf("got %v, want EUnavailable", err)
	}
	if addr != "" && strings.Contains(err.Error(), addr) {
		t.Fatalf("error %q names the server's address", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
