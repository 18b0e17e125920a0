package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/mock"
	"github.com/hoodcloud/hoodcloud/engine/profile"
	"github.com/hoodcloud/hoodcloud/engine/rollouts"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"github.com/hoodcloud/hoodcloud/web"
)

const rolloutAdminToken = "hcadmin_rollout-cli-test"

// rolloutCLIChain has two components, for groups.
const rolloutCLIChain = `id: duo-chain
name: Duo Chain
version: "1"
family: ethereum
components:
  - name: geth
    version: "1.15.11"
    url: https://example.com/geth.tar.gz
    sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
  - name: beacon
    version: "5.0.0"
    url: https://example.com/beacon.tar.gz
    sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
node_types:
  - name: full
    durations:
      1m: {provider: hetzner, region: fsn1, instance_type: cpx41}
`

// rolloutAPI is the appliance's API with the rollout routes over memory,
// as `hoodcloud rollout` meets it.
type rolloutAPI struct {
	url       string
	store     *mock.RolloutStore
	workflows *mock.RolloutWorkflows
	env       map[string]string
	// onGet runs before the API answers the nth GET of a rollout's or
	// group's page (from 1).
	onGet func(n int)
	gets  atomic.Int32
}

func newRolloutAPI(t *testing.T) *rolloutAPI {
	t.Helper()
	st := bolt.New(filepath.Join(t.TempDir(), "hoodcloud.db"))
	if err := st.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	id, err := engine.NewIdentity(engine.IdentityConfig{Users: st, BootstrapTokens: []string{rolloutAdminToken}})
	if err != nil {
		t.Fatal(err)
	}
	chains, err := profile.LoadCatalog(profile.Source{Name: "test", FS: fstest.MapFS{"duo-chain.yaml": {Data: []byte(rolloutCLIChain)}}})
	if err != nil {
		t.Fatal(err)
	}
	a := &rolloutAPI{store: mock.NewRolloutStore(), workflows: &mock.RolloutWorkflows{}}
	svc := &rollouts.Service{Store: a.store, Workflows: a.workflows, Chains: chains.Get, Manifests: rolloutCLIManifest}
	h := web.New(web.Config{Identity: id, Rollouts: svc}).Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Count(r.URL.Path, "/") == 4 && a.onGet != nil {
			a.onGet(int(a.gets.Add(1)))
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	a.url = srv.URL
	a.env = map[string]string{"HOODCLOUD_ADMIN_TOKEN": rolloutAdminToken}
	return a
}

func rolloutCLIManifest(chainID, upgradeID string) (rollouts.Manifest, error) {
	switch chainID + "/" + upgradeID {
	case "duo-chain/geth-1.16":
		return rollouts.Manifest{Component: "geth", Hash: "5e1f2a", Spec: engine.UpgradeSpec{UpgradeID: upgradeID,
			Release: engine.Release{Version: "1.16.0"}, Compatibility: engine.Breaking}}, nil
	case "duo-chain/beacon-6":
		return rollouts.Manifest{Component: "beacon", Hash: "77aa01", Spec: engine.UpgradeSpec{UpgradeID: upgradeID,
			Release: engine.Release{Version: "6.0.0"}, Compatibility: engine.Compatible}}, nil
	}
	return rollouts.Manifest{}, engine.Errorf(engine.ENotFound, "chain %s has no upgrade %q", chainID, upgradeID)
}

// cli runs `hoodcloud rollout ARGS --api-url <the API>`.
func (a *rolloutAPI) cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runCLI(t, a.env, append(append([]string{"rollout"}, args...), "--api-url", a.url)...)
}

// seed records a rollout of geth in status, created at the given minute.
func (a *rolloutAPI) seed(t *testing.T, id string, status engine.RolloutStatus, minute int) *engine.Rollout {
	t.Helper()
	at := time.Date(2031, 5, 4, 10, minute, 0, 0, time.UTC)
	r := &engine.Rollout{ID: id, ChainProfileID: "duo-chain", Component: "geth", TargetVersion: "1.16.0",
		Strategy: engine.StrategyRolling, BatchSize: 1, CanarySize: 1, FailureThreshold: 1, Status: status, Batches: 3,
		Spec: engine.UpgradeSpec{Release: engine.Release{Version: "1.16.0"}, Compatibility: engine.Compatible},
		Plan: engine.RolloutPlan{HealthWait: time.Minute, GateFailure: engine.GatePause}, CreatedAt: at, UpdatedAt: at}
	if err := a.store.CreateRollout(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

// advance rewrites a rollout's progress, as its workflow would.
func (a *rolloutAPI) advance(t *testing.T, id string, status engine.RolloutStatus, batch, succeeded int) {
	ctx := context.Background()
	r, err := a.store.GetRollout(ctx, id)
	if err == nil {
		r.Status, r.CurrentBatch, r.Succeeded = status, batch, succeeded
		err = a.store.UpdateRollout(ctx, r)
	}
	if err != nil {
		t.Error(err)
	}
}

func TestRolloutCreateFromTheCommandLine(t *testing.T) {
	a := newRolloutAPI(t)
	code, out, errOut := a.cli(t, "create", "--chain", "duo-chain", "--upgrade-id", "geth-1.16", "--strategy", "canary",
		"--batch-size", "3", "--health-wait", "2m", "--gate", "!crash_loop && peers > 1", "--gate-failure", "rollback")
	if code != 0 || !strings.Contains(out, "rollout ro_") || !strings.Contains(out, "geth to 1.16.0 on duo-chain, canary in batches of 3") {
		t.Fatalf("create = %d %q %q", code, out, errOut)
	}
	ros, _ := a.store.ListRollouts(context.Background(), "", 10)
	if len(ros) != 1 || ros[0].Plan.HealthWait != 2*time.Minute || !slices.Equal(ros[0].Plan.Gates, []string{"!crash_loop && peers > 1"}) ||
		ros[0].CreatedBy != engine.BootstrapPrincipalID {
		t.Fatalf("stored %+v", ros)
	}

	code, out, errOut = a.cli(t, "create", "--chain", "duo-chain", "--component", "beacon", "--version", "6.1.0",
		"--compatibility", "compatible", "--artifact-url", "https://example.com/beacon-6.1.0.tar.gz",
		"--artifact-sha256", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "--output", "json")
	var manual web.RolloutJSON
	if code != 0 || json.Unmarshal([]byte(out), &manual) != nil || manual.Upgrade.UpgradeID != "" || manual.Upgrade.Artifact == nil ||
		manual.Upgrade.Artifact.URL != "https://example.com/beacon-6.1.0.tar.gz" || manual.TargetVersion != "6.1.0" {
		t.Fatalf("manual create = %d %q %q", code, out, errOut)
	}

	code, out, errOut = a.cli(t, "create", "--group", "--chain", "duo-chain", "--upgrade-id", "beacon-6", "--upgrade-id", "geth-1.16",
		"--failure-policy", "partial_ok")
	if code != 0 || !strings.Contains(out, "rollout group rg_") || !strings.Contains(out, "geth to 1.16.0, then beacon to 6.0.0 (failure policy partial_ok)") {
		t.Fatalf("group create = %d %q %q", code, out, errOut)
	}
}

func TestRolloutCommandsPrintTheAPIsRefusal(t *testing.T) {
	a := newRolloutAPI(t)
	a.seed(t, "ro_01", engine.RolloutRunning, 1)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"an unknown upgrade", []string{"create", "--chain", "duo-chain", "--upgrade-id", "geth-9"}, `400 Bad Request: upgrade_id: chain duo-chain has no upgrade "geth-9"`},
		{"a bad gate", []string{"create", "--chain", "duo-chain", "--upgrade-id", "geth-1.16", "--gate", "peers >"}, "400 Bad Request: gates[0]"},
		{"resume a running rollout", []string{"resume", "ro_01"}, "409 Conflict: cannot resume a rollout that is running"},
		{"an unknown rollout", []string{"status", "ro_nope"}, "404 Not Found"},
		{"a cursor of nothing", []string{"list", "--before", "ro_nope"}, "400 Bad Request: before must be the id of a rollout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := a.cli(t, tt.args...)
			if code != 1 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 1 with %q", code, errOut, tt.want)
			}
		})
	}
}

func TestRolloutListAndStatus(t *testing.T) {
	a := newRolloutAPI(t)
	a.seed(t, "ro_01", engine.RolloutSucceeded, 1)
	a.seed(t, "ro_02", engine.RolloutRunning, 2)
	err := a.store.PutRolloutNodes(context.Background(), []*engine.RolloutNode{
		{RolloutID: "ro_02", NodeID: "node_a", BatchIndex: 0, Status: engine.RolloutSucceeded, PreviousVersion: "1.15.11", NewVersion: "1.16.0"},
		{RolloutID: "ro_02", NodeID: "node_b", BatchIndex: 1, Status: engine.RolloutFailed, PreviousVersion: "1.15.11", Error: "health wait ran out"},
	})
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ := a.cli(t, "list", "--limit", "1")
	if code != 0 || !strings.Contains(out, "ro_02") || strings.Contains(out, "ro_01") || !strings.Contains(out, "more: hoodcloud rollout list --before ro_02") {
		t.Fatalf("list = %d %q", code, out)
	}
	code, out, _ = a.cli(t, "list", "--before", "ro_02", "--output", "json")
	var page web.RolloutsJSON
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Rollouts) != 1 || page.Rollouts[0].ID != "ro_01" || page.Next != "" {
		t.Fatalf("list --before = %d %q", code, out)
	}
	code, out, _ = a.cli(t, "status", "ro_02")
	for _, want := range []string{"rollout ro_02: geth to 1.16.0 on duo-chain", "running, batch 1 of 3", "BATCH", "node_a", "node_b", "health wait ran out"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status = %d %q, lacks %q", code, out, want)
		}
	}
	code, out, _ = a.cli(t, "list", "--groups")
	if code != 0 || !strings.Contains(out, "no rollout groups") {
		t.Fatalf("list --groups = %d %q", code, out)
	}
}

// TestRolloutStatusWatchPrintsEachChangeUntilFinished: four looks at a
// rollout that moves twice print three views and stop at the end.
func TestRolloutStatusWatchPrintsEachChangeUntilFinished(t *testing.T) {
	a := newRolloutAPI(t)
	a.seed(t, "ro_01", engine.RolloutRunning, 1)
	a.onGet = func(n int) {
		switch n {
		case 2:
			a.advance(t, "ro_01", engine.RolloutRunning, 1, 1)
		case 4:
			a.advance(t, "ro_01", engine.RolloutSucceeded, 2, 3)
		}
	}
	code, out, errOut := a.cli(t, "status", "--watch", "--interval", "100ms", "ro_01")
	if code != 0 {
		t.Fatalf("watch = %d %q", code, errOut)
	}
	if n := strings.Count(out, "rollout ro_01:"); n != 3 || a.gets.Load() != 4 {
		t.Fatalf("%d views in %d looks, want 3 in 4:\n%s", n, a.gets.Load(), out)
	}
	for _, want := range []string{"running, batch 1 of 3, 0 succeeded", "running, batch 2 of 3, 1 succeeded", "succeeded, batch 3 of 3, 3 succeeded"} {
		if !strings.Contains(out, want) {
			t.Errorf("the watch lacks %q:\n%s", want, out)
		}
	}
}

func TestRolloutSignalsFromTheCommandLine(t *testing.T) {
	a := newRolloutAPI(t)
	a.seed(t, "ro_01", engine.RolloutRunning, 1)
	a.seed(t, "ro_02", engine.RolloutAwaitingApproval, 2)
	g := &engine.RolloutGroup{ID: "rg_01", ChainProfileID: "duo-chain", Components: []string{"geth", "beacon"},
		FailurePolicy: engine.PolicyRollbackAll, Status: engine.RolloutRunning}
	if err := a.store.CreateRolloutGroup(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"pause", "ro_01"}, {"force", "ro_01"}, {"approve", "ro_02"}, {"skip", "--component", "beacon", "rg_01"}, {"cancel", "rg_01"}} {
		if code, out, errOut := a.cli(t, args...); code != 0 || !strings.Contains(out, "sent (it was ") {
			t.Fatalf("%v = %d %q %q", args, code, out, errOut)
		}
	}
	want := []mock.RolloutCall{
		{What: "signal", ID: "ro_01", Signal: engine.SignalPause},
		{What: "signal", ID: "ro_01", Signal: engine.SignalForce},
		{What: "signal", ID: "ro_02", Signal: engine.SignalApproveCanary},
		{What: "signal-group", ID: "rg_01", Signal: engine.SignalSkip, Component: "beacon"},
		{What: "signal-group", ID: "rg_01", Signal: engine.SignalCancel},
	}
	if got := a.workflows.Calls(); !slices.Equal(got, want) {
		t.Fatalf("workflows got %v, want %v", got, want)
	}
}

func TestRolloutBadInput(t *testing.T) {
	token := map[string]string{"HOODCLOUD_ADMIN_TOKEN": rolloutAdminToken}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no command", token, nil, "usage: hoodcloud rollout"},
		{"an unknown command", token, []string{"promote"}, `rollout: unknown command "promote"`},
		{"create without a chain", token, []string{"create", "--upgrade-id", "geth-1.16"}, "--chain is required"},
		{"create with nothing to install", token, []string{"create", "--chain", "duo-chain"}, "give --upgrade-id, or --component, --version and --compatibility"},
		{"an upgrade id and manual flags", token, []string{"create", "--chain", "duo-chain", "--upgrade-id", "geth-1.16", "--version", "1.16.1"}, "leave out --version"},
		{"a manual upgrade without compatibility", token, []string{"create", "--chain", "duo-chain", "--component", "geth", "--version", "1.16.1"}, "needs --component, --version and --compatibility"},
		{"two upgrades without --group", token, []string{"create", "--chain", "duo-chain", "--upgrade-id", "a", "--upgrade-id", "b"}, "several with --group"},
		{"a group without upgrades", token, []string{"create", "--group", "--chain", "duo-chain"}, "give --upgrade-id once per component"},
		{"a group with manual flags", token, []string{"create", "--group", "--chain", "duo-chain", "--upgrade-id", "a", "--component", "geth"}, "not --component"},
		{"a failure policy without --group", token, []string{"create", "--chain", "duo-chain", "--upgrade-id", "a", "--failure-policy", "manual"}, "--failure-policy is for --group"},
		{"a health wait that is no duration", token, []string{"create", "--chain", "duo-chain", "--upgrade-id", "a", "--health-wait", "soon"}, `invalid value "soon" for flag -health-wait`},
		{"a negative batch size", token, []string{"create", "--chain", "duo-chain", "--upgrade-id", "a", "--batch-size", "-2"}, "must not be negative"},
		{"create with an argument", token, []string{"create", "--chain", "duo-chain", "--upgrade-id", "a", "extra"}, `takes flags only, not "extra"`},
		{"an unknown output", token, []string{"list", "--output", "yaml"}, "output: want one of text, json"},
		{"status of nothing", token, []string{"status"}, "want exactly one rollout or rollout group ID"},
		{"a watch interval of nothing", token, []string{"status", "--watch", "--interval", "0s", "ro_1"}, "--interval must be at least 100ms"},
		{"list with an argument", token, []string{"list", "ro_1"}, "takes flags only"},
		{"pause of nothing", token, []string{"pause"}, "want exactly one rollout or rollout group ID"},
		{"approve a group", token, []string{"approve", "rg_1"}, "rg_1 is a rollout group; approve is for rollouts"},
		{"skip a rollout", token, []string{"skip", "ro_1"}, "ro_1 is no rollout group ID"},
		{"a component on pause", token, []string{"pause", "--component", "geth", "ro_1"}, "flag provided but not defined: -component"},
		{"no token", nil, []string{"list"}, "set HOODCLOUD_ADMIN_TOKEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, tt.env, append([]string{"rollout"}, tt.args...)...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 mentioning %q", code, errOut, tt.want)
			}
		})
	}
}
