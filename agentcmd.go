package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/hoodcloud/hoodcloud/agent"
)

// agentCommand runs the ops-agent of one node host: it enrols once with a
// token, then heartbeats and executes the commands the gateway hands out.
func agentCommand(ctx context.Context, args []string, env func(string) string, stderr io.Writer) error {
	var cfg agent.AgentConfig
	var runtime string
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.GatewayAddr, "gateway", "", "agent gateway host:port (required)")
	fs.StringVar(&cfg.NodeID, "node-id", "", "the node this host runs (required)")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "agent state: key, certificates, outbox (required)")
	fs.StringVar(&cfg.CAFile, "ca-file", "", "PEM of the appliance agent CA (first enrolment)")
	fs.StringVar(&cfg.ServerName, "server-name", "", "name in the gateway's certificate (default: the gateway host)")
	fs.StringVar(&cfg.ChainDir, "chain-dir", "", "chain data dir (default: data-dir/chain)")
	fs.StringVar(&runtime, "runtime", "process", "process, systemd or docker")
	fs.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", 0, "override the gateway's heartbeat interval")
	fs.DurationVar(&cfg.ProgressCheckInterval, "progress-interval", 30*time.Second, "how often running commands report progress")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	for name, v := range map[string]string{"gateway": cfg.GatewayAddr, "node-id": cfg.NodeID, "data-dir": cfg.DataDir} {
		if v == "" {
			return configErrorf("agent: %s is required", name)
		}
	}
	// The token comes from the environment so it never shows in ps.
	cfg.EnrollmentToken = env("HOODCLOUD_AGENT_TOKEN")
	if cfg.ChainDir == "" {
		cfg.ChainDir = filepath.Join(cfg.DataDir, "chain")
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	rt, err := agent.NewRuntime(runtime, cfg.ChainDir, cfg.Logger)
	if err != nil {
		return configErrorf("agent: runtime: %v", err)
	}
	cfg.Runtime = rt
	cfg.Version = version
	return agent.RunAgent(ctx, cfg)
}
