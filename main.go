// Command hoodcloud is the HoodCloud control plane in one binary: the
// appliance (serve), an ephemeral stack (dev), and its operator tools.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Set at link time: -ldflags "-X main.version=… -X main.commit=… -X main.date=…".
var (
	version = "dev"
	commit  = "none"
	date    = "unknown"
)

const usage = `hoodcloud: the HoodCloud control plane

Usage:
  hoodcloud serve [flags]     run the appliance
  hoodcloud dev [flags]       run an ephemeral appliance (temp data dir, dev token)
  hoodcloud admin COMMAND     operator commands: create-user, rotate master
  hoodcloud rollout COMMAND   upgrade rollouts on a running appliance: create, list,
                              status --watch, pause, resume, approve, rollback, cancel,
                              force, skip
  hoodcloud migrate up|status|force VERSION
                              manage the PostgreSQL schema (--store postgres://…)
  hoodcloud agent [flags]     run the ops-agent of a node host, as hoodcloud-agent does
                              (token in HOODCLOUD_AGENT_TOKEN)
  hoodcloud simnode [flags]   run a simulated chain node (for dev, CI and tests)
  hoodcloud config print      show the effective configuration, secrets redacted
  hoodcloud bench startup     measure start time, idle memory and binary size
  hoodcloud bench agents      measure the agent gateway under 10,000 simulated agents
  hoodcloud bench agent-memory
                              idle memory and size of hoodcloud-agent and hoodcloud agent
  hoodcloud version           show version, commit and build date

Run "hoodcloud serve -h" for the settings. Each flag is also a HOODCLOUD_*
environment variable and a key of the YAML file given by --config.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command and returns the exit code: 0 success, 1 failure
// at run time, 2 bad usage or configuration (nothing was started).
func run(ctx context.Context, args []string, env func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = serve(ctx, rest, env, stdout, stderr)
	case "dev":
		err = dev(ctx, rest, env, stdout, stderr)
	case "admin":
		err = admin(ctx, rest, env, stdin, stdout, stderr)
	case "rollout":
		err = rollout(ctx, rest, env, stdout, stderr)
	case "agent":
		err = agentCommand(ctx, rest, env, stderr)
	case "simnode":
		err = simnodeCommand(ctx, rest, stderr)
	case "migrate":
		err = migrate(ctx, rest, env, stdout, stderr)
	case "config":
		err = configCommand(rest, env, stdout, stderr)
	case "bench":
		err = bench(ctx, rest, stdin, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "hoodcloud %s (commit %s, built %s)\n", version, commit, date)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "hoodcloud: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	return exitCode(err, stderr)
}

func exitCode(err error, stderr io.Writer) int {
	var cfgErr *ConfigError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.As(err, &cfgErr):
		fmt.Fprintf(stderr, "hoodcloud: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "hoodcloud: %v\n", err)
		return 1
	}
}

func serve(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	cfg, _, err := loadConfig("serve", args, env, stderr, nil)
	if err != nil {
		return err
	}
	m := NewMain(cfg, stderr)
	if err := m.Open(ctx); err != nil {
		return &ConfigError{err} // nothing is left running
	}
	if m.Boot.AdminTokenNew {
		// Straight to the terminal, never to the logs: shown this once.
		fmt.Fprintf(stdout, "First start: the admin bootstrap token is %s\nStore it now; it is not shown again.\n", m.Boot.AdminToken)
	}
	return m.Run(ctx)
}

func configCommand(args []string, env func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "print" {
		fmt.Fprintln(stderr, "usage: hoodcloud config print [flags]")
		return errUsage
	}
	_, fs, err := loadConfig("config print", args[1:], env, stderr, nil)
	if err != nil {
		return err
	}
	printConfig(stdout, fs)
	return nil
}
