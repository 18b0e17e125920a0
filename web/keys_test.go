package web_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"github.com/hoodcloud/hoodcloud/store/redis"
	"github.com/hoodcloud/hoodcloud/store/secrets"
	"github.com/hoodcloud/hoodcloud/web"
	"github.com/prometheus/client_golang/prometheus"
)

type jwksOut struct {
	Keys []struct{ Kty, Use, Alg, Kid, N, E string }
}

func (f *fixture) jwks() jwksOut {
	f.tb.Helper()
	rec := f.do(request{method: "GET", path: "/.well-known/jwks.json"})
	var out jwksOut
	f.decode(rec, 200, &out)
	if cc := rec.Header().Get("Cache-Control"); !strings.HasPrefix(cc, "public") {
		f.tb.Fatalf("Cache-Control %q: the JWKS is public and cacheable", cc)
	}
	return out
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	head, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Kid string }
	json.Unmarshal(head, &h)
	return h.Kid
}

func TestJWKSServesTheKeyTokensName(t *testing.T) {
	f := newFixture(t)
	f.user("ana@example.com", false)
	access, _ := f.login("ana@example.com")
	set := f.jwks()
	if len(set.Keys) != 1 {
		t.Fatalf("%d keys, want 1", len(set.Keys))
	}
	k := set.Keys[0]
	if k.Kty != "RSA" || k.Use != "sig" || k.Alg != "RS256" || k.N == "" || k.E != "AQAB" {
		t.Fatalf("JWK %+v, want an RS256 signing key with n and e", k)
	}
	if k.Kid != keys.JWKThumbprint(&signingKey(t).PublicKey) || kidOf(t, access) != k.Kid {
		t.Fatalf("kid %q; the token names %q; want both the key's thumbprint", k.Kid, kidOf(t, access))
	}
}

// rotationFixture is the API over boot material in a keyring, with key
// rotation configured.
type rotationFixture struct {
	*fixture
	boot *keys.BootMaterial
	keys engine.Secrets
	rot  *keys.Rotations
}

func newRotationFixture(t *testing.T) *rotationFixture {
	t.Helper()
	ctx := context.Background()
	st := bolt.New(filepath.Join(t.TempDir(), "hoodcloud.db"))
	mustOpen(t, st.Open(ctx), st.Close)
	cache := redis.NewEmbedded(redis.Options{})
	mustOpen(t, cache.Open(ctx), cache.Close)
	keyring := secrets.New(st, secrets.Options{DataDir: t.TempDir()})
	mustOpen(t, keyring.Open(ctx), keyring.Close)
	material, err := keys.NewBoot(keys.BootConfig{Secrets: keyring})
	if err != nil {
		t.Fatal(err)
	}
	boot, err := material.Ensure(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id, err := engine.NewIdentity(engine.IdentityConfig{Users: st, JWTKeys: boot.JWTKeys,
		BootstrapTokens: []string{bootstrapToken}, Password: cheapPasswords})
	if err != nil {
		t.Fatal(err)
	}
	rot, err := keys.NewRotations(keys.RotationsConfig{Secrets: keyring, Boot: boot, Nodes: st, Keys: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rot.Close)
	reg := prometheus.NewRegistry()
	srv := web.New(web.Config{Identity: id, Cache: cache, Registerer: reg, Gatherer: reg, Store: st, Rotation: rot,
		SealingKey: func() []byte { return boot.SealedBox().PublicKey() },
		Health:     func(context.Context) engine.HealthReport { return engine.HealthReport{Status: engine.Healthy} }})
	return &rotationFixture{fixture: &fixture{tb: t, server: srv, identity: id, store: st, registry: reg}, boot: boot, keys: keyring, rot: rot}
}

func TestKeyRotationIsForAdministrators(t *testing.T) {
	f := newRotationFixture(t)
	f.user("cus@example.com", false)
	customer, _ := f.login("cus@example.com")
	_, apiKey := f.apiKey(customer, engine.ScopeNodesRead, engine.ScopeNodesWrite)
	tests := []struct {
		name       string
		credential string
		what       string
		status     int
		body       string
	}{
		{"anonymous", "", "jwt", 401, `"code":"unauthorized"`},
		{"a customer", customer, "jwt", 403, `"code":"forbidden"`},
		{"a customer's API key", apiKey, "sealed-box", 403, `"code":"forbidden"`},
		{"an unknown key", bootstrapToken, "passwords", 404, `"code":"not_found"`},
		{"a master key with no version yet", bootstrapToken, "master", 404, "no node has a data key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.do(request{method: "POST", path: "/api/v1/admin/rotate/" + tt.what, credential: tt.credential})
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.body) || rec.Header().Get("Content-Type") != "application/json; charset=utf-8" {
				t.Fatalf("got %d %s (%s), want %d JSON with %s", rec.Code, rec.Body, rec.Header().Get("Content-Type"), tt.status, tt.body)
			}
		})
	}
	if n := len(f.jwks().Keys); n != 1 {
		t.Fatalf("refused rotations left %d keys in the JWKS, want 1", n)
	}
}

type rotationOut struct {
	Kind       string               `json:"kind"`
	KeyID      string               `json:"key_id"`
	GraceUntil time.Time            `json:"grace_until"`
	Rewrap     *keys.RewrapProgress `json:"rewrap"`
}

func (f *rotationFixture) rotate(what, body string, status int) rotationOut {
	f.tb.Helper()
	var out rotationOut
	f.decode(f.do(request{method: "POST", path: "/api/v1/admin/rotate/" + what, credential: bootstrapToken, body: body}), status, &out)
	return out
}

func TestJWTRotationOverTheAPI(t *testing.T) {
	f := newRotationFixture(t)
	f.user("ana@example.com", false)
	before, _ := f.login("ana@example.com")

	wantStatus(t, f.do(request{method: "POST", path: "/api/v1/admin/rotate/jwt", credential: bootstrapToken, body: `{"grace":"soon"}`}), 400, "grace")
	out := f.rotate("jwt", `{"grace":"48h"}`, 200)
	if out.KeyID == kidOf(t, before) || time.Until(out.GraceUntil) < 47*time.Hour {
		t.Fatalf("rotation %+v: want a new kid and the old key honoured for 48h", out)
	}
	set := f.jwks()
	if len(set.Keys) != 2 || set.Keys[0].Kid != out.KeyID || set.Keys[1].Kid != kidOf(t, before) {
		t.Fatalf("JWKS %+v: want the new key, then the old one", set)
	}
	wantStatus(t, f.do(request{method: "GET", path: "/api/v1/me", credential: before}), 200, "ana@example.com")
	after, _ := f.login("ana@example.com")
	if kidOf(t, after) != out.KeyID {
		t.Fatal("a session opened after the rotation is not signed by the new key")
	}
}

func TestSealedBoxRotationOverTheAPI(t *testing.T) {
	f := newRotationFixture(t)
	publicKey := func() string {
		var out struct {
			PublicKey string `json:"public_key"`
		}
		f.decode(f.do(request{method: "GET", path: "/api/v1/crypto/public-key"}), 200, &out)
		return out.PublicKey
	}
	old := publicKey()
	f.rotate("sealed-box", "", 200)
	if publicKey() == old {
		t.Fatal("the served public key did not change")
	}
}

func TestMasterRotationOverTheAPIRewrapsInTheBackground(t *testing.T) {
	f := newRotationFixture(t)
	ctx := context.Background()
	n := &engine.Node{ID: "node_1", SubscriptionID: "sub_1", OwnerID: "user_1", ChainProfileID: "c", NodeType: "full",
		State: engine.NodeRunning, CreatedAt: time.Now().Add(-time.Hour), UpdatedAt: time.Now().Add(-time.Hour)}
	if err := f.store.CreateNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	_, wrapped, err := f.keys.GenerateDataKey(ctx, engine.KeyMaster)
	if err != nil {
		t.Fatal(err)
	}
	f.store.PutNodeKey(ctx, &engine.NodeKey{NodeID: n.ID, Name: engine.DataKeyName, Ciphertext: wrapped, CreatedAt: n.CreatedAt})

	out := f.rotate("master", "", 202)
	if out.KeyID != "v2" || out.Rewrap == nil || !out.GraceUntil.IsZero() {
		t.Fatalf("rotation %+v: want v2 with a rewrap under way", out)
	}
	testenv.WaitFor(t, "the rewrap to finish", func() bool {
		p, _ := f.rot.RewrapProgress(ctx)
		return p == nil
	})
	k, _ := f.store.GetNodeKey(ctx, n.ID, engine.DataKeyName)
	f.keys.SetMinDecryptionVersion(ctx, engine.KeyMaster, 2)
	if _, err := f.keys.Decrypt(ctx, engine.KeyMaster, k.Ciphertext); err != nil {
		t.Fatalf("the node's data key is not on v2: %v", err)
	}
}

func TestKeyRotationNotConfigured(t *testing.T) {
	f := newFixture(t)
	wantStatus(t, f.do(request{method: "POST", path: "/api/v1/admin/rotate/jwt", credential: bootstrapToken}), 501, `"code":"not_supported"`)
}
