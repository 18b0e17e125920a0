// Package devserver runs the Temporal server in process on SQLite.
//
// It is the only package of the project that imports go.temporal.io/server:
// that module links slowly and makes large test binaries, so everything else
// talks to Temporal through the SDK.
package devserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
)

const clusterName = "active"

// Ports are the fixed ports of the embedded services. They must not change
// between restarts on one data dir: with random ports the server waits about
// a minute for the members it remembers before anything progresses.
type Ports struct {
	Frontend     int
	FrontendHTTP int
	History      int
	Matching     int
	Worker       int
}

// DefaultPorts keeps clear of the well-known 7233 so an external Temporal and
// the embedded one can share a host.
func DefaultPorts() Ports {
	return Ports{Frontend: 7833, FrontendHTTP: 7834, History: 7835, Matching: 7836, Worker: 7837}
}

// Validate says which port is unusable.
func (p Ports) Validate() error {
	seen := map[int]string{}
	for _, f := range p.fields() {
		if f.port <= 0 || f.port > 65535 {
			return fmt.Errorf("temporal %s port %d: must be 1-65535", f.name, f.port)
		}
		if other, dup := seen[f.port]; dup {
			return fmt.Errorf("temporal %s port %d: already used by %s", f.name, f.port, other)
		}
		seen[f.port] = f.name
	}
	return nil
}

type namedPort struct {
	name string
	port int
}

func (p Ports) fields() []namedPort {
	return []namedPort{
		{"frontend", p.Frontend}, {"frontend-http", p.FrontendHTTP},
		{"history", p.History}, {"matching", p.Matching}, {"worker", p.Worker},
	}
}

// Config describes one embedded server.
type Config struct {
	DBFile     string   // SQLite file; its schema is created when it does not exist
	Host       string   // bind address, 127.0.0.1 unless configured
	Ports      Ports    // fixed ports, see Ports
	Namespaces []string // registered at start, besides "default"
	Logger     *slog.Logger
	// LogLevel filters the server's own logs; it is chatty below warnings.
	LogLevel slog.Level
}

// Server is a running embedded Temporal.
type Server struct {
	cfg      Config
	logLevel *slog.LevelVar
	server   temporal.Server
}

// New checks the configuration; it does no I/O.
func New(cfg Config) (*Server, error) {
	if cfg.DBFile == "" {
		return nil, errors.New("temporal: database file is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Ports.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logLevel: new(slog.LevelVar)}
	s.logLevel.Set(cfg.LogLevel)
	return s, nil
}

// FrontendAddress is where SDK clients connect.
func (s *Server) FrontendAddress() string {
	return net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Ports.Frontend))
}

// Open prepares the database, starts every service and waits until the
// namespaces answer, so callers never meet "namespace not found".
func (s *Server) Open(ctx context.Context) error {
	if err := s.checkPortsFree(); err != nil {
		return err
	}
	sqlConf, err := s.prepareDatabase()
	if err != nil {
		return err
	}
	srv, err := temporal.NewServer(s.options(s.serverConfig(sqlConf))...)
	if err != nil {
		return fmt.Errorf("temporal: build server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("temporal: start: %w", err)
	}
	s.server = srv
	if err := s.waitReady(ctx); err != nil {
		s.Close()
		return err
	}
	return nil
}

// Quiet silences the server's logs: while the appliance stops, services
// and pollers log errors about each other's going away.
func (s *Server) Quiet() { s.logLevel.Set(slog.LevelError + 4) }

// Close stops every service; safe to call twice.
func (s *Server) Close() error {
	if s.server == nil {
		return nil
	}
	s.Quiet()
	err := s.server.Stop()
	s.server = nil
	return err
}

// checkPortsFree fails fast with the port's name instead of letting the
// server die deep inside its dependency graph.
func (s *Server) checkPortsFree() error {
	for _, f := range s.cfg.Ports.fields() {
		l, err := net.Listen("tcp", net.JoinHostPort(s.cfg.Host, strconv.Itoa(f.port)))
		if err != nil {
			return fmt.Errorf("temporal %s port %d is in use: %w", f.name, f.port, err)
		}
		l.Close()
	}
	return nil
}

func (s *Server) prepareDatabase() (*config.SQL, error) {
	conf := &config.SQL{
		PluginName:   sqliteplugin.PluginName,
		DatabaseName: s.cfg.DBFile,
		ConnectAttributes: map[string]string{
			"mode":          "rwc",
			"_journal_mode": "wal",
			"_synchronous":  "NORMAL",
			"_busy_timeout": "10000",
		},
	}
	if _, err := os.Stat(s.cfg.DBFile); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(s.cfg.DBFile), 0o700); err != nil {
			return nil, fmt.Errorf("temporal: create data dir: %w", err)
		}
		if err := sqliteschema.SetupSchema(conf); err != nil {
			return nil, fmt.Errorf("temporal: create schema: %w", err)
		}
	}
	var nss []*sqliteschema.NamespaceConfig
	for _, name := range s.namespaces() {
		ns, err := sqliteschema.NewNamespaceConfig(clusterName, name, false, nil)
		if err != nil {
			return nil, fmt.Errorf("temporal: namespace %q: %w", name, err)
		}
		nss = append(nss, ns)
	}
	// CreateNamespaces skips the ones that exist, so a restart is harmless.
	if err := sqliteschema.CreateNamespaces(conf, nss...); err != nil {
		return nil, fmt.Errorf("temporal: register namespaces: %w", err)
	}
	return conf, nil
}

func (s *Server) namespaces() []string {
	names := []string{"default"}
	for _, n := range s.cfg.Namespaces {
		if n != "default" {
			names = append(names, n)
		}
	}
	return names
}

func (s *Server) serverConfig(sqlConf *config.SQL) *config.Config {
	host, p := s.cfg.Host, s.cfg.Ports
	var c config.Config
	c.Global.Membership.MaxJoinDuration = 30 * time.Second
	c.Global.Membership.BroadcastAddress = host
	c.Persistence.DefaultStore = "sqlite"
	c.Persistence.VisibilityStore = "sqlite"
	c.Persistence.NumHistoryShards = 1
	c.Persistence.DataStores = map[string]config.DataStore{"sqlite": {SQL: sqlConf}}
	c.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{clusterName: {
			Enabled:                true,
			InitialFailoverVersion: 1,
			RPCAddress:             net.JoinHostPort(host, strconv.Itoa(p.Frontend)),
			HTTPAddress:            net.JoinHostPort(host, strconv.Itoa(p.FrontendHTTP)),
			ClusterID:              "6f1f3c4e-9d0b-4c43-9a52-5d1e0c7b2a10", // fixed: one embedded cluster per data dir
		}},
	}
	c.DCRedirectionPolicy.Policy = "noop"
	c.Services = map[string]config.Service{
		"frontend": service(host, p.Frontend, p.FrontendHTTP),
		"history":  service(host, p.History, 0),
		"matching": service(host, p.Matching, 0),
		"worker":   service(host, p.Worker, 0),
	}
	c.Archival.History.State = "disabled"
	c.Archival.Visibility.State = "disabled"
	c.NamespaceDefaults.Archival.History.State = "disabled"
	c.NamespaceDefaults.Archival.Visibility.State = "disabled"
	c.PublicClient.HostPort = net.JoinHostPort(host, strconv.Itoa(p.Frontend))
	return &c
}

func service(host string, grpcPort, httpPort int) config.Service {
	var s config.Service
	s.RPC.GRPCPort = grpcPort
	s.RPC.HTTPPort = httpPort
	s.RPC.BindOnIP = host
	return s
}

func (s *Server) options(conf *config.Config) []temporal.ServerOption {
	hostAt := func(port int) static.Hosts {
		return static.SingleLocalHost(net.JoinHostPort(s.cfg.Host, strconv.Itoa(port)))
	}
	p := s.cfg.Ports
	dyn := dynamicconfig.StaticClient{
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key():                 8192,
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
	}
	return []temporal.ServerOption{
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		// Static membership: no gossip port, each service at its fixed port.
		temporal.WithStaticHosts(map[primitives.ServiceName]static.Hosts{
			primitives.FrontendService: hostAt(p.Frontend),
			primitives.HistoryService:  hostAt(p.History),
			primitives.MatchingService: hostAt(p.Matching),
			primitives.WorkerService:   hostAt(p.Worker),
		}),
		temporal.WithLogger(newLogger(s.cfg.Logger, s.logLevel)),
		temporal.WithAuthorizer(authorization.NewNoopAuthorizer()),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper {
			return authorization.NewNoopClaimMapper()
		}),
		temporal.WithDynamicConfigClient(dyn),
	}
}

// waitReady polls until every namespace is described by the frontend.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := client.NewNamespaceClient(client.Options{
		HostPort: s.FrontendAddress(),
		Logger:   newSDKLogger(),
	})
	if err != nil {
		return fmt.Errorf("temporal: connect: %w", err)
	}
	defer c.Close()
	for _, ns := range s.namespaces() {
		if err := waitNamespace(ctx, c, ns); err != nil {
			return err
		}
	}
	return nil
}

func waitNamespace(ctx context.Context, c client.NamespaceClient, ns string) error {
	for {
		_, err := c.Describe(ctx, ns)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("temporal: namespace %q not ready: %w", ns, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
