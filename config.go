package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
	"github.com/hoodcloud/hoodcloud/store/temporal/devserver"
	"github.com/hoodcloud/hoodcloud/store/vault"
	"github.com/hoodcloud/hoodcloud/web/tlsconf"
	"gopkg.in/yaml.v3"
)

// Config is the effective configuration: defaults, then the YAML file, then
// HOODCLOUD_* variables, then flags, each overriding the one before.
type Config struct {
	ConfigFile string
	DataDir    string
	HTTPAddr   string
	AgentAddr  string

	Store    string // "" or bolt:///path (embedded), postgres://…
	Cache    string // embedded, redis://…
	Events   string // embedded, nats://…
	Temporal string // embedded, host:port
	Secrets  string // embedded (the local keyring), vault://…

	NATSListen        string // TCP listener of the embedded NATS; "" for none
	TemporalNamespace string
	TemporalHost      string // bind address of the embedded Temporal
	TemporalPorts     devserver.Ports

	LogFormat        string
	LogLevel         slog.Level
	TemporalLogLevel slog.Level
	ShutdownTimeout  time.Duration
	DevToken         string
	MasterKey        string // base64; wins over the file and is never written
	MasterKeyFile    string

	ChainsDir           string        // chain profiles overriding the embedded ones
	ChainsCheckInterval time.Duration // how often ChainsDir is polled for changes

	TLSDomains    stringList // ACME certificates for these names
	TLSEmail      string
	TLSHosts      stringList // names/IPs of a certificate from the appliance CA
	ACMEDirectory string
	AllowHTTP     bool       // plain HTTP on a non-loopback address
	AgentHosts    stringList // names/IPs in the agent gateway's certificate

	AgentBinary     string // the ops-agent handed to hosts; default hoodcloud-agent beside this executable
	AgentPublicAddr string // the gateway address hosts dial; default agent-addr unless it binds a wildcard
	PublicURL       string // how hosts reach the HTTP API; default from http-addr unless it binds a wildcard

	Provisioner  string // local or hetzner
	HetznerToken string

	// Leader election among instances sharing a PostgreSQL store: how often
	// the leader probes its lock and standbys try to take it, and how long
	// a leader that stopped (paused, cut off) keeps the lock.
	LeaderProbeInterval time.Duration
	LeaderLease         time.Duration
	// The leader's periodic work.
	SubscriptionExpiryInterval time.Duration
	ReapInterval               time.Duration // 0: hosts are reaped only by `admin reap`

	PaymentMaxDeliver     int           // deliveries of a payment.completed before it is given up
	PaymentAckWait        time.Duration // redelivery after an unacknowledged delivery
	PaymentIdempotencyTTL time.Duration // how long the cache remembers a processed payment event
	// PaymentWebhookSecretFile holds the payment webhook's HMAC secret, and
	// during a rotation the previous one on a second line
	// (keys.WebhookSecretFile); "" for the secret generated at first start.
	PaymentWebhookSecretFile string

	// The health evaluator: how often it judges every node, how many
	// cycles in a row a verdict needs before it changes a node, how long a
	// height may stand still, and whether a stuck node is restarted.
	HealthInterval      time.Duration
	HealthConfirmations int
	HealthStuckAfter    time.Duration
	HealthRemediate     bool
	Incidents           IncidentConfig // notifiers of incidents (incidents.go)

	UptimeInterval  time.Duration // how often the uptime worker runs
	UptimeGrace     time.Duration // how long from creation a provisioning node counts as up
	UptimeRetention time.Duration // how long hourly uptime buckets are kept

	explicit map[string]bool // keys set by file, environment or flag
	agentEnv []string        // added to local agents' environment (tests run themselves as the CLI)

	hetznerURL string // the Hetzner Cloud API; tests point it at a fake
}

// secretKeys are never printed.
var secretKeys = map[string]bool{"dev-token": true, "master-key": true, "hetzner-token": true, "incident-webhook-url": true}

// ConfigError is bad configuration: the process exits 2 and starts nothing.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

func configErrorf(format string, args ...any) error {
	return &ConfigError{fmt.Errorf(format, args...)}
}

func defaultConfig() Config {
	return Config{
		DataDir:           "data",
		HTTPAddr:          "127.0.0.1:8080",
		AgentAddr:         "127.0.0.1:8443",
		Cache:             "embedded",
		Events:            "embedded",
		Temporal:          "embedded",
		Secrets:           "embedded",
		TemporalNamespace: "hoodcloud",
		TemporalHost:      "127.0.0.1",
		TemporalPorts:     devserver.DefaultPorts(),
		LogFormat:         "text",
		LogLevel:          slog.LevelInfo,
		TemporalLogLevel:  slog.LevelWarn,
		ShutdownTimeout:   10 * time.Second,

		ChainsCheckInterval: time.Minute,
		Provisioner:         "local",

		LeaderProbeInterval:        2 * time.Second,
		LeaderLease:                6 * time.Second,
		SubscriptionExpiryInterval: time.Minute,
		ReapInterval:               10 * time.Minute,

		PaymentMaxDeliver:     5,
		PaymentAckWait:        30 * time.Second,
		PaymentIdempotencyTTL: 24 * time.Hour,

		HealthInterval:      15 * time.Second,
		HealthConfirmations: 3,
		HealthStuckAfter:    5 * time.Minute,
		HealthRemediate:     true,
		Incidents:           defaultIncidentConfig(),

		UptimeInterval:  engine.DefaultUptimeInterval,
		UptimeGrace:     engine.DefaultUptimeGrace,
		UptimeRetention: engine.DefaultUptimeRetention,
	}
}

// bindFlags declares every setting on fs, bound to c's fields. The flag
// names are the configuration keys: the YAML file uses them with
// underscores, the environment as HOODCLOUD_ + upper case.
func (c *Config) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ConfigFile, "config", c.ConfigFile, "YAML configuration file")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of all state")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "HTTP API and operational endpoints")
	fs.StringVar(&c.AgentAddr, "agent-addr", c.AgentAddr, "gRPC gateway for ops-agents")
	fs.StringVar(&c.Store, "store", c.Store, "store: bolt:///path (default: under the data dir) or postgres://…")
	fs.StringVar(&c.Cache, "cache", c.Cache, "cache: embedded or redis://…")
	fs.StringVar(&c.Secrets, "secrets", c.Secrets, "secrets: embedded (the local keyring) or vault://host:8200?role-id-file=…&secret-id-file=…")
	fs.StringVar(&c.Events, "events", c.Events, "events: embedded or nats://…")
	fs.StringVar(&c.Temporal, "temporal", c.Temporal, "workflows: embedded or host:port of a Temporal frontend")
	fs.StringVar(&c.NATSListen, "nats-listen", c.NATSListen, "TCP listener of the embedded NATS (empty: in-process only)")
	fs.StringVar(&c.TemporalNamespace, "temporal-namespace", c.TemporalNamespace, "Temporal namespace")
	fs.StringVar(&c.TemporalHost, "temporal-host", c.TemporalHost, "bind address of the embedded Temporal")
	fs.IntVar(&c.TemporalPorts.Frontend, "temporal-frontend-port", c.TemporalPorts.Frontend, "embedded Temporal frontend gRPC port")
	fs.IntVar(&c.TemporalPorts.FrontendHTTP, "temporal-http-port", c.TemporalPorts.FrontendHTTP, "embedded Temporal frontend HTTP port")
	fs.IntVar(&c.TemporalPorts.History, "temporal-history-port", c.TemporalPorts.History, "embedded Temporal history port")
	fs.IntVar(&c.TemporalPorts.Matching, "temporal-matching-port", c.TemporalPorts.Matching, "embedded Temporal matching port")
	fs.IntVar(&c.TemporalPorts.Worker, "temporal-worker-port", c.TemporalPorts.Worker, "embedded Temporal worker port")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
	fs.TextVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.TextVar(&c.TemporalLogLevel, "temporal-log-level", c.TemporalLogLevel, "minimum level of the embedded Temporal's logs")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long an orderly stop may take")
	fs.StringVar(&c.DevToken, "dev-token", c.DevToken, "admin bootstrap token (secret)")
	fs.StringVar(&c.MasterKeyFile, "master-key-file", c.MasterKeyFile, "master key file of the local keyring (default: master.key in the data dir)")
	fs.StringVar(&c.MasterKey, "master-key", c.MasterKey, "master key of the local keyring, base64 (secret; prefer the environment)")
	fs.StringVar(&c.ChainsDir, "chains-dir", c.ChainsDir, "directory of chain profiles overriding the embedded ones")
	fs.DurationVar(&c.ChainsCheckInterval, "chains-check-interval", c.ChainsCheckInterval, "how often the chains dir is checked for a new set")
	fs.Var(&c.TLSDomains, "tls-domains", "comma-separated public names: HTTPS with ACME certificates")
	fs.StringVar(&c.TLSEmail, "tls-email", c.TLSEmail, "ACME account email")
	fs.Var(&c.TLSHosts, "tls-hosts", "comma-separated names/IPs: HTTPS with a certificate from the appliance CA")
	fs.StringVar(&c.ACMEDirectory, "acme-directory", c.ACMEDirectory, "ACME directory URL (default Let's Encrypt)")
	fs.BoolVar(&c.AllowHTTP, "allow-http", c.AllowHTTP, "allow plain HTTP on a non-loopback http-addr")
	fs.DurationVar(&c.LeaderProbeInterval, "leader-probe-interval", c.LeaderProbeInterval, "PostgreSQL store: how often the leader probes its lock and standbys try to take it")
	fs.DurationVar(&c.LeaderLease, "leader-lease", c.LeaderLease, "PostgreSQL store: how long a stopped leader keeps leading; a standby takes over within lease + probe interval")
	fs.DurationVar(&c.SubscriptionExpiryInterval, "subscription-expiry-interval", c.SubscriptionExpiryInterval, "how often the leader ends subscriptions whose time is up")
	fs.DurationVar(&c.ReapInterval, "reap-interval", c.ReapInterval, "how often the leader destroys this installation's hosts that no live node needs (0: only by admin reap)")
	fs.IntVar(&c.PaymentMaxDeliver, "payment-max-deliver", c.PaymentMaxDeliver, "deliveries of a payment.completed message before it is given up")
	fs.DurationVar(&c.PaymentAckWait, "payment-ack-wait", c.PaymentAckWait, "redelivery delay of an unacknowledged payment message")
	fs.DurationVar(&c.PaymentIdempotencyTTL, "payment-idempotency-ttl", c.PaymentIdempotencyTTL, "how long the cache remembers a processed payment event")
	fs.StringVar(&c.PaymentWebhookSecretFile, "payment-webhook-secret-file", c.PaymentWebhookSecretFile,
		"file of the payment webhook's HMAC secret (mode 0600, at least 32 bytes; during a rotation the previous secret on a second line)")
	fs.DurationVar(&c.HealthInterval, "health-interval", c.HealthInterval, "how often the health evaluator judges every node")
	fs.IntVar(&c.HealthConfirmations, "health-confirmations", c.HealthConfirmations, "consecutive evaluations a verdict needs before it changes a node's state")
	fs.DurationVar(&c.HealthStuckAfter, "health-stuck-after", c.HealthStuckAfter, "how long a node's height may stand still, while not syncing, before it is stuck")
	fs.BoolVar(&c.HealthRemediate, "health-remediate", c.HealthRemediate, "restart a stuck node once per incident (a profile turns it off by redefining its stuck rule without a remedy)")
	fs.StringVar(&c.Provisioner, "provisioner", c.Provisioner, "where node hosts come from: local (directories on this machine) or hetzner")
	fs.StringVar(&c.HetznerToken, "hetzner-token", c.HetznerToken, "Hetzner Cloud API token (secret; prefer the environment)")
	fs.Var(&c.AgentHosts, "agent-hosts", "comma-separated names/IPs agents reach the gateway by (default localhost,127.0.0.1)")
	fs.StringVar(&c.AgentBinary, "agent-binary", c.AgentBinary, "the ops-agent binary hosts download and local hosts run (default: hoodcloud-agent beside this executable)")
	fs.StringVar(&c.AgentPublicAddr, "agent-public-addr", c.AgentPublicAddr, "gateway host:port that node hosts dial (default: agent-addr, unless it binds a wildcard)")
	fs.DurationVar(&c.UptimeInterval, "uptime-interval", c.UptimeInterval, "how often the uptime worker brings nodes' hourly buckets up to date")
	fs.DurationVar(&c.UptimeGrace, "uptime-grace", c.UptimeGrace, "how long from its creation a provisioning node counts as up")
	fs.DurationVar(&c.UptimeRetention, "uptime-retention", c.UptimeRetention, "how long hourly uptime buckets are kept (default 90 days)")
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "URL node hosts reach the HTTP API by, e.g. https://cp.example.com (default: from http-addr, unless it binds a wildcard)")
	c.Incidents.bindFlags(fs)
}

// stringList is a comma-separated flag value.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = nil
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

// servesTLS says whether the HTTP API is HTTPS.
func (c *Config) servesTLS() bool { return len(c.TLSDomains) > 0 || len(c.TLSHosts) > 0 }

// loadConfig parses args over the file and the environment.
// extra declares command-specific flags.
func loadConfig(name string, args []string, env func(string) string, stderr io.Writer, extra func(*flag.FlagSet)) (Config, *flag.FlagSet, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.bindFlags(fs)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, fs, errUsage
		}
		return cfg, fs, &ConfigError{err}
	}
	explicit := map[string]string{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = f.Value.String() })

	file := cfg.ConfigFile
	if file == "" {
		file = env("HOODCLOUD_CONFIG")
	}
	if file != "" {
		if err := applyFile(fs, file); err != nil {
			return cfg, fs, err
		}
	}
	if err := applyEnv(fs, env); err != nil {
		return cfg, fs, err
	}
	for name, v := range explicit {
		fs.Set(name, v) // parsed once already, cannot fail
	}
	cfg.ConfigFile = file
	cfg.explicit = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { cfg.explicit[f.Name] = true })
	return cfg, fs, cfg.validate()
}

func applyFile(fs *flag.FlagSet, path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return configErrorf("config file: %v", err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		return configErrorf("config file %s: not valid YAML: %v", path, err)
	}
	for key, v := range values {
		name := strings.ReplaceAll(key, "_", "-")
		if fs.Lookup(name) == nil || name == "config" {
			return configErrorf("config file %s: unknown key %q", path, key)
		}
		if err := fs.Set(name, fmt.Sprint(v)); err != nil {
			return configErrorf("config file %s: key %q: %v", path, key, err)
		}
	}
	return nil
}

func applyEnv(fs *flag.FlagSet, env func(string) string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		key := envKey(f.Name)
		if v := env(key); v != "" && f.Name != "config" && err == nil {
			if e := fs.Set(f.Name, v); e != nil {
				err = configErrorf("%s: %v", key, e)
			}
		}
	})
	return err
}

func envKey(name string) string {
	return "HOODCLOUD_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func (c *Config) validate() error {
	checks := []func() error{
		func() error { return checkAddr("http-addr", c.HTTPAddr) },
		func() error { return checkAddr("agent-addr", c.AgentAddr) },
		func() error { return checkOneOf("log-format", c.LogFormat, "text", "json") },
		c.checkAdapters,
		func() error { return checkOneOf("provisioner", c.Provisioner, "local", "hetzner") },
		func() error {
			if c.PaymentMaxDeliver < 1 || c.PaymentAckWait <= 0 || c.PaymentIdempotencyTTL <= 0 {
				return configErrorf("payment-max-deliver must be >= 1, payment-ack-wait and payment-idempotency-ttl positive")
			}
			return nil
		},
		func() error {
			if c.Provisioner == "hetzner" && c.HetznerToken == "" {
				return configErrorf("hetzner-token: required with provisioner hetzner (set HOODCLOUD_HETZNER_TOKEN)")
			}
			return nil
		},
		func() error {
			if c.HealthInterval <= 0 || c.HealthConfirmations < 1 || c.HealthStuckAfter <= 0 {
				return configErrorf("health-interval and health-stuck-after must be positive, health-confirmations >= 1")
			}
			return nil
		},
		c.checkPublicAddrs,
		c.checkPaymentWebhookSecretFile,
		c.Incidents.validate,
		func() error {
			if c.servesTLS() {
				return nil
			}
			if err := tlsconf.CheckPlainHTTP(c.HTTPAddr, c.AllowHTTP); err != nil {
				return &ConfigError{err}
			}
			return nil
		},
		c.checkTemporalPorts,
		c.checkLeaderTimings,
		func() error {
			if c.UptimeInterval <= 0 || c.UptimeGrace <= 0 || c.UptimeRetention < time.Hour {
				return configErrorf("uptime-interval and uptime-grace must be positive, uptime-retention at least 1h")
			}
			return nil
		},
		func() error {
			if c.ShutdownTimeout <= 0 {
				return configErrorf("shutdown-timeout: must be positive, got %s", c.ShutdownTimeout)
			}
			return nil
		},
		func() error {
			if strings.TrimSpace(c.DataDir) == "" {
				return configErrorf("data-dir: must not be empty")
			}
			return nil
		},
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	if c.NATSListen != "" {
		return checkAddr("nats-listen", c.NATSListen)
	}
	return nil
}

func (c *Config) checkAdapters() error {
	if err := checkURL("events", c.Events, "nats"); err != nil {
		return err
	}
	if err := checkURL("cache", c.Cache, "redis", "rediss"); err != nil {
		return err
	}
	if c.Store != "" {
		if err := checkURL("store", c.Store, "bolt", "postgres", "postgresql"); err != nil {
			return err
		}
	}
	if c.Secrets != "embedded" {
		if _, err := vault.ParseURL(c.Secrets); err != nil {
			return configErrorf("secrets: want \"embedded\" or a vault:// URL: %v", err)
		}
	}
	if c.Temporal != "embedded" {
		if _, _, err := net.SplitHostPort(c.Temporal); err != nil {
			return configErrorf("temporal: want \"embedded\" or host:port, got %q", c.Temporal)
		}
	}
	return nil
}

// checkPaymentWebhookSecretFile refuses a secret file the appliance would
// refuse at start, naming the file and the problem, never the secret.
func (c *Config) checkPaymentWebhookSecretFile() error {
	if c.PaymentWebhookSecretFile == "" {
		return nil
	}
	if err := keys.CheckWebhookSecretFile(c.PaymentWebhookSecretFile); err != nil {
		return configErrorf("payment-webhook-secret-file: %s", engine.ErrorMessage(err))
	}
	return nil
}

func (c *Config) checkTemporalPorts() error {
	if c.Temporal != "embedded" {
		return nil
	}
	if err := c.TemporalPorts.Validate(); err != nil {
		return configErrorf("%v (fixed ports keep restarts quick)", err)
	}
	return nil
}

func checkAddr(key, addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return configErrorf("%s: want host:port, got %q", key, addr)
	}
	return nil
}

func checkOneOf(key, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return configErrorf("%s: want one of %s, got %q", key, strings.Join(allowed, ", "), v)
}

// checkURL accepts "embedded" or a URL with one of schemes. The message
// never repeats the value: it may hold a password.
func checkURL(key, v string, schemes ...string) error {
	if v == "embedded" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" {
		return configErrorf("%s: want \"embedded\" or a %s:// URL", key, schemes[0])
	}
	if checkOneOf(key, u.Scheme, schemes...) != nil {
		return configErrorf("%s: unsupported scheme %q (want embedded or %s)", key, u.Scheme, strings.Join(schemes, ", "))
	}
	return nil
}

func isPostgres(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// storePath is the bbolt file, under the data dir unless configured.
func (c *Config) storePath() string {
	if strings.HasPrefix(c.Store, "bolt://") {
		return strings.TrimPrefix(c.Store, "bolt://")
	}
	return filepath.Join(c.DataDir, "hoodcloud.db")
}

// printConfig writes the effective configuration as YAML, secrets redacted.
func printConfig(w io.Writer, fs *flag.FlagSet) {
	values := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		values[strings.ReplaceAll(f.Name, "-", "_")] = redact(f.Name, f.Value.String())
	})
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "%s: %q\n", k, values[k])
	}
}

// redact hides secrets and the password part of URLs.
func redact(name, v string) string {
	if secretKeys[name] && v != "" {
		return "<redacted>"
	}
	if u, err := url.Parse(v); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "redacted")
			return u.String()
		}
	}
	return v
}

var errUsage = errors.New("usage")
