package web_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"github.com/hoodcloud/hoodcloud/store/postgres"
	"github.com/hoodcloud/hoodcloud/web"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkAPI measures authenticated requests through the whole HTTP
// stack (gin, JSON, JWT verification, the store) on each store, side by
// side. Rate limits are counted in memory and set out of reach, so the
// stores make the difference. Reports ns/op and the p99 of single requests.
//
//	HOODCLOUD_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable \
//	  go test ./web -run '^$' -bench BenchmarkAPI -benchtime 2s
func BenchmarkAPI(b *testing.B) {
	stores := []struct {
		name string
		open func(testing.TB) engine.Store
	}{
		{"bolt", openBolt},
		{"postgres", openPostgres},
	}
	for _, s := range stores {
		b.Run(s.name, func(b *testing.B) {
			f := newFixtureOn(b, s.open(b), nil, func(c *web.Config) { c.Limits.APIPerMinute = 1 << 30 })
			f.user("bench@example.com", false)
			token, _ := f.login("bench@example.com")
			b.Run("GET_me", func(b *testing.B) {
				benchRequests(b, f, request{method: "GET", path: "/api/v1/me", credential: token}, 200)
			})
			b.Run("POST_api-keys", func(b *testing.B) {
				benchRequests(b, f, request{method: "POST", path: "/api/v1/api-keys", credential: token,
					body: `{"name":"bench","scopes":["nodes:read"]}`}, 201)
			})
		})
	}
}

// benchRequests serves r b.N times, timing each, and reports the p99.
func benchRequests(b *testing.B, f *fixture, r request, status int) {
	latencies := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
		req.Header.Set("Authorization", "Bearer "+r.credential)
		rec := httptest.NewRecorder()
		start := time.Now()
		f.server.Handler().ServeHTTP(rec, req)
		latencies = append(latencies, time.Since(start))
		if rec.Code != status {
			b.Fatalf("status = %d, want %d (body %s)", rec.Code, status, rec.Body)
		}
	}
	b.StopTimer()
	slices.Sort(latencies)
	b.ReportMetric(float64(latencies[(len(latencies)-1)*99/100].Nanoseconds()), "p99-ns")
}

func openBolt(tb testing.TB) engine.Store {
	tb.Helper()
	st := bolt.New(filepath.Join(tb.TempDir(), "hoodcloud.db"))
	mustOpen(tb, st.Open(context.Background()), st.Close)
	return st
}

func openPostgres(tb testing.TB) engine.Store {
	tb.Helper()
	url := testenv.PostgresDatabase(tb)
	if _, err := postgres.NewMigrator(url).Up(context.Background()); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	st := postgres.New(url, prometheus.NewRegistry())
	mustOpen(tb, st.Open(context.Background()), st.Close)
	return st
}
