package web_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
)

// accounts is the cast of the scenarios: two customers and an administrator
// with their credentials.
type accounts struct {
	alice, bob, root             *engine.User
	aliceJWT, aliceRefresh       string
	rootJWT                      string
	aliceReadKey, aliceRevoked   string
	aliceKeyID, bobKeyID, bobKey string
}

func newAccounts(f *fixture) *accounts {
	f.tb.Helper()
	a := &accounts{
		alice: f.user("alice@example.com", false),
		bob:   f.user("bob@example.com", false),
		root:  f.user("root@example.com", true),
	}
	a.aliceJWT, a.aliceRefresh = f.login("alice@example.com")
	a.rootJWT, _ = f.login("root@example.com")
	bobJWT, _ := f.login("bob@example.com")
	a.aliceKeyID, a.aliceReadKey = f.apiKey(a.aliceJWT, engine.ScopeNodesRead)
	revokedID, revoked := f.apiKey(a.aliceJWT, engine.ScopeNodesRead)
	a.aliceRevoked = revoked
	if rec := f.do(request{method: "DELETE", path: "/api/v1/api-keys/" + revokedID, credential: a.aliceJWT}); rec.Code != 204 {
		f.tb.Fatalf("revoke: %d %s", rec.Code, rec.Body)
	}
	a.bobKeyID, a.bobKey = f.apiKey(bobJWT, engine.ScopeNodesRead, engine.ScopeSubscriptionsRead)
	return a
}

func TestAPIScenarios(t *testing.T) {
	f := newFixture(t)
	a := newAccounts(f)
	big := `{"email":"` + strings.Repeat("a", 70<<10) + `"}`
	tests := []struct {
		name       string
		req        request
		wantStatus int
		wantBody   []string
	}{
		{"sign-up makes a customer", request{method: "POST", path: "/api/v1/users", body: `{"email":"Carol@Example.com","password":"` + password + `"}`}, 201, []string{`"email":"carol@example.com"`, `"admin":false`}},
		{"sign-up cannot ask for admin anonymously", request{method: "POST", path: "/api/v1/users", body: `{"email":"eve@example.com","password":"` + password + `","admin":true}`}, 403, []string{`"code":"forbidden"`}},
		{"a customer cannot create an administrator", request{method: "POST", path: "/api/v1/users", credential: a.aliceJWT, body: `{"email":"eve2@example.com","password":"` + password + `","admin":true}`}, 403, nil},
		{"the bootstrap token creates an administrator", request{method: "POST", path: "/api/v1/users", credential: bootstrapToken, body: `{"email":"ops@example.com","password":"` + password + `","admin":true}`}, 201, []string{`"admin":true`}},
		{"an administrator creates an administrator", request{method: "POST", path: "/api/v1/users", credential: a.rootJWT, body: `{"email":"ops2@example.com","password":"` + password + `","admin":true}`}, 201, []string{`"admin":true`}},
		{"sign-up with a taken email is a conflict", request{method: "POST", path: "/api/v1/users", body: `{"email":"alice@example.com","password":"` + password + `"}`}, 409, []string{`"code":"conflict"`}},
		{"sign-up with a short password is invalid", request{method: "POST", path: "/api/v1/users", body: `{"email":"dan@example.com","password":"short"}`}, 400, []string{"password"}},
		{"sign-up with a bad email is invalid", request{method: "POST", path: "/api/v1/users", body: `{"email":"Dan <dan@example.com>","password":"` + password + `"}`}, 400, []string{"email"}},
		{"sign-up with a bad credential is 401, not anonymous", request{method: "POST", path: "/api/v1/users", credential: "garbage", body: `{"email":"fay@example.com","password":"` + password + `"}`}, 401, nil},

		{"login returns a session", request{method: "POST", path: "/api/v1/auth/login", body: `{"email":"ALICE@example.com","password":"` + password + `"}`}, 200, []string{`"access_token":"ey`, `"refresh_token":"ey`, `"expires_in":900`, `"token_type":"Bearer"`}},
		{"login with a wrong password is 401", request{method: "POST", path: "/api/v1/auth/login", body: `{"email":"alice@example.com","password":"wrong password!"}`}, 401, []string{"invalid email or password"}},
		{"login of an unknown email is the same 401", request{method: "POST", path: "/api/v1/auth/login", body: `{"email":"nobody@example.com","password":"` + password + `"}`}, 401, []string{"invalid email or password"}},
		{"refresh returns a new session", request{method: "POST", path: "/api/v1/auth/refresh", body: `{"refresh_token":"` + a.aliceRefresh + `"}`}, 200, []string{`"access_token"`}},
		{"an access token does not refresh", request{method: "POST", path: "/api/v1/auth/refresh", body: `{"refresh_token":"` + a.aliceJWT + `"}`}, 401, nil},
		{"a refresh token is no access token", request{method: "GET", path: "/api/v1/me", credential: a.aliceRefresh}, 401, nil},

		{"me with a JWT", request{method: "GET", path: "/api/v1/me", credential: a.aliceJWT}, 200, []string{`"email":"alice@example.com"`, `"admin":false`, `"nodes:write"`}},
		{"me with an API key shows its scopes only", request{method: "GET", path: "/api/v1/me", credential: a.aliceReadKey}, 200, []string{`"email":"alice@example.com"`, `"scopes":["nodes:read"]`, `"api_key_id":"` + a.aliceKeyID}},
		{"me with the bootstrap token", request{method: "GET", path: "/api/v1/me", credential: bootstrapToken}, 200, []string{`"id":"bootstrap"`, `"admin":true`}},
		{"me without a credential is 401", request{method: "GET", path: "/api/v1/me"}, 401, []string{`"code":"unauthorized"`}},
		{"me with an unknown API key is 401", request{method: "GET", path: "/api/v1/me", credential: "hc_" + strings.Repeat("x", 43)}, 401, nil},
		{"me with a revoked API key is 401", request{method: "GET", path: "/api/v1/me", credential: a.aliceRevoked}, 401, nil},
		{"a Basic credential is 401", request{method: "GET", path: "/api/v1/me", authorization: "Basic YWxpY2U6cGFzcw=="}, 401, nil},
		{"an Authorization header over the cap is 401", request{method: "GET", path: "/api/v1/me", authorization: "Bearer " + strings.Repeat("a", 9<<10)}, 401, nil},

		{"create a key", request{method: "POST", path: "/api/v1/api-keys", credential: a.aliceJWT, body: `{"name":"ci","scopes":["nodes:read","nodes:write","nodes:read"]}`}, 201, []string{`"key":"hc_`, `"scopes":["nodes:read","nodes:write"]`, `"prefix":"hc_`}},
		{"a customer cannot grant admin", request{method: "POST", path: "/api/v1/api-keys", credential: a.aliceJWT, body: `{"name":"ci","scopes":["admin"]}`}, 403, []string{"admin"}},
		{"an administrator grants admin", request{method: "POST", path: "/api/v1/api-keys", credential: a.rootJWT, body: `{"name":"ops","scopes":["admin"]}`}, 201, []string{`"scopes":["admin"]`}},
		{"a key cannot grant a scope it lacks", request{method: "POST", path: "/api/v1/api-keys", credential: a.aliceReadKey, body: `{"name":"ci","scopes":["nodes:write"]}`}, 403, []string{"nodes:write"}},
		{"a key grants a scope it holds", request{method: "POST", path: "/api/v1/api-keys", credential: a.aliceReadKey, body: `{"name":"ci","scopes":["nodes:read"]}`}, 201, nil},
		{"an unknown scope is invalid", request{method: "POST", path: "/api/v1/api-keys", credential: a.aliceJWT, body: `{"name":"ci","scopes":["root"]}`}, 400, []string{"root"}},
		{"no scopes is invalid", request{method: "POST", path: "/api/v1/api-keys", credential: a.aliceJWT, body: `{"name":"ci","scopes":[]}`}, 400, nil},
		{"a past expiry is invalid", request{method: "POST", path: "/api/v1/api-keys", credential: a.aliceJWT, body: `{"name":"ci","scopes":["nodes:read"],"expires_at":"2001-01-01T00:00:00Z"}`}, 400, []string{"expires_at"}},
		{"a malformed expiry names the format", request{method: "POST", path: "/api/v1/api-keys", credential: a.aliceJWT, body: `{"name":"ci","scopes":["nodes:read"],"expires_at":"tomorrow"}`}, 400, []string{"RFC 3339"}},
		{"the bootstrap token owns no keys", request{method: "POST", path: "/api/v1/api-keys", credential: bootstrapToken, body: `{"name":"ci","scopes":["nodes:read"]}`}, 403, nil},
		{"list shows own keys only, without secrets", request{method: "GET", path: "/api/v1/api-keys", credential: a.aliceJWT}, 200, []string{a.aliceKeyID, `"revoked_at"`}},
		{"another tenant's key id is 404", request{method: "DELETE", path: "/api/v1/api-keys/" + a.bobKeyID, credential: a.aliceJWT}, 404, []string{`"code":"not_found"`}},
		{"an unknown key id is 404", request{method: "DELETE", path: "/api/v1/api-keys/key_nope", credential: a.aliceJWT}, 404, nil},
		{"the other tenant's key still works", request{method: "GET", path: "/api/v1/me", credential: a.bobKey}, 200, []string{"bob@example.com"}},

		{"malformed JSON is 400", request{method: "POST", path: "/api/v1/auth/login", body: `{"email":`}, 400, []string{"malformed JSON"}},
		{"a syntax error names the byte", request{method: "POST", path: "/api/v1/auth/login", body: `{"email" "x"}`}, 400, []string{"at byte"}},
		{"an unknown field is 400", request{method: "POST", path: "/api/v1/auth/login", body: `{"email":"a@example.com","password":"x","remember":true}`}, 400, []string{`unknown field \"remember\"`}},
		{"a wrong type names the field", request{method: "POST", path: "/api/v1/auth/login", body: `{"email":5,"password":"x"}`}, 400, []string{`field \"email\" must be a string`}},
		{"a wrong nested type names the field", request{method: "POST", path: "/api/v1/api-keys", credential: a.aliceJWT, body: `{"name":"ci","scopes":"nodes:read"}`}, 400, []string{`field \"scopes\" must be an array`}},
		{"a non-object body is 400", request{method: "POST", path: "/api/v1/auth/login", body: `[1,2]`}, 400, []string{"JSON object"}},
		{"trailing data is 400", request{method: "POST", path: "/api/v1/auth/login", body: `{"email":"a@example.com"} {"x":1}`}, 400, []string{"single JSON value"}},
		{"an empty body is 400", request{method: "POST", path: "/api/v1/auth/login"}, 400, []string{"empty"}},
		{"an oversized body is 413", request{method: "POST", path: "/api/v1/users", body: big}, 413, []string{`"code":"too_large"`}},
		{"an oversized body on an authenticated route is 413", request{method: "POST", path: "/api/v1/api-keys", credential: a.aliceJWT, body: big}, 413, nil},
		{"revoke own key", request{method: "DELETE", path: "/api/v1/api-keys/" + a.aliceKeyID, credential: a.aliceJWT}, 204, nil},
		{"the revoked key stops working", request{method: "GET", path: "/api/v1/me", credential: a.aliceReadKey}, 401, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.ip = fmt.Sprintf("198.51.100.%d", i) // stay under the sign-in rate limit
			rec := f.do(tt.req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			for _, w := range tt.wantBody {
				if !strings.Contains(rec.Body.String(), w) {
					t.Errorf("body %s lacks %s", rec.Body, w)
				}
			}
			if rec.Code == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
			created := rec.Code == 201 && tt.req.path == "/api/v1/api-keys"
			if strings.Contains(rec.Body.String(), `"key":"hc_`) != created {
				t.Errorf("secret shown where it should not be: %s", rec.Body)
			}
		})
	}
}

// TestScopes checks every scope is enforced: a credential lacking it is 403
// on a route that needs it, and admin holds every scope.
func TestScopes(t *testing.T) {
	f := newFixture(t)
	for _, s := range engine.AllScopes {
		f.server.RouteScopeForTest(scopePath(s), s)
	}
	a := newAccounts(f)
	customer := []string{engine.ScopeNodesRead, engine.ScopeNodesWrite, engine.ScopeSubscriptionsRead, engine.ScopeSubscriptionsWrite}
	_, adminKey := f.apiKey(a.rootJWT, engine.ScopeAdmin)
	for _, scope := range customer {
		var others []string
		for _, o := range customer {
			if o != scope {
				others = append(others, o)
			}
		}
		_, without := f.apiKey(a.aliceJWT, others...)
		_, with := f.apiKey(a.aliceJWT, scope)
		t.Run(scope, func(t *testing.T) {
			wantStatus(t, f.do(request{method: "GET", path: scopePath(scope), credential: without}), 403, `lacks the `+scope)
			wantStatus(t, f.do(request{method: "GET", path: scopePath(scope), credential: with}), 204, "")
			wantStatus(t, f.do(request{method: "GET", path: scopePath(scope), credential: a.aliceJWT}), 204, "")
			wantStatus(t, f.do(request{method: "GET", path: scopePath(scope), credential: adminKey}), 204, "")
			wantStatus(t, f.do(request{method: "GET", path: scopePath(scope)}), 401, "")
		})
	}
	t.Run(engine.ScopeAdmin, func(t *testing.T) {
		_, allCustomer := f.apiKey(a.aliceJWT, customer...)
		wantStatus(t, f.do(request{method: "GET", path: "/test/admin", credential: a.aliceJWT}), 403, "lacks the admin")
		wantStatus(t, f.do(request{method: "GET", path: "/test/admin", credential: allCustomer}), 403, "lacks the admin")
		wantStatus(t, f.do(request{method: "GET", path: "/test/admin", credential: a.rootJWT}), 204, "")
		wantStatus(t, f.do(request{method: "GET", path: "/test/admin", credential: adminKey}), 204, "")
		wantStatus(t, f.do(request{method: "GET", path: "/test/admin", credential: bootstrapToken}), 204, "")
	})
}

func scopePath(scope string) string { return "/test/" + strings.ReplaceAll(scope, ":", "-") }

func wantStatus(t *testing.T, rec *httptest.ResponseRecorder, status int, body string) {
	t.Helper()
	if rec.Code != status || !strings.Contains(rec.Body.String(), body) {
		t.Fatalf("got %d %s, want %d with %q", rec.Code, rec.Body, status, body)
	}
}
