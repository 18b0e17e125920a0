package main

import (
	"context"
	"errors"
	"io"

	"github.com/hoodcloud/hoodcloud/agent"
)

// agentCommand runs the ops-agent of one node host, as hoodcloud-agent
// does: it enrols once with a token, then heartbeats and executes the
// commands the gateway hands out. Hosts run hoodcloud-agent, which links
// nothing of the control plane; this alias stays for hosts set up before.
func agentCommand(ctx context.Context, args []string, env func(string) string, stderr io.Writer) error {
	cfg, err := agent.ParseCommandLine("agent", args, env, stderr)
	switch {
	case errors.Is(err, agent.ErrUsage):
		return errUsage
	case err != nil:
		return configErrorf("agent: %v", err)
	}
	cfg.Version = version
	return agent.RunAgent(ctx, cfg)
}
