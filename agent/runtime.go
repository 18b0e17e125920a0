package agent

import (
	"context"
	"fmt"
	"log/slog"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// Runtime runs the chain software on the host: systemd and Docker in
// production, a plain supervised process for the local provisioner, dev
// mode and tests. Its methods are called one at a time. Errors made with
// permanent() say that repeating the command cannot help.
type Runtime interface {
	// Configure makes the chain's recipe concrete on the host (ports,
	// artifacts or images, rendered templates, init steps, genesis and
	// files; see chainHost.configure); it does not start the chain.
	// Running it again with the same payload keeps the ports and repeats
	// no download or init step. Long work reports through progress.
	Configure(ctx context.Context, p *agentv1.ConfigurePayload, progress ProgressFunc) (*agentv1.ConfigureResult, error)
	// Restore takes back a configuration Configure applied before the agent
	// restarted, touching nothing on the host (files, units and images are
	// there already), so that Start works again.
	Restore(p *agentv1.ConfigurePayload) error
	// Start starts the components; starting a running chain does nothing.
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Restart(ctx context.Context) error
	// Upgrade runs one component at another version as UpgradeAction's
	// steps, undoing the completed ones in reverse when a step fails. With
	// a target height it reads height (nil: there is none) until the chain
	// is there before STOP_NODE. The outcome says how far it went (nil
	// only for a payload refused before any step); the error says why it
	// failed.
	Upgrade(ctx context.Context, p *agentv1.UpgradePayload, height ChainHeight, progress ProgressFunc) (*agentv1.UpgradeOutcome, error)
	Status(ctx context.Context) (RuntimeStatus, error)
}

// Progress is what a long command says about itself.
type Progress struct {
	Percent    float64
	BytesDone  uint64
	BytesTotal uint64
	Message    string
}

// ProgressFunc receives a command's progress; it never blocks for long.
type ProgressFunc func(Progress)

// RuntimeStatus is the state of the chain software.
type RuntimeStatus struct {
	Configured bool
	Running    bool
	Restarts   int    // crashes the supervisor recovered from
	CrashLoop  bool   // a component keeps exiting soon after each start
	Message    string // why it is not running, for people
	// Components: one per configured component, in order.
	Components []*agentv1.ComponentStatus
}

// add counts a component's status in: a component that is not running
// stops the chain, and a crash loop's message goes before any other.
func (s *RuntimeStatus) add(cs *agentv1.ComponentStatus) {
	s.Restarts += int(cs.Restarts)
	switch {
	case cs.CrashLoop:
		s.Running, s.CrashLoop = false, true
		s.Message = fmt.Sprintf("%s keeps exiting soon after it starts: %s", cs.Name, cs.LastExit)
	case !cs.Running:
		s.Running = false
		if !s.CrashLoop {
			s.Message = cs.LastExit
		}
	}
	s.Components = append(s.Components, cs)
}

// appHealth is the heartbeat's verdict on a status.
func (s RuntimeStatus) appHealth() agentv1.AppHealth {
	switch {
	case !s.Configured:
		return agentv1.AppHealth_APP_HEALTH_UNKNOWN
	case s.CrashLoop:
		return agentv1.AppHealth_APP_HEALTH_CRITICAL
	case s.Running:
		return agentv1.AppHealth_APP_HEALTH_HEALTHY
	case s.Message != "":
		return agentv1.AppHealth_APP_HEALTH_CRITICAL
	default:
		return agentv1.AppHealth_APP_HEALTH_UNKNOWN
	}
}

// NewRuntime returns the runtime named kind ("process", "systemd" or
// "docker") for the chain data dir, for the agent's --runtime flag.
func NewRuntime(kind, chainDir string, logger *slog.Logger) (Runtime, error) {
	switch kind {
	case "", "process":
		return NewProcessRuntime(ProcessConfig{Dir: chainDir, Logger: logger}), nil
	case "systemd":
		return NewSystemdRuntime(SystemdConfig{Dir: chainDir}), nil
	case "docker":
		return NewDockerRuntime(DockerConfig{Dir: chainDir}), nil
	default:
		return nil, fmt.Errorf("unknown runtime %q: want process, systemd or docker", kind)
	}
}
