package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/internal/testenv"
)

// TestMain lets a test run this binary as the real hoodcloud command, so
// signals and exit codes are tested on a separate process.
func TestMain(m *testing.M) {
	if os.Getenv("HOODCLOUD_TEST_AS_CLI") == "1" {
		main()
	}
	code := m.Run()
	if agentBuild.dir != "" {
		os.RemoveAll(agentBuild.dir)
	}
	os.Exit(code)
}

// agentBuild is the hoodcloud-agent the tests' appliances serve and run
// on their local hosts, built once per test process when first needed.
var agentBuild struct {
	once      sync.Once
	dir, path string
	err       error
}

// testAgentBinary builds hoodcloud-agent, the first time, and returns its
// path.
func testAgentBinary(tb testing.TB) string {
	tb.Helper()
	agentBuild.once.Do(func() {
		if agentBuild.dir, agentBuild.err = os.MkdirTemp("", "hoodcloud-test-agent-"); agentBuild.err != nil {
			return
		}
		agentBuild.path = filepath.Join(agentBuild.dir, "hoodcloud-agent")
		out, err := exec.Command("go", "build", "-o", agentBuild.path, "./agent/cmd/hoodcloud-agent").CombinedOutput()
		if err != nil {
			agentBuild.err = fmt.Errorf("build hoodcloud-agent: %v\n%s", err, out)
		}
	})
	if agentBuild.err != nil {
		tb.Fatal(agentBuild.err)
	}
	return agentBuild.path
}

func TestSignalsStopWithinTenSecondsAndExitZero(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], serveArgs(t, "--log-level", "info")[0:]...)
			cmd.Env = append(os.Environ(), "HOODCLOUD_TEST_AS_CLI=1")
			var stdout testenv.LogBuffer
			cmd.Stdout = &stdout
			stderr, _ := cmd.StderrPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			logs := waitForLine(t, stderr, "hoodcloud ready")
			start := time.Now()
			cmd.Process.Signal(sig)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("exit after %s: %v, want code 0", sig, err)
				}
				t.Logf("stopped in %s", time.Since(start).Round(time.Millisecond))
				assertTokenShownOnlyOnStdout(t, stdout.String(), logs.String())
			case <-time.After(time.Minute):
				cmd.Process.Kill()
				t.Fatalf("still running a minute after %s", sig)
			}
		})
	}
}

func TestApplianceWithExternalTemporal(t *testing.T) {
	first := MustOpenMain(t, testConfig(t, t.TempDir()))
	cfg := testConfig(t, t.TempDir())
	cfg.Temporal = first.temporalServer.FrontendAddress()
	second := MustOpenMain(t, cfg)
	if second.temporalServer != nil {
		t.Fatal("an embedded Temporal was started although an external one is configured")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := second.Temporal.RoundTrip(ctx, "through-external"); err != nil || out != "pong" {
		t.Fatalf("workflow through the external Temporal = %q, %v", out, err)
	}
}

// assertTokenShownOnlyOnStdout: the bootstrap token reaches the operator's
// terminal once and never the logs.
func assertTokenShownOnlyOnStdout(t *testing.T, stdout, logs string) {
	t.Helper()
	_, after, ok := strings.Cut(stdout, "admin bootstrap token is ")
	token, _, _ := strings.Cut(after, "\n")
	if !ok || !strings.HasPrefix(token, "hcadmin_") {
		t.Fatalf("stdout = %q, want the admin bootstrap token shown once", stdout)
	}
	if strings.Contains(logs, token) {
		t.Fatal("the admin token appears in the logs")
	}
}

// waitForLine reads r until a line contains want, and keeps collecting the
// rest so the child never blocks on a full pipe.
func waitForLine(t *testing.T, r interface{ Read([]byte) (int, error) }, want string) *testenv.LogBuffer {
	t.Helper()
	found := make(chan struct{})
	var all testenv.LogBuffer
	go func() {
		s := bufio.NewScanner(r)
		seen := false
		for s.Scan() {
			all.Write([]byte(s.Text() + "\n"))
			if !seen && strings.Contains(s.Text(), want) {
				seen = true
				close(found)
			}
		}
	}()
	select {
	case <-found:
	case <-time.After(30 * time.Second):
		t.Fatalf("no %q within 30s", want)
	}
	return &all
}
