package postgres_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/hoodcloud/hoodcloud/store/postgres"
)

// TestRolloutsWrittenBefore0011ReadWithEmptyDetails: rows written before
// the rollout details read back with those details empty, and list.
func TestRolloutsWrittenBefore0011ReadWithEmptyDetails(t *testing.T) {
	dbURL := testenv.PostgresDatabase(t)
	if _, err := postgres.NewMigratorFS(dbURL, migrationsBefore(t, "0011_")).Up(t.Context()); err != nil {
		t.Fatalf("migrate to 0010: %v", err)
	}
	at := time.Date(2031, 5, 4, 10, 0, 0, 0, time.UTC)
	execSQL(t, dbURL, `INSERT INTO rollouts (id, chain_profile_id, component, target_version, strategy, batch_size,
		canary_size, failure_threshold, status, current_batch, succeeded, failed, manifest_hash, created_at, updated_at, version)
		VALUES ('ro_old', 'ethereum-holesky', 'geth', '1.15', 'rolling', 2, 0, 1, 'running', 1, 2, 0, 'sha-m', $1, $1, 3)`, at)
	execSQL(t, dbURL, `INSERT INTO rollout_nodes (rollout_id, node_id, batch_index, status, previous_version, error, updated_at)
		VALUES ('ro_old', 'node_a', 0, 'succeeded', '1.14', '', $1)`, at)
	execSQL(t, dbURL, `INSERT INTO rollout_groups (id, chain_profile_id, components, failure_policy, status, created_at, updated_at, version)
		VALUES ('rg_old', 'cosmos-hub', '{cosmovisor,gaiad}', 'manual', 'running', $1, $1, 1)`, at)
	if _, err := postgres.NewMigrator(dbURL).Up(t.Context()); err != nil {
		t.Fatalf("migrate up: %v", err)
	}
	s := mustOpen(t, dbURL)
	defer s.Close()

	rs, err := s.ListRollouts(t.Context(), "", 0)
	if err != nil || len(rs) != 1 {
		t.Fatalf("rollouts = %v, %v; want ro_old", rs, err)
	}
	sameRecord(t, rs[0], &engine.Rollout{
		ID: "ro_old", ChainProfileID: "ethereum-holesky", Component: "geth", TargetVersion: "1.15", Strategy: "rolling",
		BatchSize: 2, FailureThreshold: 1, Status: engine.RolloutRunning, CurrentBatch: 1, Succeeded: 2, ManifestHash: "sha-m",
		CreatedAt: at, UpdatedAt: at, Version: 3,
	})
	ns, err := s.ListRolloutNodes(t.Context(), "ro_old", -1)
	if err != nil || len(ns) != 1 {
		t.Fatalf("rollout nodes = %v, %v; want node_a", ns, err)
	}
	sameRecord(t, ns[0], &engine.RolloutNode{
		RolloutID: "ro_old", NodeID: "node_a", Status: engine.RolloutSucceeded, PreviousVersion: "1.14", UpdatedAt: at,
	})
	gs, err := s.ListRolloutGroups(t.Context(), "", 0)
	if err != nil || len(gs) != 1 {
		t.Fatalf("groups = %v, %v; want rg_old", gs, err)
	}
	sameRecord(t, gs[0], &engine.RolloutGroup{
		ID: "rg_old", ChainProfileID: "cosmos-hub", Components: []string{"cosmovisor", "gaiad"}, FailurePolicy: "manual",
		Status: engine.RolloutRunning, CreatedAt: at, UpdatedAt: at, Version: 1,
	})
}

func sameRecord(t *testing.T, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read\n %+v\nwant\n %+v", got, want)
	}
}
