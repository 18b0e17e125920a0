package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// quickUpgrades gives cfg a process runtime of its own whose upgrades
// count after half a second up.
func quickUpgrades(cfg AgentConfig) AgentConfig {
	cfg.ChainDir = filepath.Join(cfg.DataDir, "chain")
	cfg.Runtime = NewProcessRuntime(ProcessConfig{Dir: cfg.ChainDir, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		StopTimeout: 5 * time.Second, UpgradeCheck: 500 * time.Millisecond})
	return cfg
}

func TestAnArtifactUpgradeOutlivesAnAgentRestart(t *testing.T) {
	e := newTestEnv(t)
	cfg := quickUpgrades(e.agentConfig(t, "node_a", nil))
	ra := startAgent(t, cfg)
	artifacts := t.TempDir()
	configure, err := agentv1.MarshalPayload(&agentv1.ConfigurePayload{ChainProfileId: "sim",
		Components: []*agentv1.Component{{Name: "node", Version: "1.0", Artifact: publish(t, artifacts, "node-1.0", releaseScript("1.0")),
			Args: []string{"--home={{.DataDir}}"}}}})
	if err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandConfigure, configure), engine.CommandCompleted, 10*time.Second)
	e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandStart, nil), engine.CommandCompleted, 10*time.Second)
	h := &releaseHost{dir: cfg.ChainDir}
	home := "--home=" + absDir(cfg.ChainDir)
	h.waitRunning(t, "1.0 "+home)

	v2 := publish(t, artifacts, "node-2.0", releaseScript("2.0"))
	up := e.enqueue(t, "node_a", engine.CommandUpgrade, upgradePayload(t, &agentv1.UpgradePayload{
		Component: "node", Version: "2.0", PreviousVersion: "1.0", Artifact: v2}))
	if o := outcomeOf(t, e.waitStatus(t, up, engine.CommandCompleted, 10*time.Second).Result); o.InstalledVersion != "2.0" {
		t.Fatalf("outcome = %v", o)
	}
	h.waitRunning(t, "2.0 "+home)

	// The agent restarts with a runtime that knows nothing, and nothing
	// left to download from: the saved configuration runs 2.0 as installed.
	ra.stop(t)
	os.RemoveAll(artifacts)
	h.restartMarker(t)
	startAgent(t, quickUpgrades(restarted(cfg)))
	h.waitRunning(t, "2.0 "+home)
	state, err := loadRuntimeState(filepath.Join(cfg.DataDir, runtimeStateFile))
	if err != nil {
		t.Fatal(err)
	}
	saved, _, err := state.configuration()
	if err != nil {
		t.Fatal(err)
	}
	if c := saved.GetComponents()[0]; c.GetVersion() != "2.0" || c.GetArtifact().GetSha256() != v2.Sha256 || !slices.Equal(c.GetArgs(), []string{"--home={{.DataDir}}"}) {
		t.Errorf("saved component = %v", c)
	}
	e.waitAgentStatus(t, "the heartbeat to report 2.0", func(st *engine.AgentStatus) bool {
		return len(st.Components) == 1 && st.Components[0].Version == "2.0" && st.Components[0].Running
	})
}

func TestAnUpgradeAtAHeightFollowsTheChainsOwnMetrics(t *testing.T) {
	e := newTestEnv(t)
	e.createNode(t, "node_a")
	cfg := quickUpgrades(meteredAgentConfig(e, t))
	// Progress is checked every 100 ms and stalls after half a second
	// without a change: the chain makes a block every 50 ms.
	cfg.ProgressCheckInterval, cfg.StallChecks = 100*time.Millisecond, 5
	startAgent(t, cfg)
	sim := meteredSimnode()
	e.configureAndStart(t, sim)
	st := e.waitAgentStatus(t, "a height", func(st *engine.AgentStatus) bool { return st.BlockHeight > 0 })

	target := st.BlockHeight + 40 // two seconds on
	up := e.enqueue(t, "node_a", engine.CommandUpgrade, upgradePayload(t, &agentv1.UpgradePayload{
		Component: "sim", Version: "v1.1.0-sim", TargetHeight: target, Args: append(slices.Clone(sim.Args), "-test.count=1")}))
	var seen, stalled []string // the messages while waiting; those marked stalled
	var done *engine.Command
	waitFor(t, 15*time.Second, "the upgrade to finish", func() bool {
		if p, err := e.cache.GetProgress(context.Background(), up); err == nil && strings.Contains(p.Message, " of ") {
			if !slices.Contains(seen, p.Message) {
				seen = append(seen, p.Message)
			}
			if p.Stalled && !slices.Contains(stalled, p.Message) {
				stalled = append(stalled, p.Message)
			}
		}
		done = e.command(t, up)
		return done.Status == engine.CommandCompleted || done.Status == engine.CommandFailed
	})
	if done.Status != engine.CommandCompleted {
		t.Fatalf("upgrade %s: %s", done.Status, done.Error)
	}
	if o := outcomeOf(t, done.Result); o.SwitchHeight < target {
		t.Errorf("switched at %d, before the target %d", o.SwitchHeight, target)
	}
	// Stopping and starting the node may outlast this test's tight stall
	// window, but waiting for the chain never does.
	if len(stalled) > 0 {
		t.Errorf("marked stalled while the chain advanced: %q of %q", stalled, seen)
	}
	if len(seen) < 2 || !strings.HasPrefix(seen[0], "staged v1.1.0-sim; chain at ") || !strings.HasSuffix(seen[0], fmt.Sprintf(" of %d", target)) {
		t.Errorf("progress while waiting = %q; want the height moving towards %d", seen, target)
	}
}
