// Package simnode is a simulated chain node for dev, CI and tests: it makes
// blocks on a timer, serves the metrics a real node would (Prometheus text at
// /metrics, JSON at /health), keeps a node key and its height in a data dir,
// and misbehaves on request (stall, crash loop, fall behind) so the agent,
// the health policies and upgrades can be exercised without a real chain.
package simnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// ErrCrashLoop is what Run returns when the node "crashes" in ModeCrashLoop;
// a supervisor restarts it and it crashes again until the mode changes.
var ErrCrashLoop = errors.New("simnode: simulated crash")

// Config describes one simulated node. Zero values take the defaults noted.
type Config struct {
	// DataDir holds config/node_key.json and data/state.json. Required.
	DataDir string
	// MetricsAddr is host:port for /metrics and /health; port 0 picks a free
	// one. Default 127.0.0.1:0.
	MetricsAddr string
	// Version is reported as chain_version_info{version=…}. Default "v0.0.0-sim".
	Version string
	// BlockInterval is how often the network makes a block. Default 1s.
	BlockInterval time.Duration
	// ControlFile, if set, is a JSON file (see Control) polled every
	// ControlPoll to change the behaviour at run time. It need not exist.
	ControlFile string
	// ControlPoll defaults to 200ms.
	ControlPoll time.Duration
	// Mode applies until the control file says otherwise. Default normal.
	Mode Mode
	// Peers is reported as chain_peers. Default 8 (use the control file for 0).
	Peers int
	// CrashAfter is how long the node lives in ModeCrashLoop. Default 1s.
	CrashAfter time.Duration
	// NetworkHeight is the network's height when the data dir is new; the
	// node starts at 0 and syncs up to it. Default 0: in sync from the start.
	NetworkHeight uint64
	// NodeKeyFile is where, relative to DataDir, the node writes its key on
	// first start, as a real chain writes its identity where its profile
	// says. Default NodeKeyPath.
	NodeKeyFile string
	// Logger defaults to discarding.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.NodeKeyFile == "" {
		c.NodeKeyFile = NodeKeyPath
	}
	if c.MetricsAddr == "" {
		c.MetricsAddr = "127.0.0.1:0"
	}
	if c.Version == "" {
		c.Version = "v0.0.0-sim"
	}
	if c.BlockInterval <= 0 {
		c.BlockInterval = time.Second
	}
	if c.ControlPoll <= 0 {
		c.ControlPoll = 200 * time.Millisecond
	}
	if c.Mode == "" {
		c.Mode = ModeNormal
	}
	if c.Peers <= 0 {
		c.Peers = 8
	}
	if c.CrashAfter <= 0 {
		c.CrashAfter = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	if c.DataDir == "" {
		return errors.New("simnode: data dir is required")
	}
	if c.NodeKeyFile != "" && !filepath.IsLocal(c.NodeKeyFile) {
		return errors.New("simnode: the node key file must be a path inside the data dir")
	}
	if _, err := ParseMode(string(c.Mode)); err != nil {
		return fmt.Errorf("simnode: %w", err)
	}
	return nil
}

// NodeKeyPath is where the node keeps its key, relative to the data dir.
const NodeKeyPath = "config/node_key.json"

// AddrFile is where, in the data dir, the node writes the host:port of
// /metrics and /health once it listens: a node started on port 0 (as the
// local provisioner starts it, several per host) is found through it.
const AddrFile = "addr"

const (
	statePath         = "data/state.json"
	stateSaveInterval = 5 * time.Second
)

// Node is a running simulated node.
type Node struct {
	cfg     Config
	id      string
	chain   chain
	control *controlFile
	now     behaviour
	metrics *metrics
	board   board
	server  *http.Server
	addr    string
	cancel  context.CancelFunc
	done    chan struct{}
	err     error
}

// Run runs a node until ctx ends (returning nil) or it crashes (returning
// ErrCrashLoop).
func Run(ctx context.Context, cfg Config) error {
	n, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	return n.Wait()
}

// Start prepares the data dir, binds the metrics listener and runs the node
// in the background until ctx ends, Close is called or it crashes.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, now: behaviour{mode: cfg.Mode, peers: cfg.Peers}, done: make(chan struct{})}
	if err := n.prepare(); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("simnode: listen %s: %w", cfg.MetricsAddr, err)
	}
	n.addr = l.Addr().String()
	if err := writeAddr(filepath.Join(cfg.DataDir, AddrFile), n.addr); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("simnode: %w", err)
	}
	n.metrics = newMetrics(cfg.Version)
	n.publish()
	n.server = &http.Server{Handler: handler(n.metrics, &n.board), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = n.server.Serve(l) }()

	cfg.Logger.Info("simulated node started", "addr", n.addr, "node_id", n.id, "version", cfg.Version,
		"mode", n.now.mode, "height", n.chain.Height)
	ctx, n.cancel = context.WithCancel(ctx)
	go n.run(ctx)
	return n, nil
}

// prepare creates the data dir's layout, the node key and the chain state,
// and reads the control file once so it governs from the first block.
func (n *Node) prepare() error {
	for _, dir := range []string{"config", "data"} {
		if err := os.MkdirAll(filepath.Join(n.cfg.DataDir, dir), 0o700); err != nil {
			return fmt.Errorf("simnode: %w", err)
		}
	}
	keyFile := filepath.Join(n.cfg.DataDir, n.cfg.NodeKeyFile)
	if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
		return fmt.Errorf("simnode: %w", err)
	}
	id, err := ensureNodeKey(keyFile)
	if err != nil {
		return fmt.Errorf("simnode: %w", err)
	}
	n.id = id
	n.chain, err = loadChain(filepath.Join(n.cfg.DataDir, statePath), n.cfg.NetworkHeight, n.cfg.BlockInterval, time.Now())
	if err != nil {
		return fmt.Errorf("simnode: %w", err)
	}
	if n.cfg.ControlFile != "" {
		n.control = &controlFile{path: n.cfg.ControlFile}
		n.pollControl()
	}
	return nil
}

// writeAddr replaces the address file whole, so a reader never sees half
// an address.
func writeAddr(path, addr string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(addr+"\n"), 0o600); err != nil {
		return fmt.Errorf("write address file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write address file: %w", err)
	}
	return nil
}

// Addr is the bound host:port of /metrics and /health.
func (n *Node) Addr() string { return n.addr }

// NodeID identifies the node key: hex of the first 20 bytes of the SHA-256
// of its public key.
func (n *Node) NodeID() string { return n.id }

// Done is closed when the node has stopped.
func (n *Node) Done() <-chan struct{} { return n.done }

// Wait blocks until the node stops and returns nil, or ErrCrashLoop if it
// crashed.
func (n *Node) Wait() error {
	<-n.done
	return n.err
}

// Close stops the node and waits for it.
func (n *Node) Close() error {
	n.cancel()
	return n.Wait()
}
