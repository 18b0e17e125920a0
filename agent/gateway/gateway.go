// Package gateway is the control plane's end of the wire to the node
// hosts: the gRPC gateway the ops-agents talk to, the enrolment CA and its
// token rules, and the heartbeat statuses it keeps. The ops-agent, the other
// end, is package agent. gRPC stays behind our types.
package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Gateway defaults.
const (
	DefaultHeartbeatInterval    = agentv1.DefaultHeartbeatInterval
	DefaultProgressTTL          = 30 * time.Minute
	DefaultRegistrationCacheTTL = 5 * time.Second
	DefaultTouchInterval        = time.Second
	maxCommandsPerHeartbeat     = 16
)

// Config describes the agent gateway. With Identity nil the gateway
// serves only the health service, in plain text (tests of the listener);
// the appliance always sets Identity, Nodes, Commands, Cache and Leases.
type Config struct {
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
	// Leases are checked before a START bearing signing leases is handed
	// out; nil fails every such START.
	Leases LeaseReader
	// Snapshots keeps the archives of chain data dirs agents put and get
	// (PutSnapshot, GetSnapshot); nil refuses them.
	Snapshots engine.SnapshotStore

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

func (c Config) withDefaults() Config {
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
	cfg      Config
	server   *grpc.Server
	health   *health.Server
	service  *service
	listener net.Listener
}

// New builds the server; it does no I/O.
func New(cfg Config) *Gateway {
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
		opts = append(opts, grpc.Creds(creds), grpc.ChainUnaryInterceptor(g.refuseRetiredCAs, g.service.authorize),
			grpc.ChainStreamInterceptor(g.refuseRetiredCAsOnStreams, g.service.authorizeStream))
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
// on every other call. Each handshake reads the agent CAs, so a rotation
// changes the CAs trusted and the certificate shown without a restart.
func (g *Gateway) serverCredentials() (credentials.TransportCredentials, error) {
	t := &gatewayTLS{identity: g.cfg.Identity, hosts: g.cfg.Hosts}
	if _, err := t.config(); err != nil {
		return nil, err
	}
	return credentials.NewTLS(&tls.Config{
		MinVersion:         tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return t.config() },
	}), nil
}

// gatewayTLS is the gateway's TLS configuration for the agent CAs as they
// are now: the CAs trusted verify client certificates, and the server
// certificate comes from the CA AgentCAs.ServerIssuer names. That one is
// issued again when the issuer changes (a rotation, the end of a grace
// period) or it nears its end.
type gatewayTLS struct {
	identity *Identity
	hosts    []string

	mu            sync.Mutex
	cfg           *tls.Config
	trusted       []*x509.Certificate // the CAs of cfg.ClientCAs
	issuer        *x509.Certificate   // the CA of cfg's certificate
	intermediates [][]byte            // sent between the two
}

func (t *gatewayTLS) config() (*tls.Config, error) {
	cas := t.identity.CAs()
	trusted := cas.Trusted()
	issuer, intermediates := cas.ServerIssuer()
	t.mu.Lock()
	defer t.mu.Unlock()
	certOK := t.cfg != nil && t.issuer.Equal(issuer.Cert) &&
		slices.EqualFunc(t.intermediates, intermediates, bytes.Equal) &&
		t.identity.Now().Before(agentv1.RenewAt(t.cfg.Certificates[0].Leaf))
	if certOK && slices.EqualFunc(t.trusted, trusted, (*x509.Certificate).Equal) {
		return t.cfg, nil
	}
	var cert tls.Certificate
	if certOK {
		cert = t.cfg.Certificates[0]
	} else {
		var err error
		if cert, err = t.identity.serverCertificate(t.hosts, issuer, intermediates); err != nil {
			return nil, err
		}
	}
	pool := x509.NewCertPool()
	for _, ca := range trusted {
		pool.AddCert(ca)
	}
	t.cfg = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS13,
	}
	t.trusted, t.issuer, t.intermediates = trusted, issuer.Cert, intermediates
	return t.cfg, nil
}

// refuseRetiredCAs refuses calls over a connection whose client
// certificate comes from a CA no longer trusted: the handshake checked the
// CA, but a connection may outlive the CA's grace period.
func (g *Gateway) refuseRetiredCAs(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if chains := verifiedChains(ctx); len(chains) > 0 && !trustsAny(g.cfg.Identity.CAs().Trusted(), chains) {
		return nil, status.Error(codes.Unauthenticated, "the client certificate's CA is no longer trusted")
	}
	return next(ctx, req)
}

// refuseRetiredCAsOnStreams is refuseRetiredCAs for streaming calls.
func (g *Gateway) refuseRetiredCAsOnStreams(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	if chains := verifiedChains(ss.Context()); len(chains) > 0 && !trustsAny(g.cfg.Identity.CAs().Trusted(), chains) {
		return status.Error(codes.Unauthenticated, "the client certificate's CA is no longer trusted")
	}
	return next(srv, ss)
}

func verifiedChains(ctx context.Context) [][]*x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, _ := p.AuthInfo.(credentials.TLSInfo)
	return info.State.VerifiedChains
}

// trustsAny reports whether a chain ends in one of the trusted CAs.
func trustsAny(trusted []*x509.Certificate, chains [][]*x509.Certificate) bool {
	for _, chain := range chains {
		if len(chain) > 0 && slices.ContainsFunc(trusted, chain[len(chain)-1].Equal) {
			return true
		}
	}
	return false
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
