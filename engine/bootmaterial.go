package engine

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// BootMaterial is the key material the appliance creates on its first start
// and reuses on every later one. It lives in Secrets (encrypted at rest) and
// in memory only: never log any of it.
type BootMaterial struct {
	JWTKey       *rsa.PrivateKey   // signs RS256 login tokens
	SealedBoxKey *ecdh.PrivateKey  // X25519: opens inputs customers seal to its public key
	SigningKey   *ecdsa.PrivateKey // P-256: signs what agents must trust
	AgentCA      *x509.Certificate // issues the agents' client certificates
	AgentCAKey   *ecdsa.PrivateKey
	// WebhookSecret authenticates payment webhooks (HMAC-SHA256).
	WebhookSecret []byte
	// AdminToken is the bootstrap credential of the first administrator.
	AdminToken string
	// AdminTokenNew is true only for the call that created AdminToken, so
	// the caller shows it once.
	AdminTokenNew bool
}

// Where the boot material lives in Secrets.
const (
	SecretJWTKey        = "boot/jwt-signing-key"     // PKCS#8 PEM, RSA 2048
	SecretSealedBoxKey  = "boot/sealed-box-key"      // PKCS#8 PEM, X25519
	SecretSigningKey    = "boot/ecdsa-signing-key"   // PKCS#8 PEM, P-256
	SecretAgentCA       = "boot/agent-ca"            // PKCS#8 PEM key then certificate PEM
	SecretWebhookSecret = "boot/webhook-hmac-secret" // 32 random bytes
	SecretAdminToken    = "boot/admin-token"         // the token's text
)

// AgentCAName is the common name of the agent CA certificate.
const AgentCAName = "HoodCloud Agent CA"

// agentCAValidity is how long the agent CA certificate is valid.
const agentCAValidity = 10 * 365 * 24 * time.Hour

// EnsureBootMaterial returns the boot material, creating each piece the
// first time it is asked for. Pieces are created with Secrets.Create, so two
// instances starting together end up with the same material; a piece made
// by a crashed first start is reused. Each piece is one secret, so a key and
// its certificate are always written together.
func EnsureBootMaterial(ctx context.Context, s Secrets) (*BootMaterial, error) {
	var m BootMaterial
	var err error
	if m.JWTKey, err = ensureKey[*rsa.PrivateKey](ctx, s, SecretJWTKey, newRSAKey); err != nil {
		return nil, err
	}
	if m.SealedBoxKey, err = ensureKey[*ecdh.PrivateKey](ctx, s, SecretSealedBoxKey, newX25519Key); err != nil {
		return nil, err
	}
	if m.SigningKey, err = ensureKey[*ecdsa.PrivateKey](ctx, s, SecretSigningKey, newP256Key); err != nil {
		return nil, err
	}
	if m.AgentCA, m.AgentCAKey, err = ensureAgentCA(ctx, s); err != nil {
		return nil, err
	}
	if m.WebhookSecret, _, err = ensureSecret(ctx, s, SecretWebhookSecret, randomBytes(32)); err != nil {
		return nil, err
	}
	token, created, err := ensureSecret(ctx, s, SecretAdminToken, newAdminToken)
	if err != nil {
		return nil, err
	}
	m.AdminToken, m.AdminTokenNew = string(token), created
	Zero(token)
	return &m, nil
}

// ensureSecret returns the secret under name, creating it with generate if
// missing, and whether this call created it.
func ensureSecret(ctx context.Context, s Secrets, name string, generate func() ([]byte, error)) ([]byte, bool, error) {
	v, err := s.Get(ctx, name)
	if err == nil {
		return v, false, nil
	}
	if !IsCode(err, ENotFound) {
		return nil, false, fmt.Errorf("read %s: %w", name, err)
	}
	if v, err = generate(); err != nil {
		return nil, false, fmt.Errorf("generate %s: %w", name, err)
	}
	err = s.Create(ctx, name, v)
	if IsCode(err, EConflict) { // created meanwhile by another instance: use theirs
		Zero(v)
		if v, err = s.Get(ctx, name); err != nil {
			return nil, false, fmt.Errorf("read %s: %w", name, err)
		}
		return v, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store %s: %w", name, err)
	}
	return v, true, nil
}

// ensureKey returns the private key of type K stored as PKCS#8 PEM under
// name, generating it if missing.
func ensureKey[K any](ctx context.Context, s Secrets, name string, generate func() (any, error)) (K, error) {
	var zero K
	pemBytes, _, err := ensureSecret(ctx, s, name, func() ([]byte, error) {
		key, err := generate()
		if err != nil {
			return nil, err
		}
		return marshalKeyPEM(key)
	})
	if err != nil {
		return zero, err
	}
	defer Zero(pemBytes)
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "PRIVATE KEY" {
		return zero, Errorf(EInternal, "%s does not hold a PKCS#8 PEM key", name)
	}
	defer Zero(block.Bytes)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return zero, Errorf(EInternal, "%s holds an unreadable key", name)
	}
	k, ok := key.(K)
	if !ok {
		return zero, Errorf(EInternal, "%s holds a key of type %T, want %T", name, key, zero)
	}
	return k, nil
}

// ensureAgentCA returns the agent CA certificate and its key, creating a
// self-signed P-256 CA valid for ten years if missing.
func ensureAgentCA(ctx context.Context, s Secrets) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	bundle, _, err := ensureSecret(ctx, s, SecretAgentCA, newAgentCA)
	if err != nil {
		return nil, nil, err
	}
	defer Zero(bundle)
	var cert *x509.Certificate
	var key *ecdsa.PrivateKey
	for rest := bundle; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			cert, err = x509.ParseCertificate(block.Bytes)
		case "PRIVATE KEY":
			var k any
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
			key, _ = k.(*ecdsa.PrivateKey)
			Zero(block.Bytes)
		}
		if err != nil {
			return nil, nil, Errorf(EInternal, "%s holds an unreadable %s", SecretAgentCA, block.Type)
		}
	}
	if cert == nil || key == nil || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, Errorf(EInternal, "%s does not hold a certificate with its P-256 key", SecretAgentCA)
	}
	return cert, key, nil
}

// newAgentCA generates the CA key and its self-signed certificate, as one
// PEM bundle: the key first, then the certificate.
func newAgentCA() ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: AgentCAName, Organization: []string{"HoodCloud"}},
		NotBefore:             now.Add(-time.Hour), // tolerate clocks slightly behind
		NotAfter:              now.Add(agentCAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // it signs agents' certificates only, never another CA
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyPEM, err := marshalKeyPEM(key)
	if err != nil {
		return nil, err
	}
	return append(keyPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...), nil
}

func marshalKeyPEM(key any) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	defer Zero(der)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func newRSAKey() (any, error)    { return rsa.GenerateKey(rand.Reader, 2048) }
func newP256Key() (any, error)   { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }
func newX25519Key() (any, error) { return ecdh.X25519().GenerateKey(rand.Reader) }

// newAdminToken is 256 random bits, URL-safe, with a prefix that says what
// it is when found in a shell history or a secret scanner.
func newAdminToken() ([]byte, error) {
	b, err := randomBytes(32)()
	if err != nil {
		return nil, err
	}
	defer Zero(b)
	return []byte("hcadmin_" + base64.RawURLEncoding.EncodeToString(b)), nil
}

func randomBytes(n int) func() ([]byte, error) {
	return func() ([]byte, error) {
		b := make([]byte, n)
		_, err := rand.Read(b)
		return b, err
	}
}
