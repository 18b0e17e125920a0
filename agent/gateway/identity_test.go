package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

func newCSR(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestEnrollIssuesAShortLivedClientCertificateNamingTheNode(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	// The CSR asks for another name: the gateway names the node itself.
	got, err := e.identity.Enroll(ctx, e.token(t, "node_a"), "node_a", newCSR(t, "admin"), "v1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(got.CertificateDER)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(e.identity.CA())
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("certificate does not verify as a client certificate of the CA: %v", err)
	}
	if id, ok := agentv1.NodeIDFromCert(cert); !ok || id != "node_a" || cert.Subject.CommonName != "node_a" {
		t.Errorf("certificate names %q (%v), CN %q; want node_a", id, ok, cert.Subject.CommonName)
	}
	if len(cert.URIs) != 1 || cert.URIs[0].String() != "hoodcloud://node/node_a" {
		t.Errorf("URI SANs = %v", cert.URIs)
	}
	if life := time.Until(cert.NotAfter); life > DefaultClientCertValidity || life < DefaultClientCertValidity-time.Hour {
		t.Errorf("certificate lives %s, want about %s", life, DefaultClientCertValidity)
	}
	reg, err := e.store.GetAgentRegistration(ctx, "node_a")
	if err != nil {
		t.Fatal(err)
	}
	if reg.CertSerial != cert.SerialNumber.Text(16) || reg.AgentVersion != "v1.2.3" || !reg.RevokedAt.IsZero() {
		t.Errorf("registration = %+v; want serial %s", reg, cert.SerialNumber.Text(16))
	}
}

func TestEnrollRefusesEveryBadToken(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	used := e.token(t, "node_a")
	if _, err := e.identity.Enroll(ctx, used, "node_a", newCSR(t, "x"), ""); err != nil {
		t.Fatal(err)
	}
	e.identity.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) } // issued two hours ago
	expired, err := e.identity.IssueEnrollmentToken(ctx, "node_c", "", time.Hour)
	e.identity.Now = time.Now
	if err != nil {
		t.Fatal(err)
	}
	forA := e.token(t, "node_a2")
	tests := []struct {
		name, token, node string
	}{
		{"used twice", used, "node_a"},
		{"expired", expired, "node_c"},
		{"issued for another node", forA, "node_b"},
		{"unknown", tokenPrefix + "AAAA", "node_a"},
		{"empty", "", "node_a"},
		{"no node", forA, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.identity.Enroll(ctx, tt.token, tt.node, newCSR(t, "x"), "")
			if !engine.IsCode(err, engine.EUnauthorized) {
				t.Fatalf("Enroll = %v; want unauthorized", err)
			}
		})
	}
	// The token for node_a2 was not burnt by the attempt for node_b.
	if _, err := e.identity.Enroll(ctx, forA, "node_a2", newCSR(t, "x"), ""); err != nil {
		t.Fatalf("the right node cannot use its token after a wrong attempt: %v", err)
	}
}

func TestEnrollRefusesABadCSRWithoutSpendingTheToken(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	tok := e.token(t, "node_a")
	tampered := newCSR(t, "node_a")
	tampered[len(tampered)-3] ^= 0xff // inside the signature
	for name, csr := range map[string][]byte{"garbage": []byte("not a csr"), "bad signature": tampered} {
		if _, err := e.identity.Enroll(ctx, tok, "node_a", csr, ""); !engine.IsCode(err, engine.EInvalid) {
			t.Errorf("%s: Enroll = %v; want invalid", name, err)
		}
	}
	if _, err := e.identity.Enroll(ctx, tok, "node_a", newCSR(t, "node_a"), ""); err != nil {
		t.Fatalf("token unusable after refused CSRs: %v", err)
	}
}

func TestServerCertificateCoversTheConfiguredHosts(t *testing.T) {
	e := newTestEnv(t)
	roots := x509.NewCertPool()
	roots.AddCert(e.identity.CA())
	for _, tt := range []struct {
		hosts []string
		ok    []string
		bad   string
	}{
		{nil, []string{"localhost", "127.0.0.1"}, "example.com"},
		{[]string{"gw.example.com", "10.0.0.7"}, []string{"gw.example.com", "10.0.0.7"}, "localhost"},
	} {
		c, err := e.identity.ServerCertificate(tt.hosts)
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(c.Certificate[0])
		for _, h := range tt.ok {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: h}); err != nil {
				t.Errorf("hosts %v: %s does not verify: %v", tt.hosts, h, err)
			}
		}
		if err := leaf.VerifyHostname(tt.bad); err == nil {
			t.Errorf("hosts %v: %s verifies", tt.hosts, tt.bad)
		}
	}
}

func TestTheRegistrationKeepsTheIncarnationItsTokenWasIssuedFor(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	tok, err := e.identity.IssueEnrollmentToken(ctx, "node_a", "m2", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	enrolled, err := e.identity.Enroll(ctx, tok, "node_a", newCSR(t, "x"), "v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.identity.Renew(ctx, "node_a", enrolled.Serial, newCSR(t, "x"), "v2"); err != nil {
		t.Fatal(err)
	}
	reg, err := e.store.GetAgentRegistration(ctx, "node_a")
	if err != nil || reg.Incarnation != "m2" || reg.AgentVersion != "v2" {
		t.Fatalf("registration after renewal = %+v, %v; want incarnation m2", reg, err)
	}
	if _, err := e.identity.IssueEnrollmentToken(ctx, "node_a", "Not/Valid", time.Hour); !engine.IsCode(err, engine.EInvalid) {
		t.Errorf("token for a bad incarnation = %v; want invalid", err)
	}
}
