package engine

import (
	"crypto/rsa"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Session token lifetimes and limits.
const (
	AccessTokenTTL  = 15 * time.Minute
	RefreshTokenTTL = 30 * 24 * time.Hour
	// MaxCredentialBytes bounds a credential before any parsing: a JWT
	// parser splitting megabytes of dots was CVE-2025-30204.
	MaxCredentialBytes = 8 << 10
	// tokenLeeway tolerates clocks a little apart between instances.
	tokenLeeway = 5 * time.Second
)

// The audiences tell an access token from a refresh token.
const (
	accessAudience  = "hoodcloud-api"
	refreshAudience = "hoodcloud-refresh"
)

// Tokens is a session: a short access token and a longer refresh token.
type Tokens struct {
	Access    string
	Refresh   string
	ExpiresIn time.Duration // of the access token
}

// JWTKeys are the RSA keys of session tokens (keys.JWTKeys): the current
// key signs, and keys it replaced still verify until their grace period
// ends. Each key is named by a kid, which tokens carry in their header.
// Safe for concurrent use.
type JWTKeys interface {
	// Signer returns the current key and its kid.
	Signer() (kid string, key *rsa.PrivateKey)
	// Verifiers returns the public keys a token with kid may be checked
	// against: the key named kid, current or in its grace period, or, for
	// a token without a kid (issued before keys had names), every key
	// still honoured. None when kid names no such key.
	Verifiers(kid string) []*rsa.PublicKey
	// JWKS returns the public keys that verify tokens now: the current key
	// first, then those still in their grace period.
	JWKS() JWKSet
}

// JWK is an RSA public key as RFC 7517 writes it.
type JWK struct {
	KeyType   string `json:"kty"`
	Use       string `json:"use"`
	Algorithm string `json:"alg"`
	KeyID     string `json:"kid"`
	Modulus   string `json:"n"`
	Exponent  string `json:"e"`
}

// JWKSet is what /.well-known/jwks.json serves.
type JWKSet struct {
	Keys []JWK `json:"keys"`
}

// tokenClaims are the claims of both kinds of token; Gen is the user's
// Version when the token was issued.
type tokenClaims struct {
	jwt.RegisteredClaims
	Gen int64 `json:"gen"`
}

// issue signs a new session for u.
func (i *Identity) issue(u *User) (*Tokens, error) {
	access, err := i.sign(u, accessAudience, AccessTokenTTL)
	if err != nil {
		return nil, err
	}
	refresh, err := i.sign(u, refreshAudience, RefreshTokenTTL)
	if err != nil {
		return nil, err
	}
	return &Tokens{Access: access, Refresh: refresh, ExpiresIn: AccessTokenTTL}, nil
}

// sign issues a token with the current JWT key, named in the kid header.
func (i *Identity) sign(u *User, audience string, ttl time.Duration) (string, error) {
	if i.cfg.JWTKeys == nil {
		return "", Errorf(EInternal, "no token signing key is configured")
	}
	kid, key := i.cfg.JWTKeys.Signer()
	now := i.now()
	c := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.cfg.Issuer,
			Subject:   u.ID,
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			ID:        NewID("tok"),
		},
		Gen: u.Version,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	t.Header["kid"] = kid
	s, err := t.SignedString(key)
	if err != nil {
		return "", Errorf(EInternal, "sign token: %v", err)
	}
	return s, nil
}

// verify checks a token's RS256 signature (no other algorithm is
// accepted, so neither "none" nor HMAC keyed with the public key) against
// the key its kid names, current or in its grace period, then its issuer,
// audience and expiry. Returns EUnauthorized, without saying why.
func (i *Identity) verify(token, audience string) (*tokenClaims, error) {
	denied := Errorf(EUnauthorized, "invalid or expired token")
	if len(token) > MaxCredentialBytes || i.cfg.JWTKeys == nil {
		return nil, denied
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}),
		jwt.WithIssuer(i.cfg.Issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(tokenLeeway),
		jwt.WithTimeFunc(i.now),
	)
	var c tokenClaims
	_, err := p.ParseWithClaims(token, &c, i.verificationKeys)
	if err != nil || c.Subject == "" {
		return nil, denied
	}
	return &c, nil
}

// verificationKeys are the keys that may have signed t, by its kid.
func (i *Identity) verificationKeys(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	if len(kid) > maxKeyIDBytes {
		return nil, errUnknownKey
	}
	keys := i.cfg.JWTKeys.Verifiers(kid)
	if len(keys) == 0 {
		return nil, errUnknownKey
	}
	set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(keys))}
	for n, k := range keys {
		set.Keys[n] = k
	}
	return set, nil
}

// maxKeyIDBytes bounds a kid: ours are 43 characters.
const maxKeyIDBytes = 128

var errUnknownKey = Errorf(EUnauthorized, "the token names an unknown key")

// JWKS returns the public keys that verify session tokens now, for
// /.well-known/jwks.json; none when no key is configured.
func (i *Identity) JWKS() JWKSet {
	if i.cfg.JWTKeys == nil {
		return JWKSet{Keys: []JWK{}}
	}
	return i.cfg.JWTKeys.JWKS()
}
