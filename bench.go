package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hoodcloud/hoodcloud/agent/agentload"
)

// bench runs one of the benchmarks.
func bench(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var which string
	if len(args) > 0 {
		which, args = args[0], args[1:]
	}
	switch which {
	case "startup":
		return benchStartup(ctx, args, stdout, stderr)
	case "agents":
		return benchAgents(ctx, args, stdout, stderr)
	case "agent-memory":
		return benchAgentMemory(ctx, args, stdout, stderr)
	case benchGatewayCommand: // the child of bench agents
		return agentload.GatewayMain(ctx, args, stdin, stdout, stderr)
	}
	fmt.Fprintln(stderr, "usage: hoodcloud bench startup [--runs N] [--idle D]\n       hoodcloud bench agents [flags]\n       hoodcloud bench agent-memory [--idle D] [--agent-binary PATH]")
	return errUsage
}

const benchGatewayCommand = "agents-gateway"

// benchAgents runs the agent gateway benchmark: the gateway in a child
// process (this executable), the simulated agents in this one.
func benchAgents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench agents", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg agentload.BenchConfig
	fs.IntVar(&cfg.Agents, "agents", 10_000, "simulated agents, one connection each")
	fs.DurationVar(&cfg.Interval, "interval", 30*time.Second, "each agent's heartbeat interval in the steady phase and restarts")
	fs.DurationVar(&cfg.Steady, "steady", time.Minute, "length of the steady phase")
	rates := fs.String("rates", "1000,2000,4000,8000,16000", "rate steps, heartbeats/s over all agents")
	fs.DurationVar(&cfg.Step, "step", 30*time.Second, "length of each rate step")
	fs.DurationVar(&cfg.Goal, "goal", 20*time.Millisecond, "p99 a step must stay under")
	downs := fs.String("down", "0s", "gateway restarts: how long each stays down beyond its restart")
	fs.StringVar(&cfg.ProfileDir, "profile-dir", "", "write the gateway's log and profiles per phase here")
	fs.BoolVar(&cfg.WithoutLastSeen, "without-last-seen", false, "run the gateway without its LastSeenAt writes, to measure their cost")
	fs.Float64Var(&cfg.Quiet, "quiet", 0.25, "most CPU other processes may use (share of the machine) while a phase runs; 1: any")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	var err error
	if cfg.Rates, err = parseList(*rates, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }); err != nil {
		return configErrorf("bench agents: --rates: %v", err)
	}
	if cfg.Downs, err = parseList(*downs, time.ParseDuration); err != nil {
		return configErrorf("bench agents: --down: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cfg.Gateway = func(args ...string) *exec.Cmd {
		return exec.Command(exe, append([]string{"bench", benchGatewayCommand}, args...)...)
	}
	cfg.Out = stdout
	report, err := agentload.Bench(ctx, cfg)
	if report != nil {
		fmt.Fprintln(stdout)
		report.WriteMarkdown(stdout)
	}
	return err
}

func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	out := []T{}
	for part := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		v, err := parse(strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// benchStartup measures what an operator feels: time from exec to /readyz
// healthy on a fresh and on a warm data dir (median of n), idle RSS, and the
// size of this binary. It runs this same executable as a child.
func benchStartup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench startup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runs := fs.Int("runs", 5, "starts per data dir kind")
	idle := fs.Duration("idle", 30*time.Second, "idle time before reading RSS")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *runs < 1 || *idle < 0 {
		return configErrorf("bench startup: --runs must be >= 1 and --idle >= 0")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	warmDir, err := os.MkdirTemp("", "hoodcloud-bench-warm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(warmDir)

	var fresh, warm []time.Duration
	for range *runs {
		d, err := timeFreshStart(ctx, exe)
		if err != nil {
			return err
		}
		fresh = append(fresh, d)
	}
	if _, err := startAndStop(ctx, exe, warmDir, 0); err != nil { // prime it
		return err
	}
	for range *runs {
		d, err := startAndStop(ctx, exe, warmDir, 0)
		if err != nil {
			return err
		}
		warm = append(warm, d.ready)
	}
	idleRun, err := startAndStop(ctx, exe, warmDir, *idle)
	if err != nil {
		return err
	}
	st, err := os.Stat(exe)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "cold start to /readyz healthy, fresh data dir: median %s (runs %s)\n", median(fresh), fmtDurations(fresh))
	fmt.Fprintf(stdout, "cold start to /readyz healthy, warm data dir:  median %s (runs %s)\n", median(warm), fmtDurations(warm))
	mb := func(kb int64) float64 { return float64(kb) / 1024 }
	fmt.Fprintf(stdout, "RSS after %s idle: %.1f MB (anonymous %.1f MB, mapped from the binary and files %.1f MB)\n",
		*idle, mb(idleRun.rss.totalKB), mb(idleRun.rss.anonKB), mb(idleRun.rss.fileKB))
	fmt.Fprintf(stdout, "binary size: %.1f MB (%s)\n", float64(st.Size())/(1<<20), filepath.Base(exe))
	return nil
}

func timeFreshStart(ctx context.Context, exe string) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "hoodcloud-bench-fresh-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	r, err := startAndStop(ctx, exe, dir, 0)
	return r.ready, err
}

type startRun struct {
	ready time.Duration
	rss   memory
}

// memory is the resident set split the way the kernel counts it: pages of
// the binary itself are shared and reclaimable; anonymous pages are ours.
type memory struct{ totalKB, anonKB, fileKB int64 }

// startAndStop runs `serve` on dir, waits for /readyz healthy, optionally
// idles and reads RSS, then stops it with SIGTERM.
func startAndStop(ctx context.Context, exe, dir string, idle time.Duration) (startRun, error) {
	ports, err := freePorts(7)
	if err != nil {
		return startRun{}, err
	}
	httpAddr := "127.0.0.1:" + strconv.Itoa(ports[0])
	cmd := exec.CommandContext(ctx, exe, "serve", "--data-dir", dir, "--http-addr", httpAddr,
		"--agent-addr", "127.0.0.1:"+strconv.Itoa(ports[1]), "--log-level", "error",
		"--temporal-frontend-port", strconv.Itoa(ports[2]), "--temporal-http-port", strconv.Itoa(ports[3]),
		"--temporal-history-port", strconv.Itoa(ports[4]), "--temporal-matching-port", strconv.Itoa(ports[5]),
		"--temporal-worker-port", strconv.Itoa(ports[6]))
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return startRun{}, err
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	if err := waitReady(ctx, "http://"+httpAddr+"/readyz", 30*time.Second); err != nil {
		return startRun{}, err
	}
	r := startRun{ready: time.Since(start)}
	if idle > 0 {
		time.Sleep(idle)
		r.rss, err = residentMemory(cmd.Process.Pid)
	}
	return r, err
}

func waitReady(ctx context.Context, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			var body struct{ Status string }
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if body.Status == "healthy" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return errors.New("appliance not healthy within " + limit.String())
}

func residentMemory(pid int) (memory, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	fields := map[string]*int64{"VmRSS:": &m.totalKB, "RssAnon:": &m.anonKB, "RssFile:": &m.fileKB}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && fields[f[0]] != nil {
			*fields[f[0]], _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	if m.totalKB == 0 {
		return m, errors.New("no VmRSS in /proc status")
	}
	return m, nil
}

func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}

func fmtDurations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Round(time.Millisecond).String()
	}
	return strings.Join(parts, " ")
}
