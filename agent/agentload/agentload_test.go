package agentload

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/internal/testenv"
)

// gatewayEnv makes the test binary the benchmark's gateway process, so the
// benchmark is tested with a real child without building the command.
const gatewayEnv = "AGENTLOAD_TEST_GATEWAY"

func TestMain(m *testing.M) {
	if os.Getenv(gatewayEnv) != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		err := GatewayMain(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func gatewayCommand(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), gatewayEnv+"=1")
	return cmd
}

func TestBenchMeasuresAFleetAgainstAGatewayProcessAndItsRestart(t *testing.T) {
	var progress strings.Builder
	profiles := t.TempDir()
	// The goal is this machine's latency, not the tool's: one no loaded
	// machine misses, so both steps are met whenever the tool works.
	r, err := Bench(context.Background(), BenchConfig{
		Gateway: gatewayCommand, Agents: 50, Interval: 500 * time.Millisecond, Steady: 2 * time.Second,
		Rates: []float64{100, 200}, Step: 2 * time.Second, Goal: testenv.Patience, Downs: []time.Duration{0},
		RejoinWithin: 30 * time.Second, Quiet: 1, ProfileDir: profiles, Out: &progress,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	t.Log("\n" + progress.String())
	if s := r.Steady; s.Errors > 0 || s.Heartbeats == 0 || s.Rate < 0.8*s.Target || s.P99 <= 0 {
		t.Errorf("steady phase: %s", s.Result)
	}
	if r.Steady.Gateway.Core <= 0 || r.Steady.Generator.Core <= 0 || r.Steady.GatewayRSSMB <= 0 {
		t.Errorf("steady phase cost: gateway %s, generator %s, gateway RSS %.0f MB", r.Steady.Gateway, r.Steady.Generator, r.Steady.GatewayRSSMB)
	}
	if len(r.Steps) != 2 || r.Sustained != 200 {
		t.Errorf("steps: %d, sustained %.0f/s, want both steps met", len(r.Steps), r.Sustained)
	}
	if len(r.Storms) != 1 || r.Storms[0].Rejoin.Agents != 50 {
		t.Fatalf("restart: %+v", r.Storms)
	}
	// Errors are expected: an agent whose heartbeat failed while the
	// gateway was down waits out its connection backoff.
	if a := r.Storms[0].AfterRestart; a.Heartbeats == 0 {
		t.Errorf("after the restart: %s", a)
	}
	for _, name := range []string{"gateway-steady.pprof", "gateway-step-200-s-heap.pprof", "gateway-restart-down-0s-goroutines.txt", "gateway.log"} {
		if _, err := os.Stat(filepath.Join(profiles, name)); err != nil {
			t.Error(err)
		}
	}
	var out strings.Builder
	r.WriteMarkdown(&out)
	if !strings.Contains(out.String(), "| steady |") || !strings.Contains(out.String(), "| down 0s |") {
		t.Errorf("report:\n%s", out.String())
	}
}

func TestEnrollStopsAtARefusedToken(t *testing.T) {
	ready := startInProcessGateway(t, 2)
	ca, err := parseCACert(ready.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	tokens := []EnrollmentToken{ready.Tokens[0], {NodeID: ready.Tokens[1].NodeID, Token: "hcenroll_not-the-token"}}
	f, err := Enroll(context.Background(), Config{Gateway: ready.Addr, CA: ca, Tokens: tokens})
	if err == nil {
		f.Close()
		t.Fatal("a fleet with a forged token enrolled")
	}
	if !strings.Contains(err.Error(), ready.Tokens[1].NodeID) || strings.Contains(err.Error(), "hcenroll_") {
		t.Errorf("the error names the node and no token: %v", err)
	}
}

func TestRunMeasuresLatencyOfEveryHeartbeatDue(t *testing.T) {
	ready := startInProcessGateway(t, 20)
	ca, err := parseCACert(ready.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Enroll(context.Background(), Config{Gateway: ready.Addr, CA: ca, Tokens: ready.Tokens})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := f.Run(context.Background(), Load{Rate: 100, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// 20 agents at 100/s: each every 200 ms ±10%, so 4 to 6 each.
	if r.Errors > 0 || r.Heartbeats < 80 || r.Heartbeats > 120 || r.Interval != 200*time.Millisecond {
		t.Errorf("%s", r)
	}
	if !(r.P50 > 0 && r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 <= r.Max) {
		t.Errorf("percentiles out of order: %s", r)
	}
}

func TestPercentileIsTheNearestRank(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var out []time.Duration
		for _, v := range n {
			out = append(out, time.Duration(v)*time.Millisecond)
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, c := range []struct {
		sorted []time.Duration
		p      int
		want   time.Duration
	}{
		{nil, 99, 0},
		{ms(7), 50, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{ms(hundred...), 99, 99 * time.Millisecond},
		{ms(hundred...), 100, 100 * time.Millisecond},
	} {
		if got := percentile(c.sorted, c.p); got != c.want {
			t.Errorf("p%d of %d values = %s, want %s", c.p, len(c.sorted), got, c.want)
		}
	}
}

func TestAStepMeetsTheGoalOnlyAtItsRateWithoutErrors(t *testing.T) {
	ok := Result{Target: 1000, Rate: 990, Heartbeats: 29_700, P99: 5 * time.Millisecond}
	slow, failing, behind := ok, ok, ok
	slow.P99 = 25 * time.Millisecond
	failing.Errors = 1
	behind.Rate = 900
	for name, c := range map[string]struct {
		r    Result
		want bool
	}{"ok": {ok, true}, "slow": {slow, false}, "failing": {failing, false}, "behind": {behind, false}} {
		if got := c.r.Meets(20 * time.Millisecond); got != c.want {
			t.Errorf("%s: Meets = %v", name, got)
		}
	}
}

// startInProcessGateway runs GatewayMain in this process with n agents'
// tokens and returns what it reported.
func startInProcessGateway(t *testing.T, n int) gatewayReady {
	t.Helper()
	dir := t.TempDir() // removed after the gateway stops
	ctx, cancel := context.WithCancel(context.Background())
	stdinR, stdinW := io.Pipe()
	stdoutR, stdoutW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- GatewayMain(ctx, []string{"--data-dir", dir, "--agents", fmt.Sprint(n)}, stdinR, stdoutW, io.Discard)
		stdoutW.Close()
	}()
	t.Cleanup(func() {
		cancel()
		stdinW.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	var ready gatewayReady
	if err := json.NewDecoder(stdoutR).Decode(&ready); err != nil {
		t.Fatal(err)
	}
	return ready
}
