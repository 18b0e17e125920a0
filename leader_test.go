package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
)

// switchedLeader leads under epoch while on is set, and counts how often
// it was asked.
type switchedLeader struct {
	on    atomic.Bool
	asked atomic.Int32
	epoch int64
}

func (l *switchedLeader) Leading() (int64, bool) {
	l.asked.Add(1)
	return l.epoch, l.on.Load()
}

func TestLeaderOnlyWorkRunsOnTheLeaderFencedByItsEpochAndCounted(t *testing.T) {
	m := NewMain(defaultConfig(), io.Discard)
	leader := &switchedLeader{epoch: 7}
	m.Leader = leader
	m.registerLeaderMetrics()

	var epochs []int64 // written by the loop's goroutine only
	var deposedAt atomic.Int32
	work := func(ctx context.Context) {
		epoch, fenced := engine.LeaderEpochFrom(ctx)
		if !fenced {
			t.Error("leader-only work ran without an epoch")
		}
		epochs = append(epochs, epoch)
		engine.FencedWriteDone(ctx, nil)
		engine.FencedWriteDone(ctx, engine.ErrStaleLeader)
		if len(epochs) == 1 { // deposed after its first turn
			deposedAt.Store(leader.asked.Load())
			leader.on.Store(false)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); m.whileLeading(ctx, time.Millisecond, work) }()

	testenv.WaitFor(t, "a few turns as a standby", func() bool { return leader.asked.Load() >= 5 })
	leader.on.Store(true)
	testenv.WaitFor(t, "a turn as the leader, then a few as a standby again", func() bool {
		at := deposedAt.Load()
		return at > 0 && leader.asked.Load() >= at+5
	})
	cancel()
	<-done
	if len(epochs) != 1 || epochs[0] != 7 {
		t.Fatalf("work ran under epochs %v, want once, under the leader's 7", epochs)
	}
	written, refused := fencedWriteCount(t, m, "written"), fencedWriteCount(t, m, "refused")
	if written != 1 || refused != 1 {
		t.Fatalf("fenced writes counted: %v written, %v refused; want the one of each the work made", written, refused)
	}
}

func TestTheSoleLeaderOfAnEmbeddedStoreShowsItsRole(t *testing.T) {
	m := MustOpenMain(t, testConfig(t, t.TempDir()))
	base := "http://" + m.HTTP.Addr()
	var ready struct {
		Components []struct{ Name, Status, Detail string }
	}
	decodeJSON(t, getText(t, base+"/readyz"), &ready)
	var leader string
	for _, c := range ready.Components {
		if c.Name == "leader" {
			leader = c.Status + " " + c.Detail
		}
	}
	if leader != "healthy leader (epoch 1)" {
		t.Fatalf("/readyz leader component = %q, want healthy, leading under epoch 1", leader)
	}
	metrics := getText(t, base+"/metrics")
	for _, want := range []string{"\nhoodcloud_is_leader 1\n", "\nhealth_evaluator_is_leader 1\n",
		`hoodcloud_leader_fenced_writes_total{outcome="refused"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
}

func TestLeaderTimingsThatCannotHoldAreRefused(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--leader-lease", "4s"}, "leader-lease: must exceed twice leader-probe-interval"},
		{[]string{"--leader-probe-interval", "0s"}, "leader-probe-interval: must be positive"},
		{[]string{"--subscription-expiry-interval", "0s"}, "subscription-expiry-interval: must be positive"},
		{[]string{"--reap-interval", "-1m"}, "reap-interval: must not be negative"},
	} {
		code, _, errOut := runCLI(t, nil, append([]string{"serve"}, tt.args...)...)
		if code != 2 || !strings.Contains(errOut, tt.want) {
			t.Errorf("serve %v = %d %q, want exit 2 saying %q", tt.args, code, errOut, tt.want)
		}
	}
}

func getText(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testenv.Patience)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func decodeJSON(t *testing.T, body string, out any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), out); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
}

// fencedWriteCount reads hoodcloud_leader_fenced_writes_total{outcome}.
func fencedWriteCount(t *testing.T, m *Main, outcome string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			if f.GetName() == "hoodcloud_leader_fenced_writes_total" && s.GetLabel()[0].GetValue() == outcome {
				return s.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no hoodcloud_leader_fenced_writes_total{outcome=%q}", outcome)
	return 0
}
