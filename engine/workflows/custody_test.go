package workflows

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
)

// signerProfileYAML is the test chain run from the PATH, its program
// signing with priv_validator, which a state file protects.
var signerProfileYAML = strings.Replace(testProfileYAML,
	"    url: https://example.com/appd.tar.gz\n    sha256: \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n",
	"    url: path:appd\n    signs_with: [priv_validator]\n", 1) +
	"custody:\n  gap: 5s\n  state_files:\n    - {name: sign_state, path: data/state.json}\n"

type pathPrograms struct{}

func (pathPrograms) Find(name string) (string, string, error) {
	return "file:///usr/bin/" + name, strings.Repeat("ab", 32), nil
}

func TestOnlyARealSignerIsPlannedInCustody(t *testing.T) {
	f := newFixture(t)
	p, err := profile.Parse("test/signer.yaml", []byte(signerProfileYAML))
	if err != nil {
		t.Fatal(err)
	}
	f.acts.Chains = func(string) (*profile.ChainProfile, error) { return p, nil }
	node := func(pinned bool) string {
		now := time.Now().UTC().Truncate(time.Microsecond)
		n := &engine.Node{ID: engine.NewID("node"), SubscriptionID: engine.NewID("sub"), OwnerID: "user_1", ChainProfileID: p.ID,
			NodeType: "full", State: engine.NodeRunning, CreatedAt: now, UpdatedAt: now}
		if pinned {
			n.Runtime.Artifacts = map[string]string{"appd": strings.Repeat("ab", 32)}
		}
		if err := f.store.CreateNode(context.Background(), n); err != nil {
			t.Fatal(err)
		}
		return n.ID
	}
	tests := []struct {
		name   string
		sim    *Simulation
		pinned bool
		signs  bool
	}{
		{"on a cloud host the profile's program signs", nil, false, true},
		{"the simulated chain stands in: nothing signs", &Simulation{Artifacts: pathPrograms{}}, false, false},
		{"the real program runs on a local host, pinned: it signs", &Simulation{Artifacts: pathPrograms{}}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.acts.Simulation = tt.sim
			plan, err := f.acts.PlanCustody(context.Background(), node(tt.pinned))
			if err != nil {
				t.Fatal(err)
			}
			signs := slices.Equal(plan.Keys, []string{"priv_validator"}) && len(plan.StateFiles) == 1
			if signs != tt.signs || (!tt.signs && (len(plan.Keys) > 0 || len(plan.StateFiles) > 0)) {
				t.Fatalf("plan keys %v, state %v; want signing %v", plan.Keys, plan.StateFiles, tt.signs)
			}
			if plan.Gap != 5*time.Second || !slices.Contains(plan.Exclude, "config/priv_validator_key.json") || !slices.Contains(plan.Exclude, "data/state.json") {
				t.Errorf("plan = %+v: want the profile's gap, and the key and state files kept out of snapshots", plan)
			}
		})
	}
}
