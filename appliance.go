package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/hoodcloud/hoodcloud/agent"
	"github.com/hoodcloud/hoodcloud/assets"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
	"github.com/hoodcloud/hoodcloud/engine/workflows"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"github.com/hoodcloud/hoodcloud/store/hetzner"
	"github.com/hoodcloud/hoodcloud/store/local"
	hnats "github.com/hoodcloud/hoodcloud/store/nats"
	"github.com/hoodcloud/hoodcloud/store/postgres"
	"github.com/hoodcloud/hoodcloud/store/redis"
	"github.com/hoodcloud/hoodcloud/store/secrets"
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
	Boot        *engine.BootMaterial // keys and certificates made on first boot
	Cache       engine.Cache
	Events      engine.Events
	NATS        *hnats.EmbeddedBus // nil with external NATS
	Temporal    *temporal.Client   // the SDK connection and our worker
	Workflows   engine.Workflows
	Gateway     *agent.Gateway
	Provisioner engine.Provisioner
	// AgentIdentity issues enrolment tokens and agent certificates.
	AgentIdentity *agent.Identity
	HTTP          *web.Server
	Chains        *profile.Catalog
	TLS           *tlsconf.Source // nil when the API serves plain HTTP

	temporalServer *devserver.Server // nil with an external Temporal
	inspectHosts   bool              // open the provisioner without starting agents
	bootDone       chan struct{}
	bootErr        error

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
		{"command queue", m.rebuildCommandQueue},
		{"events", m.openEvents},
		{"temporal server", m.openTemporalServer},
		{"first-boot material", m.awaitBootMaterial},
		{"chain profiles", m.openChains},
		{"tls", m.openTLS},
		{"agent gateway", m.openGateway},
		{"provisioner", m.openProvisioner},
		{"workflows", m.openWorkflows},
		{"payments", m.openPayments},
		{"http", m.openHTTP},
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
	go m.expireSubscriptions(ctx, time.Minute)
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
	for _, c := range r.Components {
		v := 0.0
		if c.Status == engine.Healthy {
			v = 1
		}
		m.up.WithLabelValues(c.Name).Set(v)
	}
	return r
}

func (m *Main) addCheck(name string, critical bool, check func(context.Context) error) {
	m.checks = append(m.checks, engine.HealthCheck{Name: name, Critical: critical, Check: check})
}

// expireSubscriptions ends subscriptions whose time is up and terminates
// their nodes. One instance runs it until leader election exists.
func (m *Main) expireSubscriptions(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n, err := engine.ExpireSubscriptions(ctx, m.Store, m.Store, m.Workflows, now.UTC(), 500)
			if n > 0 {
				m.Logger.Info("subscriptions expired", "count", n)
			}
			if err != nil {
				m.Logger.Warn("expiring subscriptions", "err", err)
			}
		}
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

// openDataDir creates the data dir and locks it: two appliances on one
// data dir would corrupt each other's files.
func (m *Main) openDataDir(context.Context) error {
	dir := m.Config.DataDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("data dir %s is in use by another hoodcloud process", dir)
	}
	m.onClose(func(context.Context) error { return f.Close() })
	return nil
}

// opener is the lifecycle every adapter shares.
type opener interface {
	Open(context.Context) error
	Close() error
}

// openStore picks the adapter by URL scheme: bbolt under the data dir by
// default, PostgreSQL when configured.
func (m *Main) openStore(ctx context.Context) error {
	var s interface {
		engine.Store
		opener
	}
	if isPostgres(m.Config.Store) {
		s = postgres.New(m.Config.Store, m.Registry)
	} else {
		s = bolt.New(m.Config.storePath())
	}
	if err := s.Open(ctx); err != nil {
		return err
	}
	m.Store = s
	m.onClose(func(context.Context) error { return s.Close() })
	m.addCheck("store", true, s.Ping)
	return nil
}

// openSecrets opens the local keyring on the Store and makes or loads the
// first-boot material.
func (m *Main) openSecrets(ctx context.Context) error {
	keys := secrets.New(m.Store, secrets.Options{
		DataDir:       m.Config.DataDir,
		MasterKeyFile: m.Config.MasterKeyFile,
		MasterKey:     m.Config.MasterKey,
	})
	if err := keys.Open(ctx); err != nil {
		return err
	}
	m.Secrets = keys
	m.onClose(func(context.Context) error { return keys.Close() })
	m.addCheck("secrets", true, keys.Ping)
	// Generating the RSA key takes a while on a first boot: it overlaps
	// with the start of the workflow engine and is awaited after it.
	done := make(chan struct{})
	m.bootDone = done
	go func() {
		defer close(done)
		m.Boot, m.bootErr = engine.EnsureBootMaterial(ctx, keys)
	}()
	// Runs before keys.Close: never close the keyring under the generator.
	m.onClose(func(context.Context) error { <-done; return nil })
	return nil
}

func (m *Main) awaitBootMaterial(context.Context) error {
	<-m.bootDone
	if m.bootErr != nil {
		return fmt.Errorf("first-boot material: %w", m.bootErr)
	}
	return nil
}

// openCache runs miniredis in process by default, or uses a Redis server.
func (m *Main) openCache(ctx context.Context) error {
	var c interface {
		engine.Cache
		opener
	}
	if m.Config.Cache == "embedded" {
		c = redis.NewEmbedded(redis.Options{})
	} else {
		c = redis.New(m.Config.Cache, redis.Options{KeyPrefix: "hoodcloud:"})
	}
	if err := c.Open(ctx); err != nil {
		return err
	}
	m.Cache = c
	m.onClose(func(context.Context) error { return c.Close() })
	m.addCheck("cache", true, c.Ping)
	return nil
}

// rebuildCommandQueue restores the queue from the Store: the embedded
// cache forgets everything on restart, and the Store is the source of truth.
func (m *Main) rebuildCommandQueue(ctx context.Context) error {
	n, err := engine.RebuildCommandQueue(ctx, m.Store, m.Cache)
	if n > 0 {
		m.Logger.Info("command queue rebuilt", "commands", n)
	}
	return err
}

func (m *Main) openEvents(ctx context.Context) error {
	if m.Config.Events != "embedded" {
		bus := hnats.New(m.Config.Events)
		if err := bus.Open(ctx); err != nil {
			return err
		}
		return m.useEvents(bus)
	}
	bus, err := hnats.NewEmbedded(hnats.EmbeddedConfig{
		StoreDir: filepath.Join(m.Config.DataDir, "nats"),
		Listen:   m.Config.NATSListen,
	})
	if err != nil {
		return err
	}
	if err := bus.Open(ctx); err != nil {
		return err
	}
	m.NATS = bus
	return m.useEvents(bus)
}

func (m *Main) useEvents(bus engine.Events) error {
	m.Events = bus
	m.onClose(func(context.Context) error { return bus.Close() })
	m.addCheck("events", true, bus.Ping)
	return nil
}

// openTemporalServer starts the embedded Temporal, when configured.
func (m *Main) openTemporalServer(ctx context.Context) error {
	if m.Config.Temporal != "embedded" {
		return nil
	}
	_, err := m.openEmbeddedTemporal(ctx)
	return err
}

// openWorkflows connects to Temporal and starts our worker. It comes after
// every port the activities use: after a restart, in-flight activities run
// as soon as the worker polls.
func (m *Main) openWorkflows(ctx context.Context) error {
	addr := m.Config.Temporal
	if m.temporalServer != nil {
		addr = m.temporalServer.FrontendAddress()
	}
	c, err := temporal.New(temporal.Config{HostPort: addr, Namespace: m.Config.TemporalNamespace, Logger: m.Logger})
	if err != nil {
		return err
	}
	temporal.RegisterWorkflows(c, m.activities())
	if err := c.Open(ctx); err != nil {
		return err
	}
	m.Temporal = c
	m.Workflows = temporal.NewWorkflows(c, m.Store)
	m.onClose(func(context.Context) error { return c.Close() })
	m.addCheck("workflows", true, c.Ping)
	return nil
}

// activities gives the workflows the appliance's ports.
func (m *Main) activities() *workflows.Activities {
	var sim *workflows.Simulation
	var timing workflows.Timing
	if m.Config.Provisioner == "local" {
		exe, _ := os.Executable()
		sim = &workflows.Simulation{Binary: exe}
		// Local hosts answer within a heartbeat (1s): poll more often than
		// for cloud hosts, which take minutes to boot.
		timing.Poll = 200 * time.Millisecond
	}
	return &workflows.Activities{
		Simulation:  sim,
		Timing:      timing,
		Store:       m.Store,
		Cache:       m.Cache,
		Events:      m.Events,
		Secrets:     m.Secrets,
		Provisioner: m.Provisioner,
		Enroller:    m.AgentIdentity,
		Chains:      m.Chains.Get,
		OpenSealed:  func(b []byte) ([]byte, error) { return engine.OpenSealedBox(m.Boot.SealedBoxKey, b) },
		Bootstrap: engine.HostBootstrap{
			GatewayAddr: m.Gateway.Addr(),
			CACertPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: m.Boot.AgentCA.Raw}),
		},
	}
}

// openPayments consumes payment.completed for as long as the appliance
// runs. Not leader-gated: the consumer is idempotent.
func (m *Main) openPayments(ctx context.Context) error {
	c, err := engine.NewPaymentConsumer(engine.PaymentConsumerConfig{
		Store:     m.Store,
		Cache:     m.Cache,
		Workflows: m.Workflows,
		Logger:    m.Logger,
		Expiry: func(d string, from time.Time) (time.Time, error) {
			return profile.Duration(d).Expiry(from)
		},
		Placement:      m.placement,
		MaxDeliver:     m.Config.PaymentMaxDeliver,
		AckWait:        m.Config.PaymentAckWait,
		IdempotencyTTL: m.Config.PaymentIdempotencyTTL,
	})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	stop, err := c.Start(runCtx, m.Events)
	if err != nil {
		cancel()
		return err
	}
	m.onClose(func(context.Context) error { stop(); cancel(); return nil })
	return nil
}

// placement resolves where a paid line item runs, from the chain profiles.
func (m *Main) placement(it engine.PaymentLineItem) (string, string, string, error) {
	p, err := m.Chains.Get(it.ChainProfileID)
	if err != nil {
		return "", "", "", err
	}
	pl, err := p.Resolve(it.NodeType, it.Duration)
	return pl.Provider, pl.Region, pl.InstanceType, err
}

func (m *Main) openEmbeddedTemporal(ctx context.Context) (*devserver.Server, error) {
	srv, err := devserver.New(devserver.Config{
		DBFile:     filepath.Join(m.Config.DataDir, "temporal.db"),
		Host:       m.Config.TemporalHost,
		Ports:      m.Config.TemporalPorts,
		Namespaces: []string{m.Config.TemporalNamespace},
		Logger:     m.Logger,
		LogLevel:   m.Config.TemporalLogLevel,
	})
	if err != nil {
		return nil, err
	}
	if err := srv.Open(ctx); err != nil {
		return nil, err
	}
	m.temporalServer = srv
	m.onClose(func(context.Context) error { return srv.Close() })
	return srv, nil
}

func (m *Main) openGateway(context.Context) error {
	m.AgentIdentity = agent.NewIdentity(m.Boot.AgentCA, m.Boot.AgentCAKey, m.Store)
	g := agent.NewGateway(agent.GatewayConfig{
		Addr:     m.Config.AgentAddr,
		Logger:   m.Logger,
		Identity: m.AgentIdentity,
		Nodes:    m.Store,
		Commands: m.Store,
		Cache:    m.Cache,
		Hosts:    m.Config.AgentHosts,
	})
	if err := g.Open(); err != nil {
		return err
	}
	m.Gateway = g
	m.onClose(func(ctx context.Context) error { g.Close(ctx); return nil })
	return nil
}

// openChains loads the embedded chain profiles, overridden by the chains
// dir when one is configured.
func (m *Main) openChains(context.Context) error {
	sources := []profile.Source{{Name: "assets", FS: assets.Chains}}
	if dir := m.Config.ChainsDir; dir != "" {
		sources = append(sources, profile.Source{Name: dir, FS: os.DirFS(dir)})
	}
	c, err := profile.LoadCatalog(sources...)
	if err != nil {
		return err
	}
	m.Chains = c
	return nil
}

// openTLS picks how the API is served: ACME certificates for public
// domains, a certificate from the appliance CA for named hosts, or plain
// HTTP on loopback.
func (m *Main) openTLS(ctx context.Context) error {
	if !m.Config.servesTLS() {
		return nil
	}
	storage := m.certStorage()
	src, err := tlsconf.New(tlsconf.Config{
		Domains:       m.Config.TLSDomains,
		Email:         m.Config.TLSEmail,
		ACMEDirectory: m.Config.ACMEDirectory,
		HostNames:     m.Config.TLSHosts,
		Storage:       storage,
		CA:            m.Boot.AgentCA,
		CAKey:         m.Boot.AgentCAKey,
		Logger:        m.Logger,
	})
	if err != nil {
		return err
	}
	if err := src.Open(ctx); err != nil {
		return err
	}
	m.TLS = src
	// Before the Store closes: the storage renews its locks in the background.
	m.onClose(func(context.Context) error { src.Close(); storage.Close(); return nil })
	return nil
}

// certStorage keeps ACME material in the Store so instances share it.
func (m *Main) certStorage() interface {
	certmagic.Storage
	Close()
} {
	if s, ok := m.Store.(*postgres.Store); ok {
		return postgres.NewCertStorage(s)
	}
	return bolt.NewCertStorage(m.Store.(*bolt.Store))
}

// openProvisioner picks where node hosts come from. Hosts are labelled
// with the installation, so a reaper never touches another appliance's.
func (m *Main) openProvisioner(ctx context.Context) error {
	var p interface {
		engine.Provisioner
		Open(context.Context) error
		Close() error
	}
	var err error
	switch m.Config.Provisioner {
	case "hetzner":
		p, err = hetzner.New(hetzner.Config{Token: m.Config.HetznerToken, Installation: m.installationID(), Logger: m.Logger})
	default:
		var lp *local.Provisioner
		lp, err = local.New(local.Config{
			Dir:          filepath.Join(m.Config.DataDir, "hosts"),
			Installation: m.installationID(),
			// Local agents cost nothing to hear from often, and each command
			// waits for a heartbeat to be delivered.
			AgentArgs: []string{"--heartbeat-interval=1s", "--progress-interval=1s"},
			Env:       m.Config.agentEnv,
			Logger:    m.Logger,
			Inspect:   m.inspectHosts,
		})
		p = localPlacements{lp}
	}
	if err != nil {
		return err
	}
	if err := p.Open(ctx); err != nil {
		return err
	}
	m.Provisioner = p
	m.onClose(func(context.Context) error { return p.Close() })
	return nil
}

// localPlacements puts every host on this machine, whatever provider the
// chain profile names: the local provisioner simulates them all.
type localPlacements struct{ *local.Provisioner }

func (l localPlacements) CreateHost(ctx context.Context, spec engine.HostSpec) (engine.Host, error) {
	spec.Provider = local.ProviderName
	return l.Provisioner.CreateHost(ctx, spec)
}

// installationID names this appliance: stable for its life because it
// derives from the agent CA made on its first boot.
func (m *Main) installationID() string {
	sum := sha256.Sum256(m.Boot.AgentCA.Raw)
	return "hc-" + hex.EncodeToString(sum[:6])
}

func (m *Main) openHTTP(context.Context) error {
	identity, err := engine.NewIdentity(engine.IdentityConfig{
		Users:           m.Store,
		SigningKey:      m.Boot.JWTKey,
		BootstrapTokens: []string{m.Boot.AdminToken, m.Config.DevToken},
	})
	if err != nil {
		return err
	}
	cfg := web.Config{
		Addr:       m.Config.HTTPAddr,
		Version:    version,
		Logger:     m.Logger,
		Gatherer:   m.Registry,
		Health:     m.Health,
		Identity:   identity,
		Cache:      m.Cache,
		Registerer: m.Registry,
		Chains:     m.Chains,
		Store:      m.Store,
		Events:     m.Events,
		Workflows:  m.Workflows,
		Boot:       m.Boot,
	}
	if m.TLS != nil {
		cfg.TLS = m.TLS.TLSConfig()
		cfg.CAPEM = m.TLS.CAPEM
	}
	s := web.New(cfg)
	if err := s.Open(); err != nil {
		return err
	}
	m.HTTP = s
	m.onClose(s.Close)
	return nil
}
