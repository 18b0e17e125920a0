package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

const nodeKeyPlain = `{"priv_key":"the customer's secret node key"}`

func sealedKey(t *testing.T, dek []byte, name, path, plain string) *agentv1.DeliveredKey {
	t.Helper()
	sealed, err := engine.SealWithDataKey(dek, []byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	return &agentv1.DeliveredKey{Name: name, Path: path, KeyType: "ed25519", EncryptedKey: sealed}
}

func TestDeliveredKeysAreWrittenByteForByteWithMode0600(t *testing.T) {
	chain := chainDirWithEscapes(t)
	dek := testDEK("node_a")
	keys := []*agentv1.DeliveredKey{
		sealedKey(t, dek, "node_key", "config/node_key.json", nodeKeyPlain),
		sealedKey(t, dek, "validator", "data/keys/priv_validator_key.json", "validator secret"),
	}
	// The validator key is there already, readable by others and stale.
	if err := os.MkdirAll(filepath.Join(chain, "data/keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(chain, "data/keys/priv_validator_key.json"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := DeliverKeys(chain, keys, dek); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"config/node_key.json": nodeKeyPlain, "data/keys/priv_validator_key.json": "validator secret"} {
		fi, err := os.Stat(filepath.Join(chain, path))
		if got, _ := os.ReadFile(filepath.Join(chain, path)); err != nil || string(got) != want || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s = %q, mode %v, %v; want the key, 0600", path, got, fi.Mode().Perm(), err)
		}
	}

	// Again: nothing changes, but a key file made readable is made 0600.
	before, _ := os.Stat(filepath.Join(chain, "config/node_key.json"))
	if err := os.Chmod(filepath.Join(chain, "data/keys/priv_validator_key.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := DeliverKeys(chain, keys, dek); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(filepath.Join(chain, "config/node_key.json"))
	if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Error("delivering the same key again rewrote its file")
	}
	if fi, _ := os.Stat(filepath.Join(chain, "data/keys/priv_validator_key.json")); fi.Mode().Perm() != 0o600 {
		t.Errorf("a redelivered key file is %v, want 0600", fi.Mode().Perm())
	}
}

func TestDeliverKeysRefusesPathsOutsideAndKeysThatDoNotOpen(t *testing.T) {
	chain := chainDirWithEscapes(t)
	dek := testDEK("node_a")
	tests := []struct {
		name string
		key  *agentv1.DeliveredKey
	}{
		{"parent", sealedKey(t, dek, "k", "../x", nodeKeyPlain)},
		{"absolute", sealedKey(t, dek, "k", filepath.Join(filepath.Dir(chain), "x"), nodeKeyPlain)},
		{"through a symlinked dir", sealedKey(t, dek, "k", "linkdir/x", nodeKeyPlain)},
		{"the agent's own dir", sealedKey(t, dek, "k", ".hoodcloud/ports.json", nodeKeyPlain)},
		{"another node's data key", sealedKey(t, testDEK("node_b"), "k", "config/k.json", nodeKeyPlain)},
		{"garbage", &agentv1.DeliveredKey{Name: "k", Path: "config/k.json", EncryptedKey: []byte("short")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := DeliverKeys(chain, []*agentv1.DeliveredKey{tt.key}, dek)
			wantPermanent(t, tt.name, err, `key "k"`, tt.key.GetPath())
			if strings.Contains(err.Error(), "secret node key") {
				t.Error("the error holds key material")
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(filepath.Dir(chain), "secret")); string(b) != outsideSecret {
		t.Error("a file outside the chain data dir changed")
	}
	for _, p := range []string{filepath.Join(filepath.Dir(chain), "x"), filepath.Join(chain, "config/k.json")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s was written", p)
		}
	}
	// A key whose path is a symlink out replaces the link, never its target.
	if err := DeliverKeys(chain, []*agentv1.DeliveredKey{sealedKey(t, dek, "k", "abslink", nodeKeyPlain)}, dek); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(filepath.Dir(chain), "secret")); string(b) != outsideSecret {
		t.Error("a key was written through a symlink out of the chain data dir")
	}
}

func TestTheAgentDeliversKeysBeforeItIsConfigured(t *testing.T) {
	e := newTestEnv(t)
	e.createNode(t, "node_a")
	cfg := processAgentConfig(e.agentConfig(t, "node_a", nil))
	ra := startAgent(t, cfg)
	payload, err := agentv1.MarshalPayload(&agentv1.DeliverKeysPayload{Keys: []*agentv1.DeliveredKey{
		sealedKey(t, testDEK("node_a"), "node_key", "config/node_key.json", nodeKeyPlain)}})
	if err != nil {
		t.Fatal(err)
	}
	id := e.enqueue(t, "node_a", engine.CommandDeliverKeys, payload)
	e.waitStatus(t, id, engine.CommandCompleted, 10*time.Second)
	got, err := os.ReadFile(filepath.Join(cfg.ChainDir, "config/node_key.json"))
	if err != nil || !bytes.Equal(got, []byte(nodeKeyPlain)) {
		t.Fatalf("delivered key = %q, %v", got, err)
	}

	bad, _ := agentv1.MarshalPayload(&agentv1.DeliverKeysPayload{Keys: []*agentv1.DeliveredKey{
		sealedKey(t, testDEK("node_a"), "node_key", "../outside", nodeKeyPlain)}})
	failed := e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandDeliverKeys, bad), engine.CommandFailed, 10*time.Second)
	if !strings.Contains(failed.Error, "../outside") {
		t.Errorf("failure = %q; want it to name the path", failed.Error)
	}
	ra.stop(t)
	assertNoSecretsIn(t, "agent", ra.logs.String(), nodeKeyPlain, "secret node key")
	assertNoSecretsIn(t, "gateway", e.logs.String(), nodeKeyPlain, "secret node key")
}

func TestTheGatewayKeepsComponentStatusesAndACrashLoopIsCritical(t *testing.T) {
	e := newTestEnv(t)
	e.createNode(t, "node_a")
	cfg := e.agentConfig(t, "node_a", nil)
	cfg.ChainDir = filepath.Join(cfg.DataDir, "chain")
	cfg.Runtime = NewProcessRuntime(ProcessConfig{Dir: cfg.ChainDir, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	startAgent(t, cfg)
	e.configureAndStart(t, &agentv1.Component{Name: "simnode", Version: "broken-1",
		Args: []string{os.Args[0], "--version", "broken-1"}, Env: map[string]string{simnodeEnv: cfg.ChainDir}})
	st := e.waitAgentStatus(t, "a crash loop", func(s *engine.AgentStatus) bool {
		return len(s.Components) == 1 && s.Components[0].CrashLoop
	})
	c := st.Components[0]
	if c.Name != "simnode" || c.Version != "broken-1" || c.Restarts < 2 || !strings.Contains(c.LastExit, "exit status 3") {
		t.Errorf("component status = %+v", c)
	}
	if st.Health != engine.AppHealthCritical || !strings.Contains(st.HealthMessage, "simnode") {
		t.Errorf("health = %s %q; want critical naming the component", st.Health, st.HealthMessage)
	}
}
