package keys_test

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
)

// jwtInstance is one appliance instance: its own view of the JWT keys in
// the shared Secrets, and the identity use-cases on them.
func jwtInstance(t *testing.T, s engine.Secrets, users engine.UserStore, c *clock) (*engine.Identity, *keys.JWTKeys) {
	t.Helper()
	jwtKeys, err := mustBoot(t, keys.BootConfig{Secrets: s, Now: c.Now}).LoadJWTKeys(t.Context())
	mustDo(t, err)
	id, err := engine.NewIdentity(engine.IdentityConfig{Users: users, JWTKeys: jwtKeys, Password: cheap, Now: c.Now})
	mustDo(t, err)
	return id, jwtKeys
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	head, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	mustDo(t, err)
	var h struct{ Kid string }
	mustDo(t, json.Unmarshal(head, &h))
	return h.Kid
}

func jwksKids(set engine.JWKSet) []string {
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	return kids
}

func TestJWTRotationKeepsOldSessionsForTheGracePeriod(t *testing.T) {
	ctx := t.Context()
	s, st := keyringOnBolt(t)
	putFirstJWTKey(t, s)
	c := newClock()
	id, jwtKeys := jwtInstance(t, s, st, c)
	_, err := id.CreateUser(ctx, "ana@example.com", "correct horse battery", false)
	mustDo(t, err)
	before, err := id.Login(ctx, "ana@example.com", "correct horse battery")
	mustDo(t, err)
	oldKid := kidOf(t, before.Access)

	newKid, err := jwtKeys.Rotate(ctx, 2*time.Hour)
	mustDo(t, err)
	after, err := id.Login(ctx, "ana@example.com", "correct horse battery")
	mustDo(t, err)
	if got := kidOf(t, after.Access); got != newKid || newKid == oldKid {
		t.Fatalf("a session after the rotation has kid %q, want the new key %q (old %q)", got, newKid, oldKid)
	}
	for _, tok := range []string{before.Access, after.Access} {
		if _, err := id.Authenticate(ctx, tok); err != nil {
			t.Fatalf("a token of the old or the new key is refused right after the rotation: %v", err)
		}
	}
	if got := jwksKids(jwtKeys.JWKS()); len(got) != 2 || got[0] != newKid || got[1] != oldKid {
		t.Fatalf("JWKS kids %v, want the new key then the old one", got)
	}

	c.advance(2*time.Hour - time.Minute) // access tokens are long gone; refresh tokens live on
	if _, err := id.Refresh(ctx, before.Refresh); err != nil {
		t.Fatalf("a refresh token of the old key is refused within the grace period: %v", err)
	}
	c.advance(2 * time.Minute)
	if _, err := id.Refresh(ctx, before.Refresh); !engine.IsCode(err, engine.EUnauthorized) {
		t.Fatalf("a refresh token of the old key after the grace period: %v, want unauthorized", err)
	}
	if _, err := id.Refresh(ctx, after.Refresh); err != nil {
		t.Fatalf("a refresh token of the new key: %v", err)
	}
	if got := jwksKids(jwtKeys.JWKS()); len(got) != 1 || got[0] != newKid {
		t.Fatalf("JWKS kids after the grace period %v, want only %q", got, newKid)
	}
}

func TestJWTRotationIsNoticedByAnotherInstance(t *testing.T) {
	ctx := t.Context()
	s, st := keyringOnBolt(t)
	putFirstJWTKey(t, s)
	c := newClock()
	a, keysA := jwtInstance(t, s, st, c)
	counted := &countingSecrets{Secrets: s}
	b, keysB := jwtInstance(t, counted, st, c)
	_, err := a.CreateUser(ctx, "ben@example.com", "correct horse battery", false)
	mustDo(t, err)

	newKid, err := keysA.Rotate(ctx, 0)
	mustDo(t, err)
	if got := jwksKids(keysB.JWKS())[0]; got == newKid {
		t.Fatal("instance B knew the new key before reloading: the test proves nothing")
	}
	tok, err := a.Login(ctx, "ben@example.com", "correct horse battery")
	mustDo(t, err)
	if _, err := b.Authenticate(ctx, tok.Access); err != nil {
		t.Fatalf("instance B refuses a token of the key instance A rotated to: %v", err)
	}
	theirs, err := b.Login(ctx, "ben@example.com", "correct horse battery")
	mustDo(t, err)
	if kidOf(t, theirs.Access) != newKid {
		t.Fatal("instance B still signs with the old key after learning of the new one")
	}

	// Junk kids cost at most one reload per few seconds.
	reads := counted.gets.Load()
	for i := range 10 {
		if _, err := b.Authenticate(ctx, withKid(t, tok.Access, "unknown-"+string(rune('a'+i)))); !engine.IsCode(err, engine.EUnauthorized) {
			t.Fatalf("a token naming an unknown key: %v, want unauthorized", err)
		}
	}
	if got := counted.gets.Load() - reads; got != 0 {
		t.Fatalf("10 unknown kids right after a reload read Secrets %d times, want 0", got)
	}
	c.advance(6 * time.Second)
	b.Authenticate(ctx, withKid(t, tok.Access, "unknown-z"))
	if got := counted.gets.Load() - reads; got == 0 || got > 2 {
		t.Fatalf("an unknown kid a while later read Secrets %d times, want one reload", got)
	}
}

func TestJWTKeysAreReloadedAfterTheRefreshPeriod(t *testing.T) {
	ctx := t.Context()
	s, _ := keyringOnBolt(t)
	putFirstJWTKey(t, s)
	c := newClock()
	a, err := mustBoot(t, keys.BootConfig{Secrets: s, Now: c.Now}).LoadJWTKeys(ctx)
	mustDo(t, err)
	b, err := mustBoot(t, keys.BootConfig{Secrets: s, Now: c.Now, Refresh: time.Minute}).LoadJWTKeys(ctx)
	mustDo(t, err)
	newKid, err := a.Rotate(ctx, 0)
	mustDo(t, err)
	if got := jwksKids(b.JWKS()); len(got) != 1 {
		t.Fatalf("JWKS of the other instance before its refresh: %v, want the old key only", got)
	}
	c.advance(time.Minute)
	if got := jwksKids(b.JWKS()); len(got) != 2 || got[0] != newKid {
		t.Fatalf("JWKS of the other instance after its refresh: %v, want %q first", got, newKid)
	}
}

// withKid returns token with its header naming kid; the signature no
// longer matches, which does not matter to a key lookup.
func withKid(t *testing.T, token, kid string) string {
	t.Helper()
	head, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	parts := strings.SplitN(token, ".", 2)
	return base64.RawURLEncoding.EncodeToString(head) + "." + parts[1]
}

func TestJWKSIsRFC7517(t *testing.T) {
	s, _ := keyringOnBolt(t)
	key := putFirstJWTKey(t, s)
	jwtKeys, err := mustBoot(t, keys.BootConfig{Secrets: s}).LoadJWTKeys(t.Context())
	mustDo(t, err)
	set := jwtKeys.JWKS()
	if len(set.Keys) != 1 {
		t.Fatalf("%d keys, want 1", len(set.Keys))
	}
	k := set.Keys[0]
	if k.KeyType != "RSA" || k.Algorithm != "RS256" || k.Use != "sig" || k.KeyID != keys.JWKThumbprint(&key.PublicKey) {
		t.Fatalf("JWK %+v: want kty RSA, alg RS256, use sig and the thumbprint as kid", k)
	}
	n, _ := base64.RawURLEncoding.DecodeString(k.Modulus)
	e, _ := base64.RawURLEncoding.DecodeString(k.Exponent)
	if new(big.Int).SetBytes(n).Cmp(key.N) != 0 || new(big.Int).SetBytes(e).Int64() != int64(key.E) {
		t.Fatal("n and e do not give back the public key")
	}
	raw, _ := json.Marshal(set)
	if strings.Contains(string(raw), `"d"`) || strings.Contains(string(raw), `"p"`) {
		t.Fatalf("the JWKS shows private members: %s", raw)
	}
}

// RFC 7638 section 3.1 gives this key's thumbprint.
func TestJWKThumbprintMatchesRFC7638(t *testing.T) {
	n, _ := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
	if got := keys.JWKThumbprint(pub); got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Fatalf("thumbprint %s", got)
	}
}

func TestTokensWithoutKidFromBeforeRotationStillVerify(t *testing.T) {
	ctx := t.Context()
	s, st := keyringOnBolt(t)
	key := putFirstJWTKey(t, s)
	c := newClock()
	id, jwtKeys := jwtInstance(t, s, st, c)
	u, err := id.CreateUser(ctx, "cy@example.com", "correct horse battery", false)
	mustDo(t, err)
	legacy := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": "hoodcloud", "aud": "hoodcloud-api", "sub": u.ID, "gen": u.Version,
		"iat": c.Now().Unix(), "nbf": c.Now().Unix(), "exp": c.Now().Add(10 * time.Minute).Unix(),
	})
	tok, err := legacy.SignedString(key)
	mustDo(t, err)
	if _, err := id.Authenticate(ctx, tok); err != nil {
		t.Fatalf("a token without kid signed by the current key: %v", err)
	}
	_, err = jwtKeys.Rotate(ctx, 0)
	mustDo(t, err)
	if _, err := id.Authenticate(ctx, tok); err != nil {
		t.Fatalf("a token without kid signed by a key in its grace period: %v", err)
	}
}

func TestJWTRotationRefusesABadGrace(t *testing.T) {
	s, _ := keyringOnBolt(t)
	putFirstJWTKey(t, s)
	jwtKeys, err := mustBoot(t, keys.BootConfig{Secrets: s}).LoadJWTKeys(t.Context())
	mustDo(t, err)
	for _, grace := range []time.Duration{-time.Second, keys.MaxGrace + time.Second} {
		if _, err := jwtKeys.Rotate(t.Context(), grace); !engine.IsCode(err, engine.EInvalid) {
			t.Errorf("grace %s: %v, want invalid", grace, err)
		}
	}
	if _, err := keys.StaticJWTKeys(testKey()).Rotate(t.Context(), 0); !engine.IsCode(err, engine.EUnsupported) {
		t.Errorf("rotating a key kept outside Secrets: %v, want unsupported", err)
	}
}
