package nats

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedConfig describes the in-process NATS server.
type EmbeddedConfig struct {
	StoreDir string // JetStream file storage
	// Listen is "host:port" for a TCP listener (for tools or other
	// processes); empty means in-process connections only.
	Listen string
}

// NewEmbedded returns a Bus that runs its own NATS server with JetStream.
// The server syncs every write to disk: an acknowledged payment must
// survive a power cut, and payment rates are far below the cost.
func NewEmbedded(cfg EmbeddedConfig) (*EmbeddedBus, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("nats: store dir is required")
	}
	opts := &server.Options{
		ServerName: "hoodcloud-embedded",
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		SyncAlways: true,
		DontListen: cfg.Listen == "",
		NoSigs:     true,
		NoLog:      true,
	}
	if cfg.Listen != "" {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats listen address %q: %w", cfg.Listen, err)
		}
		opts.Host, opts.Port = host, port
		if port == 0 {
			opts.Port = server.RANDOM_PORT // NATS reads 0 as its default port
		}
	}
	return &EmbeddedBus{opts: opts}, nil
}

// EmbeddedBus is a Bus together with the server it runs.
type EmbeddedBus struct {
	Bus
	opts   *server.Options
	server *server.Server
}

// Open starts the server, waits until it accepts connections and connects.
func (e *EmbeddedBus) Open(ctx context.Context) error {
	srv, err := server.NewServer(e.opts)
	if err != nil {
		return fmt.Errorf("nats: configure embedded server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return errors.New("nats: embedded server not ready within 10s (is the listen port in use?)")
	}
	e.server = srv
	e.Bus.opts = []nats.Option{nats.InProcessServer(srv)}
	e.Bus.onClose = func() { srv.Shutdown(); srv.WaitForShutdown() }
	if err := e.Bus.Open(ctx); err != nil {
		e.Bus.Close()
		return err
	}
	return nil
}

// ClientURL is the TCP URL of the listener, or "" when there is none.
func (e *EmbeddedBus) ClientURL() string {
	if e.server == nil || e.opts.DontListen {
		return ""
	}
	return e.server.ClientURL()
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	return host, port, nil
}
