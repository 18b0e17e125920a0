package web_test

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"github.com/hoodcloud/hoodcloud/store/redis"
	"github.com/hoodcloud/hoodcloud/web"
)

func badLogin(ip string) request {
	return request{method: "POST", path: "/api/v1/auth/login", ip: ip, body: `{"email":"nobody@example.com","password":"wrong password"}`}
}

// wantRetryAfter checks a 429 says when to come back, within the minute.
func wantRetryAfter(t *testing.T, f *fixture, r request) {
	t.Helper()
	rec := f.do(r)
	if rec.Code != 429 {
		t.Fatalf("status = %d, want 429 (body %s)", rec.Code, rec.Body)
	}
	secs, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	if err != nil || secs < 1 || secs > 60 {
		t.Fatalf("Retry-After = %q, want 1..60 seconds", rec.Header().Get("Retry-After"))
	}
}

func TestSignInIsLimitedPerClientIP(t *testing.T) {
	f := newFixture(t)
	for i := range 20 {
		if rec := f.do(badLogin("192.0.2.10")); rec.Code != 401 {
			t.Fatalf("login %d: status %d, want 401", i+1, rec.Code)
		}
	}
	wantRetryAfter(t, f, badLogin("192.0.2.10"))
	if rec := f.do(badLogin("192.0.2.11")); rec.Code != 401 {
		t.Fatalf("another client: status %d, want 401", rec.Code)
	}
	t.Run("X-Forwarded-For is ignored from untrusted peers", func(t *testing.T) {
		r := badLogin("192.0.2.10")
		r.headers = map[string]string{"X-Forwarded-For": "198.51.100.77", "X-Real-IP": "198.51.100.78"}
		rec := f.do(r)
		if rec.Code != 429 {
			t.Fatalf("status = %d, want 429: a spoofed header escaped the limit", rec.Code)
		}
	})
}

func TestAPIIsLimitedPerCredential(t *testing.T) {
	f := newFixture(t, func(c *web.Config) { c.Limits.APIPerMinute = 3 })
	a := newAccounts(f) // makes 4 keys with aliceJWT: already over 3
	wantRetryAfter(t, f, request{method: "GET", path: "/api/v1/me", credential: a.aliceJWT})
	for i := range 3 {
		if rec := f.do(request{method: "GET", path: "/api/v1/me", credential: a.aliceReadKey}); rec.Code != 200 {
			t.Fatalf("request %d with the key: %d", i+1, rec.Code)
		}
	}
	wantRetryAfter(t, f, request{method: "GET", path: "/api/v1/me", credential: a.aliceReadKey})
	if rec := f.do(request{method: "GET", path: "/api/v1/me", credential: a.rootJWT}); rec.Code != 200 {
		t.Fatalf("another credential: %d, want 200", rec.Code)
	}
}

// TestBreakerFallsBackToMemoryAndBack stops the cache server under the
// limiter and starts it again on the same address.
func TestBreakerFallsBackToMemoryAndBack(t *testing.T) {
	srv := miniredis.NewMiniRedis()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	cache := redis.New("redis://"+srv.Addr(), redis.Options{})
	mustOpen(t, cache.Open(context.Background()), cache.Close)
	st := bolt.New(filepath.Join(t.TempDir(), "hoodcloud.db"))
	mustOpen(t, st.Open(context.Background()), st.Close)
	const probe = 50 * time.Millisecond
	f := newFixtureOn(t, st, cache, func(c *web.Config) {
		c.Limits = web.Limits{AuthPerMinute: 5, BreakerFailures: 2, BreakerProbe: probe}
	})
	const mode = "hoodcloud_ratelimit_mode"
	if got := f.gauge(mode); got != 1 {
		t.Fatalf("mode = %v at start, want 1 (cache)", got)
	}
	f.do(badLogin("192.0.2.20")) // counted in the cache

	srv.Close()
	for i := range 5 {
		if rec := f.do(badLogin("192.0.2.21")); rec.Code != 401 {
			t.Fatalf("login %d with the cache down: %d, want 401", i+1, rec.Code)
		}
	}
	if got := f.gauge(mode); got != 0 {
		t.Fatalf("mode = %v with the cache down, want 0 (memory)", got)
	}
	wantRetryAfter(t, f, badLogin("192.0.2.21")) // still limited, in memory

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// Requests from another client probe the cache once a probe is due.
	testenv.WaitFor(t, "the limiter to count in the cache again", func() bool {
		f.do(badLogin("192.0.2.22"))
		return f.gauge(mode) == 1
	})
	if rec := f.do(badLogin("192.0.2.21")); rec.Code != 401 {
		t.Fatalf("first login after the cache is back: %d, want 401 (counted afresh in the cache)", rec.Code)
	}
	if got := f.gauge(mode); got != 1 {
		t.Fatalf("mode = %v after the cache is back, want 1", got)
	}
	if n := len(srv.Keys()); n == 0 {
		t.Fatal("no rate-limit counter in the cache after switching back")
	}
}

func TestNoCacheCountsInMemory(t *testing.T) {
	st := bolt.New(filepath.Join(t.TempDir(), "hoodcloud.db"))
	mustOpen(t, st.Open(context.Background()), st.Close)
	f := newFixtureOn(t, st, nil, func(c *web.Config) { c.Limits.AuthPerMinute = 2 })
	f.do(badLogin(defaultIP))
	f.do(badLogin(defaultIP))
	wantRetryAfter(t, f, badLogin(defaultIP))
	if got := f.gauge("hoodcloud_ratelimit_mode"); got != 0 {
		t.Fatalf("mode = %v without a cache, want 0", got)
	}
}
