package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/incidents"
	"github.com/hoodcloud/hoodcloud/engine/rollouts"
	"github.com/hoodcloud/hoodcloud/internal/chains"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
)

// Upgrades of real CometBFT validators: a rolling upgrade to the next
// release, where each validator comes back running and signing; a switch
// back at one chain height on every node; and a broken release, which the
// agent rolls back, stopping the rollout at its failure threshold with an
// incident open.
func TestRolloutsUpgradeRealValidators(t *testing.T) {
	withChainClient(t, chains.CometBFT)
	next := testenv.ChainClient(t, chains.CometBFTNext)
	current := testenv.ChainClient(t, chains.CometBFT)
	cfg := testConfig(t, t.TempDir())
	cfg.DevToken = "e2e-admin"
	cfg.ChainsDir = upgradeManifests(t, map[string]string{
		"v0.38.20": manifest("0.38.20", filepath.Join(next, "cometbft")),
		"v0.38.19": manifest("0.38.19", filepath.Join(current, "cometbft")),
		"broken":   manifest("0.38.21-broken", brokenRelease(t)),
	})
	m := MustOpenMain(t, cfg)
	api := signUp(t, m, "rollouts@example.com", 1)
	validators := make([]*rolloutValidator, 3)
	for i := range validators {
		keyFile, address, _ := customerValidatorKey(t)
		// One at a time: a second unpaid subscription would be the first.
		sub := buyCometValidator(t, m, api, keyFile, fmt.Sprintf("v%d", i), fmt.Sprintf("ro%d", i))
		validators[i] = &rolloutValidator{sub: sub, address: address, nodeID: waitRunning(t, m, sub, 3*time.Minute).ID}
	}

	t.Run("rolling", func(t *testing.T) {
		ro := createRollout(t, m, rollouts.Request{ChainProfileID: "cometbft-kvstore",
			Upgrade: rollouts.Upgrade{UpgradeID: "v0.38.20"},
			Plan:    rollouts.Plan{Strategy: engine.StrategyRolling, BatchSize: 1, HealthWait: time.Minute}})
		done := awaitRollout(t, m, ro.ID, engine.RolloutSucceeded)
		if done.Succeeded != 3 || done.Failed != 0 || done.Batches != 3 {
			t.Fatalf("rollout ended %+v; want 3 batches of one, every node upgraded", done)
		}
		for _, v := range validators {
			v.assertRuns(t, m, "0.38.20")
		}
		rollout := eventsOn(t, m, "events.rollout."+ro.ID+".>")
		node := eventsOn(t, m, "events.node."+validators[0].nodeID+".>")
		testenv.WaitFor(t, "the rollout's and a node's events on the EVENTS stream", func() bool {
			return rollout.has("started", "progress", "completed") &&
				node.has("upgrade_started", "upgrade_phase_changed", "upgrade_completed")
		})
	})

	t.Run("at_height", func(t *testing.T) {
		target := 0
		for _, v := range validators {
			target = max(target, v.height(t, m))
		}
		target += 30 // a block every 0.5 s: the rollout starts well before
		ro := createRollout(t, m, rollouts.Request{ChainProfileID: "cometbft-kvstore",
			Upgrade: rollouts.Upgrade{UpgradeID: "v0.38.19", TargetHeight: int64(target)},
			Plan:    rollouts.Plan{Strategy: engine.StrategyAtHeight, HealthWait: time.Minute}})
		awaitRollout(t, m, ro.ID, engine.RolloutSucceeded)
		nodes, err := m.Store.ListRolloutNodes(t.Context(), ro.ID, -1)
		if err != nil || len(nodes) != 3 {
			t.Fatalf("rollout nodes %v (%v); want 3", nodes, err)
		}
		for _, n := range nodes {
			t.Logf("node %s switched at height %d (target %d)", n.NodeID, n.SwitchHeight, target)
			if n.SwitchHeight < int64(target) || n.SwitchHeight > int64(target)+1 {
				t.Errorf("node %s switched at height %d; want %d or the block after", n.NodeID, n.SwitchHeight, target)
			}
		}
		for _, v := range validators {
			v.assertRuns(t, m, "0.38.19")
		}
	})

	t.Run("broken release", func(t *testing.T) {
		ro := createRollout(t, m, rollouts.Request{ChainProfileID: "cometbft-kvstore",
			Upgrade: rollouts.Upgrade{UpgradeID: "broken"},
			Plan:    rollouts.Plan{Strategy: engine.StrategyRolling, BatchSize: 1, FailureThreshold: 1, HealthWait: time.Minute}})
		stopped := awaitRollout(t, m, ro.ID, engine.RolloutPaused)
		if stopped.Failed != 1 || stopped.Succeeded != 0 || !strings.Contains(stopped.Message, "failure threshold") {
			t.Fatalf("rollout stopped as %+v; want one failure and the threshold named", stopped)
		}
		nodes, _ := m.Store.ListRolloutNodes(t.Context(), ro.ID, -1)
		var tried int
		for _, rn := range nodes {
			if rn.Status == engine.RolloutFailed {
				tried++
				n, _ := m.Store.GetNode(t.Context(), rn.NodeID)
				if n.Runtime.LastUpgrade == nil || n.Runtime.LastUpgrade.Outcome != "rolled_back" {
					t.Errorf("node %s shows its last upgrade as %+v; want rolled_back", rn.NodeID, n.Runtime.LastUpgrade)
				}
			} else if rn.Status != engine.RolloutPending {
				t.Errorf("node %s is %s in a rollout stopped after its first batch", rn.NodeID, rn.Status)
			}
		}
		if tried != 1 {
			t.Fatalf("%d nodes tried the broken release; want 1", tried)
		}
		if in, err := m.Store.FindOpenIncident(t.Context(), "", "rollout:"+ro.ID); err != nil || in.Severity != engine.SeverityCritical {
			t.Fatalf("the stopped rollout's incident: %+v, %v; want a critical one open", in, err)
		}
		for _, v := range validators {
			v.assertRuns(t, m, "0.38.19") // the broken node runs its old release again
		}
		if _, err := m.Rollouts.Signal(t.Context(), ro.ID, engine.SignalCancel); err != nil {
			t.Fatal(err)
		}
		awaitRollout(t, m, ro.ID, engine.RolloutCancelled)
	})
}

// subjectLog is the last subject tokens a consumer of the EVENTS stream saw.
type subjectLog struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (l *subjectLog) has(events ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range events {
		if !l.seen[e] {
			return false
		}
	}
	return true
}

// eventsOn consumes the EVENTS stream's messages on filter from the start.
func eventsOn(t *testing.T, m *Main, filter string) *subjectLog {
	l := &subjectLog{seen: map[string]bool{}}
	stop, err := m.Events.Consume(t.Context(), engine.ConsumerSpec{Stream: incidents.EventStreamName,
		Durable: "e2e-" + strings.NewReplacer(".", "-", ">", "all").Replace(filter), FilterSubject: filter},
		func(_ context.Context, msg *engine.Message) engine.Ack {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.seen[msg.Subject[strings.LastIndex(msg.Subject, ".")+1:]] = true
			return engine.AckDone
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return l
}

type rolloutValidator struct {
	sub, nodeID, address string
}

func (v *rolloutValidator) height(t *testing.T, m *Main) int {
	t.Helper()
	n, err := m.Store.GetNode(t.Context(), v.nodeID)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cometStatus(n.Runtime.Ports["rpc"])
	if err != nil {
		t.Fatalf("status of node %s: %v", v.nodeID, err)
	}
	return s.height()
}

// assertRuns waits until the node runs version, back in state running, and
// its chain makes blocks signed with the customer's key.
func (v *rolloutValidator) assertRuns(t *testing.T, m *Main, version string) {
	t.Helper()
	waitFor(t, time.Minute, "node "+v.nodeID+" running "+version, func() bool {
		n, err := m.Store.GetNode(t.Context(), v.nodeID)
		if err != nil || n.State != engine.NodeRunning {
			return false
		}
		s, err := agentStatuses(m.Cache).GetAgentStatus(t.Context(), v.nodeID)
		return err == nil && len(s.Components) == 1 && s.Components[0].Version == version && s.Components[0].Running
	})
	before := v.height(t, m)
	waitFor(t, time.Minute, "node "+v.nodeID+" to make blocks", func() bool { return v.height(t, m) > before })
	n, _ := m.Store.GetNode(t.Context(), v.nodeID)
	s, err := cometStatus(n.Runtime.Ports["rpc"])
	if err != nil || s.Result.ValidatorInfo.Address != v.address {
		t.Fatalf("node %s signs as %q (%v); want the customer's %s", v.nodeID, s.Result.ValidatorInfo.Address, err, v.address)
	}
}

func createRollout(t *testing.T, m *Main, req rollouts.Request) *engine.Rollout {
	t.Helper()
	req.CreatedBy = "usr_test"
	ro, err := m.Rollouts.Create(t.Context(), req)
	if err != nil {
		t.Fatalf("create rollout: %v", err)
	}
	return ro
}

// awaitRollout waits for the rollout to reach status, failing at once if it
// finishes otherwise.
func awaitRollout(t *testing.T, m *Main, id string, want engine.RolloutStatus) *engine.Rollout {
	t.Helper()
	var ro *engine.Rollout
	waitFor(t, 5*time.Minute, "rollout "+id+" "+string(want), func() bool {
		var err error
		if ro, err = m.Store.GetRollout(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		if ro.Status != want && ro.Status.Finished() {
			t.Fatalf("rollout %s ended %s (%s); want %s", id, ro.Status, ro.Message, want)
		}
		return ro.Status == want
	})
	return ro
}

// upgradeManifests is a chains dir holding cometbft-kvstore upgrade
// manifests by id.
func upgradeManifests(t *testing.T, byID map[string]string) string {
	dir := t.TempDir()
	up := filepath.Join(dir, "upgrades", "cometbft-kvstore")
	if err := os.MkdirAll(up, 0o755); err != nil {
		t.Fatal(err)
	}
	for id, doc := range byID {
		if err := os.WriteFile(filepath.Join(up, id+".yaml"), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// manifest upgrades cometbft to version, the program at path.
func manifest(version, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(b)
	return fmt.Sprintf("component: cometbft\nversion: %q\ncompatibility: compatible\nartifact:\n  url: file://%s\n  sha256: %s\n",
		version, path, hex.EncodeToString(sum[:]))
}

// brokenRelease is a program that exits at once, as a bad release does.
func brokenRelease(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "cometbft")
	if err := os.WriteFile(path, []byte("#!/bin/sh\necho 'panic: this release is broken' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}
