package simnode_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/internal/testenv"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hoodcloud/hoodcloud/agent/simnode"
)

const (
	block   = 10 * time.Millisecond
	patient = testenv.Patience
)

func TestMetricsAppearAndHeightAdvances(t *testing.T) {
	n := mustStart(t, testConfig(t, func(c *simnode.Config) { c.Version = "v1.2.3" }))

	first := waitFor(t, n, "height reaches 3", func(s scrape) bool { return s.height() >= 3 })
	later := waitFor(t, n, "height moves on", func(s scrape) bool { return s.height() > first.height() })

	if later["chain_syncing"] != 0 || later["chain_highest_block"] < later.height() {
		t.Errorf("a caught-up node reports %v", later)
	}
	if later["chain_peers"] != 8 {
		t.Errorf("chain_peers = %v, want the default 8", later["chain_peers"])
	}
	if later[`chain_version_info{version="v1.2.3"}`] != 1 {
		t.Errorf("no chain_version_info for v1.2.3 in %v", later)
	}
}

func TestHealthReportsTheNode(t *testing.T) {
	n := mustStart(t, testConfig(t, func(c *simnode.Config) { c.Version = "v9" }))
	h := health(t, n)
	if h.Status != "ok" || h.Version != "v9" || h.Mode != simnode.ModeNormal || h.NodeID != n.NodeID() || len(h.NodeID) != 40 {
		t.Errorf("/health = %+v (node id %s)", h, n.NodeID())
	}
}

func TestNodeWritesWhereItListens(t *testing.T) {
	cfg := testConfig(t, nil)
	n := mustStart(t, cfg)
	got := strings.TrimSpace(string(mustRead(t, filepath.Join(cfg.DataDir, simnode.AddrFile))))
	if got != n.Addr() || strings.HasSuffix(got, ":0") {
		t.Fatalf("address file holds %q, the node listens on %s", got, n.Addr())
	}
}

func TestFreshNodeSyncsUpToTheNetwork(t *testing.T) {
	n := mustStart(t, testConfig(t, func(c *simnode.Config) { c.NetworkHeight = 300 }))
	s := scrapeMetrics(t, n)
	if s["chain_syncing"] != 1 || s.height() >= s["chain_highest_block"] {
		t.Fatalf("a node on a network at 300 should start syncing: %v", s)
	}
	waitFor(t, n, "caught up", func(s scrape) bool { return s["chain_syncing"] == 0 && s.height() >= 300 })
}

func TestStallStopsTheChain(t *testing.T) {
	cfg := testConfig(t, nil)
	n := mustStart(t, cfg)
	waitFor(t, n, "height reaches 3", func(s scrape) bool { return s.height() >= 3 })

	writeControl(t, cfg, `{"mode":"stall"}`)
	waitForMode(t, n, simnode.ModeStall)
	before := scrapeMetrics(t, n)
	waitBlockIntervals(t, 20)
	after := scrapeMetrics(t, n)
	for _, m := range []string{"chain_block_height", "chain_highest_block", "chain_syncing"} {
		if before[m] != after[m] {
			t.Errorf("%s moved from %v to %v while stalled", m, before[m], after[m])
		}
	}

	writeControl(t, cfg, `{"mode":"normal"}`)
	waitFor(t, n, "height moves again", func(s scrape) bool { return s.height() > after.height() })
}

func TestStallFromConfig(t *testing.T) {
	n := mustStart(t, testConfig(t, func(c *simnode.Config) { c.Mode = simnode.ModeStall }))
	waitBlockIntervals(t, 20)
	if s := scrapeMetrics(t, n); s.height() != 0 {
		t.Errorf("a node started stalled made blocks: %v", s)
	}
}

func TestBehindLagsAndSyncs(t *testing.T) {
	cfg := testConfig(t, nil)
	n := mustStart(t, cfg)
	waitFor(t, n, "height reaches 3", func(s scrape) bool { return s.height() >= 3 })

	writeControl(t, cfg, `{"mode":"behind"}`)
	lag := func(s scrape) float64 { return s["chain_highest_block"] - s.height() }
	first := waitFor(t, n, "falls behind", func(s scrape) bool { return s["chain_syncing"] == 1 && lag(s) >= 2 })
	waitFor(t, n, "falls further behind while still importing", func(s scrape) bool {
		return s["chain_syncing"] == 1 && lag(s) > lag(first) && s.height() > first.height()
	})

	writeControl(t, cfg, `{"mode":"normal"}`)
	waitFor(t, n, "catches up", func(s scrape) bool { return s["chain_syncing"] == 0 })
}

func TestCrashLoopReturnsErrorEveryStartUntilTheModeChanges(t *testing.T) {
	cfg := testConfig(t, func(c *simnode.Config) { c.CrashAfter = 50 * time.Millisecond })
	writeControl(t, cfg, `{"mode":"crashloop"}`)

	for range 2 { // what a supervisor restarting it sees
		if err := runFor(t, cfg, patient); !errors.Is(err, simnode.ErrCrashLoop) {
			t.Fatalf("Run in crashloop = %v, want ErrCrashLoop", err)
		}
	}

	writeControl(t, cfg, `{"mode":"normal"}`)
	if err := runFor(t, cfg, 300*time.Millisecond); err != nil {
		t.Fatalf("Run after leaving crashloop = %v, want nil at the end of its context", err)
	}
}

func TestSwitchingToCrashLoopAtRunTime(t *testing.T) {
	cfg := testConfig(t, func(c *simnode.Config) { c.CrashAfter = 50 * time.Millisecond })
	n := mustStart(t, cfg)
	writeControl(t, cfg, `{"mode":"crashloop"}`)
	select {
	case <-n.Done():
	case <-time.After(patient):
		t.Fatal("the node did not crash")
	}
	if err := n.Wait(); !errors.Is(err, simnode.ErrCrashLoop) {
		t.Errorf("Wait = %v, want ErrCrashLoop", err)
	}
}

func TestNodeKeyPersistsAcrossRestarts(t *testing.T) {
	cfg := testConfig(t, nil)
	first := mustStart(t, cfg)
	keyPath := filepath.Join(cfg.DataDir, simnode.NodeKeyPath)
	created := mustRead(t, keyPath)
	mustClose(t, first)

	second := mustStart(t, cfg)
	if got := mustRead(t, keyPath); !bytes.Equal(got, created) {
		t.Errorf("node key rewritten on restart:\n%s\nwas\n%s", got, created)
	}
	if first.NodeID() != second.NodeID() {
		t.Errorf("node id changed from %s to %s", first.NodeID(), second.NodeID())
	}
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("node key mode %v, want 0600", fi.Mode().Perm())
	}
	var k struct {
		Type       string `json:"type"`
		PrivateKey []byte `json:"private_key"`
	}
	if err := json.Unmarshal(created, &k); err != nil || k.Type != "ed25519" || len(k.PrivateKey) != ed25519.PrivateKeySize {
		t.Errorf("node key is not an ed25519 key file (%v): %s", err, created)
	}
}

func TestCorruptNodeKeyStopsTheNodeAndIsKept(t *testing.T) {
	cfg := testConfig(t, nil)
	keyPath := filepath.Join(cfg.DataDir, simnode.NodeKeyPath)
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
		t.Fatal(err)
	}
	corrupt := []byte(`{"type":"ed25519","private_key":"AAAA"}`)
	if err := os.WriteFile(keyPath, corrupt, 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := simnode.Start(t.Context(), cfg); err == nil {
		mustClose(t, n)
		t.Fatal("started with a corrupt node key")
	}
	if got := mustRead(t, keyPath); !bytes.Equal(got, corrupt) {
		t.Errorf("corrupt node key was replaced with %s", got)
	}
}

func TestHeightSurvivesRestart(t *testing.T) {
	cfg := testConfig(t, nil)
	first := mustStart(t, cfg)
	reached := waitFor(t, first, "height reaches 10", func(s scrape) bool { return s.height() >= 10 })
	mustClose(t, first)

	second := mustStart(t, cfg)
	if s := scrapeMetrics(t, second); s.height() < reached.height() {
		t.Errorf("restarted at height %v, had reached %v", s.height(), reached.height())
	}
}

func TestControlFileChangesPeersAndRemovalRestoresConfig(t *testing.T) {
	cfg := testConfig(t, func(c *simnode.Config) { c.Peers = 5 })
	n := mustStart(t, cfg)
	waitFor(t, n, "configured peers", func(s scrape) bool { return s["chain_peers"] == 5 })

	writeControl(t, cfg, `{"peers":0}`)
	waitFor(t, n, "peers from the control file", func(s scrape) bool { return s["chain_peers"] == 0 })

	if err := os.Remove(cfg.ControlFile); err != nil {
		t.Fatal(err)
	}
	waitFor(t, n, "configured peers again", func(s scrape) bool { return s["chain_peers"] == 5 })
}

func TestBadControlFileIsReportedAndIgnored(t *testing.T) {
	tests := []struct{ name, content, report string }{
		{"not json", `{"mode":`, "unexpected EOF"},
		{"unknown mode", `{"mode":"sideways"}`, "unknown mode"},
		{"misspelt field", `{"mdoe":"stall"}`, "unknown field"},
		{"negative peers", `{"peers":-1}`, "negative"},
		{"two objects", `{"mode":"stall"} {}`, "trailing data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &testenv.LogBuffer{}
			cfg := testConfig(t, func(c *simnode.Config) {
				c.Peers = 3
				c.Logger = slog.New(slog.NewTextHandler(logs, nil))
			})
			n := mustStart(t, cfg)
			writeControl(t, cfg, `{"mode":"behind","peers":2}`)
			waitForMode(t, n, simnode.ModeBehind)

			writeControl(t, cfg, tt.content)
			waitForLog(t, logs, "ignoring control file")
			if !strings.Contains(logs.String(), tt.report) {
				t.Errorf("log does not say %q:\n%s", tt.report, logs)
			}
			before := scrapeMetrics(t, n)
			if h := health(t, n); h.Mode != simnode.ModeBehind || h.Peers != 2 {
				t.Errorf("a bad control file changed the behaviour to %+v", h)
			}
			waitFor(t, n, "still importing", func(s scrape) bool { return s.height() > before.height() })
			if c := strings.Count(logs.String(), "ignoring control file"); c != 1 {
				t.Errorf("the same bad content was reported %d times", c)
			}
		})
	}
}

func TestInvalidConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  simnode.Config
	}{
		{"no data dir", simnode.Config{}},
		{"unknown mode", simnode.Config{DataDir: t.TempDir(), Mode: "sideways"}},
		{"bad address", simnode.Config{DataDir: t.TempDir(), MetricsAddr: "no-port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n, err := simnode.Start(t.Context(), tt.cfg); err == nil {
				mustClose(t, n)
				t.Error("Start accepted it")
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]simnode.Mode{"": simnode.ModeNormal, "normal": simnode.ModeNormal,
		"stall": simnode.ModeStall, "crashloop": simnode.ModeCrashLoop, "behind": simnode.ModeBehind} {
		if got, err := simnode.ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := simnode.ParseMode("crash-loop"); err == nil {
		t.Error("ParseMode accepted crash-loop")
	}
}

// helpers

func testConfig(t *testing.T, edit func(*simnode.Config)) simnode.Config {
	t.Helper()
	dir := t.TempDir()
	cfg := simnode.Config{
		DataDir:       filepath.Join(dir, "node"),
		BlockInterval: block,
		ControlFile:   filepath.Join(dir, "control.json"),
		ControlPoll:   20 * time.Millisecond,
	}
	if edit != nil {
		edit(&cfg)
	}
	return cfg
}

func mustStart(t *testing.T, cfg simnode.Config) *simnode.Node {
	t.Helper()
	n, err := simnode.Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func mustClose(t *testing.T, n *simnode.Node) {
	t.Helper()
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// runFor runs a node as a supervisor would, for at most d.
func runFor(t *testing.T, cfg simnode.Config, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	return simnode.Run(ctx, cfg)
}

func writeControl(t *testing.T, cfg simnode.Config, content string) {
	t.Helper()
	// Written whole and renamed into place, as an operator's tools should.
	tmp := cfg.ControlFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, cfg.ControlFile); err != nil {
		t.Fatal(err)
	}
}

// scrape maps a sample's name, with its labels if any, to its value.
type scrape map[string]float64

func (s scrape) height() float64 { return s["chain_block_height"] }

func scrapeMetrics(t *testing.T, n *simnode.Node) scrape {
	t.Helper()
	resp, err := http.Get("http://" + n.Addr() + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	s := scrape{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			key := name
			for _, l := range m.GetLabel() {
				key += fmt.Sprintf("{%s=%q}", l.GetName(), l.GetValue())
			}
			s[key] = m.GetGauge().GetValue()
		}
	}
	return s
}

// waitBlockIntervals waits until n block intervals have passed, as a node
// started beside the one under test counts them in blocks: a stalled node
// had that many chances to move.
func waitBlockIntervals(t *testing.T, n float64) {
	t.Helper()
	witness := mustStart(t, testConfig(t, nil))
	waitFor(t, witness, fmt.Sprintf("%v blocks on a node beside", n), func(s scrape) bool { return s.height() >= n })
	mustClose(t, witness)
}

func waitFor(t *testing.T, n *simnode.Node, what string, ok func(scrape) bool) scrape {
	t.Helper()
	deadline := time.Now().Add(patient)
	for {
		s := scrapeMetrics(t, n)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: metrics are %v", what, s)
		}
		time.Sleep(block)
	}
}

type healthBody struct {
	Status  string       `json:"status"`
	NodeID  string       `json:"node_id"`
	Version string       `json:"version"`
	Mode    simnode.Mode `json:"mode"`
	Peers   int          `json:"peers"`
}

func health(t *testing.T, n *simnode.Node) healthBody {
	t.Helper()
	resp, err := http.Get("http://" + n.Addr() + "/health")
	if err != nil {
		t.Fatalf("/health: %v", err)
	}
	defer resp.Body.Close()
	var h healthBody
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/health status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("/health body: %v", err)
	}
	return h
}

func waitForMode(t *testing.T, n *simnode.Node, mode simnode.Mode) {
	t.Helper()
	deadline := time.Now().Add(patient)
	for health(t, n).Mode != mode {
		if time.Now().After(deadline) {
			t.Fatalf("the node never went %s", mode)
		}
		time.Sleep(block)
	}
}

func waitForLog(t *testing.T, logs *testenv.LogBuffer, text string) {
	t.Helper()
	deadline := time.Now().Add(patient)
	for !strings.Contains(logs.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("never logged %q:\n%s", text, logs)
		}
		time.Sleep(block)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNodeWritesItsKeyWhereItIsTold(t *testing.T) {
	cfg := testConfig(t, func(c *simnode.Config) { c.NodeKeyFile = "keys/nodekey" })
	mustClose(t, mustStart(t, cfg))
	mustRead(t, filepath.Join(cfg.DataDir, "keys", "nodekey"))
	if _, err := os.Stat(filepath.Join(cfg.DataDir, simnode.NodeKeyPath)); !os.IsNotExist(err) {
		t.Errorf("a key was written at the default path too: %v", err)
	}
	bad := testConfig(t, func(c *simnode.Config) { c.NodeKeyFile = "../outside" })
	if _, err := simnode.Start(context.Background(), bad); err == nil {
		t.Error("a node key file outside the data dir was accepted")
	}
}
