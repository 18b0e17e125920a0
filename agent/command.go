package agent

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// TokenEnv is the environment variable holding the enrolment token, so
// that the token never shows in ps.
const TokenEnv = "HOODCLOUD_AGENT_TOKEN"

// IntervalOnlyEnv set to 1 is the default of --interval-only-heartbeats,
// for an agent whose command line the caller does not write (the local
// provisioner's, in a benchmark).
const IntervalOnlyEnv = "HOODCLOUD_AGENT_INTERVAL_ONLY_HEARTBEATS"

// ErrUsage means the command line did not parse; the flag package has
// already printed why, and the usage.
var ErrUsage = errors.New("usage")

// ParseCommandLine reads the ops-agent's settings from its flags (name
// heads the usage text) and the enrolment token from env, and builds the
// runtime and a logger writing to stderr. It returns ErrUsage when the flags
// do not parse and another error when a setting is missing or wrong; that
// error names the setting.
func ParseCommandLine(name string, args []string, env func(string) string, stderr io.Writer) (AgentConfig, error) {
	var cfg AgentConfig
	var runtime string
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.GatewayAddr, "gateway", "", "agent gateway host:port (required)")
	fs.StringVar(&cfg.NodeID, "node-id", "", "the node this host runs (required)")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "agent state: key, certificates, outbox (required)")
	fs.StringVar(&cfg.CAFile, "ca-file", "", "PEM of the appliance agent CA (first enrolment)")
	fs.StringVar(&cfg.ServerName, "server-name", "", "name in the gateway's certificate (default: the gateway host)")
	fs.StringVar(&cfg.ChainDir, "chain-dir", "", "chain data dir (default: data-dir/chain)")
	fs.StringVar(&runtime, "runtime", "process", "process, systemd or docker")
	fs.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", 0, "override the gateway's heartbeat interval")
	claims := fs.String("port-claims-dir", "", "machine-wide record of the ports chains were given (default: in the temporary directory)")
	fs.BoolVar(&cfg.IntervalOnly, "interval-only-heartbeats", env(IntervalOnlyEnv) == "1", "heartbeat at the interval only, not briskly after a command finishes")
	fs.DurationVar(&cfg.ProgressCheckInterval, "progress-interval", 30*time.Second, "how often running commands report progress")
	fs.DurationVar(&cfg.ChainMetricsInterval, "chain-metrics-interval", DefaultChainMetricsInterval, "how often the chain's metrics are sampled (height, peers, sync)")
	if err := fs.Parse(args); err != nil {
		return cfg, ErrUsage
	}
	if *claims != "" { // one agent per process: the setting is the program's
		portClaimsDir = *claims
	}
	for _, req := range []struct{ name, value string }{
		{"gateway", cfg.GatewayAddr}, {"node-id", cfg.NodeID}, {"data-dir", cfg.DataDir},
	} {
		if req.value == "" {
			return cfg, fmt.Errorf("%s is required", req.name)
		}
	}
	cfg.EnrollmentToken = env(TokenEnv)
	// The chain's programs inherit the agent's environment: the token
	// is for the agent alone.
	os.Unsetenv(TokenEnv)
	if cfg.ChainDir == "" {
		cfg.ChainDir = filepath.Join(cfg.DataDir, "chain")
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	rt, err := NewRuntime(runtime, cfg.ChainDir, cfg.Logger)
	if err != nil {
		return cfg, fmt.Errorf("runtime: %w", err)
	}
	cfg.Runtime = rt
	return cfg, nil
}
