package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/agent"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
)

func TestAgentEnrolsAndHeartbeatsThroughTheAppliance(t *testing.T) {
	m := MustOpenMain(t, testConfig(t, t.TempDir()))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	node := &engine.Node{ID: engine.NewID("node"), SubscriptionID: engine.NewID("sub"), OwnerID: "user_1",
		ChainProfileID: "cosmos-demo", NodeType: "validator", State: engine.NodeProvisioning, CreatedAt: time.Now().UTC()}
	if err := m.Store.CreateNode(ctx, node); err != nil {
		t.Fatal(err)
	}
	token, err := m.AgentIdentity.IssueEnrollmentToken(ctx, node.ID, "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: m.Boot.AgentCA.Raw}), 0o600)

	done := make(chan error, 1)
	go func() {
		done <- agent.RunAgent(ctx, agent.AgentConfig{
			GatewayAddr: m.Gateway.Addr(), NodeID: node.ID, DataDir: t.TempDir(),
			EnrollmentToken: token, CAFile: caFile, HeartbeatInterval: 100 * time.Millisecond, Version: "test",
		})
	}()
	deadline := time.Now().Add(testenv.Patience)
	for {
		n, err := m.Store.GetNode(ctx, node.ID)
		if err == nil && !n.LastSeenAt.IsZero() && n.AgentVersion == "test" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent never heartbeated (node %+v, %v)", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("agent: %v", err)
	}
}

// An agent enrolled under the first agent CA keeps heartbeating when the
// CA is rotated through the admin API and the appliance restarts: the new
// gateway certificate chains to the old CA through the cross-signed one,
// and the old CA's client certificates stay trusted for the grace period.
func TestAgentKeepsHeartbeatingAcrossACARotationAndARestart(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.AgentAddr = freeLoopbackAddr(t) // the agent finds the gateway again after the restart
	m := MustOpenMain(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	node := &engine.Node{ID: engine.NewID("node"), SubscriptionID: engine.NewID("sub"), OwnerID: "user_1",
		ChainProfileID: "cosmos-demo", NodeType: "validator", State: engine.NodeProvisioning, CreatedAt: time.Now().UTC()}
	if err := m.Store.CreateNode(ctx, node); err != nil {
		t.Fatal(err)
	}
	token, err := m.AgentIdentity.IssueEnrollmentToken(ctx, node.ID, "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	caFile, dataDir := filepath.Join(t.TempDir(), "ca.pem"), t.TempDir()
	if err := os.WriteFile(caFile, m.Boot.CAs().TrustPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- agent.RunAgent(ctx, agent.AgentConfig{
			GatewayAddr: cfg.AgentAddr, NodeID: node.ID, DataDir: dataDir, EnrollmentToken: token, CAFile: caFile,
			HeartbeatInterval: 100 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Version: "test",
		})
	}()
	waitHeartbeatAfter(t, m, node.ID, time.Time{})
	firstCA := m.Boot.AgentCA

	code, out, errOut := runAdmin(t, "", map[string]string{"HOODCLOUD_ADMIN_TOKEN": m.Boot.AdminToken},
		"rotate", "--api-url", "http://"+m.HTTP.Addr(), "ca")
	if code != 0 {
		t.Fatalf("admin rotate ca = %d %q %q", code, out, errOut)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m = MustOpenMain(t, cfg)
	restarted := time.Now()
	if m.Boot.AgentCA.Equal(firstCA) || len(m.Boot.CAs().Trusted()) != 2 {
		t.Fatal("after the rotation and a restart the appliance must issue from a new CA and trust the old one too")
	}
	waitHeartbeatAfter(t, m, node.ID, restarted)

	trusted, err := os.ReadFile(filepath.Join(dataDir, "ca.pem"))
	if err != nil || !bytes.Equal(trusted, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: firstCA.Raw})) {
		t.Errorf("the agent should still trust the first CA alone, having not renewed (%v)", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("agent: %v", err)
	}
}

func waitHeartbeatAfter(t *testing.T, m *Main, nodeID string, after time.Time) {
	t.Helper()
	waitFor(t, 15*time.Second, "a heartbeat of the agent", func() bool {
		n, err := m.Store.GetNode(context.Background(), nodeID)
		return err == nil && n.LastSeenAt.After(after) && n.AgentVersion == "test"
	})
}

// freeLoopbackAddr is a loopback address nothing listens on now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
