package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/agent/gateway"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"github.com/hoodcloud/hoodcloud/store/secrets"
	"google.golang.org/grpc/codes"
)

// caRotationEnv is a control plane whose agent CAs live in Secrets, as
// the appliance keeps them, measuring grace periods on a clock the test
// moves.
type caRotationEnv struct {
	*testEnv
	secrets engine.Secrets
	clock   *rotationClock
}

type rotationClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *rotationClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *rotationClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const rotationGrace = time.Hour

// newCARotationEnv starts the gateway on agent CAs in Secrets: the first
// CA an appliance makes, or with legacy one made before CAs could be
// cross-signed (path length 0).
func newCARotationEnv(t *testing.T, legacy bool) *caRotationEnv {
	t.Helper()
	e := newTestEnv(t)
	stopGateway(e.gw)
	keyring := secrets.New(e.store, secrets.Options{DataDir: t.TempDir()})
	if err := keyring.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keyring.Close() })
	if legacy {
		putLegacyCA(t, keyring)
	} else if _, err := bootOn(t, keyring, nil).Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := &caRotationEnv{testEnv: e, secrets: keyring, clock: &rotationClock{now: time.Now()}}
	r.cfg.TouchInterval = 10 * time.Millisecond
	r.restartGateway(t)
	r.writeBootstrapCAs(t)
	return r
}

// bootOn is the boot material's use-cases on s, on the clock now.
func bootOn(t *testing.T, s engine.Secrets, now func() time.Time) *keys.Boot {
	t.Helper()
	b, err := keys.NewBoot(keys.BootConfig{Secrets: s, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// restartGateway starts another gateway on the same address with the
// agent CAs loaded afresh, as a restarted appliance does.
func (r *caRotationEnv) restartGateway(t *testing.T) {
	t.Helper()
	stopGateway(r.gw)
	cas, err := bootOn(t, r.secrets, r.clock.Now).LoadAgentCAs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	id := gateway.NewIdentityFromCAs(cas, r.store)
	id.ClientValidity = r.identity.ClientValidity
	r.identity, r.cfg.Identity = id, id
	r.startGateway(t)
}

// rotate rotates the agent CAs the gateway uses and returns the new CA.
func (r *caRotationEnv) rotate(t *testing.T) *x509.Certificate {
	t.Helper()
	if _, err := r.identity.CAs().Rotate(t.Context(), rotationGrace); err != nil {
		t.Fatal(err)
	}
	return r.identity.CA()
}

// writeBootstrapCAs writes the CA file new hosts get, as the appliance
// makes it when it creates one.
func (r *caRotationEnv) writeBootstrapCAs(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(r.caFile, r.identity.CAs().TrustPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (r *caRotationEnv) waitHeartbeat(t *testing.T, nodeID string, after time.Time) {
	t.Helper()
	waitFor(t, 10*time.Second, "a heartbeat of "+nodeID, func() bool {
		n, err := r.store.GetNode(context.Background(), nodeID)
		return err == nil && n.LastSeenAt.After(after)
	})
}

// gatewayCertificate is the gateway's certificate, verified by a client
// trusting only roots.
func gatewayCertificate(t *testing.T, addr string, roots ...*x509.Certificate) *x509.Certificate {
	t.Helper()
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("a client trusting %d CA(s) refuses the gateway: %v", len(roots), err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func issuedBy(c, ca *x509.Certificate) bool { return c.CheckSignatureFrom(ca) == nil }

func heartbeat(t *testing.T, c agentv1.AgentServiceClient, nodeID string) error {
	t.Helper()
	_, err := c.Heartbeat(rpcCtx(t), &agentv1.HeartbeatRequest{NodeId: nodeID})
	return err
}

func TestAnAgentOfTheOldCAKeepsHeartbeatingAfterARotationAndARestart(t *testing.T) {
	r := newCARotationEnv(t, false)
	old := r.identity.CA()
	r.createNode(t, "node_a")
	cfg := r.agentConfig(t, "node_a", &scriptedRuntime{})
	startAgent(t, cfg)
	r.waitHeartbeat(t, "node_a", time.Time{})

	rotated, err := bootOn(t, r.secrets, r.clock.Now).RotateAgentCA(t.Context(), rotationGrace)
	if err != nil {
		t.Fatal(err)
	}
	r.restartGateway(t)
	restarted := time.Now()
	r.waitHeartbeat(t, "node_a", restarted)

	creds, err := loadCredentials(cfg.DataDir)
	if err != nil || !creds.ca.Equal(old) || len(creds.otherCAs) != 0 || !issuedBy(creds.cert.Leaf, old) {
		t.Fatalf("the agent should hold a certificate of the old CA and trust it alone (%v)", err)
	}
	if !issuedBy(gatewayCertificate(t, r.addr, old), rotated.Cert) {
		t.Error("after the restart the gateway's certificate does not come from the new CA")
	}
}

func TestAnAgentEnrolledAfterARotationGetsTheNewCAAndTrustsEveryCAInGrace(t *testing.T) {
	r := newCARotationEnv(t, false)
	old := r.identity.CA()
	current := r.rotate(t)
	r.writeBootstrapCAs(t)
	r.createNode(t, "node_b")

	client, creds := r.enrolled(t, "node_b")
	if !issuedBy(creds.cert.Leaf, current) {
		t.Error("the certificate enrolled after the rotation is not from the new CA")
	}
	if !creds.ca.Equal(current) || len(creds.otherCAs) != 1 || !creds.otherCAs[0].Equal(old) {
		t.Errorf("the agent trusts %d CA(s); want the new CA, then the old one in grace", 1+len(creds.otherCAs))
	}
	if err := heartbeat(t, client, "node_b"); err != nil {
		t.Fatalf("heartbeat with a certificate of the new CA: %v", err)
	}
}

func TestOldCAClientCertificatesAreRefusedOnceTheGracePeriodEnds(t *testing.T) {
	r := newCARotationEnv(t, false)
	old := r.identity.CA()
	oldClient, oldCreds := r.enrolled(t, "node_a")
	if err := heartbeat(t, oldClient, "node_a"); err != nil { // opens the connection
		t.Fatal(err)
	}
	current := r.rotate(t)
	r.writeBootstrapCAs(t)
	newClient, newCreds := r.enrolled(t, "node_b")
	// The old agent's key and certificate, trusting every CA: only the
	// gateway's verdict on the certificate decides.
	oldCert := &agentCredentials{cert: oldCreds.cert, ca: current, otherCAs: []*x509.Certificate{old}}
	for _, tc := range []struct {
		name, node string
		client     agentv1.AgentServiceClient
	}{
		{"the old CA's certificate on its open connection", "node_a", oldClient},
		{"the old CA's certificate on a new connection", "node_a", r.client(t, oldCert.tlsConfig("127.0.0.1"))},
		{"the new CA's certificate", "node_b", newClient},
	} {
		if err := heartbeat(t, tc.client, tc.node); err != nil {
			t.Errorf("%s during the grace period: %v", tc.name, err)
		}
	}

	r.clock.advance(rotationGrace + time.Minute)
	wantCode(t, "the old CA's certificate on an open connection", heartbeat(t, oldClient, "node_a"), codes.Unauthenticated)
	if err := heartbeat(t, r.client(t, oldCert.tlsConfig("127.0.0.1")), "node_a"); err == nil {
		t.Error("a new connection with the old CA's certificate is accepted after the grace period")
	}
	for name, c := range map[string]agentv1.AgentServiceClient{
		"an open": newClient, "a new": r.client(t, newCreds.tlsConfig("127.0.0.1")),
	} {
		if err := heartbeat(t, c, "node_b"); err != nil {
			t.Errorf("the new CA's certificate on %s connection after the grace period: %v", name, err)
		}
	}
}

func TestRenewalAfterARotationMovesAnAgentToTheNewCA(t *testing.T) {
	r := newCARotationEnv(t, false)
	const validity = 3 * time.Second // renewed every 2 s
	r.identity.ClientValidity = validity
	old := r.identity.CA()
	r.createNode(t, "node_a")
	cfg := r.agentConfig(t, "node_a", &scriptedRuntime{})
	startAgent(t, cfg)
	r.waitHeartbeat(t, "node_a", time.Time{})

	current := r.rotate(t)
	waitFor(t, 2*validity, "a renewal from the new CA", func() bool {
		creds, err := loadCredentials(cfg.DataDir)
		return err == nil && creds != nil && issuedBy(creds.cert.Leaf, current)
	})
	creds, err := loadCredentials(cfg.DataDir)
	if err != nil || !creds.ca.Equal(current) || len(creds.otherCAs) != 1 || !creds.otherCAs[0].Equal(old) {
		t.Fatalf("after renewal the agent should trust the new CA, then the old one in grace (%v)", err)
	}

	// The old CA is gone: a restarted gateway shows a certificate of the
	// new CA alone, and the renewed agent carries on.
	r.clock.advance(rotationGrace + time.Minute)
	r.restartGateway(t)
	restarted := time.Now()
	r.waitHeartbeat(t, "node_a", restarted)
	if got := gatewayCertificate(t, r.addr, current); !issuedBy(got, current) {
		t.Error("after the grace period the gateway's certificate is not from the new CA")
	}
}

// The first agent CAs cannot cross-sign their successor: until the grace
// period ends the gateway keeps a certificate of the old CA, which agents
// enrolled meanwhile trust too; then it switches without a restart.
func TestAFirstRotationOfALegacyCAKeepsTheGatewayOnTheOldCAUntilTheGraceEnds(t *testing.T) {
	r := newCARotationEnv(t, true)
	legacy := r.identity.CA()
	oldClient, _ := r.enrolled(t, "node_a")
	current := r.rotate(t)
	if !issuedBy(gatewayCertificate(t, r.addr, legacy), legacy) {
		t.Fatal("during the grace period the gateway's certificate must come from the old CA")
	}
	r.writeBootstrapCAs(t)
	_, creds := r.enrolled(t, "node_b")
	if !issuedBy(creds.cert.Leaf, current) || len(creds.otherCAs) != 1 || !creds.otherCAs[0].Equal(legacy) {
		t.Fatal("an agent enrolled during the grace period must hold a certificate of the new CA and trust the old one")
	}
	for node, c := range map[string]agentv1.AgentServiceClient{"node_a": oldClient, "node_b": r.client(t, creds.tlsConfig("127.0.0.1"))} {
		if err := heartbeat(t, c, node); err != nil {
			t.Errorf("heartbeat of %s during the grace period: %v", node, err)
		}
	}

	r.clock.advance(rotationGrace + time.Minute)
	if !issuedBy(gatewayCertificate(t, r.addr, current), current) {
		t.Error("after the grace period the gateway's certificate must come from the new CA")
	}
	if err := heartbeat(t, r.client(t, creds.tlsConfig("127.0.0.1")), "node_b"); err != nil {
		t.Errorf("the agent enrolled during the grace period, after it: %v", err)
	}
}

// putLegacyCA stores an agent CA as the first releases made it: path
// length 0, one certificate.
func putLegacyCA(t *testing.T, s engine.Secrets) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: keys.AgentCAName, Organization: []string{"HoodCloud"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	bundle := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	if err := s.Put(t.Context(), keys.SecretAgentCA, bundle); err != nil {
		t.Fatal(err)
	}
}
