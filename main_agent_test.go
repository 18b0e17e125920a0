package main

import (
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/agent"
	"github.com/hoodcloud/hoodcloud/engine"
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
	token, err := m.AgentIdentity.IssueEnrollmentToken(ctx, node.ID, time.Minute)
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
	deadline := time.Now().Add(15 * time.Second)
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
