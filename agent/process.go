package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	// CrashLoopExits is how many exits in a row, each within StableAfter
	// of its start, make a component's restarts a crash loop; default 3.
	CrashLoopExits int
	// StopTimeout is how long a component has to exit after SIGTERM before
	// it is killed; default 10s.
	StopTimeout time.Duration
	// UpgradeCheck is how long an upgraded component must run without
	// exiting for the upgrade to count; default 5s.
	UpgradeCheck time.Duration
	Logger       *slog.Logger
}

// ProcessRuntime runs each component as a child process, restarted with
// backoff when it exits without being asked to. A component with an
// artifact runs its installed binary with its args as arguments; one
// without runs args[0] (a program already on the host).
type ProcessRuntime struct {
	cfg  ProcessConfig
	host *chainHost

	mu         sync.Mutex
	components []*agentv1.Component // rendered
	running    []*supervised        // nil: stopped; a nil entry: that component is stopped
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
	if cfg.CrashLoopExits <= 0 {
		cfg.CrashLoopExits = 3
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
	host := newHostChain(cfg.Dir, cfg.Logger)
	cfg.Dir = host.dir
	return &ProcessRuntime{cfg: cfg, host: host}
}

// Configure makes the recipe concrete in Dir (chainHost.configure) and
// remembers the rendered components for Start.
func (r *ProcessRuntime) Configure(ctx context.Context, p *agentv1.ConfigurePayload, progress ProgressFunc) (*agentv1.ConfigureResult, error) {
	rc, err := r.host.configure(ctx, p, progress)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.components = rc.components
	r.mu.Unlock()
	return rc.result, nil
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
		if err := chainPath("config file", f.GetPath()); err != nil {
			return err
		}
		mode := configMode(f)
		if d := filepath.Dir(f.GetPath()); d != "." {
			if err := root.MkdirAll(d, 0o700); err != nil {
				return fmt.Errorf("config file %q: %w", f.GetPath(), err)
			}
		}
		if err := root.WriteFile(f.GetPath(), f.GetContent(), mode); err != nil {
			return fmt.Errorf("config file %q: %w", f.GetPath(), err)
		}
		progress(Progress{Percent: 90 + float64(i+1)*9/float64(len(files)), Message: "wrote " + f.GetPath()})
	}
	return nil
}

// configMode is f's permission bits; 0 means 0600.
func configMode(f *agentv1.ConfigFile) os.FileMode {
	if mode := os.FileMode(f.GetMode() & 0o777); mode != 0 {
		return mode
	}
	return 0o600
}

// Restore takes back the components of a configuration applied before.
func (r *ProcessRuntime) Restore(p *agentv1.ConfigurePayload) error {
	rc, err := r.host.restore(p)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.components = rc.components
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

// Status is running when every component has a live process; a
// component in a crash loop makes the chain critical.
func (r *ProcessRuntime) Status(ctx context.Context) (RuntimeStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := RuntimeStatus{Configured: len(r.components) > 0, Running: len(r.running) > 0}
	for _, c := range r.components {
		cs := &agentv1.ComponentStatus{Name: c.GetName(), Version: c.GetVersion()}
		st.Components = append(st.Components, cs)
		s := r.supervisorOf(c.GetName())
		if s == nil {
			st.Running = false
			continue
		}
		s.report(cs)
		st.Running = st.Running && cs.Running
		st.Restarts += int(cs.Restarts)
		switch {
		case cs.CrashLoop:
			st.CrashLoop = true
			st.Message = fmt.Sprintf("%s keeps exiting soon after it starts: %s", c.GetName(), cs.LastExit)
		case !cs.Running && cs.LastExit != "" && !st.CrashLoop:
			st.Message = fmt.Sprintf("%s: %s", c.GetName(), cs.LastExit)
		}
	}
	return st, nil
}

// supervisorOf is the running supervisor of the named component, or nil.
// Callers hold mu.
func (r *ProcessRuntime) supervisorOf(name string) *supervised {
	for _, s := range r.running {
		if s != nil && s.comp.GetName() == name {
			return s
		}
	}
	return nil
}

// supervised is one component's child process and its restarts.
type supervised struct {
	comp *agentv1.Component
	cfg  ProcessConfig
	stop chan struct{}
	done chan struct{}

	mu         sync.Mutex
	alive      bool
	pid        int
	started    time.Time // of the current or last run
	restarts   int
	quickExits int // exits in a row within StableAfter of their start
	lastExit   string
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

// report fills cs from the supervisor. A crash loop is CrashLoopExits
// exits in a row, each within StableAfter of its start; it ends when a
// run has lasted StableAfter.
func (s *supervised) report(cs *agentv1.ComponentStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs.Running, cs.Restarts, cs.LastExit = s.alive, uint32(s.restarts), s.lastExit
	steady := s.alive && time.Since(s.started) >= s.cfg.StableAfter
	cs.CrashLoop = s.quickExits >= s.cfg.CrashLoopExits && !steady
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
	for {
		started := time.Now()
		if stopped := s.runOnce(started); stopped {
			return
		}
		s.mu.Lock()
		s.restarts++
		if time.Since(started) >= s.cfg.StableAfter {
			s.quickExits = 0
		} else {
			s.quickExits++
		}
		restarts, quick := s.restarts, s.quickExits
		s.mu.Unlock()
		s.cfg.Logger.Warn("component exited, restarting", "component", s.comp.GetName(), "restarts", restarts)
		if quick == s.cfg.CrashLoopExits {
			s.cfg.Logger.Error("component is in a crash loop", "component", s.comp.GetName(), "exits", quick)
		}
		t := time.NewTimer(BackoffDelay(s.cfg.MinBackoff, s.cfg.MaxBackoff, max(quick-1, 0)))
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// runOnce runs the process until it exits (false) or stop is closed (true).
func (s *supervised) runOnce(started time.Time) bool {
	args := s.comp.GetArgs()
	cmd := programCommand(context.Background(), args[0], args[1:], s.cfg.Dir, s.comp.GetEnv())
	if err := cmd.Start(); err != nil {
		s.setAlive(false, "start: "+err.Error())
		return false
	}
	s.setAlive(true, "")
	s.mu.Lock()
	s.pid, s.started = cmd.Process.Pid, started
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

// programCommand is program with args in dir, with the agent's
// environment and env on top of it.
func programCommand(ctx context.Context, program string, args []string, dir string, env map[string]string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	for _, k := range slices.Sorted(maps.Keys(env)) {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	cmd.WaitDelay = 5 * time.Second
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
