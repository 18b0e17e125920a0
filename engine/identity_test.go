package engine_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
)

// memUsers is the least UserStore the identity use-cases need, in memory.
type memUsers struct {
	mu    sync.Mutex
	users map[string]engine.User
	keys  []*engine.APIKey
}

func (m *memUsers) CreateUser(_ context.Context, u *engine.User) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.users {
		if o.ID == u.ID || o.Email == u.Email {
			return engine.Errorf(engine.EConflict, "taken")
		}
	}
	u.Version = 1
	m.users[u.ID] = *u
	return nil
}

func (m *memUsers) GetUser(_ context.Context, id string) (*engine.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[id]
	if !ok {
		return nil, engine.Errorf(engine.ENotFound, "no user")
	}
	return &u, nil
}

func (m *memUsers) GetUserByEmail(_ context.Context, email string) (*engine.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range m.users {
		if u.Email == email {
			return &u, nil
		}
	}
	return nil, engine.Errorf(engine.ENotFound, "no user")
}

func (m *memUsers) UpdateUser(_ context.Context, u *engine.User) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.users[u.ID].Version != u.Version {
		return engine.Errorf(engine.EConflict, "stale")
	}
	u.Version++
	m.users[u.ID] = *u
	return nil
}

func (m *memUsers) CountUsers(context.Context) (int, error) { return len(m.users), nil }

func (m *memUsers) CreateAPIKey(_ context.Context, k *engine.APIKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys = append(m.keys, k)
	return nil
}

func (m *memUsers) GetAPIKeyByHash(_ context.Context, hash []byte) (*engine.APIKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range m.keys {
		if bytes.Equal(k.Hash, hash) {
			c := *k
			return &c, nil
		}
	}
	return nil, engine.Errorf(engine.ENotFound, "no key")
}

func (m *memUsers) ListAPIKeys(_ context.Context, userID string) ([]*engine.APIKey, error) {
	var out []*engine.APIKey
	for _, k := range m.keys {
		if k.UserID == userID {
			out = append(out, k)
		}
	}
	return out, nil
}

func (m *memUsers) RevokeAPIKey(_ context.Context, userID, keyID string, at time.Time) error {
	for _, k := range m.keys {
		if k.ID == keyID && k.UserID == userID {
			k.RevokedAt = at
			return nil
		}
	}
	return engine.Errorf(engine.ENotFound, "no key")
}

var _ engine.UserStore = (*memUsers)(nil)

var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// newIdentity returns the use-cases on an empty store, with a clock the
// test moves.
func newIdentity(t *testing.T) (*engine.Identity, *memUsers, *time.Time) {
	t.Helper()
	users := &memUsers{users: map[string]engine.User{}}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	id, err := engine.NewIdentity(engine.IdentityConfig{
		Users: users, JWTKeys: keys.StaticJWTKeys(testKey()), Password: cheap,
		BootstrapTokens: []string{"", "hcadmin_boot"}, Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return id, users, &now
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func wantCode(t *testing.T, err error, code engine.Code) {
	t.Helper()
	if !engine.IsCode(err, code) {
		t.Fatalf("err = %v, want code %s", err, code)
	}
}

func TestCreateUserRules(t *testing.T) {
	id, _, _ := newIdentity(t)
	ctx := context.Background()
	u := must[*engine.User](t)(id.CreateUser(ctx, "  Alice@Example.COM ", "long enough pw", false))
	if u.Email != "alice@example.com" || !strings.HasPrefix(u.PasswordHash, "$argon2id$") || u.Admin {
		t.Fatalf("user = %+v", u)
	}
	_, err := id.CreateUser(ctx, "alice@example.com", "long enough pw", false)
	wantCode(t, err, engine.EConflict)
	for _, bad := range []string{"", "alice", "a@", "Alice <a@example.com>", strings.Repeat("a", 250) + "@example.com"} {
		_, err := id.CreateUser(ctx, bad, "long enough pw", false)
		wantCode(t, err, engine.EInvalid)
	}
	_, err = id.CreateUser(ctx, "bob@example.com", "short", false)
	wantCode(t, err, engine.EInvalid)
	_, err = id.CreateUser(ctx, "bob@example.com", strings.Repeat("x", 257), false)
	wantCode(t, err, engine.EInvalid)
	_, err = id.Register(ctx, nil, "bob@example.com", "long enough pw", true)
	wantCode(t, err, engine.EForbidden)
	_, err = id.Register(ctx, &engine.Principal{UserID: u.ID, Scopes: []string{engine.ScopeNodesWrite}}, "bob@example.com", "long enough pw", true)
	wantCode(t, err, engine.EForbidden)
	boot := must[*engine.Principal](t)(id.Authenticate(ctx, "hcadmin_boot"))
	if b := must[*engine.User](t)(id.Register(ctx, boot, "bob@example.com", "long enough pw", true)); !b.Admin {
		t.Fatal("the bootstrap administrator could not create an administrator")
	}
}

func TestSessions(t *testing.T) {
	id, users, now := newIdentity(t)
	ctx := context.Background()
	u := must[*engine.User](t)(id.CreateUser(ctx, "alice@example.com", "long enough pw", false))
	_, err := id.Login(ctx, "alice@example.com", "wrong password")
	wantCode(t, err, engine.EUnauthorized)
	_, err = id.Login(ctx, "nobody@example.com", "long enough pw")
	wantCode(t, err, engine.EUnauthorized)
	tok := must[*engine.Tokens](t)(id.Login(ctx, "ALICE@example.com", "long enough pw"))
	if tok.ExpiresIn != 15*time.Minute {
		t.Fatalf("access lifetime = %v", tok.ExpiresIn)
	}

	p := must[*engine.Principal](t)(id.Authenticate(ctx, tok.Access))
	if p.UserID != u.ID || !p.Can(engine.ScopeSubscriptionsWrite) || p.Can(engine.ScopeAdmin) {
		t.Fatalf("principal = %+v", p)
	}
	_, err = id.Authenticate(ctx, tok.Refresh)
	wantCode(t, err, engine.EUnauthorized)
	_, err = id.Refresh(ctx, tok.Access)
	wantCode(t, err, engine.EUnauthorized)

	t.Run("the access token expires after 15 minutes", func(t *testing.T) {
		*now = now.Add(16 * time.Minute)
		_, err := id.Authenticate(ctx, tok.Access)
		wantCode(t, err, engine.EUnauthorized)
		tok = must[*engine.Tokens](t)(id.Refresh(ctx, tok.Refresh))
		must[*engine.Principal](t)(id.Authenticate(ctx, tok.Access))
	})
	t.Run("revoking sessions ends access and refresh tokens", func(t *testing.T) {
		if err := id.RevokeSessions(ctx, p); err != nil {
			t.Fatal(err)
		}
		_, err := id.Authenticate(ctx, tok.Access)
		wantCode(t, err, engine.EUnauthorized)
		_, err = id.Refresh(ctx, tok.Refresh)
		wantCode(t, err, engine.EUnauthorized)
	})
	t.Run("promotion shows in the next session", func(t *testing.T) {
		cur := must[*engine.User](t)(users.GetUser(ctx, u.ID))
		cur.Admin = true
		if err := users.UpdateUser(ctx, cur); err != nil {
			t.Fatal(err)
		}
		tok := must[*engine.Tokens](t)(id.Login(ctx, "alice@example.com", "long enough pw"))
		if p := must[*engine.Principal](t)(id.Authenticate(ctx, tok.Access)); !p.Can(engine.ScopeAdmin) {
			t.Fatal("an administrator's session lacks admin")
		}
	})
}

func TestAPIKeys(t *testing.T) {
	id, users, now := newIdentity(t)
	ctx := context.Background()
	root := must[*engine.User](t)(id.CreateUser(ctx, "root@example.com", "long enough pw", true))
	rootP := &engine.Principal{UserID: root.ID, Scopes: []string{engine.ScopeAdmin}}

	k, secret, err := id.CreateAPIKey(ctx, rootP, engine.NewAPIKey{Name: " ops ", Scopes: []string{"admin", "nodes:read", "admin"}, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "hc_") || len(secret) != 46 || k.Prefix != secret[:10] || k.Name != "ops" ||
		strings.Join(k.Scopes, ",") != "admin,nodes:read" || bytes.Contains(k.Hash, []byte(secret)) {
		t.Fatalf("key = %+v, secret %q", k, secret)
	}
	p := must[*engine.Principal](t)(id.Authenticate(ctx, secret))
	if p.KeyID != k.ID || !p.Can(engine.ScopeAdmin) {
		t.Fatalf("principal = %+v", p)
	}

	t.Run("demotion takes admin from the user's keys", func(t *testing.T) {
		cur := must[*engine.User](t)(users.GetUser(ctx, root.ID))
		cur.Admin = false
		users.UpdateUser(ctx, cur)
		p := must[*engine.Principal](t)(id.Authenticate(ctx, secret))
		if p.Can(engine.ScopeAdmin) || !p.Can(engine.ScopeNodesRead) || p.Can(engine.ScopeNodesWrite) {
			t.Fatalf("principal after demotion = %+v", p)
		}
	})
	t.Run("a key stops at its expiry", func(t *testing.T) {
		*now = now.Add(time.Hour)
		_, err := id.Authenticate(ctx, secret)
		wantCode(t, err, engine.EUnauthorized)
	})
	t.Run("scope rules", func(t *testing.T) {
		reader := &engine.Principal{UserID: root.ID, KeyID: "key_x", Scopes: []string{engine.ScopeNodesRead}}
		for _, c := range []struct {
			p      *engine.Principal
			scopes []string
			want   engine.Code
		}{
			{reader, []string{"nodes:write"}, engine.EForbidden},
			{reader, []string{"admin"}, engine.EForbidden},
			{reader, []string{"nodes:read", "bogus"}, engine.EInvalid},
			{reader, nil, engine.EInvalid},
			{&engine.Principal{Scopes: []string{engine.ScopeAdmin}}, []string{"nodes:read"}, engine.EForbidden},
		} {
			_, _, err := id.CreateAPIKey(ctx, c.p, engine.NewAPIKey{Name: "x", Scopes: c.scopes})
			wantCode(t, err, c.want)
		}
		_, _, err := id.CreateAPIKey(ctx, reader, engine.NewAPIKey{Name: "", Scopes: []string{"nodes:read"}})
		wantCode(t, err, engine.EInvalid)
		_, _, err = id.CreateAPIKey(ctx, reader, engine.NewAPIKey{Name: "x", Scopes: []string{"nodes:read"}, ExpiresAt: now.Add(-time.Second)})
		wantCode(t, err, engine.EInvalid)
	})
	t.Run("revoked keys stop; others' keys are not found", func(t *testing.T) {
		_, s2, _ := id.CreateAPIKey(ctx, rootP, engine.NewAPIKey{Name: "b", Scopes: []string{"nodes:read"}})
		k2 := must[*engine.Principal](t)(id.Authenticate(ctx, s2))
		wantCode(t, id.RevokeAPIKey(ctx, &engine.Principal{UserID: "user_other"}, k2.KeyID), engine.ENotFound)
		if err := id.RevokeAPIKey(ctx, rootP, k2.KeyID); err != nil {
			t.Fatal(err)
		}
		_, err := id.Authenticate(ctx, s2)
		wantCode(t, err, engine.EUnauthorized)
	})
}

func TestAuthenticateRejectsOversizedCredentials(t *testing.T) {
	id, _, _ := newIdentity(t)
	for _, c := range []string{"", strings.Repeat(".", engine.MaxCredentialBytes+1), "hc_" + strings.Repeat("a", engine.MaxCredentialBytes), "hcadmin_boo"} {
		_, err := id.Authenticate(context.Background(), c)
		wantCode(t, err, engine.EUnauthorized)
	}
}

// The CLI creates users without loading the boot material.
func TestIdentityWithoutSigningKeyCreatesUsers(t *testing.T) {
	users := &memUsers{users: map[string]engine.User{}}
	id := must[*engine.Identity](t)(engine.NewIdentity(engine.IdentityConfig{Users: users, Password: cheap}))
	must[*engine.User](t)(id.CreateUser(context.Background(), "root@example.com", "long enough pw", true))
	_, err := id.Login(context.Background(), "root@example.com", "long enough pw")
	wantCode(t, err, engine.EInternal)
	_, err = id.Authenticate(context.Background(), "eyJhbGciOiJSUzI1NiJ9.e30.sig")
	wantCode(t, err, engine.EUnauthorized)
	if _, err := engine.NewIdentity(engine.IdentityConfig{}); !engine.IsCode(err, engine.EInvalid) {
		t.Fatalf("NewIdentity without a store: %v", err)
	}
}
