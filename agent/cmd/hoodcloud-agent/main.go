// Command hoodcloud-agent is the ops-agent of a node host: it enrols once
// with the appliance's gateway (token in HOODCLOUD_AGENT_TOKEN, never on the
// command line), then heartbeats and runs the commands the gateway hands
// out. It links nothing of the control plane, so that every host runs a
// small binary; the appliance serves it to new hosts.
//
// Usage:
//
//	hoodcloud-agent --gateway HOST:PORT --node-id ID --data-dir DIR [--ca-file PEM] [flags]
//	hoodcloud-agent version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/hoodcloud/hoodcloud/agent"
)

// Set at link time, as for hoodcloud: -ldflags "-X main.version=… -X main.commit=… -X main.date=…".
var (
	version = "dev"
	commit  = "none"
	date    = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command; it returns the exit code: 0 success, 1 failure
// at run time, 2 bad usage or configuration (nothing was started).
func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "version" || args[0] == "--version") {
		fmt.Fprintf(stdout, "hoodcloud-agent %s (commit %s, built %s)\n", version, commit, date)
		return 0
	}
	cfg, err := agent.ParseCommandLine("hoodcloud-agent", args, env, stderr)
	switch {
	case errors.Is(err, agent.ErrUsage):
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "hoodcloud-agent: %v\n", err)
		return 2
	}
	cfg.Version = version
	if err := agent.RunAgent(ctx, cfg); err != nil {
		fmt.Fprintf(stderr, "hoodcloud-agent: %v\n", err)
		return 1
	}
	return 0
}
