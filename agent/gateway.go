// Package agent is the control plane's side of the node hosts: the gRPC
// gateway that agents talk to, and the ops-agent itself. gRPC stays behind
// our types.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// GatewayConfig describes the agent gateway's listener.
type GatewayConfig struct {
	Addr   string // host:port; port 0 picks a free one
	Logger *slog.Logger
}

// Gateway is the gRPC server agents connect to.
type Gateway struct {
	cfg      GatewayConfig
	server   *grpc.Server
	health   *health.Server
	listener net.Listener
}

// NewGateway builds the server; it does no I/O.
func NewGateway(cfg GatewayConfig) *Gateway {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{cfg: cfg, server: grpc.NewServer(), health: health.NewServer()}
	healthpb.RegisterHealthServer(g.server, g.health)
	return g
}

// Open binds the listener and starts serving.
func (g *Gateway) Open() error {
	l, err := net.Listen("tcp", g.cfg.Addr)
	if err != nil {
		return fmt.Errorf("agent gateway listen %s: %w", g.cfg.Addr, err)
	}
	g.listener = l
	g.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	go func() {
		if err := g.server.Serve(l); err != nil {
			g.cfg.Logger.Error("agent gateway stopped", "err", err)
		}
	}()
	return nil
}

// Addr is the bound address.
func (g *Gateway) Addr() string { return g.listener.Addr().String() }

// Close stops gracefully, or at once when ctx ends first.
func (g *Gateway) Close(ctx context.Context) {
	if g.listener == nil {
		return
	}
	g.health.Shutdown()
	done := make(chan struct{})
	go func() { g.server.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		g.server.Stop()
	}
}
