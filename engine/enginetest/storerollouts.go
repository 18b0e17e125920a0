package enginetest

import (
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// stRollout is a rollout with every field set, so a store that drops one
// fails the round trips.
func stRollout() *engine.Rollout {
	return &engine.Rollout{
		ID: engine.NewID("ro"), ChainProfileID: "ethereum-holesky", Component: "geth", TargetVersion: "1.15",
		Strategy: engine.StrategyCanary, BatchSize: 2, CanarySize: 1, FailureThreshold: 1, Status: engine.RolloutPending,
		Batches: 3, ManifestHash: "sha-m",
		Spec: engine.UpgradeSpec{
			UpgradeID: "holesky-1.15",
			Release: engine.Release{
				Version: "1.15", URL: "https://example.com/geth-1.15.tar.gz", SHA256: "9f86d0", Binary: "geth-linux/geth",
				Args: []string{"--datadir", "{{.DataDir}}"},
			},
			Compatibility: engine.Breaking,
			ConfigChanges: []engine.ConfigChange{{Path: "config/app.toml", Template: "pruning = \"{{.Pruning}}\"", Mode: 0o640}},
			TargetHeight:  1_250_000,
		},
		Plan: engine.RolloutPlan{
			HealthWait: 5 * time.Minute, Gates: []string{"node.synced", "node.peers >= 3"}, GateFailure: engine.GateRollback,
		},
		Message: "waiting for the canary", CreatedBy: "user_ops", CreatedAt: stAt(0), UpdatedAt: stAt(0),
	}
}

// stRolloutNode is a node's part with every field set.
func stRolloutNode(rolloutID, nodeID string, batch int) *engine.RolloutNode {
	return &engine.RolloutNode{
		RolloutID: rolloutID, NodeID: nodeID, BatchIndex: batch, Status: engine.RolloutPending,
		PreviousVersion: "1.14",
		Previous:        engine.Release{Version: "1.14", URL: "https://example.com/geth-1.14.tar.gz", SHA256: "3a7bd3", Args: []string{"--syncmode", "snap"}},
		NewVersion:      "1.15", SwitchHeight: 1_250_000, UpdatedAt: stAt(0),
	}
}

// stRolloutGroup is a group with every field set.
func stRolloutGroup() *engine.RolloutGroup {
	return &engine.RolloutGroup{
		ID: engine.NewID("rg"), ChainProfileID: "cosmos-hub", Components: []string{"cosmovisor", "gaiad"},
		FailurePolicy: engine.PolicyRollbackAll, Status: engine.RolloutPending,
		Rollouts: []string{"ro_cosmovisor", "ro_gaiad"}, Current: 1, Skipped: []string{"cosmovisor"},
		Message: "cosmovisor skipped by user_ops", CreatedBy: "user_ops", CreatedAt: stAt(0), UpdatedAt: stAt(0),
	}
}

func testStoreRollouts(t *testing.T, s engine.Store, reopen StoreOpener) {
	t.Run("CreateGetUpdate", func(t *testing.T) {
		r := stRollout()
		stOK(t, s.CreateRollout(t.Context(), r))
		if r.Version != 1 {
			t.Fatalf("Version after create = %d, want 1", r.Version)
		}
		stGot(t, r, func() (any, error) { return s.GetRollout(t.Context(), r.ID) })
		stCode(t, s.CreateRollout(t.Context(), r), engine.EConflict)
		stale := *r
		r.Status, r.CurrentBatch, r.Succeeded, r.Failed = engine.RolloutPaused, 1, 2, 1
		r.Message, r.Forced, r.Batches, r.UpdatedAt = "gate node.synced failed", true, 4, stAt(9)
		r.Spec.Release.Args, r.Spec.ConfigChanges, r.Spec.TargetHeight = nil, nil, 0
		r.Plan.Gates, r.Plan.GateFailure = []string{"node.synced"}, engine.GatePause
		stOK(t, s.UpdateRollout(t.Context(), r))
		if r.Version != 2 {
			t.Fatalf("Version after update = %d, want 2", r.Version)
		}
		stGot(t, r, func() (any, error) { return s.GetRollout(t.Context(), r.ID) })
		stCode(t, s.UpdateRollout(t.Context(), &stale), engine.EConflict)
		stCode(t, s.UpdateRollout(t.Context(), stRollout()), engine.ENotFound)
		_, err := s.GetRollout(t.Context(), "ro_missing")
		stCode(t, err, engine.ENotFound)
	})
	t.Run("NodesListByBatchThenNodeAndFollowReplacement", func(t *testing.T) {
		ro := engine.NewID("ro")
		a, b, c, d := stRolloutNode(ro, "node_a", 0), stRolloutNode(ro, "node_b", 1), stRolloutNode(ro, "node_c", 0), stRolloutNode(ro, "node_d", 1)
		stOK(t, s.PutRolloutNodes(t.Context(), []*engine.RolloutNode{d, c, b, a, stRolloutNode(ro, "node_e", 0)}))
		stOK(t, s.PutRolloutNodes(t.Context(), []*engine.RolloutNode{{RolloutID: "ro_other", NodeID: "node_a", BatchIndex: 0}}))
		e := stRolloutNode(ro, "node_e", 2) // moved to another batch
		e.Status, e.Error, e.UpdatedAt = engine.RolloutRolledBack, "health check failed", stAt(7)
		e.Previous, e.NewVersion, e.SwitchHeight = engine.Release{Version: "1.13"}, "", 0
		stOK(t, s.PutRolloutNodes(t.Context(), []*engine.RolloutNode{e}))
		got, err := s.ListRolloutNodes(t.Context(), ro, -1)
		stOK(t, err)
		stSame(t, got, []*engine.RolloutNode{a, c, b, d, e})
		got, err = s.ListRolloutNodes(t.Context(), ro, 0)
		stOK(t, err)
		stSame(t, got, []*engine.RolloutNode{a, c})
		got, err = s.ListRolloutNodes(t.Context(), ro, 7)
		stOK(t, err)
		stSame(t, got, []*engine.RolloutNode{})
	})
	t.Run("GroupsCreateGetUpdate", func(t *testing.T) {
		g := stRolloutGroup()
		stOK(t, s.CreateRolloutGroup(t.Context(), g))
		if g.Version != 1 {
			t.Fatalf("Version after create = %d, want 1", g.Version)
		}
		stGot(t, g, func() (any, error) { return s.GetRolloutGroup(t.Context(), g.ID) })
		stCode(t, s.CreateRolloutGroup(t.Context(), g), engine.EConflict)
		stale := *g
		g.Status, g.Current, g.Message, g.UpdatedAt = engine.RolloutRunning, 0, "", stAt(3)
		g.Rollouts, g.Skipped = []string{"ro_cosmovisor", "ro_gaiad", "ro_again"}, nil
		stOK(t, s.UpdateRolloutGroup(t.Context(), g))
		stGot(t, g, func() (any, error) { return s.GetRolloutGroup(t.Context(), g.ID) })
		stCode(t, s.UpdateRolloutGroup(t.Context(), &stale), engine.EConflict)
		_, err := s.GetRolloutGroup(t.Context(), "rg_missing")
		stCode(t, err, engine.ENotFound)
		missing := stale
		missing.ID = "rg_missing"
		stCode(t, s.UpdateRolloutGroup(t.Context(), &missing), engine.ENotFound)
	})
	t.Run("ListsAreNewestFirstThenIDDescendingAndPageByCursor", func(t *testing.T) {
		testRolloutLists(t, openStore(t, reopen))
	})
}

// testRolloutLists creates rollouts and groups out of order, three of each
// at the same time (the IDs decide, "ab" before its prefix "a"), then pages
// through them.
func testRolloutLists(t *testing.T, s engine.Store) {
	var rollouts []*engine.Rollout
	var groups []*engine.RolloutGroup
	for _, c := range []struct {
		id  string
		sec int
	}{{"a", 20}, {"old", 5}, {"b", 20}, {"mid", 10}, {"ab", 20}} {
		r, g := stRollout(), stRolloutGroup()
		r.ID, g.ID = "ro_"+c.id, "rg_"+c.id
		r.CreatedAt, g.CreatedAt = stAt(c.sec), stAt(c.sec)
		stOK(t, s.CreateRollout(t.Context(), r))
		stOK(t, s.CreateRolloutGroup(t.Context(), g))
		rollouts, groups = append(rollouts, r), append(groups, g)
	}
	// Updates move nothing: the order is by creation.
	rollouts[1].Status, rollouts[1].UpdatedAt = engine.RolloutRunning, stAt(99)
	stOK(t, s.UpdateRollout(t.Context(), rollouts[1]))
	groups[1].Status, groups[1].UpdatedAt = engine.RolloutRunning, stAt(99)
	stOK(t, s.UpdateRolloutGroup(t.Context(), groups[1]))

	newest := []int{2, 4, 0, 3, 1} // b, ab, a, mid, old
	wantRollouts := make([]*engine.Rollout, len(newest))
	wantGroups := make([]*engine.RolloutGroup, len(newest))
	for i, k := range newest {
		wantRollouts[i], wantGroups[i] = rollouts[k], groups[k]
	}
	stGot(t, wantRollouts, func() (any, error) { return s.ListRollouts(t.Context(), "", 0) })
	stGot(t, wantGroups, func() (any, error) { return s.ListRolloutGroups(t.Context(), "", 0) })
	for _, limit := range []int{1, 2, 4} {
		stSameIDs(t, stPages(t, limit, func(before string, limit int) ([]*engine.Rollout, error) {
			return s.ListRollouts(t.Context(), before, limit)
		}), stIDs(wantRollouts))
		stSameIDs(t, stPages(t, limit, func(before string, limit int) ([]*engine.RolloutGroup, error) {
			return s.ListRolloutGroups(t.Context(), before, limit)
		}), stIDs(wantGroups))
	}
	_, err := s.ListRollouts(t.Context(), "ro_missing", 2)
	stCode(t, err, engine.EInvalid)
	_, err = s.ListRolloutGroups(t.Context(), "rg_missing", 2)
	stCode(t, err, engine.EInvalid)
}
