package keys

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// AgentCA is one agent CA: its self-signed certificate, its key, and the
// same subject and key certified by the CA it replaced, so that agents
// trusting only the old CA verify chains of this one.
type AgentCA struct {
	Cert        *x509.Certificate
	Key         *ecdsa.PrivateKey
	CrossSigned []*x509.Certificate
}

// ID fingerprints the CA certificate, safe to show and log.
func (ca *AgentCA) ID() string {
	sum := sha256.Sum256(ca.Cert.Raw)
	return hex.EncodeToString(sum[:8])
}

// crossSignedBy returns ca's certificate signed by parent, if any.
func (ca *AgentCA) crossSignedBy(parent *x509.Certificate) *x509.Certificate {
	for _, x := range ca.CrossSigned {
		if x.CheckSignatureFrom(parent) == nil {
			return x
		}
	}
	return nil
}

// AgentCAs are the agent CA that issues certificates now and the CAs it
// replaced, still trusted until their grace period ends. Safe for
// concurrent use.
type AgentCAs struct {
	v *versionedKeys[*AgentCA]
}

var agentCACodec = keyCodec[*AgentCA]{
	name:   SecretAgentCA,
	decode: decodeAgentCA,
	id:     (*AgentCA).ID,
}

// LoadAgentCAs reads the agent CA Ensure made and any a rotation
// replaced. Returns ENotFound if there is no agent CA.
func (b *Boot) LoadAgentCAs(ctx context.Context) (*AgentCAs, error) {
	v, err := loadVersionedKeys(ctx, b.cfg.Secrets, agentCACodec, b.setOptions())
	if err != nil {
		return nil, err
	}
	return &AgentCAs{v}, nil
}

// StaticAgentCAs is a set of one CA, outside Secrets: it never rotates.
func StaticAgentCAs(ca *AgentCA) *AgentCAs { return &AgentCAs{staticKeys(ca, agentCACodec)} }

// Current is the CA that issues agents' client certificates.
func (c *AgentCAs) Current() *AgentCA { return c.v.snapshot().current.key }

// Trusted returns the CA certificates agents and the gateway trust now:
// the current one first, then those in their grace period.
func (c *AgentCAs) Trusted() []*x509.Certificate {
	h := c.v.snapshot()
	certs := []*x509.Certificate{h.current.key.Cert}
	for _, p := range h.inGrace(c.v.now()) {
		certs = append(certs, p.key.Cert)
	}
	return certs
}

// TrustPool is Trusted as a pool: the gateway's ClientCAs.
func (c *AgentCAs) TrustPool() *x509.CertPool {
	pool := x509.NewCertPool()
	for _, cert := range c.Trusted() {
		pool.AddCert(cert)
	}
	return pool
}

// TrustPEM is Trusted as PEM: what an agent is given to trust when it is
// bootstrapped or enrols.
func (c *AgentCAs) TrustPEM() []byte {
	var out []byte
	for _, cert := range c.Trusted() {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})...)
	}
	return out
}

// ServerIssuer returns the CA to issue the gateway's server certificate
// and the certificates (DER) to send after it, so that an agent trusting
// any CA still in grace verifies it: the current CA with its certificate
// cross-signed by the CA it replaced when that is the only one in grace,
// else the oldest CA in grace (after two rotations within a grace period,
// or when the old CA allows no intermediate below it, as the first agent
// CAs did).
func (c *AgentCAs) ServerIssuer() (*AgentCA, [][]byte) {
	h := c.v.snapshot()
	prev := h.inGrace(c.v.now())
	cur := h.current.key
	switch len(prev) {
	case 0:
		return cur, nil
	case 1:
		if x := cur.crossSignedBy(prev[0].key.Cert); x != nil {
			return cur, [][]byte{x.Raw}
		}
	}
	return prev[len(prev)-1].key, nil
}

// Rotate makes a new current CA, cross-signed by the old one when it
// allows; the old one stays trusted for grace (DefaultAgentCAGrace when
// zero). Returns the new CA's id; EInvalid for a grace out of range,
// EUnsupported for a static set.
func (c *AgentCAs) Rotate(ctx context.Context, grace time.Duration) (string, error) {
	grace, err := checkGrace(grace, DefaultAgentCAGrace)
	if err != nil {
		return "", err
	}
	return c.v.rotate(ctx, grace, func(old *AgentCA) ([]byte, error) {
		return newAgentCABundle(c.v.now(), old)
	})
}

// RotateAgentCA replaces the agent CA in Secrets, as AgentCAs.Rotate
// does, and returns the new one. Instances holding AgentCAs notice within
// their refresh period.
func (b *Boot) RotateAgentCA(ctx context.Context, grace time.Duration) (*AgentCA, error) {
	cas, err := b.LoadAgentCAs(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := cas.Rotate(ctx, grace); err != nil {
		return nil, err
	}
	return cas.Current(), nil
}

// newAgentCABundle generates a CA key and its self-signed certificate
// and, when replacing old, the certificate cross-signed by it; as one PEM
// bundle: the key, the certificate, the cross-signed certificate.
func newAgentCABundle(now time.Time, old *AgentCA) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	subject := pkix.Name{CommonName: AgentCAName, Organization: []string{"HoodCloud"}}
	if old != nil { // a distinct name keeps chain building unambiguous
		subject.SerialNumber = now.UTC().Format("20060102T150405Z")
	}
	tmpl, err := agentCATemplate(subject, now, now.Add(agentCAValidity))
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	bundle, err := marshalKeyPEM(key)
	if err != nil {
		return nil, err
	}
	bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	if old == nil || !allowsIntermediate(old.Cert) {
		return bundle, nil
	}
	cross, err := crossSign(tmpl, &key.PublicKey, old, now)
	if err != nil {
		return nil, err
	}
	return append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cross})...), nil
}

// agentCATemplate is an agent CA valid from an hour before now (clocks
// slightly behind) until notAfter. It may sign one intermediate below it:
// the next CA, cross-signed when this one is rotated.
func agentCATemplate(subject pkix.Name, now, notAfter time.Time) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.UTC().Add(-time.Hour),
		NotAfter:              notAfter.UTC(),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}, nil
}

// crossSign certifies the new CA (tmpl, pub) by old. The result may sign
// agents' certificates only, never another CA, and ends when old does.
func crossSign(tmpl *x509.Certificate, pub *ecdsa.PublicKey, old *AgentCA, now time.Time) ([]byte, error) {
	notAfter := tmpl.NotAfter
	if old.Cert.NotAfter.Before(notAfter) {
		notAfter = old.Cert.NotAfter
	}
	x, err := agentCATemplate(tmpl.Subject, now, notAfter)
	if err != nil {
		return nil, err
	}
	x.MaxPathLen, x.MaxPathLenZero = 0, true
	return x509.CreateCertificate(rand.Reader, x, old.Cert, pub, old.Key)
}

// allowsIntermediate reports whether a CA certificate may have a CA below
// it. The first agent CAs said no (path length 0), so they cannot
// cross-sign their successor.
func allowsIntermediate(c *x509.Certificate) bool {
	return c.MaxPathLen < 0 || c.MaxPathLen >= 1
}

// decodeAgentCA reads a bundle of newAgentCABundle: the key, the
// self-signed certificate of that key, and any cross-signed ones.
func decodeAgentCA(bundle []byte) (*AgentCA, error) {
	var ca AgentCA
	var certs []*x509.Certificate
	for rest := bundle; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		var err error
		switch block.Type {
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(block.Bytes); err == nil {
				certs = append(certs, c)
			}
		case "PRIVATE KEY":
			var k any
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
			ca.Key, _ = k.(*ecdsa.PrivateKey)
			engine.Zero(block.Bytes)
		}
		if err != nil {
			return nil, engine.Errorf(engine.EInternal, "%s holds an unreadable %s", SecretAgentCA, block.Type)
		}
	}
	if ca.Key == nil {
		return nil, engine.Errorf(engine.EInternal, "%s does not hold a certificate with its P-256 key", SecretAgentCA)
	}
	for _, c := range certs {
		switch {
		case !ca.Key.PublicKey.Equal(c.PublicKey):
			return nil, engine.Errorf(engine.EInternal, "%s holds a certificate of another key", SecretAgentCA)
		case ca.Cert == nil && c.CheckSignatureFrom(c) == nil:
			ca.Cert = c
		default:
			ca.CrossSigned = append(ca.CrossSigned, c)
		}
	}
	if ca.Cert == nil {
		return nil, engine.Errorf(engine.EInternal, "%s does not hold a certificate with its P-256 key", SecretAgentCA)
	}
	return &ca, nil
}
