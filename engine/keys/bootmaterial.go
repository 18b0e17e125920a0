package keys

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// BootMaterial is the key material the appliance creates on its first start
// and reuses on every later one. It lives in Secrets (encrypted at rest) and
// in memory only: never log any of it.
//
// The keys that can be rotated come twice: as the key sets, which follow
// rotations (on this instance at once, on others within their refresh),
// and as the keys that were current when the material was loaded, for
// what reads them once at start.
type BootMaterial struct {
	JWTKey       *rsa.PrivateKey   // signs RS256 login tokens
	SealedBoxKey *ecdh.PrivateKey  // X25519: opens inputs customers seal to its public key
	SigningKey   *ecdsa.PrivateKey // P-256: signs what agents must trust
	AgentCA      *x509.Certificate // issues the agents' client certificates
	AgentCAKey   *ecdsa.PrivateKey

	// JWTKeys, SealedBoxKeys and AgentCAs are the rotating sets; nil in
	// material built by hand, where JWT, SealedBox and CAs fall back to the
	// single keys above.
	JWTKeys       *JWTKeys
	SealedBoxKeys *SealedBoxKeys
	AgentCAs      *AgentCAs

	// InstallationID names this appliance for good: it derives from the
	// first agent CA, and a CA rotation leaves it alone.
	InstallationID string
	// WebhookSecret authenticates payment webhooks (HMAC-SHA256): the
	// current one of WebhookSecrets when the material was loaded.
	WebhookSecret []byte
	// WebhookSecrets follow rotations of it; nil in material built by hand.
	WebhookSecrets *WebhookSecrets
	// AdminToken is the bootstrap credential of the first administrator.
	AdminToken string
	// AdminTokenNew is true only for the call that created AdminToken, so
	// the caller shows it once.
	AdminTokenNew bool
}

// JWT returns the JWT key set; nil without any JWT key.
func (m *BootMaterial) JWT() *JWTKeys {
	switch {
	case m.JWTKeys != nil:
		return m.JWTKeys
	case m.JWTKey != nil:
		return StaticJWTKeys(m.JWTKey)
	}
	return nil
}

// SealedBox returns the sealed-box key set; nil without any sealed-box key.
func (m *BootMaterial) SealedBox() *SealedBoxKeys {
	switch {
	case m.SealedBoxKeys != nil:
		return m.SealedBoxKeys
	case m.SealedBoxKey != nil:
		return StaticSealedBoxKeys(m.SealedBoxKey)
	}
	return nil
}

// CAs returns the agent CA set; nil without an agent CA.
func (m *BootMaterial) CAs() *AgentCAs {
	switch {
	case m.AgentCAs != nil:
		return m.AgentCAs
	case m.AgentCA != nil:
		return StaticAgentCAs(&AgentCA{Cert: m.AgentCA, Key: m.AgentCAKey})
	}
	return nil
}

// Where the boot material lives in Secrets. The keys a rotation replaced
// live beside the current one, under its name with "-retired".
const (
	SecretJWTKey        = "boot/jwt-signing-key"     // PKCS#8 PEM, RSA 2048
	SecretSealedBoxKey  = "boot/sealed-box-key"      // PKCS#8 PEM, X25519
	SecretSigningKey    = "boot/ecdsa-signing-key"   // PKCS#8 PEM, P-256
	SecretAgentCA       = "boot/agent-ca"            // PKCS#8 PEM key, certificate PEM, cross-signed certificate PEM
	SecretWebhookSecret = "boot/webhook-hmac-secret" // hcwhsec_ and 256 random bits in base64url (once 32 raw random bytes)
	SecretAdminToken    = "boot/admin-token"         // the token's text
	SecretInstallation  = "boot/installation-id"     // see BootMaterial.InstallationID
)

// AgentCAName is the common name of the agent CA certificate.
const AgentCAName = "HoodCloud Agent CA"

// agentCAValidity is how long the agent CA certificate is valid.
const agentCAValidity = 10 * 365 * 24 * time.Hour

// BootConfig is what the boot material's use-cases need. Secrets is
// required.
type BootConfig struct {
	Secrets engine.Secrets
	// Now is the clock the key sets measure grace periods on; time.Now
	// when nil.
	Now func() time.Time
	// Refresh is how long a loaded key set is used before it is read again
	// from Secrets, so an instance notices a rotation made by another;
	// DefaultRefresh when zero.
	Refresh time.Duration
}

// Boot holds the use-cases of the boot material: making it on the first
// start, and loading the key sets that follow rotations. Safe for
// concurrent use.
type Boot struct {
	cfg BootConfig
}

// NewBoot checks cfg; it does no I/O.
func NewBoot(cfg BootConfig) (*Boot, error) {
	if cfg.Secrets == nil {
		return nil, engine.Errorf(engine.EInvalid, "boot material needs Secrets")
	}
	return &Boot{cfg: cfg}, nil
}

func (b *Boot) setOptions() setOptions {
	return setOptions{Now: b.cfg.Now, Refresh: b.cfg.Refresh}
}

// Ensure returns the boot material, creating each piece the first time it
// is asked for. Pieces are created with Secrets.Create, so two instances
// starting together end up with the same material; a piece made by a
// crashed first start is reused. Each piece is one secret, so a key and
// its certificate are always written together.
func (b *Boot) Ensure(ctx context.Context) (*BootMaterial, error) {
	s := b.cfg.Secrets
	var m BootMaterial
	var err error
	if err = ensureRotatingKeys(ctx, s); err != nil {
		return nil, err
	}
	if err = b.loadKeySets(ctx, &m); err != nil {
		return nil, err
	}
	if m.SigningKey, err = ensureKey[*ecdsa.PrivateKey](ctx, s, SecretSigningKey, newP256Key); err != nil {
		return nil, err
	}
	if m.InstallationID, err = ensureInstallationID(ctx, s, m.AgentCA); err != nil {
		return nil, err
	}
	if err = b.ensureWebhookSecrets(ctx, &m); err != nil {
		return nil, err
	}
	token, created, err := ensureSecret(ctx, s, SecretAdminToken, newAdminToken)
	if err != nil {
		return nil, err
	}
	m.AdminToken, m.AdminTokenNew = string(token), created
	engine.Zero(token)
	return &m, nil
}

// ensureRotatingKeys creates the first JWT key, sealed-box key and agent
// CA where missing.
func ensureRotatingKeys(ctx context.Context, s engine.Secrets) error {
	firsts := []struct {
		name     string
		generate func() ([]byte, error)
	}{
		{SecretJWTKey, keyPEM(newRSAKey)},
		{SecretSealedBoxKey, keyPEM(newX25519Key)},
		{SecretAgentCA, func() ([]byte, error) { return newAgentCABundle(time.Now(), nil) }},
	}
	for _, f := range firsts {
		v, _, err := ensureSecret(ctx, s, f.name, f.generate)
		if err != nil {
			return err
		}
		engine.Zero(v)
	}
	return nil
}

// loadKeySets loads the rotating sets into m and the keys current among
// them.
func (b *Boot) loadKeySets(ctx context.Context, m *BootMaterial) error {
	var err error
	if m.JWTKeys, err = b.LoadJWTKeys(ctx); err != nil {
		return err
	}
	if m.SealedBoxKeys, err = b.LoadSealedBoxKeys(ctx); err != nil {
		return err
	}
	if m.AgentCAs, err = b.LoadAgentCAs(ctx); err != nil {
		return err
	}
	_, m.JWTKey = m.JWTKeys.Signer()
	m.SealedBoxKey = m.SealedBoxKeys.v.snapshot().current.key
	ca := m.AgentCAs.Current()
	m.AgentCA, m.AgentCAKey = ca.Cert, ca.Key
	return nil
}

// ensureWebhookSecrets creates the first payment webhook secret where
// missing and loads the set.
func (b *Boot) ensureWebhookSecrets(ctx context.Context, m *BootMaterial) error {
	v, _, err := ensureSecret(ctx, b.cfg.Secrets, SecretWebhookSecret, newWebhookSecret)
	if err != nil {
		return err
	}
	engine.Zero(v)
	if m.WebhookSecrets, err = b.LoadWebhookSecrets(ctx); err != nil {
		return err
	}
	m.WebhookSecret = m.WebhookSecrets.Current()
	return nil
}

// ensureInstallationID records the installation id on the first start,
// from the agent CA of that start; before CA rotation existed it was
// derived from the CA each time, so an appliance made then keeps its id.
func ensureInstallationID(ctx context.Context, s engine.Secrets, firstCA *x509.Certificate) (string, error) {
	id, _, err := ensureSecret(ctx, s, SecretInstallation, func() ([]byte, error) {
		sum := sha256.Sum256(firstCA.Raw)
		return []byte("hc-" + hex.EncodeToString(sum[:6])), nil
	})
	return string(id), err
}

// ensureSecret returns the secret under name, creating it with generate if
// missing, and whether this call created it.
func ensureSecret(ctx context.Context, s engine.Secrets, name string, generate func() ([]byte, error)) ([]byte, bool, error) {
	v, err := s.Get(ctx, name)
	if err == nil {
		return v, false, nil
	}
	if !engine.IsCode(err, engine.ENotFound) {
		return nil, false, fmt.Errorf("read %s: %w", name, err)
	}
	if v, err = generate(); err != nil {
		return nil, false, fmt.Errorf("generate %s: %w", name, err)
	}
	err = s.Create(ctx, name, v)
	if engine.IsCode(err, engine.EConflict) { // created meanwhile by another instance: use theirs
		engine.Zero(v)
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
func ensureKey[K any](ctx context.Context, s engine.Secrets, name string, generate func() (any, error)) (K, error) {
	pemBytes, _, err := ensureSecret(ctx, s, name, keyPEM(generate))
	if err != nil {
		var zero K
		return zero, err
	}
	defer engine.Zero(pemBytes)
	return decodeKeyPEM[K](name, pemBytes)
}

// decodeKeyPEM reads a private key of type K from the PKCS#8 PEM stored
// under name; errors name the secret, never show the key.
func decodeKeyPEM[K any](name string, pemBytes []byte) (K, error) {
	var zero K
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "PRIVATE KEY" {
		return zero, engine.Errorf(engine.EInternal, "%s does not hold a PKCS#8 PEM key", name)
	}
	defer engine.Zero(block.Bytes)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return zero, engine.Errorf(engine.EInternal, "%s holds an unreadable key", name)
	}
	k, ok := key.(K)
	if !ok {
		return zero, engine.Errorf(engine.EInternal, "%s holds a key of type %T, want %T", name, key, zero)
	}
	return k, nil
}

// keyPEM turns a key generator into one of its PKCS#8 PEM.
func keyPEM(generate func() (any, error)) func() ([]byte, error) {
	return func() ([]byte, error) {
		key, err := generate()
		if err != nil {
			return nil, err
		}
		return marshalKeyPEM(key)
	}
}

func marshalKeyPEM(key any) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	defer engine.Zero(der)
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
	defer engine.Zero(b)
	return []byte("hcadmin_" + base64.RawURLEncoding.EncodeToString(b)), nil
}

func randomBytes(n int) func() ([]byte, error) {
	return func() ([]byte, error) {
		b := make([]byte, n)
		_, err := rand.Read(b)
		return b, err
	}
}
