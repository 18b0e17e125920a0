package main

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/hoodcloud/hoodcloud/agent/gateway"
	"github.com/hoodcloud/hoodcloud/assets"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
	"github.com/hoodcloud/hoodcloud/engine/profile"
	"github.com/hoodcloud/hoodcloud/engine/rollouts"
	"github.com/hoodcloud/hoodcloud/engine/workflows"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"github.com/hoodcloud/hoodcloud/store/hetzner"
	"github.com/hoodcloud/hoodcloud/store/local"
	"github.com/hoodcloud/hoodcloud/store/postgres"
	"github.com/hoodcloud/hoodcloud/store/snapshots"
	"github.com/hoodcloud/hoodcloud/store/temporal"
	"github.com/hoodcloud/hoodcloud/web"
	"github.com/hoodcloud/hoodcloud/web/tlsconf"
)

// The services the appliance runs on that infrastructure: chain profiles,
// TLS, the agent gateway, the provisioner, workflows, payments and HTTP.

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
		sim = &workflows.Simulation{Binary: exe, Artifacts: local.PathArtifacts{}}
		// Local hosts answer within a heartbeat (1s): poll more often than
		// for cloud hosts, which take minutes to boot.
		timing.Poll = 200 * time.Millisecond
	}
	return &workflows.Activities{
		Simulation:  sim,
		Timing:      timing,
		Store:       m.Store,
		Cache:       m.Cache,
		Statuses:    agentStatuses(m.Cache),
		Events:      m.Events,
		Secrets:     m.Secrets,
		Provisioner: m.Provisioner,
		Enroller:    m.AgentIdentity,
		Chains:      m.Chains.Get,
		OpenSealed:  m.Boot.SealedBox().Open,
		Bootstrap:   m.hostBootstrap(),
		CACertPEM:   m.Boot.CAs().TrustPEM,
		Snapshots:   m.Snapshots,
	}
}

// openPayments consumes payment.completed for as long as the appliance
// runs. Not leader-gated: the consumer is idempotent.
func (m *Main) openPayments(ctx context.Context) error {
	c, err := engine.NewPaymentConsumer(engine.PaymentConsumerConfig{
		Store:          m.Store,
		Cache:          m.Cache,
		Workflows:      m.Workflows,
		Logger:         m.Logger,
		Catalog:        m.Chains,
		MaxDeliver:     m.Config.PaymentMaxDeliver,
		AckWait:        m.Config.PaymentAckWait,
		IdempotencyTTL: m.Config.PaymentIdempotencyTTL,
		OnDeadLetter:   m.countDeadLetters(),
	})
	if err != nil {
		return err
	}
	m.DeadLetters = c.DeadLetters()
	runCtx, cancel := context.WithCancel(context.Background())
	stop, err := c.Start(runCtx, m.Events)
	if err != nil {
		cancel()
		return err
	}
	m.onClose(func(context.Context) error { stop(); cancel(); return nil })
	return nil
}

// openAgentBinary finds the ops-agent the appliance hands to its hosts.
// Without one the appliance still starts: its readiness reports
// agent_binary_missing (critical when hosts are made elsewhere and must
// download it), and local hosts run this binary's agent alias instead.
func (m *Main) openAgentBinary(context.Context) error {
	b, err := web.OpenAgentBinary(m.Config.agentBinaryPath())
	if err != nil {
		m.agentBinaryErr = err
		m.Logger.Warn("no ops-agent binary to hand out to hosts", "err", err)
	} else {
		m.AgentBinary = b
		m.onClose(func(context.Context) error { return b.Close() })
	}
	m.addCheck("agent_binary", m.Config.remoteHosts(), func(context.Context) error { return m.agentBinaryErr })
	return nil
}

// hostBootstrap is what every new host gets besides its CA and token.
// Local hosts dial the gateway where it listens; remote ones dial
// agent-public-addr and download the ops-agent from public-url, checking
// it against the digest of the binary this appliance serves.
func (m *Main) hostBootstrap() engine.HostBootstrap {
	if !m.Config.remoteHosts() {
		return engine.HostBootstrap{GatewayAddr: m.Gateway.Addr()}
	}
	b := engine.HostBootstrap{GatewayAddr: m.Config.agentPublicAddr(m.Gateway.Addr())}
	if m.AgentBinary != nil {
		b.AgentURL = m.Config.publicURL() + web.AgentBinaryPath
		b.AgentSHA256 = m.AgentBinary.SHA256()
	}
	return b
}

// gatewayHosts are the names in the gateway's certificate: agent-hosts
// (default localhost and 127.0.0.1) and, for remote hosts, the host of the
// address they dial, which they verify.
func (m *Main) gatewayHosts() []string {
	hosts := slices.Clone(m.Config.AgentHosts)
	if !m.Config.remoteHosts() {
		return hosts
	}
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1"}
	}
	host, _, err := net.SplitHostPort(m.Config.agentPublicAddr(m.Config.AgentAddr))
	if err == nil && host != "" && !slices.Contains(hosts, host) {
		hosts = append(hosts, host)
	}
	return hosts
}

func (m *Main) openGateway(context.Context) error {
	m.AgentIdentity = gateway.NewIdentityFromCAs(m.Boot.CAs(), m.Store)
	snaps, err := snapshots.Open(filepath.Join(m.Config.DataDir, "snapshots"))
	if err != nil {
		return err
	}
	m.Snapshots = snaps
	m.onClose(func(context.Context) error { return snaps.Close() })
	g := gateway.New(gateway.Config{
		Addr:     m.Config.AgentAddr,
		Logger:   m.Logger,
		Identity: m.AgentIdentity,
		Nodes:    m.Store,
		Commands: m.Store,
		Cache:    m.Cache,
		Leases:   m.Store,
		Hosts:    m.gatewayHosts(),
		DataKeys: func(ctx context.Context, nodeID string) ([]byte, error) {
			return engine.NodeDataKey(ctx, m.Store, m.Secrets, nodeID)
		},
		Snapshots: snaps,
	})
	if err := g.Open(); err != nil {
		return err
	}
	m.Gateway = g
	m.onClose(func(ctx context.Context) error { g.Close(ctx); return nil })
	return nil
}

// openRollouts serves upgrade rollouts: manifests embedded and in the
// chains dir's upgrades/, read at each use so a new one needs no restart.
func (m *Main) openRollouts(context.Context) error {
	sources := []profile.Source{{Name: "assets", FS: assets.Upgrades}}
	if dir := m.Config.ChainsDir; dir != "" {
		sources = append(sources, profile.Source{Name: dir, FS: os.DirFS(dir)})
	}
	manifests := profile.NewManifests(sources...)
	runner, ok := m.Workflows.(engine.RolloutWorkflows)
	if !ok {
		return errors.New("the workflow engine cannot run rollouts")
	}
	m.Rollouts = &rollouts.Service{
		Store:     m.Store,
		Workflows: runner,
		Chains:    m.Chains.Get,
		Manifests: func(chainID, upgradeID string) (rollouts.Manifest, error) {
			p, err := m.Chains.Get(chainID)
			if err != nil {
				return rollouts.Manifest{}, err
			}
			mf, err := manifests.Lookup(chainID, upgradeID, p)
			if err != nil {
				return rollouts.Manifest{}, err
			}
			return rollouts.Manifest{Component: mf.Component, Spec: mf.Spec(), Hash: mf.Hash}, nil
		},
	}
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
		CAs:           m.Boot.CAs(),
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
		p, err = hetzner.New(hetzner.Config{Token: m.Config.HetznerToken, Installation: m.installationID(), BaseURL: m.Config.hetznerURL, Logger: m.Logger})
	default:
		var lp *local.Provisioner
		lp, err = local.New(local.Config{
			Dir:          filepath.Join(m.Config.DataDir, "hosts"),
			Installation: m.installationID(),
			AgentBinary:  m.Config.agentBinaryPath(),
			AgentArgs: []string{"--heartbeat-interval=" + localHeartbeatInterval.String(), "--progress-interval=1s",
				"--chain-metrics-interval=" + localChainMetricsInterval.String()},
			Env:     m.Config.agentEnv,
			Logger:  m.Logger,
			Inspect: m.inspectHosts,
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

// localHeartbeatInterval is how often local agents report: they cost
// nothing to hear from often, and each command waits for a heartbeat.
const localHeartbeatInterval = time.Second

// localChainMetricsInterval is how often local agents sample their chain:
// the health evaluator sees a height no staler than this.
const localChainMetricsInterval = 2 * time.Second

// localPlacements puts every host on this machine, whatever provider the
// chain profile names: the local provisioner simulates them all.
type localPlacements struct{ *local.Provisioner }

func (l localPlacements) CreateHost(ctx context.Context, spec engine.HostSpec) (engine.Host, error) {
	spec.Provider = local.ProviderName
	return l.Provisioner.CreateHost(ctx, spec)
}

// agentStatuses is the cache's keeper of agent heartbeats, if it has one.
func agentStatuses(c engine.Cache) engine.AgentStatusCache {
	s, _ := c.(engine.AgentStatusCache)
	return s
}

// installationID names this appliance: stable for its life because it
// derives from the agent CA made on its first boot (not the current one).
func (m *Main) installationID() string { return m.Boot.InstallationID }

func (m *Main) openHTTP(context.Context) error {
	identity, err := engine.NewIdentity(engine.IdentityConfig{
		Users:           m.Store,
		JWTKeys:         m.Boot.JWTKeys,
		BootstrapTokens: []string{m.Boot.AdminToken, m.Config.DevToken},
	})
	if err != nil {
		return err
	}
	rotation, err := m.openKeyRotation()
	if err != nil {
		return err
	}
	if m.WebhookSecrets, err = m.openWebhookSecrets(); err != nil {
		return err
	}
	subscriptions, err := engine.NewSubscriptions(engine.SubscriptionsConfig{
		Store: m.Store, Workflows: m.Workflows, Catalog: m.Chains, SealedBoxKeys: m.Boot.SealedBox(), Events: m.Events,
	})
	if err != nil {
		return err
	}
	payments, err := engine.NewPayments(engine.PaymentsConfig{Store: m.Store, Catalog: m.Chains, Events: m.Events})
	if err != nil {
		return err
	}
	cfg := web.Config{
		Addr:          m.Config.HTTPAddr,
		Version:       version,
		Logger:        m.Logger,
		Gatherer:      m.Registry,
		Health:        m.Health,
		Identity:      identity,
		Cache:         m.Cache,
		Registerer:    m.Registry,
		Chains:        m.Chains,
		Store:         m.Store,
		Events:        m.Events,
		Workflows:     m.Workflows,
		Subscriptions: subscriptions,
		Payments:      payments,
		Webhook:       engine.NewPaymentWebhook(engine.PaymentWebhookConfig{Secrets: m.WebhookSecrets, Events: m.Events}),
		DeadLetters:   m.DeadLetters,
		SealingKey:    func() []byte { return m.Boot.SealedBox().PublicKey() },
		Rotation:      rotation,
		AgentBinary:   m.AgentBinary,
		Uptime:        m.Uptime,
		Rollouts:      m.Rollouts,
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

// openKeyRotation serves key rotation; the leader resumes a master key
// rewrap a stop interrupted (openLeaderWork). It stops before the Store and
// Secrets close.
func (m *Main) openKeyRotation() (*keys.Rotations, error) {
	r, err := keys.NewRotations(keys.RotationsConfig{
		Secrets: m.Secrets, Boot: m.Boot, Nodes: m.Store, Keys: m.Store, Logger: m.Logger,
		WebhookSecretFromFile: m.Config.PaymentWebhookSecretFile != "",
	})
	if err != nil {
		return nil, err
	}
	m.onClose(func(context.Context) error { r.Close(); return nil })
	m.rotations = r
	return r, nil
}

// openWebhookSecrets picks the payment webhook's secrets: the operator's
// file when configured, else the secret generated at first start, which
// `admin rotate payment-webhook` replaces.
func (m *Main) openWebhookSecrets() (webhookSecrets, error) {
	if path := m.Config.PaymentWebhookSecretFile; path != "" {
		return keys.OpenWebhookSecretFile(path, keys.WebhookSecretFileConfig{Logger: m.Logger})
	}
	if m.Boot.WebhookSecrets == nil {
		return nil, engine.Errorf(engine.EInternal, "no payment webhook secret")
	}
	return m.Boot.WebhookSecrets, nil
}

// webhookSecrets are either source of the payment webhook's secrets.
type webhookSecrets interface {
	engine.WebhookSecrets
	Current() []byte
}
