package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets a test run this binary as the real hoodcloud command, so
// signals and exit codes are tested on a separate process.
func TestMain(m *testing.M) {
	if os.Getenv("HOODCLOUD_TEST_AS_CLI") == "1" {
		main()
	}
	os.Exit(m.Run())
}

func TestSignalsStopWithinTenSecondsAndExitZero(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], serveArgs(t, "--log-level", "info")[0:]...)
			cmd.Env = append(os.Environ(), "HOODCLOUD_TEST_AS_CLI=1")
			stderr, _ := cmd.StderrPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitForLine(t, stderr, "hoodcloud ready")
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
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("still running 10s after %s", sig)
			}
		})
	}
}

func TestApplianceWithExternalTemporal(t *testing.T) {
	first := MustOpenMain(t, testConfig(t, t.TempDir()))
	cfg := testConfig(t, t.TempDir())
	cfg.Temporal = first.temporal.FrontendAddress()
	second := MustOpenMain(t, cfg)
	if second.temporal != nil {
		t.Fatal("an embedded Temporal was started although an external one is configured")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if out, err := second.Workflows.RoundTrip(ctx, "through-external"); err != nil || out != "pong" {
		t.Fatalf("workflow through the external Temporal = %q, %v", out, err)
	}
}

func waitForLine(t *testing.T, r interface{ Read([]byte) (int, error) }, want string) {
	t.Helper()
	found := make(chan struct{})
	go func() {
		s := bufio.NewScanner(r)
		for s.Scan() {
			if strings.Contains(s.Text(), want) {
				close(found)
				break
			}
		}
		for s.Scan() { // keep draining so the child never blocks on stderr
		}
	}()
	select {
	case <-found:
	case <-time.After(30 * time.Second):
		t.Fatalf("no %q within 30s", want)
	}
}
