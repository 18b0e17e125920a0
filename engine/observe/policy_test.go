package observe

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// healthy is a node whose agent reports a caught-up chain with peers.
func healthy() *Facts {
	return &Facts{
		HasHeartbeat: true, Health: engine.AppHealthHealthy, Height: 100, Highest: 100, Peers: 4, Sampled: true,
		State: engine.NodeRunning, StuckAfter: 5 * time.Minute, Metrics: map[string]float64{"p2p_peers": 4},
	}
}

func TestDefaultPolicies(t *testing.T) {
	p, err := Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		change  func(f *Facts)
		verdict Verdict
		rule    string
	}{
		{"caught up", func(*Facts) {}, VerdictOK, "caught-up"},
		{"three missed heartbeats", func(f *Facts) { *f = Facts{MissedHeartbeats: 3, State: engine.NodeRunning} }, VerdictCritical, "no-heartbeat"},
		{"two missed heartbeats are not yet critical", func(f *Facts) { *f = Facts{MissedHeartbeats: 2} }, VerdictUnknown, ""},
		{"the agent says critical", func(f *Facts) { f.Health = engine.AppHealthCritical }, VerdictCritical, "app-critical"},
		{"crash loop", func(f *Facts) { f.CrashLoop = true }, VerdictDegraded, "crash-loop"},
		{"height stalled while not syncing", func(f *Facts) { f.StalledFor = 5 * time.Minute }, VerdictDegraded, "stuck"},
		{"height stalled while syncing is not stuck", func(f *Facts) { f.StalledFor, f.Syncing, f.Highest = time.Hour, true, 200 }, VerdictSyncing, "behind"},
		{"no peers", func(f *Facts) { f.Peers = 0 }, VerdictDegraded, "no-peers"},
		{"the agent says degraded", func(f *Facts) { f.Health = engine.AppHealthDegraded }, VerdictDegraded, "app-degraded"},
		{"degraded while syncing is syncing", func(f *Facts) { f.Health, f.Syncing = engine.AppHealthDegraded, true }, VerdictSyncing, "behind"},
		{"no peers before the first sample says nothing", func(f *Facts) { f.Peers, f.Sampled = 0, false }, VerdictOK, "caught-up"},
		{"syncing and behind", func(f *Facts) { f.Syncing, f.Highest = true, 150 }, VerdictSyncing, "behind"},
		{"worst first: stuck without peers is critical once heartbeats stop", func(f *Facts) {
			f.StalledFor, f.Peers, f.MissedHeartbeats = time.Hour, 0, 5
		}, VerdictCritical, "no-heartbeat"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := healthy()
			c.change(f)
			got := p.Evaluate(f)
			rule := ""
			if got.Rule != nil {
				rule = got.Rule.Name
			}
			if got.Verdict != c.verdict || rule != c.rule {
				t.Errorf("verdict %s by %q; want %s by %q (errors %v)", got.Verdict, rule, c.verdict, c.rule, got.Errors)
			}
		})
	}
}

func TestAProfileRuleReplacesAddsOrDisablesByName(t *testing.T) {
	p, err := Compile([]RuleSpec{
		{Name: "no-peers", Disabled: true},
		{Name: "stuck", Verdict: VerdictCritical, When: "stalled_for > duration('1m')"},
		{Name: "lagging", Verdict: VerdictDegraded, When: `has_metric(m, "chain_head_lag") && metric(m, "chain_head_lag") > 32.0`},
	})
	if err != nil {
		t.Fatal(err)
	}
	f := healthy()
	f.Peers = 0
	if got := p.Evaluate(f); got.Verdict != VerdictOK {
		t.Errorf("no peers with no-peers disabled: %s", got.Verdict)
	}
	f.StalledFor = 2 * time.Minute
	if got := p.Evaluate(f); got.Verdict != VerdictCritical || got.Rule.Name != "stuck" {
		t.Errorf("the profile's stuck rule: %s", got.Verdict)
	}
	f = healthy()
	f.Metrics["chain_head_lag"] = 40
	if got := p.Evaluate(f); got.Verdict != VerdictDegraded || got.Rule.Name != "lagging" {
		t.Errorf("a rule over a metric: %s", got.Verdict)
	}
}

func TestARuleThatFailsToEvaluateIsReportedAndSkipped(t *testing.T) {
	p, err := Compile([]RuleSpec{{Name: "lagging", Verdict: VerdictCritical, When: `metric(m, "chain_head_lag") > 32.0`}})
	if err != nil {
		t.Fatal(err)
	}
	got := p.Evaluate(healthy())
	if got.Verdict != VerdictOK || len(got.Errors) != 1 || !strings.Contains(got.Errors[0].Error(), "no metric chain_head_lag") {
		t.Errorf("got %s, errors %v; want ok and the missing metric named", got.Verdict, got.Errors)
	}
}

func TestBadPoliciesAreRefusedNamingRuleAndField(t *testing.T) {
	cases := []struct {
		spec RuleSpec
		want string
	}{
		{RuleSpec{Name: "x", Verdict: VerdictDegraded, When: "peers =="}, `rule "x": when:`},
		{RuleSpec{Name: "x", Verdict: VerdictDegraded, When: "peers + 1"}, "must be a bool expression"},
		{RuleSpec{Name: "x", Verdict: VerdictDegraded, When: "undeclared_thing"}, "undeclared reference"},
		{RuleSpec{Name: "x", Verdict: "bad", When: "true"}, "verdict: must be"},
		{RuleSpec{Name: "x", Verdict: VerdictUnknown, When: "true"}, "verdict: must be"},
		{RuleSpec{Name: "Bad Name", Verdict: VerdictOK, When: "true"}, "name: must match"},
		{RuleSpec{Name: "x", Verdict: VerdictOK, When: "true", Remedy: RemedyRestart}, "remedy: only"},
		{RuleSpec{Name: "x", Verdict: VerdictDegraded, When: "true", Remedy: "reboot"}, "remedy: must be"},
		{RuleSpec{Name: "x", Verdict: VerdictDegraded, When: ""}, "when: is required"},
		{RuleSpec{Name: "x", Verdict: VerdictDegraded, When: `metric(m, "a{job=\"x\"}") > 1.0`}, "is not a metric name"},
		{RuleSpec{Name: "x", Verdict: VerdictDegraded, When: `metric(m, health) > 1.0`}, "string literal"},
		{RuleSpec{Name: "x", Verdict: VerdictDegraded,
			When: "m.all(k, m.all(k2, m.all(k3, metric(m, 'a') > 0.0)))"}, "more than the limit"},
	}
	for _, c := range cases {
		_, err := Compile([]RuleSpec{c.spec})
		if !engine.IsCode(err, engine.EInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v; want EInvalid containing %q", c.spec, err, c.want)
		}
	}
}

func TestTheCostLimitStopsARuleAtRunTime(t *testing.T) {
	// Within the static estimate (a map of at most maxMetrics), the run-time
	// limit still holds for a larger map than estimated.
	p, err := Compile([]RuleSpec{{Name: "wide", Verdict: VerdictCritical, When: "m.exists(k, k.startsWith('zz'))"}})
	if err != nil {
		t.Fatal(err)
	}
	f := healthy()
	f.Metrics = map[string]float64{}
	for i := range 20 * maxMetrics {
		f.Metrics[fmt.Sprintf("metric_%d", i)] = 1
	}
	got := p.Evaluate(f)
	if len(got.Errors) == 0 || !strings.Contains(got.Errors[0].Error(), "cost") {
		t.Errorf("errors %v; want the cost limit", got.Errors)
	}
}
