package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// ProcessConfig configures the process runtime.
type ProcessConfig struct {
	// Dir is the chain data dir: files are written inside it and the
	// components run in it. Required.
	Dir string
	// MinBackoff and MaxBackoff bound the wait before restarting a crashed
	// component; defaults 500ms and 30s. A run longer than StableAfter
	// (default 10s) resets the backoff.
	MinBackoff, MaxBackoff, StableAfter time.Duration
	// StopTimeout is how long a component has to exit after SIGTERM before
	// it is killed; default 10s.
	StopTimeout time.Duration
	// UpgradeCheck is how long an upgraded component must run without
	// exiting for the upgrade to count; default 5s.
	UpgradeCheck time.Duration
	Logger       *slog.Logger
}

// ProcessRuntime runs each component as a child process, restarted with
// backoff when it exits without being asked to. A component's command
// line is its args: args[0] is the program (artifacts are not downloaded
// by this runtime).
type ProcessRuntime struct {
	cfg ProcessConfig

	mu         sync.Mutex
	components []*agentv1.Component
	running    []*supervised // nil: stopped; a nil entry: that component is stopped
}

var _ Runtime = (*ProcessRuntime)(nil)

// NewProcessRuntime returns a runtime that has started nothing.
func NewProcessRuntime(cfg ProcessConfig) *ProcessRuntime {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.StableAfter <= 0 {
		cfg.StableAfter = 10 * time.Second
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.UpgradeCheck <= 0 {
		cfg.UpgradeCheck = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &ProcessRuntime{cfg: cfg}
}

// Configure writes the payload's files inside Dir and remembers the
// components for Start.
func (r *ProcessRuntime) Configure(ctx context.Context, p *agentv1.ConfigurePayload, progress ProgressFunc) error {
	if err := checkComponents(p); err != nil {
		return err
	}
	if err := writeConfigFiles(r.cfg.Dir, p.GetFiles(), progress); err != nil {
		return err
	}
	r.mu.Lock()
	r.components = p.GetComponents()
	r.mu.Unlock()
	progress(Progress{Percent: 100, Message: "configured"})
	return nil
}

func checkComponents(p *agentv1.ConfigurePayload) error {
	if len(p.GetComponents()) == 0 {
		return permanent("the configuration names no component")
	}
	if p.GetSnapshot().GetUrl() != "" {
		return permanent("this runtime does not restore snapshots")
	}
	for _, c := range p.GetComponents() {
		if len(c.GetArgs()) == 0 {
			return permanent(fmt.Sprintf("component %q has no command line", c.GetName()))
		}
		if c.GetArtifact().GetUrl() != "" {
			return permanent(fmt.Sprintf("component %q: this runtime does not download artifacts", c.GetName()))
		}
	}
	return nil
}

// writeConfigFiles writes each file through os.Root so none lands outside dir.
func writeConfigFiles(dir string, files []*agentv1.ConfigFile, progress ProgressFunc) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("chain data dir: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("chain data dir: %w", err)
	}
	defer root.Close()
	for i, f := range files {
		if err := ValidateKeyPath(f.GetPath()); err != nil {
			return permanent(fmt.Sprintf("config file %q: %v", f.GetPath(), err))
		}
		mode := os.FileMode(f.GetMode() & 0o777)
		if mode == 0 {
			mode = 0o600
		}
		if d := filepath.Dir(f.GetPath()); d != "." {
			if err := root.MkdirAll(d, 0o700); err != nil {
				return fmt.Errorf("config file %q: %w", f.GetPath(), err)
			}
		}
		if err := root.WriteFile(f.GetPath(), f.GetContent(), mode); err != nil {
			return fmt.Errorf("config file %q: %w", f.GetPath(), err)
		}
		progress(Progress{Percent: float64(i+1) * 90 / float64(len(files)), Message: "wrote " + f.GetPath()})
	}
	return nil
}

// Restore takes back the components of a configuration applied before.
func (r *ProcessRuntime) Restore(p *agentv1.ConfigurePayload) error {
	if err := checkComponents(p); err != nil {
		return err
	}
	r.mu.Lock()
	r.components = p.GetComponents()
	r.mu.Unlock()
	return nil
}

// Start runs every component; starting a started runtime does nothing.
func (r *ProcessRuntime) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.components) == 0 {
		return permanent("not configured")
	}
	if r.running != nil {
		return nil
	}
	for _, c := range r.components {
		r.running = append(r.running, r.supervise(c))
	}
	return nil
}

func (r *ProcessRuntime) supervise(c *agentv1.Component) *supervised {
	s := &supervised{comp: c, cfg: r.cfg, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

// Stop stops the components in reverse order and waits for them.
func (r *ProcessRuntime) Stop(ctx context.Context) error {
	r.mu.Lock()
	running := r.running
	r.running = nil
	r.mu.Unlock()
	for i := len(running) - 1; i >= 0; i-- {
		if err := running[i].halt(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the children when the agent exits: they are its children
// and have no supervisor without it.
func (r *ProcessRuntime) Close(ctx context.Context) error { return r.Stop(ctx) }

func (r *ProcessRuntime) Restart(ctx context.Context) error {
	if err := r.Stop(ctx); err != nil {
		return err
	}
	return r.Start(ctx)
}

// Status is running when every component has a live process.
func (r *ProcessRuntime) Status(ctx context.Context) (RuntimeStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := RuntimeStatus{Configured: len(r.components) > 0, Running: len(r.running) > 0}
	for _, s := range r.running {
		if s == nil {
			st.Running = false
			continue
		}
		alive, restarts, last := s.state()
		st.Running = st.Running && alive
		st.Restarts += restarts
		if !alive && last != "" {
			st.Message = fmt.Sprintf("%s: %s", s.comp.GetName(), last)
		}
	}
	return st, nil
}

// supervised is one component's child process and its restarts.
type supervised struct {
	comp *agentv1.Component
	cfg  ProcessConfig
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	alive    bool
	pid      int
	restarts int
	lastExit string
}

// halt stops the process and waits for it, or for ctx; nil does nothing.
func (s *supervised) halt(ctx context.Context) error {
	if s == nil {
		return nil
	}
	close(s.stop)
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *supervised) state() (bool, int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.alive, s.restarts, s.lastExit
}

func (s *supervised) setAlive(alive bool, exit string) {
	s.mu.Lock()
	s.alive = alive
	if exit != "" {
		s.lastExit = exit
	}
	s.mu.Unlock()
}

// run starts the process again after each exit until stop is closed.
func (s *supervised) run() {
	defer close(s.done)
	for failures := 0; ; failures++ {
		started := time.Now()
		if stopped := s.runOnce(); stopped {
			return
		}
		if time.Since(started) >= s.cfg.StableAfter {
			failures = 0
		}
		s.mu.Lock()
		s.restarts++
		s.mu.Unlock()
		s.cfg.Logger.Warn("component exited, restarting", "component", s.comp.GetName(), "restarts", s.restarts)
		t := time.NewTimer(BackoffDelay(s.cfg.MinBackoff, s.cfg.MaxBackoff, failures))
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// runOnce runs the process until it exits (false) or stop is closed (true).
func (s *supervised) runOnce() bool {
	cmd := s.command()
	if err := cmd.Start(); err != nil {
		s.setAlive(false, "start: "+err.Error())
		return false
	}
	s.setAlive(true, "")
	s.mu.Lock()
	s.pid = cmd.Process.Pid
	s.mu.Unlock()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		s.setAlive(false, exitText(err))
		return false
	case <-s.stop:
		_ = cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(s.cfg.StopTimeout)
		defer t.Stop()
		select {
		case <-exited:
		case <-t.C:
			_ = cmd.Process.Kill()
			<-exited
		}
		s.setAlive(false, "")
		return true
	}
}

func (s *supervised) command() *exec.Cmd {
	args := s.comp.GetArgs()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = s.cfg.Dir
	cmd.Env = os.Environ()
	keys := make([]string, 0, len(s.comp.GetEnv()))
	for k := range s.comp.GetEnv() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+s.comp.GetEnv()[k])
	}
	return cmd
}

func exitText(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ProcessState.String()
	}
	if err == nil {
		return "exited"
	}
	return err.Error()
}
