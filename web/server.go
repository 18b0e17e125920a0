// Package web is the HTTP face of the appliance: the operational endpoints
// and the public API. Gin stays behind Server.
package web

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
	"github.com/hoodcloud/hoodcloud/engine/profile"
	"github.com/hoodcloud/hoodcloud/engine/rollouts"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config describes the HTTP server.
type Config struct {
	Addr     string // host:port; port 0 picks a free one
	Version  string
	Logger   *slog.Logger
	Gatherer prometheus.Gatherer // what /metrics serves
	// Health runs the readiness checks.
	Health func(ctx context.Context) engine.HealthReport

	// Identity enables the public API under /api/v1; without it only the
	// operational endpoints are served.
	Identity *engine.Identity
	// Cache counts rate limits across instances; nil counts in memory.
	Cache engine.Cache
	// Registerer receives the API's metrics (hoodcloud_ratelimit_mode).
	Registerer prometheus.Registerer
	// Limits are the API's request rates; zero fields take the defaults.
	Limits Limits
	// TrustedProxies (IPs or CIDRs) may name the client in
	// X-Forwarded-For; none by default, so the client is the peer.
	TrustedProxies []string
	// TLS, when set, makes Open serve HTTPS with it (tlsconf.Source's
	// TLSConfig); nil serves plain HTTP.
	TLS *tls.Config
	// Chains is the chain profile catalogue served at /api/v1/chains.
	Chains *profile.Catalog
	// Store, Events and Workflows back the node and payment API.
	Store     engine.Store
	Events    engine.Events
	Workflows engine.Workflows
	// Subscriptions serves the subscription and provisioning-input API;
	// without it those routes are not served.
	Subscriptions *engine.Subscriptions
	// Payments serves linking, reading and marking payments paid; without
	// it those routes answer 501.
	Payments *engine.Payments
	// Webhook takes signed payment events; without it the webhook
	// answers 501.
	Webhook *engine.PaymentWebhook
	// DeadLetters serves the payment events the consumer gave up on to
	// administrators; without it those routes are not served.
	DeadLetters *engine.PaymentDeadLetters
	// SealingKey returns the current X25519 public key customers seal
	// provisioning secrets to; without it /crypto/public-key is not served.
	SealingKey func() []byte
	// CAPEM returns the appliance CA certificate served at /ca.pem.
	CAPEM func() []byte
	// Rotation rotates keys for administrators; without it they get 501.
	Rotation *keys.Rotations
	// Uptime serves nodes' uptime (with Store); without it those routes
	// are not served.
	Uptime *engine.Uptime
	// Rollouts creates, shows and steers upgrade rollouts for
	// administrators; without it those routes are not served.
	Rollouts *rollouts.Service
	// AgentBinary is the ops-agent served to hosts at AgentBinaryPath;
	// without it that route answers 503 agent_binary_missing.
	AgentBinary *AgentBinary
}

// Server serves HTTP.
type Server struct {
	cfg      Config
	started  time.Time
	router   *gin.Engine
	http     *http.Server
	listener net.Listener
	limiter  *rateLimiter
}

// New builds the routes; it does no I/O.
func New(cfg Config) *Server {
	gin.SetMode(gin.ReleaseMode)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Limits = cfg.Limits.withDefaults()
	s := &Server{cfg: cfg, started: time.Now(), router: gin.New()}
	if err := s.router.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		cfg.Logger.Error("ignoring invalid trusted proxies", "err", err)
		s.router.SetTrustedProxies(nil)
	}
	s.router.HandleMethodNotAllowed = true
	s.router.Use(s.withLogger, s.recoverJSON)
	s.router.NoRoute(func(c *gin.Context) {
		writeError(c, engine.Errorf(engine.ENotFound, "no route %s %s", c.Request.Method, c.Request.URL.Path))
	})
	s.router.NoMethod(func(c *gin.Context) {
		writeStatus(c, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
	})
	s.routeOps()
	s.routeAPI()
	s.routePublic()
	s.routeAgentBinary()
	s.routeOpenAPI()
	s.http = &http.Server{
		Handler:           s.router,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	return s
}

// Open binds the listener, so a port in use fails before anything serves.
func (s *Server) Open() error {
	l, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", s.cfg.Addr, err)
	}
	if s.cfg.TLS != nil {
		l = tls.NewListener(l, s.cfg.TLS)
	}
	s.listener = l
	go func() {
		if err := s.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Logger.Error("http server stopped", "err", err)
		}
	}()
	return nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string { return s.listener.Addr().String() }

// Handler exposes the routes for in-memory tests.
func (s *Server) Handler() http.Handler { return s.router }

// Close stops accepting and waits for requests in flight, up to the context.
func (s *Server) Close(ctx context.Context) error {
	if s.listener == nil {
		return nil
	}
	return s.http.Shutdown(ctx)
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{})
}
