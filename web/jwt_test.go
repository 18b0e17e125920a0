package web_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// forged is a token for alice with her current generation, changed by edit.
func forged(t *testing.T, userID string, edit func(jwt.MapClaims), sign func(jwt.MapClaims) string) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{
		"iss": "hoodcloud", "sub": userID, "aud": []string{"hoodcloud-api"},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix(), "gen": 1,
	}
	if edit != nil {
		edit(c)
	}
	return sign(c)
}

func rs256(key *rsa.PrivateKey) func(jwt.MapClaims) string {
	return func(c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, c).SignedString(key)
		if err != nil {
			panic(err)
		}
		return s
	}
}

func TestJWTAttacksAreUnauthorized(t *testing.T) {
	f := newFixture(t)
	alice := f.user("alice@example.com", false)
	key := signingKey(t)
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	good := rs256(key)
	tests := []struct {
		name, authorization string
		want                int
	}{
		{"control: a well-formed token is accepted", "Bearer " + forged(t, alice.ID, nil, good), 200},
		{"alg none", "Bearer " + forged(t, alice.ID, nil, func(c jwt.MapClaims) string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}), 401},
		{"HS256 keyed with the RSA public key", "Bearer " + forged(t, alice.ID, nil, func(c jwt.MapClaims) string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(pubPEM)
			return s
		}), 401},
		{"HS256 keyed with the DER public key", "Bearer " + forged(t, alice.ID, nil, func(c jwt.MapClaims) string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(pubDER)
			return s
		}), 401},
		{"RS512 with the right key is still not RS256", "Bearer " + forged(t, alice.ID, nil, func(c jwt.MapClaims) string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodRS512, c).SignedString(key)
			return s
		}), 401},
		{"signed by another key", "Bearer " + forged(t, alice.ID, nil, rs256(otherKey)), 401},
		{"expired", "Bearer " + forged(t, alice.ID, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }, good), 401},
		{"no expiry", "Bearer " + forged(t, alice.ID, func(c jwt.MapClaims) { delete(c, "exp") }, good), 401},
		{"issued in the future", "Bearer " + forged(t, alice.ID, func(c jwt.MapClaims) { c["iat"] = time.Now().Add(time.Hour).Unix() }, good), 401},
		{"wrong issuer", "Bearer " + forged(t, alice.ID, func(c jwt.MapClaims) { c["iss"] = "evil" }, good), 401},
		{"wrong audience", "Bearer " + forged(t, alice.ID, func(c jwt.MapClaims) { c["aud"] = []string{"other-api"} }, good), 401},
		{"refresh audience", "Bearer " + forged(t, alice.ID, func(c jwt.MapClaims) { c["aud"] = []string{"hoodcloud-refresh"} }, good), 401},
		{"a past generation", "Bearer " + forged(t, alice.ID, func(c jwt.MapClaims) { c["gen"] = 0 }, good), 401},
		{"an unknown user", "Bearer " + forged(t, "user_nobody", nil, good), 401},
		{"no subject", "Bearer " + forged(t, "", nil, good), 401},
		{"tampered payload", "Bearer " + tamper(forged(t, alice.ID, nil, good)), 401},
		{"100k dots", "Bearer " + strings.Repeat(".", 100_000), 401},
		{"three empty segments", "Bearer ..", 401},
		{"a header over the cap", "Bearer " + strings.Repeat("a", 8<<10+1), 401},
		{"no scheme", forged(t, alice.ID, nil, good), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.do(request{method: "GET", path: "/api/v1/me", authorization: tt.authorization})
			if rec.Code != tt.want {
				t.Fatalf("status = %d, want %d (body %s)", rec.Code, tt.want, rec.Body)
			}
		})
	}
}

// tamper flips the payload to another subject, keeping the signature.
func tamper(token string) string {
	parts := strings.Split(token, ".")
	parts[1] = strings.TrimRight(parts[1], "A") + "B"
	return strings.Join(parts, ".")
}
