package keys

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// JWTKeys are the RSA keys of session tokens: the current key signs, and
// keys it replaced still verify until their grace period ends. Each key is
// named by a kid, its RFC 7638 thumbprint, which tokens carry in their
// header. Safe for concurrent use.
type JWTKeys struct {
	v *versionedKeys[*rsa.PrivateKey]
}

var jwtCodec = keyCodec[*rsa.PrivateKey]{
	name:   SecretJWTKey,
	decode: func(b []byte) (*rsa.PrivateKey, error) { return decodeKeyPEM[*rsa.PrivateKey](SecretJWTKey, b) },
	id:     func(k *rsa.PrivateKey) string { return JWKThumbprint(&k.PublicKey) },
}

var _ engine.JWTKeys = (*JWTKeys)(nil)

// LoadJWTKeys reads the JWT keys Ensure made and any a rotation replaced.
// Returns ENotFound if there is no current key.
func (b *Boot) LoadJWTKeys(ctx context.Context) (*JWTKeys, error) {
	v, err := loadVersionedKeys(ctx, b.cfg.Secrets, jwtCodec, b.setOptions())
	if err != nil {
		return nil, err
	}
	return &JWTKeys{v}, nil
}

// StaticJWTKeys is a set of one key, outside Secrets: it never rotates.
func StaticJWTKeys(key *rsa.PrivateKey) *JWTKeys {
	return &JWTKeys{staticKeys(key, jwtCodec)}
}

// Signer returns the current key and its kid.
func (k *JWTKeys) Signer() (string, *rsa.PrivateKey) {
	cur := k.v.snapshot().current
	return cur.id, cur.key
}

// Verifiers returns the public keys a token with kid may be checked
// against: the key named kid, reloading the set once when it is unknown
// (another instance may have rotated), or, for a token without a kid
// (issued before keys had names), every key still honoured.
func (k *JWTKeys) Verifiers(kid string) []*rsa.PublicKey {
	h := k.v.snapshot()
	now := k.v.now()
	if kid == "" {
		keys := []*rsa.PublicKey{&h.current.key.PublicKey}
		for _, p := range h.inGrace(now) {
			keys = append(keys, &p.key.PublicKey)
		}
		return keys
	}
	v, ok := h.find(kid, now)
	if !ok && k.v.reloadAfterMiss() {
		v, ok = k.v.history.Load().find(kid, now)
	}
	if !ok {
		return nil
	}
	return []*rsa.PublicKey{&v.key.PublicKey}
}

// Rotate makes a new current key; the old one keeps verifying tokens for
// grace (DefaultJWTGrace when zero). Returns the new kid; EInvalid for a
// grace out of range, EUnsupported for a static set.
func (k *JWTKeys) Rotate(ctx context.Context, grace time.Duration) (string, error) {
	grace, err := checkGrace(grace, DefaultJWTGrace)
	if err != nil {
		return "", err
	}
	return k.v.rotate(ctx, grace, func(*rsa.PrivateKey) ([]byte, error) {
		key, err := newRSAKey()
		if err != nil {
			return nil, err
		}
		return marshalKeyPEM(key)
	})
}

// JWKS returns the public keys that verify tokens now: the current key
// first, then those still in their grace period.
func (k *JWTKeys) JWKS() engine.JWKSet {
	h := k.v.snapshot()
	set := engine.JWKSet{Keys: []engine.JWK{publicJWK(h.current)}}
	for _, p := range h.inGrace(k.v.now()) {
		set.Keys = append(set.Keys, publicJWK(p))
	}
	return set
}

func publicJWK(v keyVersion[*rsa.PrivateKey]) engine.JWK {
	n, e := jwkModulusExponent(&v.key.PublicKey)
	return engine.JWK{KeyType: "RSA", Use: "sig", Algorithm: "RS256", KeyID: v.id, Modulus: n, Exponent: e}
}

func jwkModulusExponent(pub *rsa.PublicKey) (n, e string) {
	enc := base64.RawURLEncoding
	return enc.EncodeToString(pub.N.Bytes()), enc.EncodeToString(big.NewInt(int64(pub.E)).Bytes())
}

// JWKThumbprint is the RFC 7638 thumbprint of an RSA public key: the
// SHA-256 of its required members in lexicographic order, base64url.
func JWKThumbprint(pub *rsa.PublicKey) string {
	n, e := jwkModulusExponent(pub)
	sum := sha256.Sum256([]byte(`{"e":"` + e + `","kty":"RSA","n":"` + n + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
