package main

import (
	"context"
	"flag"
	"io"
	"log/slog"

	"github.com/hoodcloud/hoodcloud/agent/simnode"
)

// simnodeCommand runs a simulated chain node: the process the local
// provisioner, dev mode and tests supervise instead of a real chain binary.
func simnodeCommand(ctx context.Context, args []string, stderr io.Writer) error {
	var cfg simnode.Config
	var mode string
	fs := flag.NewFlagSet("simnode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data-dir", "", "chain data dir (node key, state); required")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "127.0.0.1:9545", "Prometheus /metrics and /health")
	fs.StringVar(&cfg.Version, "version", "v1.0.0-sim", "version reported in chain_version_info")
	fs.DurationVar(&cfg.BlockInterval, "block-interval", 0, "time between blocks (default 1s)")
	fs.StringVar(&cfg.ControlFile, "control-file", "", `JSON file changing behaviour at run time, e.g. {"mode":"stall"}`)
	fs.StringVar(&mode, "mode", "normal", "normal, stall, crashloop or behind")
	fs.Uint64Var(&cfg.NetworkHeight, "network-height", 0, "network height for a new data dir: the node syncs up to it")
	fs.StringVar(&cfg.NodeKeyFile, "node-key-file", "", "where the node writes its key, inside the data dir (default config/node_key.json)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if cfg.DataDir == "" {
		return configErrorf("simnode: data-dir is required")
	}
	m, err := simnode.ParseMode(mode)
	if err != nil {
		return configErrorf("simnode: mode: %v", err)
	}
	cfg.Mode = m
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	return simnode.Run(ctx, cfg)
}
