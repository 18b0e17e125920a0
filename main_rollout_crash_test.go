//go:build linux

package main

import (
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// TestRolloutSurvivesAKilledAppliance kills the appliance (kill -9) in the
// middle of a rolling upgrade of simulated nodes, starts it again on the
// same data dir and ports, and expects the rollout to finish with every
// node upgraded exactly once: one UPGRADE command per node, each node on
// the new version. HOODCLOUD_ROLLOUT_CRASH_NODES sets how many nodes.
func TestRolloutSurvivesAKilledAppliance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the appliance twice and provisions many nodes")
	}
	requireLoopbackRange(t)
	n := envCount(t, "HOODCLOUD_ROLLOUT_CRASH_NODES", 50, 500)
	dir := t.TempDir()
	args := crashServeArgs(t, dir)
	base := "http://" + flagValue(args, "--http-addr")
	t.Cleanup(func() { reapProcessesOf(t, dir) })

	first := startAppliance(t, args)
	customers := signUpCustomers(t, base, n)
	pub := publicKey(t, base)
	admin := newCrashClient(base, crashDevToken, 0)
	subs := make([]string, n)
	parallel(t, n, func(i int) error {
		sub, payment, err := customers[i].buyValidator(pub, i)
		subs[i] = sub
		if err != nil {
			return err
		}
		return admin.do("POST", "/payments/"+payment+"/mark-paid", "", 202, nil)
	})
	if !poll(t, crashRunningLimit(n), time.Second, func() bool {
		return countState(listAllNodes(t, customers), "running") == n
	}) {
		t.Fatalf("not every node running: %s", stateCounts(listAllNodes(t, customers)))
	}

	var ro rolloutPage
	create := `{"chain_profile_id":"cosmos-demo","component":"cosmovisor","version":"1.7.2","compatibility":"compatible",
		"strategy":"rolling","batch_size":5,"failure_threshold":1,"health_wait":"1m"}`
	if err := admin.do("POST", "/rollouts", create, 201, &ro); err != nil {
		t.Fatal(err)
	}
	// Kill once a batch is done and before the last one is.
	if !poll(t, 5*time.Minute, 100*time.Millisecond, func() bool {
		ro = readRollout(t, admin, ro.ID)
		return ro.Succeeded >= 5 && ro.Status == "running"
	}) {
		t.Fatalf("rollout did not get past its first batch: %+v", ro)
	}
	first.kill(t)
	t.Logf("killed with the rollout at %d of %d nodes, batch %d", ro.Succeeded, n, ro.CurrentBatch+1)
	if ro.Succeeded == n {
		t.Fatal("every node was upgraded before the kill: the crash tested nothing")
	}

	second := startAppliance(t, args)
	if !poll(t, 5*time.Minute, time.Second, func() bool {
		ro = readRollout(t, admin, ro.ID)
		return engine.RolloutStatus(ro.Status).Finished()
	}) {
		t.Fatalf("rollout not finished after the restart: %+v", ro)
	}
	if ro.Status != "succeeded" || ro.Succeeded != n || ro.Failed != 0 {
		t.Fatalf("rollout ended %+v; want every one of %d nodes upgraded", ro, n)
	}
	second.stop(t)
	assertUpgradedOnce(t, dir, subs, "1.7.2")
}

type rolloutPage struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	CurrentBatch int    `json:"current_batch"`
	Succeeded    int    `json:"succeeded"`
	Failed       int    `json:"failed"`
	Message      string `json:"message"`
}

func readRollout(t *testing.T, admin *crashClient, id string) rolloutPage {
	t.Helper()
	var view struct{ Rollout rolloutPage }
	if err := admin.do("GET", "/rollouts/"+id, "", 200, &view); err != nil {
		t.Fatal(err)
	}
	return view.Rollout
}

// assertUpgradedOnce reads the stopped appliance's store: each node runs
// version and got exactly one UPGRADE command.
func assertUpgradedOnce(t *testing.T, dir string, subs []string, version string) {
	t.Helper()
	cfg := defaultConfig()
	cfg.DataDir = dir
	cfg.LogLevel = 8
	m := NewMain(cfg, testWriter{t})
	if err := m.OpenState(t.Context()); err != nil {
		t.Fatalf("open the state: %v", err)
	}
	defer m.Close()
	for _, sub := range subs {
		node, err := m.Store.GetNodeBySubscription(t.Context(), sub)
		if err != nil {
			t.Fatal(err)
		}
		cmds, err := m.Store.ListCommandsByNode(t.Context(), node.ID)
		if err != nil {
			t.Fatal(err)
		}
		upgrades := 0
		for _, c := range cmds {
			if c.Type == engine.CommandUpgrade {
				upgrades++
			}
		}
		got := node.Runtime.Releases["cosmovisor"].Version
		if upgrades != 1 || got != version {
			t.Errorf("node %s: %d UPGRADE commands, release %q; want one, %s", node.ID, upgrades, got, version)
		}
	}
}
