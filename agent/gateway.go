// Package agent is the control plane's side of the node hosts: the gRPC
// gateway that agents talk to, and the ops-agent itself. gRPC stays behind
// our types.
package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

// Gateway defaults.
const (
	DefaultHeartbeatInterval    = 30 * time.Second
	DefaultProgressTTL          = 30 * time.Minute
	DefaultRegistrationCacheTTL = 5 * time.Second
	DefaultTouchInterval        = time.Second
	maxCommandsPerHeartbeat     = 16
)

// GatewayConfig describes the agent gateway. With Identity nil the gateway
// serves only the health service, in plain text (tests of the listener);
// the appliance always sets Identity, Nodes, Commands and Cache.
type GatewayConfig struct {
	Addr   string // host:port; port 0 picks a free one
	Logger *slog.Logger

	Identity *Identity           // issues and checks agent certificates
	Nodes    engine.NodeStore    // TouchNode on heartbeats
	Commands engine.CommandStore // the source of truth for commands
	Cache    engine.Cache        // the per-node queue and progress
	// Statuses keeps each node's latest heartbeat status; default Cache
	// when it implements engine.AgentStatusCache (the Redis adapters do).
	Statuses engine.AgentStatusCache
	// DataKeys unwraps node data keys for agents capturing chain keys
	// (FetchDataKey); nil refuses them.
	DataKeys DataKeys

	// Hosts are the names and IPs in the server certificate; default
	// localhost and 127.0.0.1.
	Hosts []string
	// HeartbeatInterval is what agents are told to use; default 30s.
	HeartbeatInterval time.Duration
	// ProgressTTL is how long progress:{commandID} lives; default 30m.
	ProgressTTL time.Duration
	// RegistrationCacheTTL bounds how long a revocation takes to bite;
	// default 5s.
	RegistrationCacheTTL time.Duration
	// TouchInterval is the least time between two LastSeenAt writes of one
	// node; default 1s.
	TouchInterval time.Duration
	// StatusTTL is how long a heartbeat status outlives the heartbeat;
	// default three heartbeat intervals.
	StatusTTL time.Duration
}

func (c GatewayConfig) withDefaults() GatewayConfig {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.ProgressTTL <= 0 {
		c.ProgressTTL = DefaultProgressTTL
	}
	if c.RegistrationCacheTTL <= 0 {
		c.RegistrationCacheTTL = DefaultRegistrationCacheTTL
	}
	if c.TouchInterval <= 0 {
		c.TouchInterval = DefaultTouchInterval
	}
	if c.StatusTTL <= 0 {
		c.StatusTTL = 3 * c.HeartbeatInterval
	}
	if sc, ok := c.Cache.(engine.AgentStatusCache); ok && c.Statuses == nil {
		c.Statuses = sc
	}
	return c
}

// Gateway is the gRPC server agents connect to.
type Gateway struct {
	cfg      GatewayConfig
	server   *grpc.Server
	health   *health.Server
	service  *service
	listener net.Listener
}

// NewGateway builds the server; it does no I/O.
func NewGateway(cfg GatewayConfig) *Gateway {
	cfg = cfg.withDefaults()
	return &Gateway{cfg: cfg, health: health.NewServer()}
}

// Open issues the server certificate, binds the listener and starts serving.
func (g *Gateway) Open() error {
	opts := []grpc.ServerOption{grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true})}
	if g.cfg.Identity != nil {
		creds, err := g.serverCredentials()
		if err != nil {
			return err
		}
		g.service = newService(g.cfg)
		opts = append(opts, grpc.Creds(creds), grpc.ChainUnaryInterceptor(g.service.authorize))
	}
	g.server = grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(g.server, g.health)
	if g.service != nil {
		agentv1.RegisterAgentServiceServer(g.server, g.service)
	}
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

// serverCredentials asks for a client certificate without requiring one:
// Enroll is made before the agent has any; the interceptor requires it
// on every other call.
func (g *Gateway) serverCredentials() (credentials.TransportCredentials, error) {
	cert, err := g.cfg.Identity.ServerCertificate(g.cfg.Hosts)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(g.cfg.Identity.CA())
	return credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS13,
	}), nil
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
	if g.service != nil {
		g.service.wait()
	}
}
