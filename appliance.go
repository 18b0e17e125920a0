package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"time"

	"github.com/hoodcloud/hoodcloud/agent/gateway"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/incidents"
	"github.com/hoodcloud/hoodcloud/engine/keys"
	"github.com/hoodcloud/hoodcloud/engine/observe"
	"github.com/hoodcloud/hoodcloud/engine/profile"
	"github.com/hoodcloud/hoodcloud/engine/rollouts"
	hnats "github.com/hoodcloud/hoodcloud/store/nats"
	"github.com/hoodcloud/hoodcloud/store/temporal"
	"github.com/hoodcloud/hoodcloud/store/temporal/devserver"
	"github.com/hoodcloud/hoodcloud/web"
	"github.com/hoodcloud/hoodcloud/web/tlsconf"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Main is the appliance: every component of `serve`, opened in dependency
// order and closed in reverse. Tests start it in process.
type Main struct {
	Config   Config
	Logger   *slog.Logger
	Registry *prometheus.Registry

	Store       engine.Store
	Secrets     engine.Secrets
	Boot        *keys.BootMaterial // keys and certificates made on first boot
	Cache       engine.Cache
	Events      engine.Events
	NATS        *hnats.EmbeddedBus // nil with external NATS
	Temporal    *temporal.Client   // the SDK connection and our worker
	Workflows   engine.Workflows
	Leader      engine.Leadership // whether this instance runs the singleton work
	Incidents   *incidents.Dispatcher
	Gateway     *gateway.Gateway
	Snapshots   engine.SnapshotStore // what agents put through the gateway, under the data dir
	Provisioner engine.Provisioner
	// AgentIdentity issues enrolment tokens and agent certificates.
	AgentIdentity *gateway.Identity
	HTTP          *web.Server
	Chains        *profile.Catalog
	TLS           *tlsconf.Source // nil when the API serves plain HTTP
	// UptimeWorker keeps nodes' hourly uptime buckets (leader only);
	// Uptime reads them for the API.
	UptimeWorker *engine.UptimeWorker
	Uptime       *engine.Uptime
	// WebhookSecrets verify payment webhooks: the operator's secret file
	// or the secret generated at first start.
	WebhookSecrets webhookSecrets
	// DeadLetters are the payment events the consumer gave up on.
	DeadLetters *engine.PaymentDeadLetters
	// Rollouts creates and steers upgrade rollouts.
	Rollouts *rollouts.Service

	// AgentBinary is the ops-agent handed to hosts; nil when there is none
	// (agentBinaryErr says why, and the readiness reports it).
	AgentBinary *web.AgentBinary

	temporalServer *devserver.Server // nil with an external Temporal
	inspectHosts   bool              // open the provisioner without starting agents
	agentBinaryErr error
	evaluator      *observe.Evaluator
	healthMetrics  *healthMetrics
	bootDone       chan struct{}
	bootErr        error

	rotations    *keys.Rotations        // its rewrap resumes on the leader only
	fencedWrites *prometheus.CounterVec // outcomes of leader-only writes

	checks  []engine.HealthCheck
	up      *prometheus.GaugeVec
	closers []func(context.Context) error
}

// NewMain prepares an appliance logging to logOut; it does no I/O.
func NewMain(cfg Config, logOut io.Writer) *Main {
	return &Main{Config: cfg, Logger: newLogger(cfg, logOut), Registry: prometheus.NewRegistry()}
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Open starts every component and waits until each is ready. On failure
// it closes what it opened and returns the first error.
func (m *Main) Open(ctx context.Context) error {
	start := time.Now()
	m.registerMetrics()
	err := m.openSteps(ctx, []step{
		{"data dir", m.openDataDir},
		{"store", m.openStore},
		{"secrets", m.openSecrets},
		{"cache", m.openCache},
		{"leader", m.openLeader},
		{"command queue", m.rebuildCommandQueue},
		{"events", m.openEvents},
		{"temporal server", m.openTemporalServer},
		{"first-boot material", m.awaitBootMaterial},
		{"chain profiles", m.openChains},
		{"tls", m.openTLS},
		{"agent binary", m.openAgentBinary},
		{"agent gateway", m.openGateway},
		{"provisioner", m.openProvisioner},
		{"workflows", m.openWorkflows},
		{"rollouts", m.openRollouts},
		{"payments", m.openPayments},
		{"health evaluator", m.openEvaluator},
		{"incidents", m.openIncidents},
		{"uptime", m.openUptime},
		{"http", m.openHTTP},
		{"leader work", m.openLeaderWork},
	})
	if err != nil {
		return err
	}
	m.Logger.Info("hoodcloud ready", "version", version, "http", m.HTTP.Addr(),
		"agents", m.Gateway.Addr(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// step is one component to open.
type step struct {
	name string
	open func(context.Context) error
}

// openSteps opens in order; on failure it closes what it opened.
func (m *Main) openSteps(ctx context.Context, steps []step) error {
	for _, s := range steps {
		if err := s.open(ctx); err != nil {
			m.Close()
			return fmt.Errorf("start %s: %w", s.name, err)
		}
	}
	return nil
}

// OpenState opens only the durable state (data dir, store, secrets), for
// operator commands run while the appliance is stopped.
func (m *Main) OpenState(ctx context.Context) error {
	return m.openSteps(ctx, []step{
		{"data dir", m.openDataDir},
		{"store", m.openStore},
		{"secrets", m.openSecrets},
		{"first-boot material", m.awaitBootMaterial},
	})
}

// Run serves until ctx ends, then stops in order.
func (m *Main) Run(ctx context.Context) error {
	go m.watchHealth(ctx, 15*time.Second)
	if m.Config.ChainsDir != "" {
		go m.Chains.Watch(ctx, m.Config.ChainsCheckInterval, m.Logger)
	}
	<-ctx.Done()
	m.Logger.Info("stopping")
	return m.Close()
}

// Close stops every opened component in reverse order within the
// shutdown timeout. Safe to call twice.
func (m *Main) Close() error {
	if m.temporalServer != nil {
		m.temporalServer.Quiet()
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
	defer cancel()
	var errs []error
	for i := len(m.closers) - 1; i >= 0; i-- {
		errs = append(errs, m.closers[i](ctx))
	}
	m.closers = nil
	return errors.Join(errs...)
}

func (m *Main) onClose(f func(context.Context) error) { m.closers = append(m.closers, f) }

// Health checks every component now.
func (m *Main) Health(ctx context.Context) engine.HealthReport {
	r := engine.CheckHealth(ctx, m.checks, 2*time.Second)
	for i, c := range r.Components {
		v := 0.0
		if c.Status == engine.Healthy {
			v = 1
		}
		m.up.WithLabelValues(c.Name).Set(v)
		r.Components[i].Detail = m.componentDetail(c.Name)
	}
	return r
}

func (m *Main) addCheck(name string, critical bool, check func(context.Context) error) {
	m.checks = append(m.checks, engine.HealthCheck{Name: name, Critical: critical, Check: check})
}

// expireSubscriptions ends subscriptions whose time is up and terminates
// their nodes.
func (m *Main) expireSubscriptions(ctx context.Context) {
	n, err := engine.ExpireSubscriptions(ctx, m.Store, m.Store, m.Workflows, time.Now().UTC(), 500)
	if n > 0 {
		m.Logger.Info("subscriptions expired", "count", n)
	}
	if err != nil {
		m.Logger.Warn("expiring subscriptions", "err", err)
	}
}

// watchHealth keeps the component gauges fresh between scrapes of /readyz.
func (m *Main) watchHealth(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.Health(ctx)
		}
	}
}

func (m *Main) registerMetrics() {
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hoodcloud_build_info", Help: "Build of the running appliance (always 1).",
	}, []string{"version", "commit", "goversion"})
	build.WithLabelValues(version, commit, runtime.Version()).Set(1)
	m.up = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hoodcloud_component_up", Help: "Whether a component passed its last health check.",
	}, []string{"component"})
	m.Registry.MustRegister(build, m.up,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}
