package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/agent/gateway"
	"github.com/hoodcloud/hoodcloud/internal/testenv"

	"github.com/hoodcloud/hoodcloud/agent/simnode"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"github.com/hoodcloud/hoodcloud/store/redis"
)

// simnodeEnv makes the test binary act as a simulated chain node in the
// directory it names, so the process runtime is tested with a real child
// without building another binary.
const simnodeEnv = "HOODCLOUD_AGENT_TEST_SIMNODE"

func TestMain(m *testing.M) {
	if dir := os.Getenv(simnodeEnv); dir != "" {
		os.Exit(runChildSimnode(dir))
	}
	os.Exit(runTests(m))
}

// runTests keeps the tests' port claims out of the machine-wide record.
func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "agent-port-claims-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	portClaimsDir = dir
	return m.Run()
}

// runChildSimnode runs a simulated node until SIGTERM and writes its
// address to dir/addr. "--version V" picks the version it reports; a
// version starting with "broken" exits at once, as a bad release would.
func runChildSimnode(dir string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	version := childArg("--version")
	if strings.HasPrefix(version, "broken") {
		fmt.Fprintln(os.Stderr, "simnode: this release does not start")
		return 3
	}
	n, err := simnode.Start(ctx, simnode.Config{DataDir: dir, BlockInterval: 100 * time.Millisecond, Version: version})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := os.WriteFile(filepath.Join(dir, "addr"), []byte(n.Addr()), 0o600); err != nil {
		return 1
	}
	if err := n.Wait(); err != nil {
		return 2
	}
	return 0
}

// childArg is the value after flag on the command line, or "".
func childArg(flag string) string {
	for i, a := range os.Args[:len(os.Args)-1] {
		if a == flag {
			return os.Args[i+1]
		}
	}
	return ""
}

// testCA is a throwaway agent CA.
func testCA(t testing.TB) (*x509.Certificate, *ecdsa.PrivateKey) { return testenv.AgentCA(t) }

// testEnv is a control plane: a bbolt Store, an embedded Redis Cache, an
// agent CA and a gateway on 127.0.0.1.
type testEnv struct {
	store    *bolt.Store
	cache    *redis.Embedded
	identity *gateway.Identity
	caFile   string
	gw       *gateway.Gateway
	addr     string
	logs     *testenv.LogBuffer
	nodes    engine.NodeStore // what the gateway touches
	cfg      gateway.Config
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	ctx := context.Background()
	e := &testEnv{logs: &testenv.LogBuffer{}}
	e.store = bolt.New(filepath.Join(t.TempDir(), "hoodcloud.db"))
	if err := e.store.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	e.cache = redis.NewEmbedded(redis.Options{})
	if err := e.cache.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.cache.Close() })
	ca, caKey := testCA(t)
	e.identity = gateway.NewIdentity(ca, caKey, e.store)
	e.caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(e.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	e.nodes = e.store
	e.cfg = gateway.Config{
		Addr: "127.0.0.1:0", Identity: e.identity, Commands: e.store, Cache: e.cache, Leases: e.store,
		Logger:               slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		HeartbeatInterval:    50 * time.Millisecond,
		RegistrationCacheTTL: 10 * time.Millisecond,
		DataKeys:             testDataKeys,
	}
	e.startGateway(t)
	return e
}

// startGateway (re)starts the gateway, on the same address after the first.
func (e *testEnv) startGateway(t testing.TB) {
	t.Helper()
	cfg := e.cfg
	cfg.Nodes = e.nodes
	if e.addr != "" {
		cfg.Addr = e.addr
	}
	e.gw = gateway.New(cfg)
	var err error
	for range 50 { // the old socket may linger for a moment
		if err = e.gw.Open(); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	e.addr = e.gw.Addr()
	gw := e.gw
	t.Cleanup(func() { stopGateway(gw) })
}

func stopGateway(g *gateway.Gateway) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	g.Close(ctx)
}

// createNode records a node so heartbeats have something to touch.
func (e *testEnv) createNode(t *testing.T, id string) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	n := &engine.Node{ID: id, SubscriptionID: "sub-" + id, OwnerID: "user", ChainProfileID: "sim", NodeType: "full",
		State: engine.NodeProvisioning, CreatedAt: now, UpdatedAt: now}
	if err := e.store.CreateNode(context.Background(), n); err != nil {
		t.Fatal(err)
	}
}

func (e *testEnv) token(t *testing.T, nodeID string) string {
	t.Helper()
	tok, err := e.identity.IssueEnrollmentToken(context.Background(), nodeID, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// enqueue queues a command for nodeID the way the control plane does.
func (e *testEnv) enqueue(t *testing.T, nodeID string, typ engine.CommandType, payload []byte) string {
	t.Helper()
	c := &engine.Command{NodeID: nodeID, Type: typ, Payload: payload}
	if err := engine.EnqueueCommand(context.Background(), e.store, e.cache, c); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func (e *testEnv) command(t *testing.T, id string) *engine.Command {
	t.Helper()
	c, err := e.store.GetCommand(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitFor polls cond until it holds. within is how long it takes on a
// quiet machine; the wait gives up only after testenv.Patience at least,
// as a loaded one can be many times slower.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	limit := max(within, testenv.Patience)
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitStatus waits for a command to reach status.
func (e *testEnv) waitStatus(t *testing.T, id string, want engine.CommandStatus, within time.Duration) *engine.Command {
	t.Helper()
	var c *engine.Command
	waitFor(t, within, fmt.Sprintf("command %s to be %s", id, want), func() bool {
		c = e.command(t, id)
		return c.Status == want
	})
	return c
}

// testDataKeys gives every node the data key testDEK(node), a fresh copy
// each call (the gateway zeroes what it gets).
func testDataKeys(_ context.Context, nodeID string) ([]byte, error) { return testDEK(nodeID), nil }

// testDEK is a node's data key in these tests: its id, padded.
func testDEK(nodeID string) []byte {
	k := make([]byte, engine.DataKeySize)
	copy(k, nodeID)
	return k
}
