package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/mock"
	"github.com/hoodcloud/hoodcloud/web"
)

// rolloutsFixture is the API with the rollout routes over memory: an
// administrator and a customer signed in.
type rolloutsFixture struct {
	*fixture
	rollouts    *mock.RolloutStore
	workflows   *mock.RolloutWorkflows
	admin       *engine.User
	adminJWT    string
	customerJWT string
}

func newRolloutsFixture(tb testing.TB) *rolloutsFixture {
	tb.Helper()
	svc, st, wf := newRolloutService(tb)
	f := newFixture(tb, func(c *web.Config) { c.Rollouts = svc })
	admin := f.user("root@example.com", true)
	f.user("carol@example.com", false)
	adminJWT, _ := f.login("root@example.com")
	customerJWT, _ := f.login("carol@example.com")
	return &rolloutsFixture{fixture: f, rollouts: st, workflows: wf, admin: admin, adminJWT: adminJWT, customerJWT: customerJWT}
}

// seed records a rollout of geth in status, created at the given minute.
func (f *rolloutsFixture) seed(status engine.RolloutStatus, minute int) *engine.Rollout {
	f.tb.Helper()
	at := time.Date(2031, 5, 4, 10, minute, 0, 0, time.UTC)
	r := &engine.Rollout{ID: fmt.Sprintf("ro_%02d", minute), ChainProfileID: "duo-chain", Component: "geth",
		TargetVersion: "1.16.0", Strategy: engine.StrategyRolling, BatchSize: 1, CanarySize: 1, FailureThreshold: 1,
		Status: status, Spec: engine.UpgradeSpec{Release: engine.Release{Version: "1.16.0"}, Compatibility: engine.Compatible},
		Plan: engine.RolloutPlan{HealthWait: time.Minute, GateFailure: engine.GatePause}, CreatedAt: at, UpdatedAt: at}
	if err := f.rollouts.CreateRollout(context.Background(), r); err != nil {
		f.tb.Fatal(err)
	}
	return r
}

// seedGroup records a group of geth then beacon in status.
func (f *rolloutsFixture) seedGroup(id string, status engine.RolloutStatus, minute int) *engine.RolloutGroup {
	f.tb.Helper()
	at := time.Date(2031, 5, 4, 10, minute, 0, 0, time.UTC)
	g := &engine.RolloutGroup{ID: id, ChainProfileID: "duo-chain", Components: []string{"geth", "beacon"},
		Rollouts: []string{}, FailurePolicy: engine.PolicyRollbackAll, Status: status, CreatedAt: at, UpdatedAt: at}
	if err := f.rollouts.CreateRolloutGroup(context.Background(), g); err != nil {
		f.tb.Fatal(err)
	}
	return g
}

func (f *rolloutsFixture) post(path, body string) request {
	return request{method: "POST", path: path, credential: f.adminJWT, body: body}
}

func TestRolloutRoutesNeedTheAdminScope(t *testing.T) {
	f := newRolloutsFixture(t)
	routes := []request{
		{method: "POST", path: "/api/v1/rollouts", body: `{"chain_profile_id":"duo-chain","upgrade_id":"geth-1.16"}`},
		{method: "GET", path: "/api/v1/rollouts"},
		{method: "GET", path: "/api/v1/rollouts/ro_1"},
		{method: "POST", path: "/api/v1/rollouts/ro_1/pause"},
		{method: "POST", path: "/api/v1/rollout-groups", body: `{"chain_profile_id":"duo-chain","upgrades":[{"upgrade_id":"geth-1.16"}]}`},
		{method: "GET", path: "/api/v1/rollout-groups"},
		{method: "GET", path: "/api/v1/rollout-groups/rg_1"},
		{method: "POST", path: "/api/v1/rollout-groups/rg_1/skip"},
	}
	var tests []nodeScenario
	for _, r := range routes {
		customer := r
		customer.credential = f.customerJWT
		tests = append(tests,
			nodeScenario{r.method + " " + r.path + " without a credential", r, 401, []string{`"code":"unauthorized"`}, nil},
			nodeScenario{r.method + " " + r.path + " as a customer", customer, 403, []string{"admin scope"}, nil})
	}
	runNodeScenarios(t, f, tests)
	if calls := f.workflows.Calls(); len(calls) > 0 {
		t.Fatalf("the workflows were asked %v", calls)
	}
}

func TestCreateRolloutRefusesBadBodies(t *testing.T) {
	f := newRolloutsFixture(t)
	auto := `"chain_profile_id":"duo-chain","upgrade_id":"geth-1.16"`
	manual := `"chain_profile_id":"duo-chain","component":"geth","version":"1.16.0","compatibility":"compatible"`
	tests := []struct{ name, body, want string }{
		{"an empty body", ``, "request body is empty"},
		{"an unknown field", `{` + auto + `,"colour":"red"}`, `unknown field \"colour\"`},
		{"an unknown artifact field", `{` + manual + `,"artifact":{"url":"https://example.com/g.tar.gz","md5":"x"}}`, `unknown field \"md5\"`},
		{"a health wait that is no duration", `{` + auto + `,"health_wait":"soon"}`, `health_wait: must be a duration`},
		{"a health wait of two days", `{` + auto + `,"health_wait":"48h"}`, `health_wait: must be 1s to 24h0m0s`},
		{"a batch size as text", `{` + auto + `,"batch_size":"two"}`, `field \"batch_size\" must be a number`},
		{"a negative batch size", `{` + auto + `,"batch_size":-1}`, `batch_size: must be 1 to`},
		{"an unknown strategy", `{` + auto + `,"strategy":"yolo"}`, `strategy: must be one of`},
		{"at_height without a height", `{` + auto + `,"strategy":"at_height"}`, `target_height: the at_height strategy`},
		{"a height without at_height", `{` + auto + `,"target_height":100}`, `strategy: the upgrade switches at height 100`},
		{"a gate that does not compile", `{` + auto + `,"gates":["height >"]}`, `gates[0]:`},
		{"an unknown gate failure", `{` + auto + `,"gate_failure":"panic"}`, `gate_failure: must be pause or rollback`},
		{"no chain", `{"upgrade_id":"geth-1.16"}`, `chain_profile_id: is required`},
		{"an unknown chain", `{"chain_profile_id":"nope","upgrade_id":"geth-1.16"}`, `chain_profile_id: no chain profile \"nope\"`},
		{"an unknown upgrade", `{"chain_profile_id":"duo-chain","upgrade_id":"geth-9"}`, `upgrade_id: chain duo-chain has no upgrade`},
		{"an upgrade id with manual fields", `{` + auto + `,"component":"geth","version":"1.16.0"}`, `upgrade_id: the manifest gives component, version`},
		{"a manual upgrade of no component of the chain", `{"chain_profile_id":"duo-chain","component":"reth","version":"1.0","compatibility":"compatible"}`, `component: \"reth\" is not a component of chain profile \"duo-chain\"`},
		{"a manual upgrade without a version", `{"chain_profile_id":"duo-chain","component":"geth","compatibility":"compatible"}`, `version: must be`},
		{"a manual upgrade without compatibility", `{"chain_profile_id":"duo-chain","component":"geth","version":"1.16.0"}`, `compatibility: must be compatible or breaking`},
		{"a mode as a number", `{` + manual + `,"config_changes":[{"path":"config.toml","template":"x","mode":384}]}`, `field \"config_changes.mode\" must be a string`},
		{"a mode that is not octal", `{` + manual + `,"config_changes":[{"path":"config.toml","template":"x","mode":"rw-r"}]}`, `config_changes[0].mode: must be octal permission bits`},
		{"a config change outside the data dir", `{` + manual + `,"config_changes":[{"path":"../etc/passwd","template":"x"}]}`, `config_changes[0].path`},
	}
	var scenarios []nodeScenario
	for _, tt := range tests {
		scenarios = append(scenarios, nodeScenario{tt.name, f.post("/api/v1/rollouts", tt.body), 400, []string{`"code":"invalid"`, tt.want}, nil})
	}
	runNodeScenarios(t, f, scenarios)
	if calls := f.workflows.Calls(); len(calls) > 0 {
		t.Fatalf("a refused rollout started workflows: %v", calls)
	}
}

func TestCreateRolloutGroupRefusesBadBodies(t *testing.T) {
	f := newRolloutsFixture(t)
	tests := []struct{ name, body, want string }{
		{"no upgrades", `{"chain_profile_id":"duo-chain"}`, `upgrades: a group needs at least one component upgrade`},
		{"a component twice", `{"chain_profile_id":"duo-chain","upgrades":[{"upgrade_id":"geth-1.16"},{"component":"geth","version":"1.17.0","compatibility":"compatible"}]}`,
			`upgrades[1]: component \"geth\" is upgraded twice`},
		{"an unknown failure policy", `{"chain_profile_id":"duo-chain","upgrades":[{"upgrade_id":"geth-1.16"}],"failure_policy":"pray"}`, `failure_policy: must be`},
		{"an unknown field of an upgrade", `{"chain_profile_id":"duo-chain","upgrades":[{"upgrade_id":"geth-1.16","strategy":"canary"}]}`, `unknown field \"strategy\"`},
		{"a bad mode of the second upgrade", `{"chain_profile_id":"duo-chain","upgrades":[{"upgrade_id":"geth-1.16"},{"component":"beacon","version":"6.0.0","compatibility":"compatible","config_changes":[{"path":"b.toml","template":"x","mode":"999"}]}]}`,
			`upgrades[1].config_changes[0].mode`},
		{"an unknown upgrade", `{"chain_profile_id":"duo-chain","upgrades":[{"upgrade_id":"beacon-9"}]}`, `upgrades[0]: upgrade_id:`},
		{"a bad health wait", `{"chain_profile_id":"duo-chain","upgrades":[{"upgrade_id":"geth-1.16"}],"health_wait":"1 minute"}`, `health_wait: must be a duration`},
	}
	var scenarios []nodeScenario
	for _, tt := range tests {
		scenarios = append(scenarios, nodeScenario{tt.name, f.post("/api/v1/rollout-groups", tt.body), 400, []string{`"code":"invalid"`, tt.want}, nil})
	}
	runNodeScenarios(t, f, scenarios)
	if calls := f.workflows.Calls(); len(calls) > 0 {
		t.Fatalf("a refused group started workflows: %v", calls)
	}
}

func TestCreateRolloutFromAManifest(t *testing.T) {
	f := newRolloutsFixture(t)
	rec := f.do(f.post("/api/v1/rollouts", `{"chain_profile_id":"duo-chain","upgrade_id":"geth-1.16","strategy":"canary",
		"canary_size":2,"batch_size":3,"failure_threshold":2,"health_wait":"2m","gates":["!crash_loop"],"gate_failure":"rollback"}`))
	var out web.RolloutJSON
	f.decode(rec, 201, &out)
	want := web.RolloutJSON{ID: out.ID, ChainProfileID: "duo-chain", Component: "geth", TargetVersion: "1.16.0",
		Strategy: engine.StrategyCanary, BatchSize: 3, CanarySize: 2, FailureThreshold: 2, Status: engine.RolloutPending,
		ManifestHash: "5e1f2a", Message: "waiting to start", CreatedBy: f.admin.ID, CreatedAt: out.CreatedAt, UpdatedAt: out.UpdatedAt,
		Upgrade: web.RolloutUpgradeJSON{UpgradeID: "geth-1.16", Version: "1.16.0", Compatibility: engine.Breaking,
			Artifact: &web.RolloutArtifactJSON{URL: "https://example.com/geth-1.16.tar.gz", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},
		Plan: web.RolloutPlanJSON{HealthWait: "2m0s", Gates: []string{"!crash_loop"}, GateFailure: engine.GateRollback}}
	if !strings.HasPrefix(out.ID, "ro_") || out.CreatedAt.IsZero() || !jsonEqual(t, out, want) {
		t.Fatalf("rollout = %+v\nwant %+v", out, want)
	}
	stored, err := f.rollouts.GetRollout(context.Background(), out.ID)
	if err != nil || stored.CreatedBy != f.admin.ID || stored.Plan.HealthWait != 2*time.Minute {
		t.Fatalf("stored %+v, %v", stored, err)
	}
	if calls := f.workflows.Calls(); !slices.Equal(calls, []mock.RolloutCall{{What: "start", ID: out.ID}}) {
		t.Fatalf("workflows got %v, want the rollout started", calls)
	}
}

func TestCreateRolloutByHand(t *testing.T) {
	f := newRolloutsFixture(t)
	rec := f.do(request{method: "POST", path: "/api/v1/rollouts", credential: bootstrapToken, body: `{"chain_profile_id":"duo-chain",
		"component":"geth","version":"1.16.1","artifact":{"url":"https://example.com/geth-1.16.1.tar.gz",
		"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","binary":"geth-1.16.1/geth"},
		"args":["--syncmode","snap"],"compatibility":"breaking",
		"config_changes":[{"path":"geth/config.toml","template":"[Eth]\nNetworkId = 1\n","mode":"0640"}],
		"strategy":"at_height","target_height":1200}`})
	var out web.RolloutJSON
	f.decode(rec, 201, &out)
	up := out.Upgrade
	if out.Strategy != engine.StrategyAtHeight || out.ManifestHash != "" || up.UpgradeID != "" || up.TargetHeight != 1200 ||
		up.Artifact == nil || up.Artifact.Binary != "geth-1.16.1/geth" || !slices.Equal(up.Args, []string{"--syncmode", "snap"}) ||
		len(up.ConfigChanges) != 1 || up.ConfigChanges[0] != (web.RolloutConfigChangeJSON{Path: "geth/config.toml", Template: "[Eth]\nNetworkId = 1\n", Mode: "0640"}) {
		t.Fatalf("rollout = %+v", out)
	}
	if out.CreatedBy != engine.BootstrapPrincipalID || out.Plan.HealthWait != "5m0s" || out.Plan.GateFailure != engine.GatePause {
		t.Fatalf("created by %q with plan %+v, want the bootstrap administrator and the defaults", out.CreatedBy, out.Plan)
	}
	stored, _ := f.rollouts.GetRollout(context.Background(), out.ID)
	if stored.Spec.ConfigChanges[0].Mode != 0o640 {
		t.Fatalf("stored mode %o, want 640", stored.Spec.ConfigChanges[0].Mode)
	}
}

func TestCreateRolloutGroupRunsComponentsInTheProfilesOrder(t *testing.T) {
	f := newRolloutsFixture(t)
	rec := f.do(f.post("/api/v1/rollout-groups", `{"chain_profile_id":"duo-chain","failure_policy":"partial_ok","batch_size":3,
		"health_wait":"90s","upgrades":[{"upgrade_id":"beacon-6"},{"upgrade_id":"geth-1.16"}]}`))
	var out web.RolloutGroupViewJSON
	f.decode(rec, 201, &out)
	g := out.Group
	if !strings.HasPrefix(g.ID, "rg_") || !slices.Equal(g.Components, []string{"geth", "beacon"}) || g.FailurePolicy != engine.PolicyPartialOK ||
		g.Status != engine.RolloutPending || g.CreatedBy != f.admin.ID || len(g.RolloutIDs) != 2 || len(out.Rollouts) != 2 {
		t.Fatalf("group = %+v", out)
	}
	for i, r := range out.Rollouts {
		if r.ID != g.RolloutIDs[i] || r.Component != g.Components[i] || r.GroupID != g.ID || r.BatchSize != 3 || r.Plan.HealthWait != "1m30s" {
			t.Errorf("rollout %d = %+v, want %s of the group with its plan", i, r, g.Components[i])
		}
	}
	if calls := f.workflows.Calls(); !slices.Equal(calls, []mock.RolloutCall{{What: "start-group", ID: g.ID}}) {
		t.Fatalf("workflows got %v, want the group started", calls)
	}

	rec = f.do(request{method: "GET", path: "/api/v1/rollout-groups/" + g.ID, credential: f.adminJWT})
	var got web.RolloutGroupViewJSON
	f.decode(rec, 200, &got)
	if got.Group.ID != g.ID || len(got.Rollouts) != 2 || got.Rollouts[0].Component != "geth" || got.Rollouts[1].TargetVersion != "6.0.0" {
		t.Fatalf("GET group = %+v", got)
	}
}

func TestRolloutSignalScenarios(t *testing.T) {
	f := newRolloutsFixture(t)
	running, waiting, done := f.seed(engine.RolloutRunning, 1), f.seed(engine.RolloutAwaitingApproval, 2), f.seed(engine.RolloutSucceeded, 3)
	group := f.seedGroup("rg_01", engine.RolloutRunning, 4)
	signal := func(r *engine.Rollout, sig string) string { return "/api/v1/rollouts/" + r.ID + "/" + sig }
	groupSignal := func(sig string) string { return "/api/v1/rollout-groups/" + group.ID + "/" + sig }
	runNodeScenarios(t, f, []nodeScenario{
		{"pause a running rollout", f.post(signal(running, "pause"), ""), 202, []string{`"id":"` + running.ID, `"status":"running"`}, nil},
		{"an empty object is no body", f.post(signal(running, "cancel"), `{}`), 202, nil, nil},
		{"resume a running rollout", f.post(signal(running, "resume"), ""), 409, []string{`"code":"conflict"`, "cannot resume a rollout that is running"}, nil},
		{"approve a canary", f.post(signal(waiting, "approve-canary"), ""), 202, []string{`"status":"awaiting_approval"`}, nil},
		{"approve a rollout that waits for nothing", f.post(signal(running, "approve-canary"), ""), 409, []string{"cannot approve_canary a rollout that is running"}, nil},
		{"force a finished rollout", f.post(signal(done, "force"), ""), 409, []string{"succeeded"}, nil},
		{"roll back a finished rollout", f.post(signal(done, "rollback"), ""), 202, []string{`"status":"succeeded"`}, nil},
		{"an unknown signal", f.post(signal(running, "explode"), ""), 404, []string{`not \"explode\"`}, nil},
		{"skip is for groups", f.post(signal(running, "skip"), ""), 404, []string{"pause, resume, cancel, force, approve-canary or rollback"}, nil},
		{"a body with fields", f.post(signal(running, "pause"), `{"reason":"lunch"}`), 400, []string{`unknown field \"reason\"`}, nil},
		{"an unknown rollout", f.post("/api/v1/rollouts/ro_nope/pause", ""), 404, []string{`"code":"not_found"`}, nil},
		{"an id too long to be one", f.post("/api/v1/rollouts/"+strings.Repeat("x", 300)+"/pause", ""), 404, []string{"no such rollout"}, nil},

		{"skip a component of a group", f.post(groupSignal("skip"), `{"component":"beacon"}`), 202, []string{`"id":"rg_01"`, `"components":["geth","beacon"]`}, nil},
		{"skip the current component", f.post(groupSignal("skip"), ""), 202, nil, nil},
		{"skip a component the group does not upgrade", f.post(groupSignal("skip"), `{"component":"reth"}`), 400, []string{"component: the group upgrades"}, nil},
		{"resume a running group", f.post(groupSignal("resume"), ""), 409, []string{"cannot resume a rollout group that is running"}, nil},
		{"force is for rollouts", f.post(groupSignal("force"), ""), 404, []string{"pause, resume, cancel, rollback or skip"}, nil},
		{"an unknown group", f.post("/api/v1/rollout-groups/rg_nope/pause", ""), 404, []string{`"code":"not_found"`}, nil},
	})
	want := []mock.RolloutCall{
		{What: "signal", ID: running.ID, Signal: engine.SignalPause},
		{What: "signal", ID: running.ID, Signal: engine.SignalCancel},
		{What: "signal", ID: waiting.ID, Signal: engine.SignalApproveCanary},
		{What: "rollback", ID: done.ID},
		{What: "signal-group", ID: group.ID, Signal: engine.SignalSkip, Component: "beacon"},
		{What: "signal-group", ID: group.ID, Signal: engine.SignalSkip},
	}
	if calls := f.workflows.Calls(); !slices.Equal(calls, want) {
		t.Fatalf("workflows got\n%v\nwant\n%v", calls, want)
	}
}

// TestSignalToAStoppedWorkflowIsAConflict: the record says running but no
// workflow runs it (the appliance lost it): 409, not a 500 or a 404.
func TestSignalToAStoppedWorkflowIsAConflict(t *testing.T) {
	f := newRolloutsFixture(t)
	r := f.seed(engine.RolloutRunning, 1)
	f.workflows.NotRunning = true
	runNodeScenarios(t, f, []nodeScenario{
		{"pause", f.post("/api/v1/rollouts/"+r.ID+"/pause", ""), 409, []string{"its workflow is not running"}, nil},
	})
}

func TestGetRolloutShowsItsNodesBatchByBatch(t *testing.T) {
	f := newRolloutsFixture(t)
	r := f.seed(engine.RolloutRunning, 1)
	err := f.rollouts.PutRolloutNodes(context.Background(), []*engine.RolloutNode{
		{RolloutID: r.ID, NodeID: "node_b", BatchIndex: 0, Status: engine.RolloutSucceeded, PreviousVersion: "1.15.11", NewVersion: "1.16.0", SwitchHeight: 1200},
		{RolloutID: r.ID, NodeID: "node_a", BatchIndex: 0, Status: engine.RolloutSucceeded, PreviousVersion: "1.15.11", NewVersion: "1.16.0"},
		{RolloutID: r.ID, NodeID: "node_c", BatchIndex: 1, Status: engine.RolloutFailed, PreviousVersion: "1.15.11", Error: "health wait ran out"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var out web.RolloutViewJSON
	f.decode(f.do(request{method: "GET", path: "/api/v1/rollouts/" + r.ID, credential: f.adminJWT}), 200, &out)
	nodes := func(b web.RolloutBatchJSON) (ids []string) {
		for _, n := range b.Nodes {
			ids = append(ids, n.NodeID)
		}
		return ids
	}
	if out.Rollout.ID != r.ID || len(out.Batches) != 2 || out.Batches[0].Index != 0 || out.Batches[1].Index != 1 ||
		!slices.Equal(nodes(out.Batches[0]), []string{"node_a", "node_b"}) || !slices.Equal(nodes(out.Batches[1]), []string{"node_c"}) {
		t.Fatalf("view = %+v", out)
	}
	if b := out.Batches[0].Nodes[1]; b.SwitchHeight != 1200 || b.PreviousVersion != "1.15.11" || b.NewVersion != "1.16.0" {
		t.Errorf("node_b = %+v", b)
	}
	if c := out.Batches[1].Nodes[0]; c.Status != engine.RolloutFailed || c.Error != "health wait ran out" {
		t.Errorf("node_c = %+v", c)
	}

	fresh := f.seed(engine.RolloutPending, 2)
	runNodeScenarios(t, f, []nodeScenario{
		{"a rollout without nodes yet", request{method: "GET", path: "/api/v1/rollouts/" + fresh.ID, credential: f.adminJWT}, 200, []string{`"batches":[]`}, nil},
		{"an unknown rollout", request{method: "GET", path: "/api/v1/rollouts/ro_nope", credential: f.adminJWT}, 404, []string{`"code":"not_found"`}, nil},
		{"an unknown group", request{method: "GET", path: "/api/v1/rollout-groups/rg_nope", credential: f.adminJWT}, 404, []string{`"code":"not_found"`}, nil},
	})
}

func TestRolloutListPages(t *testing.T) {
	f := newRolloutsFixture(t)
	for minute := range 5 {
		f.seed(engine.RolloutSucceeded, minute)
	}
	f.seedGroup("rg_a", engine.RolloutSucceeded, 1)
	f.seedGroup("rg_b", engine.RolloutRunning, 2)
	list := func(query string) web.RolloutsJSON {
		t.Helper()
		var out web.RolloutsJSON
		f.decode(f.do(request{method: "GET", path: "/api/v1/rollouts" + query, credential: f.adminJWT}), 200, &out)
		return out
	}
	ids := func(p web.RolloutsJSON) (out []string) {
		for _, r := range p.Rollouts {
			out = append(out, r.ID)
		}
		return out
	}
	pages := []struct {
		query, next string
		want        []string
	}{
		{"", "", []string{"ro_04", "ro_03", "ro_02", "ro_01", "ro_00"}},
		{"?limit=2", "ro_03", []string{"ro_04", "ro_03"}},
		{"?limit=2&before=ro_03", "ro_01", []string{"ro_02", "ro_01"}},
		{"?limit=2&before=ro_01", "", []string{"ro_00"}},
	}
	for _, p := range pages {
		if got := list(p.query); !slices.Equal(ids(got), p.want) || got.Next != p.next {
			t.Errorf("GET %s = %v next %q, want %v next %q", p.query, ids(got), got.Next, p.want, p.next)
		}
	}
	runNodeScenarios(t, f, []nodeScenario{
		{"a limit of 0", request{method: "GET", path: "/api/v1/rollouts?limit=0", credential: f.adminJWT}, 400, []string{"limit must be an integer from 1 to 200"}, nil},
		{"a limit over 200", request{method: "GET", path: "/api/v1/rollouts?limit=201", credential: f.adminJWT}, 400, []string{"limit"}, nil},
		{"a cursor that is no rollout", request{method: "GET", path: "/api/v1/rollouts?before=ro_nope", credential: f.adminJWT}, 400, []string{"before must be the id of a rollout"}, nil},
		{"a group as a rollout cursor", request{method: "GET", path: "/api/v1/rollouts?before=rg_a", credential: f.adminJWT}, 400, []string{"before"}, nil},
		{"groups newest first", request{method: "GET", path: "/api/v1/rollout-groups?limit=1", credential: f.adminJWT}, 200,
			[]string{`"rollout_groups":[{"id":"rg_b"`, `"next":"rg_b"`}, []string{"rg_a"}},
		{"the next page of groups", request{method: "GET", path: "/api/v1/rollout-groups?limit=1&before=rg_b", credential: f.adminJWT}, 200,
			[]string{`"id":"rg_a"`}, []string{"rg_b", `"next"`}},
		{"a cursor that is no group", request{method: "GET", path: "/api/v1/rollout-groups?before=ro_01", credential: f.adminJWT}, 400, []string{"before must be the id of a rollout group"}, nil},
	})
}

// jsonEqual compares two values as the API would write them.
func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
