package web_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"github.com/hoodcloud/hoodcloud/store/redis"
	"github.com/hoodcloud/hoodcloud/web"
	"github.com/prometheus/client_golang/prometheus"
)

// cheapPasswords keep argon2id fast in tests; production uses the defaults.
var cheapPasswords = engine.PasswordParams{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

const (
	bootstrapToken = "hcadmin_test-bootstrap-token"
	password       = "correct horse battery"
	defaultIP      = "192.0.2.1"
)

var (
	jwtKeyOnce sync.Once
	jwtKey     *rsa.PrivateKey
)

// signingKey is one RSA key for the whole package: generating one per test
// would dominate the run time under -race.
func signingKey(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	jwtKeyOnce.Do(func() {
		var err error
		if jwtKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return jwtKey
}

// fixture is an API server on a bbolt store in a temp dir and an embedded
// cache.
type fixture struct {
	tb       testing.TB
	server   *web.Server
	identity *engine.Identity
	store    engine.Store
	registry *prometheus.Registry
}

type fixtureOption func(*web.Config)

func newFixture(tb testing.TB, opts ...fixtureOption) *fixture {
	tb.Helper()
	st := bolt.New(filepath.Join(tb.TempDir(), "hoodcloud.db"))
	mustOpen(tb, st.Open(context.Background()), st.Close)
	cache := redis.NewEmbedded(redis.Options{})
	mustOpen(tb, cache.Open(context.Background()), cache.Close)
	return newFixtureOn(tb, st, cache, opts...)
}

func newFixtureOn(tb testing.TB, st engine.Store, cache engine.Cache, opts ...fixtureOption) *fixture {
	tb.Helper()
	id, err := engine.NewIdentity(engine.IdentityConfig{
		Users: st, JWTKeys: keys.StaticJWTKeys(signingKey(tb)), BootstrapTokens: []string{bootstrapToken, ""},
		Password: cheapPasswords,
	})
	if err != nil {
		tb.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := web.Config{Identity: id, Cache: cache, Registerer: reg, Gatherer: reg,
		Health: func(context.Context) engine.HealthReport { return engine.HealthReport{Status: engine.Healthy} }}
	for _, o := range opts {
		o(&cfg)
	}
	return &fixture{tb: tb, server: web.New(cfg), identity: id, store: st, registry: reg}
}

func mustOpen(tb testing.TB, err error, closeFn func() error) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() { closeFn() })
}

// request is one HTTP call; zero fields take defaults.
type request struct {
	method, path, credential, body string
	authorization                  string // raw header; overrides credential
	ip                             string
	headers                        map[string]string
}

// requester is any fixture: what scenario tables run against.
type requester interface {
	do(r request) *httptest.ResponseRecorder
}

func (f *fixture) do(r request) *httptest.ResponseRecorder {
	f.tb.Helper()
	req := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
	req.RemoteAddr = cmpStr(r.ip, defaultIP) + ":41000"
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case r.authorization != "":
		req.Header.Set("Authorization", r.authorization)
	case r.credential != "":
		req.Header.Set("Authorization", "Bearer "+r.credential)
	}
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.server.Handler().ServeHTTP(rec, req)
	return rec
}

func cmpStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// user creates a user through the use-case, as the CLI does.
func (f *fixture) user(email string, admin bool) *engine.User {
	f.tb.Helper()
	u, err := f.identity.CreateUser(context.Background(), email, password, admin)
	if err != nil {
		f.tb.Fatalf("create user %s: %v", email, err)
	}
	return u
}

// login signs email in over HTTP and returns the tokens.
func (f *fixture) login(email string) (access, refresh string) {
	f.tb.Helper()
	rec := f.do(request{method: "POST", path: "/api/v1/auth/login", body: `{"email":"` + email + `","password":"` + password + `"}`})
	var out struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	f.decode(rec, 200, &out)
	return out.AccessToken, out.RefreshToken
}

// apiKey creates a key over HTTP and returns its id and secret.
func (f *fixture) apiKey(credential string, scopes ...string) (id, secret string) {
	f.tb.Helper()
	body, _ := json.Marshal(map[string]any{"name": "test", "scopes": scopes})
	rec := f.do(request{method: "POST", path: "/api/v1/api-keys", credential: credential, body: string(body)})
	var out struct{ ID, Key string }
	f.decode(rec, 201, &out)
	return out.ID, out.Key
}

func (f *fixture) decode(rec *httptest.ResponseRecorder, status int, v any) {
	f.tb.Helper()
	if rec.Code != status {
		f.tb.Fatalf("status = %d, want %d (body %s)", rec.Code, status, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		f.tb.Fatalf("decode %s: %v", rec.Body, err)
	}
}

// gauge reads a gauge from the fixture's registry.
func (f *fixture) gauge(name string) float64 {
	f.tb.Helper()
	families, err := f.registry.Gather()
	if err != nil {
		f.tb.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	f.tb.Fatalf("no metric %s", name)
	return 0
}
