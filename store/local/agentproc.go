package local

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// agentProc supervises the ops-agent of one host: it starts it in a process
// group of its own, restarts it with backoff when it exits unasked, and
// stops the whole group (the agent and the chain it runs) when told to.
type agentProc struct {
	cfg    Config
	nodeID string
	dir    string
	args   []string // the command line, the executable first
	env    []string // holds the enrolment token, if any: never log it

	stopOnce sync.Once
	stop     chan struct{} // closed to ask for the stop
	done     chan struct{} // closed once the agent and its group are gone

	mu  sync.Mutex
	pid int // of the running agent; 0 between runs
}

func newAgentProc(cfg Config, nodeID, dir string, args, env []string) *agentProc {
	return &agentProc{
		cfg: cfg, nodeID: nodeID, dir: dir, args: args, env: env,
		stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// running reports whether an agent process is alive now.
func (a *agentProc) running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pid != 0
}

// Stop asks the supervisor to stop the agent; wait on done for the end.
func (a *agentProc) Stop() { a.stopOnce.Do(func() { close(a.stop) }) }

// supervise runs the agent until Stop, restarting it after each exit.
func (a *agentProc) supervise() {
	defer close(a.done)
	for failures := 0; ; failures++ {
		started := time.Now()
		pid, exited, err := a.start()
		if err == nil {
			select {
			case err = <-exited:
			case <-a.stop:
				a.terminate(pid, exited)
				return
			}
			a.setPID(0)
			// The agent is gone; a chain it started may not be.
			killGroup(pid, a.cfg.StopTimeout)
		}
		if time.Since(started) >= a.cfg.StableAfter {
			failures = 0
		}
		delay := backoff(a.cfg.MinBackoff, a.cfg.MaxBackoff, failures)
		a.cfg.Logger.Warn("local agent stopped unexpectedly; restarting", "node_id", a.nodeID, "err", err, "restart_in", delay)
		if !a.pause(delay) {
			return
		}
	}
}

// start launches the agent with its output appended to the host's log.
func (a *agentProc) start() (int, <-chan error, error) {
	logf, err := os.OpenFile(filepath.Join(a.dir, logFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, nil, fmt.Errorf("open agent log: %w", err)
	}
	defer logf.Close() // the agent holds its own copy
	cmd := exec.Command(a.args[0], a.args[1:]...)
	cmd.Dir, cmd.Env = a.dir, a.env
	cmd.Stdout, cmd.Stderr = logf, logf
	// A group of its own: stopping the host stops the chain the agent
	// started too, and a signal meant for the appliance does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0, nil, fmt.Errorf("start agent: %w", err)
	}
	pid := cmd.Process.Pid
	a.setPID(pid)
	if err := writePID(a.dir, pid); err != nil {
		a.cfg.Logger.Warn("local agent pid not recorded", "node_id", a.nodeID, "err", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	a.cfg.Logger.Info("local agent started", "node_id", a.nodeID, "pid", pid)
	return pid, exited, nil
}

// terminate asks the agent to stop (it stops its chain), kills it when it
// does not in time, then kills whatever is left of its group.
func (a *agentProc) terminate(pid int, exited <-chan error) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	t := time.NewTimer(a.cfg.StopTimeout)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		a.cfg.Logger.Warn("local agent ignored SIGTERM; killing it", "node_id", a.nodeID, "pid", pid)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
	}
	a.setPID(0)
	killGroup(pid, a.cfg.StopTimeout)
	_ = os.Remove(filepath.Join(a.dir, pidFile))
	a.cfg.Logger.Info("local agent stopped", "node_id", a.nodeID, "pid", pid)
}

func (a *agentProc) setPID(pid int) {
	a.mu.Lock()
	a.pid = pid
	a.mu.Unlock()
}

// pause waits d, or returns false at once when a stop is asked for.
func (a *agentProc) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-a.stop:
		return false
	}
}

// killGroup kills every process left in the process group pgid and waits,
// up to limit, for them to be gone.
func killGroup(pgid int, limit time.Duration) {
	if err := syscall.Kill(-pgid, syscall.SIGKILL); errors.Is(err, syscall.ESRCH) {
		return
	}
	deadline := time.Now().Add(limit)
	for groupExists(pgid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// groupExists reports whether a process of group pgid is still alive.
// Zombies do not count: an orphan's zombie lingers where the init process
// is slow to reap, but it runs nothing.
func groupExists(pgid int) bool {
	if errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
		return false
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return true // no /proc to look closer
	}
	for _, e := range procs {
		if pid, err := strconv.Atoi(e.Name()); err == nil && liveMember(pid, pgid) {
			return true
		}
	}
	return false
}

// liveMember reports whether pid is in group pgid and not a zombie.
func liveMember(pid, pgid int) bool {
	state, group, ok := procStat(pid)
	return ok && state != "Z" && state != "X" && group == strconv.Itoa(pgid)
}

// procStat reads the state and process group of pid from
// /proc/<pid>/stat: "pid (comm) state ppid pgrp …"; ok is false without it.
func procStat(pid int) (state, pgrp string, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", "", false
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 3 {
		return "", "", false
	}
	return f[0], f[2], true
}

// stopOrphan stops the agent an earlier appliance process left running in
// dir (it crashed without stopping its agents), so that adopting the host
// does not run two agents. The pid is trusted only if that process's
// command line names dir: after a reboot the pid may be anybody's.
func stopOrphan(dir string, limit time.Duration) {
	pid := readPID(dir)
	if pid == 0 || !commandNames(pid, dir) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(limit)
	for processExists(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	killGroup(pid, limit)
}

// commandNames reports whether pid's command line mentions dir (Linux's
// /proc; elsewhere it reports false and an orphan is left alone).
func commandNames(pid int, dir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(b, []byte(dir))
}

// processExists reports whether pid is alive (a zombie is not).
func processExists(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return false
	}
	state, _, ok := procStat(pid)
	return !ok || (state != "Z" && state != "X")
}

// backoff doubles from lo for each failure in a row, up to hi.
func backoff(lo, hi time.Duration, failures int) time.Duration {
	d := lo
	for i := 0; i < failures && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}
