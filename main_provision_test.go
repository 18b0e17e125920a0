package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"golang.org/x/crypto/nacl/box"
)

// TestPaymentToRunningNode is the vertical slice: a customer pays and gets
// a running node, here a validator of the Cosmos-like demo chain whose
// binaries the local provisioner runs as simulated nodes.
func TestPaymentToRunningNode(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.DevToken = "e2e-admin"
	m := MustOpenMain(t, cfg)
	api := apiClient{t: t, base: "http://" + m.HTTP.Addr() + "/api/v1", token: "e2e-admin"}
	api.do("POST", "/users", `{"email":"val@example.com","password":"a long enough password"}`, 201, nil)
	var tokens struct {
		AccessToken string `json:"access_token"`
	}
	api.do("POST", "/auth/login", `{"email":"val@example.com","password":"a long enough password"}`, 200, &tokens)
	api.token = tokens.AccessToken

	var sub struct{ ID string }
	api.do("POST", "/subscriptions", `{"chain_profile_id":"cosmos-demo","node_type":"validator","duration":"1m"}`, 201, &sub)
	key, _ := validatorKey(t)
	sealed := sealTo(t, m.Boot.SealedBoxKey.PublicKey().Bytes(), key)
	api.do("POST", "/subscriptions/"+sub.ID+"/inputs", `{"inputs":[{"name":"moniker","value":"e2e-validator"},{"name":"priv_validator_key","value":"`+sealed+`"}]}`, 200, nil)
	var pay struct{ ID string }
	api.do("POST", "/payments", `{"external_id":"inv-2","amount_cents":7900,"currency":"EUR","subscription_ids":["`+sub.ID+`"]}`, 201, &pay)
	api.webhook([]byte(`{"event_id":"evt-2","payment_id":"`+pay.ID+`"}`), m.Boot.WebhookSecret, 202)

	node := waitRunning(t, m, sub.ID, 90*time.Second)
	keys, err := m.Store.ListNodeKeys(t.Context(), node.ID)
	if err != nil || len(keys) < 3 { // dek, generated node_key, user-provided priv_validator_key
		t.Fatalf("node keys = %d, %v; want the DEK and both chain keys", len(keys), err)
	}
	if _, err := os.Stat(filepath.Join(node.Host.Address, "agent")); err != nil {
		t.Fatalf("host directory: %v", err)
	}

	// An administrator moves the node to a new host; the old one goes.
	admin := api
	admin.token = "e2e-admin"
	admin.do("POST", "/nodes/"+node.ID+"/migrate", "", 202, nil)
	oldHost := node.Host
	waitFor(t, 90*time.Second, "the node to run on a new host", func() bool {
		n, err := m.Store.GetNode(t.Context(), node.ID)
		if err == nil && (n.State == engine.NodeDegraded || n.State == engine.NodeFailed) {
			t.Fatalf("migration failed: node %+v", n)
		}
		node = n
		return err == nil && n.Host.ProviderID != oldHost.ProviderID && n.State == engine.NodeSyncing
	})
	if _, err := os.Stat(oldHost.Address); !os.IsNotExist(err) {
		t.Fatalf("old host directory still there after the migration: %v", err)
	}
	if _, err := os.Stat(filepath.Join(node.Host.Address, "agent")); err != nil {
		t.Fatalf("new host directory: %v", err)
	}
	if keys, err := m.Store.ListNodeKeys(t.Context(), node.ID); err != nil || len(keys) < 3 {
		t.Fatalf("node keys after the migration = %d, %v; want them all kept", len(keys), err)
	}

	// Cancelling the subscription takes the node away again.
	api.do("POST", "/subscriptions/"+sub.ID+"/cancel", "", 200, nil)
	waitFor(t, 60*time.Second, "the node to be terminated", func() bool {
		n, err := m.Store.GetNode(t.Context(), node.ID)
		return err == nil && n.State == engine.NodeTerminated
	})
	if _, err := os.Stat(node.Host.Address); !os.IsNotExist(err) {
		t.Fatalf("host directory still there after terminate: %v", err)
	}
	if keys, err := m.Store.ListNodeKeys(t.Context(), node.ID); err != nil || len(keys) != 0 {
		t.Fatalf("node keys after terminate = %d, %v; want none", len(keys), err)
	}
}

// sealTo is what a libsodium client does (crypto_box_seal, PyNaCl
// SealedBox): ephemeral public key || box, the nonce derived.
func sealTo(t testing.TB, pub []byte, msg []byte) string {
	t.Helper()
	var peer [32]byte
	copy(peer[:], pub)
	out, err := box.SealAnonymous(nil, msg, &peer, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(out)
}

// TestNodeWithAKeyTheChainWritesOnItsFirstRun: geth writes its devp2p key
// when it first runs; the workflow captures it after START, encrypted on
// the host under the node's data key.
func TestNodeWithAKeyTheChainWritesOnItsFirstRun(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.DevToken = "e2e-admin"
	m := MustOpenMain(t, cfg)
	api := signUp(t, m, "geth@example.com", 1)
	var sub struct{ ID string }
	api.do("POST", "/subscriptions", `{"chain_profile_id":"ethereum-holesky","node_type":"full","duration":"1m"}`, 201, &sub)
	api.do("POST", "/subscriptions/"+sub.ID+"/inputs", `{"inputs":[{"name":"fee_recipient","value":"0x00000000000000000000000000000000000000aa"}]}`, 200, nil)
	var pay struct{ ID string }
	api.do("POST", "/payments", `{"external_id":"inv-geth","amount_cents":4900,"currency":"EUR","subscription_ids":["`+sub.ID+`"]}`, 201, &pay)
	api.webhook([]byte(`{"event_id":"evt-geth","payment_id":"`+pay.ID+`"}`), m.Boot.WebhookSecret, 202)

	node := waitRunning(t, m, sub.ID, 90*time.Second)
	k, err := m.Store.GetNodeKey(t.Context(), node.ID, "node_key")
	if err != nil || k.Source != "chain_generated" {
		t.Fatalf("captured node_key = %+v, %v", k, err)
	}
	plain, err := os.ReadFile(filepath.Join(node.Host.Address, "agent", "chain", "geth", "nodekey"))
	if err != nil {
		t.Fatalf("the simulated geth wrote no key where its profile says: %v", err)
	}
	if bytes.Contains(k.Ciphertext, plain[:min(len(plain), 32)]) {
		t.Fatal("the stored key holds the plaintext")
	}
}

// waitRunning waits for the node of subscription sub to run, failing at
// once if its provisioning fails.
func waitRunning(tb testing.TB, m *Main, sub string, limit time.Duration) *engine.Node {
	tb.Helper()
	var node *engine.Node
	waitFor(tb, limit, "the node to run", func() bool {
		n, err := m.Store.GetNodeBySubscription(tb.Context(), sub)
		if err == nil && n.State == engine.NodeFailed {
			tb.Fatalf("provisioning failed: %s\nnode %+v", failureReason(tb, m, n.ID), n)
		}
		node = n
		return err == nil && n.State == engine.NodeRunning
	})
	return node
}

// failureReason is why the node last changed state, as its log says.
func failureReason(tb testing.TB, m *Main, nodeID string) string {
	changes, err := m.Store.ListNodeStateLog(tb.Context(), nodeID, time.Time{}, time.Now().Add(time.Hour))
	if err != nil || len(changes) == 0 {
		return fmt.Sprintf("(no state log: %v)", err)
	}
	return changes[len(changes)-1].Reason
}
