package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hoodcloud/hoodcloud/agent/agentload"
	"github.com/hoodcloud/hoodcloud/store/local"
)

// benchAgentMemory measures what one node host pays for its ops-agent:
// the resident memory of an enrolled, idle hoodcloud-agent beside that of
// `hoodcloud agent`, the same code run from the appliance binary, and the
// two binaries' sizes. Both agents enrol with a gateway in a child process
// (bench agents' gateway) and then idle, heartbeating.
func benchAgentMemory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench agent-memory", flag.ContinueOnError)
	fs.SetOutput(stderr)
	idle := fs.Duration("idle", 30*time.Second, "idle time after enrolment before reading RSS")
	agentBin := fs.String("agent-binary", "", "the hoodcloud-agent to measure (default: beside this executable)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if *agentBin == "" {
		*agentBin = filepath.Join(filepath.Dir(exe), local.AgentBinaryName)
	}
	dir, err := os.MkdirTemp("", "hoodcloud-bench-agent-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	gw, err := startBenchGateway(ctx, exe, dir, 2)
	if err != nil {
		return err
	}
	defer gw.stop()
	runs := []struct {
		name string
		argv []string
	}{{"hoodcloud-agent", []string{*agentBin}}, {"hoodcloud agent", []string{exe, "agent"}}}
	var agents []*exec.Cmd
	defer func() {
		for _, a := range agents {
			a.Process.Signal(syscall.SIGTERM)
			a.Wait()
		}
	}()
	for i, r := range runs {
		a, err := startBenchAgent(gw, dir, gw.ready.Tokens[i], r.argv)
		if err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		agents = append(agents, a)
	}
	for i, r := range runs {
		if err := waitEnrolled(ctx, filepath.Join(dir, gw.ready.Tokens[i].NodeID, "agent-cert.pem"), 30*time.Second); err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(*idle):
	}
	mb := func(kb int64) float64 { return float64(kb) / 1024 }
	for i, r := range runs {
		m, err := residentMemory(agents[i].Process.Pid)
		if err != nil {
			return err
		}
		st, err := os.Stat(r.argv[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%-16s RSS after %s idle: %.1f MB (anonymous %.1f MB, mapped from the binary and files %.1f MB); binary %.1f MB\n",
			r.name, *idle, mb(m.totalKB), mb(m.anonKB), mb(m.fileKB), float64(st.Size())/(1<<20))
	}
	return nil
}

// benchGateway is the agent gateway child of bench agent-memory.
type benchGateway struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready struct {
		Addr   string                      `json:"addr"`
		CAPEM  string                      `json:"ca_pem"`
		Tokens []agentload.EnrollmentToken `json:"tokens"`
	}
}

func startBenchGateway(ctx context.Context, exe, dir string, agents int) (*benchGateway, error) {
	g := &benchGateway{cmd: exec.CommandContext(ctx, exe, "bench", benchGatewayCommand,
		"--data-dir", filepath.Join(dir, "gateway"), "--agents", fmt.Sprint(agents))}
	if err := os.Mkdir(filepath.Join(dir, "gateway"), 0o700); err != nil {
		return nil, err
	}
	g.cmd.Stderr = os.Stderr
	stdout, err := g.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if g.stdin, err = g.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := g.cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &g.ready)
	}
	if err != nil || len(g.ready.Tokens) < agents {
		g.stop()
		return nil, fmt.Errorf("agent gateway did not start: %v", err)
	}
	return g, os.WriteFile(filepath.Join(dir, "ca.pem"), []byte(g.ready.CAPEM), 0o600)
}

// stop ends the gateway: it stops at the end of its stdin.
func (g *benchGateway) stop() {
	g.stdin.Close()
	g.cmd.Wait()
}

func startBenchAgent(gw *benchGateway, dir string, tok agentload.EnrollmentToken, argv []string) (*exec.Cmd, error) {
	cmd := exec.Command(argv[0], append(argv[1:], "--gateway", gw.ready.Addr, "--node-id", tok.NodeID,
		"--data-dir", filepath.Join(dir, tok.NodeID), "--ca-file", filepath.Join(dir, "ca.pem"))...)
	cmd.Env = append(os.Environ(), local.TokenEnv+"="+tok.Token)
	cmd.Stderr = io.Discard
	return cmd, cmd.Start()
}

// waitEnrolled waits for an agent's certificate to appear.
func waitEnrolled(ctx context.Context, certFile string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(certFile); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("not enrolled within " + limit.String())
}
