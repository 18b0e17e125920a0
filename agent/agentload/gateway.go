package agentload

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/hoodcloud/hoodcloud/agent/gateway"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"github.com/hoodcloud/hoodcloud/store/redis"
)

// Files of the gateway's data dir besides the store.
const (
	caCertFile = "agent-ca.pem"
	caKeyFile  = "agent-ca-key.pem"
)

// gatewayReady is the first line the gateway process writes to stdout.
type gatewayReady struct {
	Addr   string            `json:"addr"`
	CAPEM  string            `json:"ca_pem"`
	Tokens []EnrollmentToken `json:"tokens,omitempty"`
}

// gatewayReply answers each control line.
type gatewayReply struct {
	Error      string  `json:"error,omitempty"`
	Goroutines int     `json:"goroutines"`
	HeapMB     float64 `json:"heap_mb"`
}

// GatewayMain runs the benchmark's agent gateway in this process, on the
// appliance's embedded defaults: a bbolt store in --data-dir, an embedded
// Redis, the default gateway settings, and an agent CA kept in the data
// dir so a restarted gateway is trusted by the agents it issued. With
// --agents N it first creates N nodes and an enrollment token for each;
// --last-seen=false leaves out the LastSeenAt writes, to measure their cost.
//
// It writes one JSON line to stdout once serving (address, CA, tokens),
// then answers control lines from stdin, one JSON line each: "stats",
// "profile FILE" (start a CPU profile), "endprofile", "goroutine FILE"
// (where every goroutine is, as text) and "heap FILE". It stops on ctx or
// at the end of stdin.
func GatewayMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("agentload gateway", flag.ContinueOnError)
	flags.SetOutput(stderr)
	dataDir := flags.String("data-dir", "", "the gateway's data dir (required)")
	addr := flags.String("addr", "127.0.0.1:0", "listen address")
	agents := flags.Int("agents", 0, "nodes and enrollment tokens to create first")
	lastSeen := flags.Bool("last-seen", true, "record each node's LastSeenAt on heartbeats; false measures the gateway without")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *dataDir == "" {
		return errors.New("agentload gateway: --data-dir is required")
	}
	if _, err := RaiseOpenFiles(); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g, err := openGateway(ctx, *dataDir, *addr, *lastSeen, logger)
	if err != nil {
		return err
	}
	defer g.close()
	ready := gatewayReady{Addr: g.gw.Addr(), CAPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: g.identity.CA().Raw}))}
	if ready.Tokens, err = g.createAgents(ctx, *agents); err != nil {
		return err
	}
	if err := json.NewEncoder(stdout).Encode(ready); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() { serveControl(stdin, stdout); cancel() }()
	<-ctx.Done()
	return nil
}

// benchGateway is the gateway and what it stands on.
type benchGateway struct {
	store    *bolt.Store
	cache    *redis.Embedded
	identity *gateway.Identity
	gw       *gateway.Gateway
}

func openGateway(ctx context.Context, dataDir, addr string, lastSeen bool, logger *slog.Logger) (*benchGateway, error) {
	g := &benchGateway{store: bolt.New(filepath.Join(dataDir, "hoodcloud.db")), cache: redis.NewEmbedded(redis.Options{})}
	if err := g.store.Open(ctx); err != nil {
		return nil, err
	}
	if err := g.cache.Open(ctx); err != nil {
		g.store.Close()
		return nil, err
	}
	ca, key, err := loadOrCreateCA(dataDir)
	if err != nil {
		g.close()
		return nil, err
	}
	g.identity = gateway.NewIdentity(ca, key, g.store)
	cfg := gateway.Config{Addr: addr, Logger: logger, Identity: g.identity, Nodes: g.store, Commands: g.store, Cache: g.cache, Leases: g.store}
	if !lastSeen {
		cfg.Nodes = nil // the gateway then skips TouchNode
	}
	g.gw = gateway.New(cfg)
	if err := openRetrying(g.gw); err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

// openRetrying gives a restarted gateway's port a moment to be released.
func openRetrying(gw *gateway.Gateway) error {
	var err error
	for range 50 {
		if err = gw.Open(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// close stops the gateway gracefully, as the appliance does on SIGTERM.
func (g *benchGateway) close() {
	if g.gw != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		g.gw.Close(ctx)
		cancel()
	}
	g.cache.Close()
	g.store.Close()
}

// createAgents records n running nodes and issues each an enrollment
// token, as provisioning does.
func (g *benchGateway) createAgents(ctx context.Context, n int) ([]EnrollmentToken, error) {
	const perTx = 1000
	now := time.Now().UTC().Truncate(time.Microsecond)
	tokens := make([]EnrollmentToken, n)
	var batch []*engine.Node
	for i := range n {
		id := fmt.Sprintf("node_load_%05d", i)
		batch = append(batch, &engine.Node{ID: id, SubscriptionID: "sub_" + id, OwnerID: "user_load", ChainProfileID: "sim",
			NodeType: "full", State: engine.NodeRunning, CreatedAt: now, UpdatedAt: now})
		if len(batch) == perTx || i == n-1 {
			if err := g.store.CreateNodes(ctx, batch); err != nil {
				return nil, fmt.Errorf("create nodes: %w", err)
			}
			batch = batch[:0]
		}
		tok, err := g.identity.IssueEnrollmentToken(ctx, id, "", 24*time.Hour)
		if err != nil {
			return nil, err
		}
		tokens[i] = EnrollmentToken{NodeID: id, Token: tok}
	}
	return tokens, nil
}

// serveControl answers control lines until stdin ends.
func serveControl(stdin io.Reader, stdout io.Writer) {
	var profile *os.File
	defer func() {
		if profile != nil {
			pprof.StopCPUProfile()
			profile.Close()
		}
	}()
	enc := json.NewEncoder(stdout)
	lines := bufio.NewScanner(stdin)
	for lines.Scan() {
		cmd, arg, _ := strings.Cut(strings.TrimSpace(lines.Text()), " ")
		var err error
		switch cmd {
		case "stats":
		case "profile":
			profile, err = startProfile(profile, arg)
		case "goroutine", "heap":
			err = writeProfile(cmd, arg)
		case "endprofile":
			if profile != nil {
				pprof.StopCPUProfile()
				err, profile = profile.Close(), nil
			}
		default:
			err = fmt.Errorf("unknown control %q", cmd)
		}
		enc.Encode(reply(err))
	}
}

func startProfile(running *os.File, path string) (*os.File, error) {
	if running != nil {
		return running, errors.New("a profile is running")
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// writeProfile writes the goroutine (as text) or heap profile to path.
func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	debug := 0
	if name == "goroutine" {
		debug = 1
	}
	if err := pprof.Lookup(name).WriteTo(f, debug); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func reply(err error) gatewayReply {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	r := gatewayReply{Goroutines: runtime.NumGoroutine(), HeapMB: float64(m.HeapAlloc) / (1 << 20)}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

// loadOrCreateCA keeps the agent CA in dataDir (the key 0600), so agents
// trust the gateway across restarts.
func loadOrCreateCA(dataDir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err := os.ReadFile(filepath.Join(dataDir, caCertFile))
	if errors.Is(err, fs.ErrNotExist) {
		return createCA(dataDir)
	}
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dataDir, caKeyFile))
	if err != nil {
		return nil, nil, err
	}
	return parseCA(certPEM, keyPEM)
}

func createCA(dataDir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "agentload agent CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(filepath.Join(dataDir, caKeyFile), keyPEM, 0o600); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(dataDir, caCertFile), certPEM, 0o600); err != nil {
		return nil, nil, err
	}
	return parseCA(certPEM, keyPEM)
}

func parseCA(certPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, errors.New("agentload gateway: the CA files hold no PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, errors.New("agentload gateway: the CA key does not parse")
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("agentload gateway: the CA key is not ECDSA")
	}
	return cert, ec, nil
}

// parseCACert reads the PEM certificate the gateway process reports.
func parseCACert(pemText string) (*x509.Certificate, error) {
	b, _ := pem.Decode([]byte(pemText))
	if b == nil {
		return nil, errors.New("agentload: the gateway sent no CA certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}
