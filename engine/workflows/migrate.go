package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/hoodcloud/hoodcloud/engine"
	"go.temporal.io/sdk/workflow"
)

// MigrateInput starts MigrateWorkflow.
type MigrateInput struct {
	NodeID string
}

// MigrateResult is the node's new host and what the backup steps found.
type MigrateResult struct {
	NodeID  string
	OldHost engine.Host
	NewHost engine.Host
	Notes   []string
}

// MigrateWorkflow moves a node to a new host. A failure after the new host
// exists destroys it; in every failure the old host is kept and the node is
// left degraded for an operator. Once the node started on the new host, a
// failure to destroy the old one opens an incident instead.
func MigrateWorkflow(ctx workflow.Context, in MigrateInput) (*MigrateResult, error) {
	res := &MigrateResult{NodeID: in.NodeID}
	if err := run(ctx, quick, nil, acts.SetNodeState, stateChange(in.NodeID, engine.NodeMaintenance, "migrating")); err != nil {
		return nil, fmt.Errorf("mark maintenance: %w", err)
	}
	if workflow.GetVersion(ctx, custodyOrder, workflow.DefaultVersion, 1) >= 1 {
		return res, migrateInCustody(ctx, res)
	}
	var m migration
	err := migrate(ctx, res, &m)
	if err != nil {
		compensateMigration(ctx, in.NodeID, m, err)
		return res, err
	}
	return res, nil
}

// custodyOrder is the version of MigrateWorkflow that moves signing keys
// under leases, with their state and a snapshot of the chain (custody.go,
// migrate_custody.go); runs begun before it replay the older orders.
const custodyOrder = "migrate-custody"

// migration is what compensation must undo: the new host, and the old
// host's agent registration, which the new host's agent replaced when it
// enrolled for the same node.
type migration struct {
	newHost  *ProvisionedHost
	oldAgent *engine.AgentRegistration
	// oldStopped: the chain on the old host was stopped, to be started
	// again there if the move fails.
	oldStopped bool
}

// stopOldFirst is the version of MigrateWorkflow that stops the chain on
// the old host before the new host gets the node's keys: a validator key
// never has two live signers. A host that does not confirm the stop fails
// the migration; runs begun before it replay without the stop.
const stopOldFirst = "migrate-stops-old-first"

// keepOldAgent is the version of MigrateWorkflow that remembers the old
// host's agent registration; runs begun before it replay without.
const keepOldAgent = "migrate-keeps-old-agent"

// incarnation names the run's new host: one per run, so that a retried
// activity finds the same host and a later migration makes another.
func incarnation(ctx workflow.Context) string {
	sum := sha256.Sum256([]byte(workflow.GetInfo(ctx).WorkflowExecution.RunID))
	return "m" + hex.EncodeToString(sum[:5])
}

func migrate(ctx workflow.Context, res *MigrateResult, m *migration) error {
	nodeID := res.NodeID
	if err := run(ctx, quick, &res.OldHost, acts.NodeHost, nodeID); err != nil {
		return fmt.Errorf("read node host: %w", err)
	}
	req := HostRequest{NodeID: nodeID, Provider: res.OldHost.Provider, Region: res.OldHost.Region, InstanceType: res.OldHost.InstanceType, Since: workflow.Now(ctx)}
	if workflow.GetVersion(ctx, keepOldAgent, workflow.DefaultVersion, 1) >= 1 {
		req.Incarnation = incarnation(ctx)
		if err := run(ctx, quick, &m.oldAgent, acts.AgentRegistration, nodeID); err != nil {
			return fmt.Errorf("read the old host's agent: %w", err)
		}
	}
	if workflow.GetVersion(ctx, stopOldFirst, workflow.DefaultVersion, 1) >= 1 {
		stop := CommandRequest{NodeID: nodeID, CommandID: commandID(ctx, "stop-old")}
		if err := run(ctx, waiting, nil, acts.StopNode, stop); err != nil {
			return fmt.Errorf("stop the chain on the old host (it must not sign beside the new one): %w", err)
		}
		m.oldStopped = true
	}
	var ph ProvisionedHost
	if err := run(ctx, hostOp, &ph, acts.ProvisionMigrationHost, req); err != nil {
		return fmt.Errorf("provision new host: %w", err)
	}
	m.newHost, res.NewHost = &ph, ph.Host
	if err := bringUpMigrated(ctx, res, ph); err != nil {
		return err
	}
	// The chain runs on the new host from here on: a later failure must
	// not destroy it, so compensation forgets it.
	*m = migration{}
	// The node runs on the new host now: a stuck old host is an operator's
	// problem, not a reason to undo the move.
	if err := run(ctx, hostOp, nil, acts.DestroyHost, res.OldHost); err != nil {
		res.Notes = append(res.Notes, "destroy old host: "+err.Error())
		_ = run(ctx, quick, nil, acts.OpenIncident, IncidentRequest{
			NodeID: nodeID, DedupeKey: "migration-old-host", Severity: engine.SeverityWarning,
			Summary: summary("old host not destroyed after migration", err),
		})
	}
	if err := run(ctx, quick, nil, acts.UpdateHostInfo, HostUpdate{NodeID: nodeID, Host: ph.Host}); err != nil {
		return fmt.Errorf("update host info: %w", err)
	}
	if err := run(ctx, quick, nil, acts.SetNodeState, stateChange(nodeID, engine.NodeSyncing, "migrated")); err != nil {
		return fmt.Errorf("mark syncing: %w", err)
	}
	return nil
}

// bringUpMigrated readies the new host: agent, configuration, backup (a
// recorded no-op for now), keys and start.
func bringUpMigrated(ctx workflow.Context, res *MigrateResult, ph ProvisionedHost) error {
	nodeID := res.NodeID
	if err := run(ctx, waiting, nil, acts.WaitForAgentReady, AgentWait{NodeID: nodeID, Since: ph.Since}); err != nil {
		return fmt.Errorf("wait for agent: %w", err)
	}
	keysFirst := workflow.GetVersion(ctx, keysBeforeConfigure, workflow.DefaultVersion, 1) >= 1
	if keysFirst {
		if err := deliverNodeKeys(ctx, nodeID); err != nil {
			return err
		}
	}
	if err := awaitCommand(ctx, acts.SendConfigureCommand, nodeID, "configure"); err != nil {
		return err
	}
	for _, step := range []any{acts.CheckBackup, acts.RestoreSnapshot} {
		var c MigrationCheck
		if err := run(ctx, quick, &c, step, nodeID); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		res.Notes = append(res.Notes, c.Note)
	}
	if !keysFirst {
		var n engine.Node
		if err := run(ctx, quick, &n, acts.NodeRecord, nodeID); err != nil {
			return fmt.Errorf("read node: %w", err)
		}
		// Waiting, not quick: InjectKeys now waits for the delivery.
		if err := run(ctx, waiting, nil, acts.InjectKeys, KeysRequest{NodeID: nodeID, SubscriptionID: n.SubscriptionID, ChainProfileID: n.ChainProfileID}); err != nil {
			return fmt.Errorf("inject keys: %w", err)
		}
	}
	return awaitCommand(ctx, acts.StartNode, nodeID, "start")
}

// deliverNodeKeys delivers the keys of the node's subscription to its
// (new) host.
func deliverNodeKeys(ctx workflow.Context, nodeID string) error {
	var n engine.Node
	if err := run(ctx, quick, &n, acts.NodeRecord, nodeID); err != nil {
		return fmt.Errorf("read node: %w", err)
	}
	return injectKeys(ctx, KeysRequest{NodeID: nodeID, SubscriptionID: n.SubscriptionID, ChainProfileID: n.ChainProfileID})
}

// compensateMigration destroys the new host if there is one, gives the
// node back to its old host's agent and leaves the node degraded.
func compensateMigration(ctx workflow.Context, nodeID string, m migration, cause error) {
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	logger := workflow.GetLogger(ctx)
	if m.newHost != nil {
		if err := run(ctx, hostOp, nil, acts.DestroyHost, m.newHost.Host); err != nil {
			logger.Error("destroy new host after failed migration", "node_id", nodeID, "error", err)
		}
		if m.oldAgent != nil {
			if err := run(ctx, quick, nil, acts.RestoreAgentRegistration, *m.oldAgent); err != nil {
				logger.Error("give the node back to its old agent after failed migration", "node_id", nodeID, "error", err)
			}
		}
	}
	if m.oldStopped { // the new host is gone: the old one may sign again
		start := CommandRequest{NodeID: nodeID, CommandID: commandID(ctx, "start-old")}
		if err := run(ctx, waiting, nil, acts.StartNode, start); err != nil {
			logger.Error("start the chain on the old host after failed migration", "node_id", nodeID, "error", err)
		}
	}
	if err := run(ctx, quick, nil, acts.SetNodeState, stateChange(nodeID, engine.NodeDegraded, summary("migration failed", cause))); err != nil {
		logger.Error("mark node degraded after failed migration", "node_id", nodeID, "error", err)
	}
}
