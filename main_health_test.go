package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/incidents"
	"github.com/hoodcloud/hoodcloud/internal/chains"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
)

// The health evaluator on a real CometBFT validator: a hung chain turns
// the node degraded with an incident, its recovery turns it running with
// the incident resolved, and a height that stays stuck gets one restart.
func TestHealthFollowsARealValidator(t *testing.T) {
	withChainClient(t, chains.CometBFT)
	cfg := testConfig(t, t.TempDir())
	cfg.DevToken = "e2e-admin"
	cfg.HealthInterval = time.Second
	cfg.HealthConfirmations = 2
	cfg.HealthStuckAfter = 12 * time.Second
	hook := incidentReceiver(t, &cfg)
	cfg.LogLevel = slog.LevelDebug
	logs := &testenv.LogBuffer{}
	m := NewMain(cfg, logs)
	if err := m.Open(t.Context()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	waitHealthy(t, "http://"+m.HTTP.Addr())
	api := signUp(t, m, "health@example.com", 1)
	keyFile, _, _ := customerValidatorKey(t)
	node := waitRunning(t, m, buyCometValidator(t, m, api, keyFile, "watched", "health"), 3*time.Minute)
	w := &watchedNode{t: t, m: m, id: node.ID, host: node.Host.Address}
	t.Cleanup(func() {
		if t.Failed() {
			st, err := agentStatuses(m.Cache).GetAgentStatus(context.Background(), node.ID)
			t.Logf("latest status: %+v (%v)\nappliance lines naming the node:\n%s", st, err, linesNaming(logs.String(), node.ID))
		}
	})

	// A hung chain process: its agent cannot sample it, so the node is
	// degraded and an incident opens; once it runs on, both clear.
	hung := w.chainPID()
	w.signal(hung, syscall.SIGSTOP)
	w.awaitState(engine.NodeDegraded)
	opened := w.openPolicyIncidents()
	if len(opened) != 1 {
		t.Fatalf("open policy incidents %v; want exactly one", opened)
	}
	hook.waitFor(t, incidents.DeliveryID(opened[0].ID, engine.IncidentOpened))
	w.signal(hung, syscall.SIGCONT)
	w.awaitState(engine.NodeRunning)
	if got := w.openPolicyIncidents(); len(got) != 0 {
		t.Fatalf("open policy incidents after recovery: %v", got)
	}
	resolved := incidents.DeliveryID(opened[0].ID, engine.IncidentResolved)
	hook.waitFor(t, resolved)

	// A chain that stays hung: one restart, which brings it back.
	w.signal(hung, syscall.SIGSTOP)
	t.Cleanup(func() { syscall.Kill(hung, syscall.SIGCONT) })
	waitFor(t, 2*time.Minute, "the evaluator to restart the stuck chain", func() bool { return w.restarts() == 1 })
	waitFor(t, 2*time.Minute, "a new chain process", func() bool { return w.chainPID() != hung })
	w.awaitState(engine.NodeRunning)
	waitFor(t, time.Minute, "every policy incident resolved", func() bool { return len(w.openPolicyIncidents()) == 0 })
	if got := w.restarts(); got != 1 {
		t.Fatalf("%d restarts; want exactly one for the incident", got)
	}
	var stuck bool
	all, _ := m.Store.ListIncidents(t.Context(), w.id)
	for _, in := range all {
		stuck = stuck || in.DedupeKey == "policy:stuck"
	}
	if !stuck {
		t.Fatalf("no stuck incident among %d; want the restart to answer one", len(all))
	}
	if n := count(hook.deliveries(), resolved); n != 1 {
		t.Errorf("the resolve of %s was notified %d times; want once", opened[0].ID, n)
	}
}

// incidentReceiver points cfg's incident webhook at a receiver of the test's.
func incidentReceiver(t *testing.T, cfg *Config) *signedReceiver {
	secret := "health-webhook-secret-0123456789abcdef"
	secretFile := filepath.Join(t.TempDir(), "incident-webhook.secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hook := &signedReceiver{t: t, secret: []byte(secret)}
	srv := httptest.NewServer(hook)
	t.Cleanup(srv.Close)
	cfg.Incidents.WebhookURL = srv.URL + "/hooks/health"
	cfg.Incidents.WebhookSecretFile = secretFile
	cfg.Incidents.DispatchInterval = 200 * time.Millisecond
	return hook
}

func count(items []string, item string) int {
	n := 0
	for _, i := range items {
		if i == item {
			n++
		}
	}
	return n
}

// watchedNode is one node of the appliance under test, seen from outside.
type watchedNode struct {
	t        *testing.T
	m        *Main
	id, host string
}

func (w *watchedNode) awaitState(want engine.NodeState) {
	w.t.Helper()
	waitFor(w.t, 2*time.Minute, "node "+string(want), func() bool {
		n, err := w.m.Store.GetNode(w.t.Context(), w.id)
		return err == nil && n.State == want
	})
}

func (w *watchedNode) openPolicyIncidents() []*engine.Incident {
	w.t.Helper()
	all, err := w.m.Store.ListIncidents(w.t.Context(), w.id)
	if err != nil {
		w.t.Fatal(err)
	}
	var open []*engine.Incident
	for _, in := range all {
		if in.Open() && strings.HasPrefix(in.DedupeKey, "policy:") {
			open = append(open, in)
		}
	}
	return open
}

func (w *watchedNode) restarts() int {
	w.t.Helper()
	cs, err := w.m.Store.ListCommandsByNode(w.t.Context(), w.id)
	if err != nil {
		w.t.Fatal(err)
	}
	n := 0
	for _, c := range cs {
		if c.Type == engine.CommandRestart {
			n++
		}
	}
	return n
}

// chainPID is the process id of the node's `cometbft node`, or 0.
func (w *watchedNode) chainPID() int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		w.t.Skipf("no /proc to find the chain process in: %v", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		args := bytes.Split(cmdline, []byte{0})
		if err == nil && len(args) > 1 && filepath.Base(string(args[0])) == "cometbft" &&
			string(args[1]) == "node" && bytes.Contains(cmdline, []byte(w.host)) {
			return pid
		}
	}
	return 0
}

func (w *watchedNode) signal(pid int, sig syscall.Signal) {
	w.t.Helper()
	if pid == 0 {
		w.t.Fatal("no chain process to signal")
	}
	if err := syscall.Kill(pid, sig); err != nil {
		w.t.Fatalf("signal %v to the chain: %v", sig, err)
	}
}
