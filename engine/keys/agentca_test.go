package keys_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
)

// issueLeaf is what the agent identity does: a certificate for a fresh
// key, issued by ca.
func issueLeaf(t *testing.T, ca *keys.AgentCA, usage x509.ExtKeyUsage, now time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mustDo(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "leaf"},
		DNSNames:     []string{"gateway.test"},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	mustDo(t, err)
	cert, err := x509.ParseCertificate(der)
	mustDo(t, err)
	return cert
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func poolOfDER(t *testing.T, ders [][]byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	for _, d := range ders {
		c, err := x509.ParseCertificate(d)
		mustDo(t, err)
		p.AddCert(c)
	}
	return p
}

func verifies(leaf *x509.Certificate, roots, intermediates *x509.CertPool, usage x509.ExtKeyUsage, at time.Time) error {
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates,
		KeyUsages: []x509.ExtKeyUsage{usage}, CurrentTime: at})
	return err
}

func TestAgentCARotationCrossSignsTheNewCA(t *testing.T) {
	ctx := t.Context()
	s, _ := keyringOnBolt(t)
	_, err := mustBoot(t, keys.BootConfig{Secrets: s}).Ensure(ctx)
	mustDo(t, err)
	c := &clock{now: time.Now().UTC()}
	cas, err := mustBoot(t, keys.BootConfig{Secrets: s, Now: c.Now}).LoadAgentCAs(ctx)
	mustDo(t, err)
	old := cas.Current()
	oldClient := issueLeaf(t, old, x509.ExtKeyUsageClientAuth, c.Now())

	_, err = cas.Rotate(ctx, time.Hour)
	mustDo(t, err)
	cur := cas.Current()
	if cur.ID() == old.ID() || len(cur.CrossSigned) != 1 {
		t.Fatalf("after the rotation: same CA %v, %d cross-signed certificates; want a new CA cross-signed once",
			cur.ID() == old.ID(), len(cur.CrossSigned))
	}
	issuer, chain := cas.ServerIssuer()
	if issuer.ID() != cur.ID() || len(chain) != 1 {
		t.Fatalf("the gateway's certificate comes from %s with %d intermediates, want the new CA with its cross-signed one", issuer.ID(), len(chain))
	}
	server := issueLeaf(t, issuer, x509.ExtKeyUsageServerAuth, c.Now())
	if err := verifies(server, poolOf(old.Cert), poolOfDER(t, chain), x509.ExtKeyUsageServerAuth, c.Now()); err != nil {
		t.Fatalf("an agent trusting only the old CA refuses the new gateway certificate: %v", err)
	}
	trusted := x509.NewCertPool()
	trusted.AppendCertsFromPEM(cas.TrustPEM())
	if err := verifies(server, trusted, poolOfDER(t, chain), x509.ExtKeyUsageServerAuth, c.Now()); err != nil {
		t.Fatalf("an agent enrolled now refuses the gateway certificate: %v", err)
	}
	newClient := issueLeaf(t, cur, x509.ExtKeyUsageClientAuth, c.Now())
	for name, client := range map[string]*x509.Certificate{"old": oldClient, "new": newClient} {
		if err := verifies(client, cas.TrustPool(), nil, x509.ExtKeyUsageClientAuth, c.Now()); err != nil {
			t.Fatalf("the gateway refuses an agent certificate of the %s CA during the grace period: %v", name, err)
		}
	}

	c.advance(time.Hour)
	if err := verifies(oldClient, cas.TrustPool(), nil, x509.ExtKeyUsageClientAuth, c.Now()); err == nil {
		t.Fatal("the gateway still trusts the old CA after the grace period")
	}
	if issuer, chain := cas.ServerIssuer(); issuer.ID() != cur.ID() || len(chain) != 0 || len(cas.Trusted()) != 1 {
		t.Fatalf("after the grace period: issuer %s, %d intermediates, %d trusted; want the new CA alone", issuer.ID(), len(chain), len(cas.Trusted()))
	}
}

// The first agent CAs allow no CA below them, so they cannot vouch for
// their successor: the gateway keeps a certificate of the old CA while
// agents that trust only it may still connect.
func TestRotatingACAThatCannotCrossSign(t *testing.T) {
	ctx := t.Context()
	s, _ := keyringOnBolt(t)
	legacy := putLegacyAgentCA(t, s)
	c := &clock{now: time.Now().UTC()}
	cas, err := mustBoot(t, keys.BootConfig{Secrets: s, Now: c.Now}).LoadAgentCAs(ctx)
	mustDo(t, err)
	_, err = cas.Rotate(ctx, time.Hour)
	mustDo(t, err)
	if n := len(cas.Current().CrossSigned); n != 0 {
		t.Fatalf("%d cross-signed certificates from a CA of path length 0, want none", n)
	}
	issuer, chain := cas.ServerIssuer()
	if !issuer.Cert.Equal(legacy) || len(chain) != 0 {
		t.Fatal("during the grace period the gateway's certificate must come from the old CA")
	}
	server := issueLeaf(t, issuer, x509.ExtKeyUsageServerAuth, c.Now())
	if err := verifies(server, poolOf(legacy), nil, x509.ExtKeyUsageServerAuth, c.Now()); err != nil {
		t.Fatal(err)
	}
	c.advance(time.Hour)
	if issuer, _ := cas.ServerIssuer(); issuer.ID() != cas.Current().ID() {
		t.Fatal("after the grace period the gateway's certificate must come from the new CA")
	}
}

// putLegacyAgentCA stores a CA as the first releases made it: path
// length 0, one certificate.
func putLegacyAgentCA(t *testing.T, s engine.Secrets) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mustDo(t, err)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: keys.AgentCAName, Organization: []string{"HoodCloud"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	mustDo(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	mustDo(t, err)
	bundle := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	mustDo(t, s.Put(t.Context(), keys.SecretAgentCA, bundle))
	cert, err := x509.ParseCertificate(der)
	mustDo(t, err)
	return cert
}

func TestInstallationIDOutlivesACARotation(t *testing.T) {
	ctx := t.Context()
	s, _ := keyringOnBolt(t)
	legacy := putLegacyAgentCA(t, s) // an appliance from before rotation existed
	first, err := mustBoot(t, keys.BootConfig{Secrets: s}).Ensure(ctx)
	mustDo(t, err)
	sum := sha256.Sum256(legacy.Raw)
	if want := "hc-" + hex.EncodeToString(sum[:6]); first.InstallationID != want {
		t.Fatalf("installation id %q, want %q as derived from the CA before", first.InstallationID, want)
	}
	_, err = mustBoot(t, keys.BootConfig{Secrets: s}).RotateAgentCA(ctx, 0)
	mustDo(t, err)
	again, err := mustBoot(t, keys.BootConfig{Secrets: s}).Ensure(ctx)
	mustDo(t, err)
	if again.InstallationID != first.InstallationID || again.AgentCA.Equal(legacy) || len(again.AgentCAs.Trusted()) != 2 {
		t.Fatalf("after a CA rotation: id %q (was %q), CA replaced %v, %d trusted; want the same id, a new CA, both trusted",
			again.InstallationID, first.InstallationID, !again.AgentCA.Equal(legacy), len(again.AgentCAs.Trusted()))
	}
}
