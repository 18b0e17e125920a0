package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/grpc/codes"
)

// renewOver asks the gateway for a new certificate for creds' key and
// returns credentials holding it.
func renewOver(t *testing.T, e *testEnv, client agentv1.AgentServiceClient, nodeID string, creds *agentCredentials) (*agentCredentials, error) {
	t.Helper()
	key := creds.cert.PrivateKey.(*ecdsa.PrivateKey)
	resp, err := client.Renew(rpcCtx(t), &agentv1.RenewRequest{NodeId: nodeID, CsrDer: csrFor(t, key)})
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(resp.CertificateChainDer[0])
	if err != nil {
		t.Fatal(err)
	}
	return &agentCredentials{ca: e.identity.CA(), cert: tls.Certificate{Certificate: resp.CertificateChainDer, PrivateKey: key, Leaf: leaf}}, nil
}

// waitRefused heartbeats as nodeID until the gateway refuses, and returns
// the refusal.
func waitRefused(t *testing.T, client agentv1.AgentServiceClient, nodeID, what string) error {
	t.Helper()
	var err error
	waitFor(t, time.Second, what, func() bool {
		_, err = client.Heartbeat(rpcCtx(t), &agentv1.HeartbeatRequest{NodeId: nodeID})
		return err != nil
	})
	return err
}

func TestRenewIssuesANewCertificateAndKeepsTheOldOneUntilItExpires(t *testing.T) {
	e := newTestEnv(t)
	ctx := rpcCtx(t)
	oldClient, creds := e.enrolled(t, "node_a")

	first, err := renewOver(t, e, oldClient, "node_a", creds)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := agentv1.NodeIDFromCert(first.cert.Leaf); id != "node_a" || first.cert.Leaf.SerialNumber.Cmp(creds.cert.Leaf.SerialNumber) == 0 {
		t.Fatalf("renewed certificate names %q, serial %s", id, first.cert.Leaf.SerialNumber)
	}
	// The reply was lost: the agent renews again with the old certificate.
	second, err := renewOver(t, e, oldClient, "node_a", creds)
	if err != nil {
		t.Fatalf("a repeated renewal from the old certificate: %v", err)
	}
	// The gateway that renewed forgot its cached registration: the next
	// call reads the renewed one.
	newClient := e.client(t, second.tlsConfig("127.0.0.1"))
	for name, c := range map[string]agentv1.AgentServiceClient{"old": oldClient, "renewed": newClient} {
		if _, err := c.Heartbeat(ctx, &agentv1.HeartbeatRequest{NodeId: "node_a"}); err != nil {
			t.Errorf("heartbeat with the %s certificate: %v", name, err)
		}
	}
	lost := e.client(t, first.tlsConfig("127.0.0.1"))
	_, err = lost.Heartbeat(ctx, &agentv1.HeartbeatRequest{NodeId: "node_a"})
	wantCode(t, "the certificate whose reply was lost", err, codes.PermissionDenied)

	// Renewing from the renewed certificate retires the old one.
	if _, err := renewOver(t, e, newClient, "node_a", second); err != nil {
		t.Fatal(err)
	}
	_, err = oldClient.Heartbeat(ctx, &agentv1.HeartbeatRequest{NodeId: "node_a"})
	wantCode(t, "a certificate two renewals old", err, codes.PermissionDenied)
}

func TestRenewIsRefusedForRevokedAndForeignNodes(t *testing.T) {
	e := newTestEnv(t)
	clientA, credsA := e.enrolled(t, "node_a")
	e.enrolled(t, "node_b")
	_, err := renewOver(t, e, clientA, "node_b", credsA)
	wantCode(t, "A renews as B", err, codes.PermissionDenied)
	if err := e.identity.Revoke(context.Background(), "node_a"); err != nil {
		t.Fatal(err)
	}
	waitRefused(t, clientA, "node_a", "the revocation to reach the gateway past its registration cache")
	_, err = renewOver(t, e, clientA, "node_a", credsA)
	wantCode(t, "revoked renews", err, codes.PermissionDenied)
	_, err = clientA.Renew(rpcCtx(t), &agentv1.RenewRequest{NodeId: "node_a", CsrDer: []byte("junk")})
	if err == nil {
		t.Error("a junk CSR was accepted")
	}
}

func TestAnExpiredCertificateIsRefusedOnAnOpenConnection(t *testing.T) {
	e := newTestEnv(t)
	// X.509 drops fractions of a second: a certificate issued at x.95s for
	// 1s lived 50ms. Issued on a whole second it lives its full 2s, time to
	// open a connection with it; a machine too slow even for that enrols
	// again.
	e.identity.ClientValidity = 2 * time.Second
	e.identity.Now = func() time.Time { return time.Now().Truncate(time.Second) }
	var client agentv1.AgentServiceClient
	var creds *agentCredentials
	for attempt := 1; ; attempt++ {
		client, creds = e.enrolled(t, "node_a")
		_, err := client.Heartbeat(rpcCtx(t), &agentv1.HeartbeatRequest{NodeId: "node_a"})
		if err == nil {
			break
		}
		if time.Now().Before(creds.cert.Leaf.NotAfter) || attempt == 5 {
			t.Fatal(err)
		}
		t.Logf("the certificate expired before its first heartbeat: enrolling again (%v)", err)
	}
	err := waitRefused(t, client, "node_a", "the certificate to expire")
	if time.Now().Before(creds.cert.Leaf.NotAfter) {
		t.Fatalf("refused before the certificate expired: %v", err)
	}
	wantCode(t, "heartbeat after the certificate expired", err, codes.Unauthenticated)
}

func TestAgentRenewsItsCertificateBeforeItExpires(t *testing.T) {
	e := newTestEnv(t)
	const validity = 3 * time.Second
	e.identity.ClientValidity = validity
	e.createNode(t, "node_a")
	cfg := e.agentConfig(t, "node_a", &scriptedRuntime{})
	ra := startAgent(t, cfg)

	var issued []*x509.Certificate
	var seenAt []time.Time
	waitFor(t, 4*validity, "two renewals", func() bool {
		creds, err := loadCredentials(cfg.DataDir)
		if err != nil || creds == nil {
			return false
		}
		if n := len(issued); n == 0 || issued[n-1].SerialNumber.Cmp(creds.cert.Leaf.SerialNumber) != 0 {
			issued, seenAt = append(issued, creds.cert.Leaf), append(seenAt, time.Now())
		}
		return len(issued) >= 3
	})
	for i := 1; i < len(issued); i++ {
		prev := issued[i-1]
		life := prev.NotAfter.Sub(prev.NotBefore) // whole seconds: X.509 times have no fraction
		t.Logf("certificate %d replaced %s after the previous one, %s before it expired (lifetime %s)", i,
			seenAt[i].Sub(seenAt[i-1]).Round(10*time.Millisecond), prev.NotAfter.Sub(seenAt[i]).Round(10*time.Millisecond), life)
		// Seen on disk no earlier than it was renewed; the gateway renews
		// only over an unexpired certificate, so the upper bound holds by
		// itself however late the test looks.
		if seenAt[i].Before(prev.NotBefore.Add(life / 2)) {
			t.Errorf("certificate %d renewed by %s; want after half its lifetime, before its expiry %s", i, seenAt[i], prev.NotAfter)
		}
	}
	// Heartbeats carried on past the first certificate's expiry.
	first := issued[0].NotAfter
	waitFor(t, 2*time.Second, "a heartbeat after the first certificate expired", func() bool {
		n, err := e.store.GetNode(context.Background(), "node_a")
		return err == nil && n.LastSeenAt.After(first.Add(500*time.Millisecond))
	})
	if fi, err := os.Stat(filepath.Join(cfg.DataDir, certFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("certificate file: %v, %v", fi, err)
	}
	reg, err := e.store.GetAgentRegistration(context.Background(), "node_a")
	last := issued[len(issued)-1].SerialNumber.Text(16)
	if err != nil || (reg.CertSerial != last && reg.PreviousCertSerial != last) {
		t.Errorf("registration %+v does not stand behind the stored certificate %s (%v)", reg, last, err)
	}
	ra.stop(t)
	for _, line := range strings.Split(ra.logs.String(), "\n") {
		if strings.Contains(line, "certificate renewed") {
			t.Log(line) // took= is the renewal's duration
		}
	}
	assertNoSecretsIn(t, "agent", ra.logs.String(), cfg.EnrollmentToken)
}
