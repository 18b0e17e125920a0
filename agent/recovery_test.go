package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

func csrFor(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := nodeCSR("ignored", key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestEnrollCanBeRepeatedWithTheSameKeyUntilTheTokenExpires(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	now := time.Now()
	e.identity.Now = func() time.Time { return now }
	tok, err := e.identity.IssueEnrollmentToken(ctx, "node_a", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key := newKey(t)
	first, err := e.identity.Enroll(ctx, tok, "node_a", csrFor(t, key), "v1")
	if err != nil {
		t.Fatal(err)
	}

	// The reply was lost: the agent asks again with the same key.
	now = now.Add(30 * time.Minute)
	again, err := e.identity.Enroll(ctx, tok, "node_a", csrFor(t, key), "v1")
	if err != nil {
		t.Fatalf("repeated enrolment with the same key: %v", err)
	}
	cert, _ := x509.ParseCertificate(again.CertificateDER)
	if again.Serial == first.Serial || !key.PublicKey.Equal(cert.PublicKey) {
		t.Errorf("repeat issued serial %s (first %s) for another key", again.Serial, first.Serial)
	}
	if reg, _ := e.store.GetAgentRegistration(ctx, "node_a"); reg.CertSerial != again.Serial || reg.Accepts(first.Serial) {
		t.Errorf("registration %+v: want only the repeat's certificate %s", reg, again.Serial)
	}

	if _, err := e.identity.Enroll(ctx, tok, "node_a", csrFor(t, newKey(t)), "v1"); !engine.IsCode(err, engine.EUnauthorized) {
		t.Errorf("the token with another key = %v; want unauthorized", err)
	}
	now = now.Add(31 * time.Minute)
	if _, err := e.identity.Enroll(ctx, tok, "node_a", csrFor(t, key), "v1"); !engine.IsCode(err, engine.EUnauthorized) {
		t.Errorf("the same key after the token expired = %v; want unauthorized", err)
	}
}

func TestAgentThatLostItsEnrolmentReplyEnrolsAgainWithTheSameToken(t *testing.T) {
	e := newTestEnv(t)
	e.createNode(t, "node_a")
	cfg := e.agentConfig(t, "node_a", &scriptedRuntime{})
	first, err := enroll(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Killed before the certificate was stored: only the key remains.
	for _, f := range []string{certFile, caFile} {
		if err := os.Remove(filepath.Join(cfg.DataDir, f)); err != nil {
			t.Fatal(err)
		}
	}

	startAgent(t, cfg)
	waitFor(t, 5*time.Second, "the agent to heartbeat", func() bool {
		n, err := e.store.GetNode(context.Background(), "node_a")
		return err == nil && !n.LastSeenAt.IsZero()
	})
	second, err := loadCredentials(cfg.DataDir)
	if err != nil || second == nil {
		t.Fatalf("credentials after the repeat: %v", err)
	}
	if !first.cert.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(second.cert.Leaf.PublicKey) {
		t.Error("the repeat enrolled another key")
	}

	// Another agent (another key) with the same token stays refused.
	other := cfg
	other.DataDir = t.TempDir()
	err = RunAgent(context.Background(), other)
	if err == nil || !strings.Contains(err.Error(), errEnrollRejected.Error()) {
		t.Fatalf("another key with the used token: %v; want refused", err)
	}
}

func TestEnrolmentKeyIsStoredBeforeTheFirstAttempt(t *testing.T) {
	e := newTestEnv(t)
	cfg := e.agentConfig(t, "node_a", &scriptedRuntime{})
	gateway := cfg.GatewayAddr
	cfg.GatewayAddr = "127.0.0.1:1" // nothing listens: the attempt fails
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := enroll(ctx, cfg); err == nil || errors.Is(err, errEnrollRejected) {
		t.Fatalf("enrol without a gateway = %v; want a retryable failure", err)
	}
	stored, err := loadOrCreateKey(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(cfg.DataDir, keyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want 0600", fi, err)
	}
	cfg.GatewayAddr = gateway
	creds, err := enroll(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !stored.PublicKey.Equal(creds.cert.Leaf.PublicKey) {
		t.Error("the certificate is not for the key stored before the first attempt")
	}
}

// simnodeConfigure is CONFIGURE for the test binary as a simulated node at
// version in chainDir.
func simnodeConfigure(t *testing.T, chainDir, version string) []byte {
	t.Helper()
	b, err := agentv1.MarshalPayload(&agentv1.ConfigurePayload{
		ChainProfileId: "sim",
		Components: []*agentv1.Component{{Name: "simnode", Version: version,
			Args: []string{os.Args[0], "--version", version}, Env: map[string]string{simnodeEnv: chainDir}}},
		Files: []*agentv1.ConfigFile{{Path: "config/app.toml", Content: []byte("moniker = \"a\"\n")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// processAgentConfig is an agent running a process runtime of its own, as
// a fresh agent process would. A broken release must exit within the
// upgrade check to be caught: 5s is ample for a test binary to start and
// exit on a loaded machine.
func processAgentConfig(cfg AgentConfig) AgentConfig {
	cfg.ChainDir = filepath.Join(cfg.DataDir, "chain")
	cfg.Runtime = NewProcessRuntime(ProcessConfig{Dir: cfg.ChainDir, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		StopTimeout: 5 * time.Second, UpgradeCheck: 5 * time.Second})
	return cfg
}

// restarted is cfg for the same host after the agent process restarted:
// enrolled already, and with a runtime that knows nothing.
func restarted(cfg AgentConfig) AgentConfig {
	cfg.EnrollmentToken = ""
	return processAgentConfig(cfg)
}

func TestAgentRestartKeepsTheConfigurationAndTheChainRunning(t *testing.T) {
	e := newTestEnv(t)
	cfg := processAgentConfig(e.agentConfig(t, "node_a", nil))
	ra := startAgent(t, cfg)
	e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandConfigure, simnodeConfigure(t, cfg.ChainDir, "v1")), engine.CommandCompleted, 10*time.Second)
	if fi, err := os.Stat(filepath.Join(cfg.DataDir, runtimeStateFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("runtime state: %v, %v; want a 0600 file", fi, err)
	}

	// A configured chain starts after the agent restarted.
	ra.stop(t)
	ra = startAgent(t, restarted(cfg))
	e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandStart, nil), engine.CommandCompleted, 10*time.Second)
	waitHealthy(t, cfg.ChainDir)

	// A started chain runs again after the agent restarted (the process
	// runtime stops its children with the agent).
	ra.stop(t)
	os.Remove(filepath.Join(cfg.ChainDir, "addr"))
	ra = startAgent(t, restarted(cfg))
	waitHealthy(t, cfg.ChainDir)

	// A stopped chain stays stopped after the agent restarted.
	e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandStop, nil), engine.CommandCompleted, 10*time.Second)
	ra.stop(t)
	next := restarted(cfg)
	ra = startAgent(t, next)
	waitFor(t, 5*time.Second, "the runtime to be restored", func() bool {
		st, _ := next.Runtime.Status(context.Background())
		return st.Configured
	})
	// The agent logs how it resumed once it decided whether to start.
	waitFor(t, 5*time.Second, "the agent to have resumed the runtime", func() bool {
		return strings.Contains(ra.logs.String(), "runtime configuration restored")
	})
	if st, _ := next.Runtime.Status(context.Background()); st.Running {
		t.Error("the stopped chain was started")
	}
}
