package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/hoodcloud/hoodcloud/assets"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/internal/chains"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
)

// The real chain clients, end to end: a customer buys a node of a profile
// whose program is on the appliance's PATH, and the local provisioner runs
// that program with the customer's keys.

// withChainClient puts c's program on the PATH the appliance looks in.
func withChainClient(t testing.TB, c chains.Client) {
	dir := testenv.ChainClient(t, c)
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// openChainAppliance starts the appliance with every log captured.
func openChainAppliance(t *testing.T) (*Main, *testenv.LogBuffer) {
	cfg := testConfig(t, t.TempDir())
	cfg.DevToken = "e2e-admin"
	cfg.LogLevel = slog.LevelDebug
	logs := &testenv.LogBuffer{}
	m := NewMain(cfg, logs)
	if err := m.Open(t.Context()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	waitHealthy(t, "http://"+m.HTTP.Addr())
	return m, logs
}

// customerValidatorKey is a CometBFT priv_validator_key.json of a fresh key, and
// the validator address CometBFT derives from it.
func customerValidatorKey(t testing.TB) (file []byte, address string, secret string) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(pub)
	address = strings.ToUpper(hex.EncodeToString(sum[:20]))
	secret = base64.StdEncoding.EncodeToString(priv)
	file, err = json.MarshalIndent(map[string]any{
		"address":  address,
		"pub_key":  map[string]string{"type": "tendermint/PubKeyEd25519", "value": base64.StdEncoding.EncodeToString(pub)},
		"priv_key": map[string]string{"type": "tendermint/PrivKeyEd25519", "value": secret},
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return file, address, secret
}

// buyAndPay subscribes to chain's node type, gives inputs and pays.
func buyAndPay(t testing.TB, m *Main, api apiClient, chain, nodeType, inputs, ref string) string {
	var sub struct{ ID string }
	api.do("POST", "/subscriptions", `{"chain_profile_id":"`+chain+`","node_type":"`+nodeType+`","duration":"1m"}`, 201, &sub)
	if inputs != "" {
		api.do("POST", "/subscriptions/"+sub.ID+"/inputs", `{"inputs":`+inputs+`}`, 200, nil)
	}
	var pay struct{ ID string }
	api.do("POST", "/payments", `{"external_id":"inv-`+ref+`","amount_cents":100,"currency":"EUR","subscription_ids":["`+sub.ID+`"]}`, 201, &pay)
	api.webhook([]byte(`{"event_id":"evt-`+ref+`","payment_id":"`+pay.ID+`"}`), m.Boot.WebhookSecret, 202)
	return sub.ID
}

// buyCometValidator buys and pays for a cometbft-kvstore validator that
// signs with keyFile, sealed as a customer seals it.
func buyCometValidator(t testing.TB, m *Main, api apiClient, keyFile []byte, moniker, ref string) string {
	sealed := sealTo(t, m.Boot.SealedBoxKey.PublicKey().Bytes(), keyFile)
	return buyAndPay(t, m, api, "cometbft-kvstore", "validator",
		`[{"name":"moniker","value":"`+moniker+`"},{"name":"priv_validator_key","value":"`+sealed+`"}]`, ref)
}

func chainDir(n *engine.Node) string { return filepath.Join(n.Host.Address, "agent", "chain") }

func TestCometBFTValidatorSignsWithTheCustomersKey(t *testing.T) {
	withChainClient(t, chains.CometBFT)
	m, logs := openChainAppliance(t)
	api := signUp(t, m, "validator@example.com", 1)

	keyFile, address, secret := customerValidatorKey(t)
	sub := buyCometValidator(t, m, api, keyFile, "e2e validator", "cmt")
	node := waitRunning(t, m, sub, 3*time.Minute)

	rpc := node.Runtime.Ports["rpc"]
	if rpc == 0 {
		t.Fatalf("the node records no rpc port: %+v", node.Runtime)
	}
	var first cometStatusReply
	waitFor(t, time.Minute, "the chain to answer on its RPC port", func() bool {
		var err error
		first, err = cometStatus(rpc)
		return err == nil
	})
	if first.Result.ValidatorInfo.Address != address {
		t.Fatalf("the chain signs as %s, the customer's key is %s", first.Result.ValidatorInfo.Address, address)
	}
	waitFor(t, time.Minute, "the chain to make blocks", func() bool {
		s, err := cometStatus(rpc)
		return err == nil && s.height() > first.height()
	})

	var shown struct {
		Endpoints  map[string]struct{ Port int }
		Components []engine.ComponentStatus
		Agent      struct {
			BlockHeight uint64 `json:"block_height"`
		}
	}
	waitFor(t, time.Minute, "the node page to show the running client", func() bool {
		api.do("GET", "/nodes/"+node.ID, "", 200, &shown)
		return len(shown.Components) == 1 && shown.Components[0].Running && shown.Agent.BlockHeight > 0
	})
	if c := shown.Components[0]; c.Name != "cometbft" || c.Version != "0.38.19" || shown.Endpoints["rpc"].Port != rpc {
		t.Fatalf("the node page shows components %+v and endpoints %+v; want cometbft 0.38.19 with rpc on %d", shown.Components, shown.Endpoints, rpc)
	}

	onHost := filepath.Join(chainDir(node), "cometbft", "config", "priv_validator_key.json")
	got, err := os.ReadFile(onHost)
	if err != nil || !bytes.Equal(got, keyFile) {
		t.Fatalf("the key on the host is not the customer's file byte for byte (err %v)", err)
	}
	if info, _ := os.Stat(onHost); info.Mode().Perm() != 0o600 {
		t.Fatalf("the key file has mode %v, want 0600", info.Mode().Perm())
	}
	if all := logs.String() + agentLogs(t, m.Config.DataDir); strings.Contains(all, secret) {
		t.Fatal("the logs hold the customer's private key")
	}

	api.do("POST", "/subscriptions/"+sub+"/cancel", "", 200, nil)
	waitFor(t, time.Minute, "the node to be terminated", func() bool {
		n, err := m.Store.GetNode(t.Context(), node.ID)
		return err == nil && n.State == engine.NodeTerminated
	})
	if _, err := os.Stat(onHost); !os.IsNotExist(err) {
		t.Fatalf("the key file is still on the host after terminate: %v", err)
	}
	waitFor(t, 30*time.Second, "the chain's processes to be gone", func() bool {
		return len(processesUnder(t, node.Host.Address)) == 0
	})
}

type cometStatusReply struct {
	Result struct {
		SyncInfo struct {
			LatestBlockHeight string `json:"latest_block_height"`
		} `json:"sync_info"`
		ValidatorInfo struct {
			Address string `json:"address"`
		} `json:"validator_info"`
	} `json:"result"`
}

func (s cometStatusReply) height() int {
	h, _ := strconv.Atoi(s.Result.SyncInfo.LatestBlockHeight)
	return h
}

func cometStatus(port int) (cometStatusReply, error) {
	var s cometStatusReply
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/status", port))
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// processesUnder lists the processes whose command line names dir.
func processesUnder(t testing.TB, dir string) []string {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc to look for processes in: %v", err)
	}
	var found []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(dir)) {
			found = append(found, e.Name()+": "+string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		}
	}
	return found
}

func TestGethDevMakesBlocksWithTheGeneratedJWTSecret(t *testing.T) {
	withChainClient(t, chains.Geth)
	m, _ := openChainAppliance(t)
	api := signUp(t, m, "geth-dev@example.com", 1)
	sub := buyAndPay(t, m, api, "geth-dev", "full", "", "geth")
	node := waitRunning(t, m, sub, 3*time.Minute)

	jwt, err := os.ReadFile(filepath.Join(chainDir(node), "geth", "jwt.hex"))
	if err != nil || len(jwt) != 64 {
		t.Fatalf("the generated JWT secret on the host: %q, %v", jwt, err)
	}
	if !slicesContain(processesUnder(t, node.Host.Address), "--authrpc.jwtsecret="+filepath.Join(chainDir(node), "geth", "jwt.hex")) {
		t.Fatal("geth does not run with the delivered JWT secret")
	}
	rpc := node.Runtime.Ports["rpc"]
	var first uint64
	waitFor(t, time.Minute, "geth to answer on its RPC port", func() bool {
		n, err := gethBlockNumber(rpc)
		first = n
		return err == nil
	})
	waitFor(t, time.Minute, "geth to make blocks", func() bool {
		n, err := gethBlockNumber(rpc)
		return err == nil && n > first
	})
	waitFor(t, time.Minute, "the heartbeat to carry chain_head_block", func() bool {
		st, err := agentStatuses(m.Cache).GetAgentStatus(t.Context(), node.ID)
		return err == nil && st.Metrics["chain_head_block"] > 0
	})
}

func slicesContain(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

func gethBlockNumber(port int) (uint64, error) {
	body := `{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}`
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d", port), "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct{ Result string }
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimPrefix(r.Result, "0x"), 16, 64)
}

// TestAFailingInitStepFailsTheProvisionVisibly: a recipe whose init step
// fails leaves the node failed, its host gone, and the step's error on
// the node's page.
func TestAFailingInitStepFailsTheProvisionVisibly(t *testing.T) {
	withChainClient(t, chains.CometBFT)
	cfg := testConfig(t, t.TempDir())
	cfg.DevToken = "e2e-admin"
	cfg.ChainsDir = t.TempDir()
	profile, err := fs.ReadFile(assets.Chains, "cometbft-kvstore.yaml")
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(profile), `- args: [init, --home, "{{.DataDir}}/cometbft"]`, `- args: [init, --no-such-flag]`, 1)
	if err := os.WriteFile(filepath.Join(cfg.ChainsDir, "cometbft-kvstore.yaml"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	m := MustOpenMain(t, cfg)
	api := signUp(t, m, "broken@example.com", 1)
	keyFile, _, _ := customerValidatorKey(t)
	sealed := sealTo(t, m.Boot.SealedBoxKey.PublicKey().Bytes(), keyFile)
	sub := buyAndPay(t, m, api, "cometbft-kvstore", "validator",
		`[{"name":"moniker","value":"broken"},{"name":"priv_validator_key","value":"`+sealed+`"}]`, "broken")

	var node *engine.Node
	waitFor(t, 3*time.Minute, "the provision to fail", func() bool {
		n, err := m.Store.GetNodeBySubscription(t.Context(), sub)
		node = n
		return err == nil && n.State == engine.NodeFailed
	})
	var shown struct {
		State       string
		StateReason string `json:"state_reason"`
	}
	api.do("GET", "/nodes/"+node.ID, "", 200, &shown)
	if !strings.Contains(shown.StateReason, "init[0]") || !strings.Contains(shown.StateReason, "no-such-flag") {
		t.Fatalf("the node page says %q; want the init step and its error", shown.StateReason)
	}
	waitFor(t, time.Minute, "the failed host to be destroyed", func() bool {
		_, err := os.Stat(node.Host.Address)
		return os.IsNotExist(err)
	})
}
