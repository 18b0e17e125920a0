package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// Defaults of the agent identity.
const (
	DefaultClientCertValidity = 30 * 24 * time.Hour
	serverCertValidity        = 365 * 24 * time.Hour
	clockSkew                 = 5 * time.Minute // NotBefore is set back by this much
	tokenPrefix               = "hcenroll_"
)

// Identity issues and checks the certificates agents authenticate with:
// enrolment tokens, client certificates for enrolled nodes, the gateway's
// server certificate, and revocation. All are issued by the agent CAs,
// read at each use so that a rotation takes effect without a restart.
type Identity struct {
	cas            *keys.AgentCAs
	agents         engine.AgentStore
	ClientValidity time.Duration    // default DefaultClientCertValidity
	Now            func() time.Time // default time.Now
}

// NewIdentity returns an Identity issuing from the one CA ca, which never
// rotates, and recording into agents.
func NewIdentity(ca *x509.Certificate, caKey *ecdsa.PrivateKey, agents engine.AgentStore) *Identity {
	return NewIdentityFromCAs(keys.StaticAgentCAs(&keys.AgentCA{Cert: ca, Key: caKey}), agents)
}

// NewIdentityFromCAs returns an Identity issuing from the agent CA set cas
// (BootMaterial.CAs), following its rotations, and recording into agents.
func NewIdentityFromCAs(cas *keys.AgentCAs, agents engine.AgentStore) *Identity {
	return &Identity{cas: cas, agents: agents, ClientValidity: DefaultClientCertValidity, Now: time.Now}
}

// CAs is the agent CA set: the gateway trusts the client certificates of
// each CA in it.
func (i *Identity) CAs() *keys.AgentCAs { return i.cas }

// CA is the CA that issues client certificates now.
func (i *Identity) CA() *x509.Certificate { return i.cas.Current().Cert }

// IssueEnrollmentToken creates a one-time token that lets the agent of
// nodeID's host incarnation (engine.HostSpec.Incarnation, empty for the
// node's first host) enrol until ttl has passed. The token is returned once
// and only its hash is stored; the hash covers the node id, so the token is
// worthless for any other node. The registration the token makes records
// the incarnation: signing leases name their holder by it.
func (i *Identity) IssueEnrollmentToken(ctx context.Context, nodeID, incarnation string, ttl time.Duration) (string, error) {
	if nodeID == "" || ttl <= 0 {
		return "", engine.Errorf(engine.EInvalid, "an enrollment token needs a node and a positive lifetime")
	}
	if !engine.ValidIncarnation(incarnation) {
		return "", engine.Errorf(engine.EInvalid, "host incarnation %q is not 1 to 16 lower-case letters and digits", incarnation)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("enrollment token: %w", err)
	}
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	engine.Zero(raw[:])
	now := i.Now().UTC()
	t := &engine.EnrollmentToken{Hash: tokenHash(nodeID, token), NodeID: nodeID, ExpiresAt: now.Add(ttl), Incarnation: incarnation, CreatedAt: now}
	if err := i.agents.CreateEnrollmentToken(ctx, t); err != nil {
		return "", fmt.Errorf("store enrollment token: %w", err)
	}
	return token, nil
}

// tokenHash binds a token to its node: SHA-256 of node id, NUL, token.
func tokenHash(nodeID, token string) []byte {
	h := sha256.Sum256([]byte(nodeID + "\x00" + token))
	return h[:]
}

// Enrollment is what an agent receives for its CSR. The gateway sends
// with it every CA the agent is to trust (AgentCAs.Trusted).
type Enrollment struct {
	CertificateDER []byte
	// CADER is the CA the gateway's certificate chains to now, for agents
	// that keep only one CA.
	CADER  []byte
	Serial string
}

// Enroll consumes token for the CSR's key, verifies csrDER and issues a
// client certificate naming nodeID, recording the registration. The same
// key may enrol again with the token until it expires (the agent lost the
// reply); the new certificate supersedes the earlier one. Returns
// EUnauthorized for an unknown, expired or foreign token or one used for
// another key, EInvalid for a bad CSR.
func (i *Identity) Enroll(ctx context.Context, token, nodeID string, csrDER []byte, agentVersion string) (*Enrollment, error) {
	csr, err := parseCSR(csrDER)
	if err != nil {
		return nil, err
	}
	t, err := i.consumeToken(ctx, token, nodeID, KeyFingerprint(csr.RawSubjectPublicKeyInfo))
	if err != nil {
		return nil, err
	}
	der, serial, err := i.issueClientCert(nodeID, csr.PublicKey)
	if err != nil {
		return nil, err
	}
	reg := &engine.AgentRegistration{NodeID: nodeID, CertSerial: serial, AgentVersion: agentVersion,
		Incarnation: t.Incarnation, EnrolledAt: i.Now().UTC()}
	if err := i.agents.PutAgentRegistration(ctx, reg); err != nil {
		return nil, fmt.Errorf("record agent registration: %w", err)
	}
	return &Enrollment{CertificateDER: der, CADER: i.serverRoot(), Serial: serial}, nil
}

// KeyFingerprint identifies a public key: SHA-256 of its DER
// SubjectPublicKeyInfo.
func KeyFingerprint(spki []byte) []byte {
	h := sha256.Sum256(spki)
	return h[:]
}

// Renew issues a new client certificate for the CSR's key to the agent of
// nodeID, which authenticated with the certificate of serial. That
// certificate must be the registration's current one, or the one the
// current one was renewed from (the agent lost the reply of a renewal). The
// renewed certificate stays valid until it expires; the registration keeps
// the incarnation it enrolled for. Returns EForbidden for
// a revoked registration or a superseded certificate, ENotFound for a node
// that never enrolled, EInvalid for a bad CSR.
func (i *Identity) Renew(ctx context.Context, nodeID, serial string, csrDER []byte, agentVersion string) (*Enrollment, error) {
	csr, err := parseCSR(csrDER)
	if err != nil {
		return nil, err
	}
	reg, err := i.agents.GetAgentRegistration(ctx, nodeID)
	if err != nil {
		return nil, fmt.Errorf("read agent registration: %w", err)
	}
	if !reg.Accepts(serial) {
		return nil, engine.Errorf(engine.EForbidden, "the certificate is revoked or superseded")
	}
	der, next, err := i.issueClientCert(nodeID, csr.PublicKey)
	if err != nil {
		return nil, err
	}
	if serial == reg.CertSerial {
		reg.PreviousCertSerial = serial
	} // else a repeat from the previous certificate: the lost one is dropped
	reg.CertSerial = next
	if agentVersion != "" {
		reg.AgentVersion = agentVersion
	}
	if err := i.agents.PutAgentRegistration(ctx, reg); err != nil {
		return nil, fmt.Errorf("record agent registration: %w", err)
	}
	return &Enrollment{CertificateDER: der, CADER: i.serverRoot(), Serial: next}, nil
}

func parseCSR(der []byte) (*x509.CertificateRequest, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, engine.Errorf(engine.EInvalid, "the CSR does not parse")
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, engine.Errorf(engine.EInvalid, "the CSR signature does not verify")
	}
	return csr, nil
}

// consumeToken maps every token failure to one EUnauthorized so a caller
// learns nothing about which tokens exist.
func (i *Identity) consumeToken(ctx context.Context, token, nodeID string, key []byte) (*engine.EnrollmentToken, error) {
	invalid := engine.Errorf(engine.EUnauthorized, "invalid enrollment token")
	if nodeID == "" || !strings.HasPrefix(token, tokenPrefix) {
		return nil, invalid
	}
	t, err := i.agents.ConsumeEnrollmentToken(ctx, tokenHash(nodeID, token), key, i.Now().UTC())
	switch engine.ErrorCode(err) {
	case "":
	case engine.ENotFound, engine.EConflict, engine.EForbidden:
		return nil, invalid
	default:
		return nil, fmt.Errorf("consume enrollment token: %w", err)
	}
	if t.NodeID != nodeID {
		return nil, invalid
	}
	return t, nil
}

// serverRoot is the DER of the CA that issues the gateway's certificate.
func (i *Identity) serverRoot() []byte {
	issuer, _ := i.cas.ServerIssuer()
	return issuer.Cert.Raw
}

// issueClientCert signs pub for nodeID by the current CA: CN and URI SAN
// name the node.
func (i *Identity) issueClientCert(nodeID string, pub any) ([]byte, string, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, "", err
	}
	now := i.Now().UTC()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: nodeID, Organization: []string{"HoodCloud agents"}},
		URIs:         []*url.URL{agentv1.NodeURI(nodeID)},
		NotBefore:    now.Add(-backdate(i.ClientValidity)),
		NotAfter:     now.Add(i.ClientValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	ca := i.cas.Current()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, "", engine.Errorf(engine.EInvalid, "cannot certify the CSR's key")
	}
	return der, serial.Text(16), nil
}

// backdate is how far NotBefore goes back for clock skew: at most a tenth of
// the validity, so the agent's renewal point (2/3 of the span) stays ahead
// of issuance even for short-lived certificates.
func backdate(validity time.Duration) time.Duration { return min(clockSkew, validity/10) }

// ServerCertificate issues the gateway's certificate for hosts (names or
// IPs; localhost and 127.0.0.1 when none), with a fresh P-256 key, from the
// CA AgentCAs.ServerIssuer names: every agent trusting a CA still in grace
// verifies it.
func (i *Identity) ServerCertificate(hosts []string) (tls.Certificate, error) {
	issuer, intermediates := i.cas.ServerIssuer()
	return i.serverCertificate(hosts, issuer, intermediates)
}

// serverCertificate issues the gateway's certificate from issuer; the
// chain sent is the certificate, intermediates, then the issuer's own.
func (i *Identity) serverCertificate(hosts []string, issuer *keys.AgentCA, intermediates [][]byte) (tls.Certificate, error) {
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1"}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("gateway key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return tls.Certificate{}, err
	}
	now := i.Now().UTC()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "HoodCloud agent gateway"},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(serverCertValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer.Cert, &key.PublicKey, issuer.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("gateway certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("gateway certificate: %w", err)
	}
	chain := append(append([][]byte{der}, intermediates...), issuer.Cert.Raw)
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

// Revoke refuses the node's certificate from now on (on terminate).
// Returns ENotFound if the node never enrolled.
func (i *Identity) Revoke(ctx context.Context, nodeID string) error {
	if err := i.agents.RevokeAgentRegistration(ctx, nodeID, i.Now().UTC()); err != nil {
		return fmt.Errorf("revoke agent of %s: %w", nodeID, err)
	}
	return nil
}

func randomSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}
