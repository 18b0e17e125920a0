package workflows

import (
	"errors"
	"fmt"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"go.temporal.io/sdk/workflow"
)

// A migration in custody moves a node without two live signers at any
// instant, and without losing what the signer last signed:
//
//	maintenance → stop the old signer (confirmed by its agent, or by an
//	operator when the old host is unreachable) → capture its state files →
//	snapshot the chain data → release the leases → new host → its agent →
//	restore the snapshot → the gap (time and blocks) → grant the leases to
//	the new host → deliver keys and state → configure → start under the
//	leases → destroy the old host → syncing → running once caught up.
//
// The old signer stops first because the gateway serves one agent per node:
// the new host's agent, once enrolled, supersedes the old one's
// certificate. A snapshot of a stopped chain is also a consistent one.

// ConfirmOldSignerStopped is the signal an operator sends when the old host
// cannot confirm its signer stopped; its value names who confirmed.
const ConfirmOldSignerStopped = "confirm-old-signer-stopped"

// SignerConfirmation is the value of ConfirmOldSignerStopped.
type SignerConfirmation struct {
	By string // the operator's user id
}

// confirmationWait bounds how long a migration waits for an operator.
const confirmationWait = 24 * time.Hour

// blockGapWait bounds the wait for the gap's blocks, within the waiting
// activity's hour.
const blockGapWait = 50 * time.Minute

// caughtUpWait bounds how long a migration waits for the node to catch up
// before leaving it syncing for the health evaluator.
const caughtUpWait = 10 * time.Minute

// custodyMove is what compensation must undo.
type custodyMove struct {
	plan      CustodyPlan
	oldHolder engine.LeaseHolder
	newHolder engine.LeaseHolder
	oldAgent  *engine.AgentRegistration
	newHost   *ProvisionedHost
	snapshot  *SnapshotPlan
	// oldStopped: its agent confirmed the old signer stopped, so it can
	// start it again. releasing and granting: a release of the old
	// holder's leases, a grant to the new one, was asked for (the Store
	// may hold it even if the activity failed). startSent: the new host
	// was told to start, so it may have signed.
	oldStopped bool
	releasing  bool
	releasedAt time.Time
	granting   bool
	granted    []StartLease
	startSent  bool
}

func migrateInCustody(ctx workflow.Context, res *MigrateResult) error {
	m := &custodyMove{}
	err := moveInCustody(ctx, res, m)
	if err != nil {
		compensateCustodyMove(ctx, res, m, err)
		return err
	}
	return nil
}

func moveInCustody(ctx workflow.Context, res *MigrateResult, m *custodyMove) error {
	nodeID := res.NodeID
	note := func(step, text string) {
		res.Notes = append(res.Notes, step+": "+text)
		recordStep(ctx, nodeID, step, text)
	}
	if err := run(ctx, quick, &res.OldHost, acts.NodeHost, nodeID); err != nil {
		return fmt.Errorf("read node host: %w", err)
	}
	if err := run(ctx, quick, &m.oldAgent, acts.AgentRegistration, nodeID); err != nil {
		return fmt.Errorf("read the old host's agent: %w", err)
	}
	if err := run(ctx, quick, &m.plan, acts.PlanCustody, nodeID); err != nil {
		return fmt.Errorf("plan custody: %w", err)
	}
	m.oldHolder = holderOf(m.plan, m.oldAgent, nodeID)
	m.newHolder = engine.LeaseHolder{NodeID: nodeID, Incarnation: incarnation(ctx)}
	note("begin", fmt.Sprintf("moving %d signing key(s) from host %s", len(m.plan.Keys), res.OldHost.ProviderID))

	releaseReason, err := stopOldSigner(ctx, res, m, note)
	if err != nil {
		return err
	}
	if err := saveOldChain(ctx, m, note); err != nil {
		return err
	}
	if err := releaseLeases(ctx, m, m.oldHolder, releaseReason); err != nil {
		return err
	}
	note("release", "leases released: "+releaseReason)
	if !m.oldStopped {
		fenceOldHost(ctx, res, note)
	}
	snapshot := m.snapshot

	req := HostRequest{NodeID: nodeID, Provider: res.OldHost.Provider, Region: res.OldHost.Region, InstanceType: res.OldHost.InstanceType,
		Since: workflow.Now(ctx), Incarnation: m.newHolder.Incarnation}
	var ph ProvisionedHost
	if err := run(ctx, hostOp, &ph, acts.ProvisionMigrationHost, req); err != nil {
		return fmt.Errorf("provision new host: %w", err)
	}
	m.newHost, res.NewHost = &ph, ph.Host
	note("provision", "new host "+ph.Host.ProviderID)
	if err := run(ctx, waiting, nil, acts.WaitForAgentReady, AgentWait{NodeID: nodeID, Since: ph.Since}); err != nil {
		return fmt.Errorf("wait for agent: %w", err)
	}
	if snapshot != nil {
		if err := awaitRequest(ctx, acts.SendRestoreCommand, CommandRequest{NodeID: nodeID, Snapshot: snapshot}, "restore"); err != nil {
			return fmt.Errorf("restore the snapshot: %w", err)
		}
		note("restore", "snapshot "+snapshot.SnapshotID+" restored")
		_ = run(ctx, once, nil, acts.DeleteSnapshot, SnapshotRef{NodeID: nodeID, SnapshotID: snapshot.SnapshotID})
	}
	if err := waitGap(ctx, m, note); err != nil {
		return err
	}
	m.granting = true
	if err := grantLeases(ctx, m, m.newHolder); err != nil {
		return err
	}
	note("grant", leasesText(m.granted))
	if err := bringUpInCustody(ctx, nodeID, m); err != nil {
		return err
	}
	note("start", "the new host signs")
	// The chain runs on the new host from here on: nothing is undone.
	signs := len(m.plan.Keys) > 0
	*m = custodyMove{}
	finishMove(ctx, res, ph, signs, note)
	return nil
}

// fenceOldHost destroys an old host an operator vouched for before anyone
// else may sign: should it come back, it has nothing left to sign with. A
// failure is recorded; the operator's word stands.
func fenceOldHost(ctx workflow.Context, res *MigrateResult, note func(string, string)) {
	if err := run(ctx, hostOp, nil, acts.DestroyHost, res.OldHost); err != nil {
		note("fence", "the old host could not be destroyed: "+err.Error())
		return
	}
	note("fence", "old host destroyed before the new one signs")
}

// holderOf is the node's current lease holder: the recorded one, or, for a
// node whose leases were never granted, the host its agent enrolled on.
func holderOf(plan CustodyPlan, agent *engine.AgentRegistration, nodeID string) engine.LeaseHolder {
	switch {
	case len(plan.Leases) > 0:
		return plan.Leases[0].Holder
	case agent != nil:
		return engine.LeaseHolder{NodeID: nodeID, Incarnation: agent.Incarnation}
	}
	return engine.LeaseHolder{NodeID: nodeID}
}

// stopOldSigner stops the chain on the old host and returns why its leases
// may be released: its agent confirmed, or an operator did.
func stopOldSigner(ctx workflow.Context, res *MigrateResult, m *custodyMove, note func(string, string)) (string, error) {
	stop := CommandRequest{NodeID: res.NodeID, CommandID: commandID(ctx, "stop-old")}
	err := run(ctx, waiting, nil, acts.StopNode, stop)
	if err == nil {
		m.oldStopped = true
		note("stop-old", "the old host's agent confirmed its signer stopped")
		return "stopped", nil
	}
	if len(m.plan.Keys) == 0 {
		return "", fmt.Errorf("stop the chain on the old host: %w", err)
	}
	// It signs: without a confirmed stop the key may be live there. Only
	// an operator who knows the host is gone can let the move go on.
	note("stop-old", "the old host did not confirm: waiting for an operator ("+err.Error()+")")
	_ = run(ctx, quick, nil, acts.OpenIncident, IncidentRequest{
		NodeID: res.NodeID, DedupeKey: "migration-old-signer", Severity: engine.SeverityCritical,
		Summary: summary("migration waits: the old host did not confirm its signer stopped; confirm it is down to go on", err),
	})
	var c SignerConfirmation
	ch := workflow.GetSignalChannel(ctx, ConfirmOldSignerStopped)
	// A confirmation sent before this wait began vouched for nothing the
	// operator could have seen: only one after the incident counts.
	for ch.ReceiveAsync(&c) {
	}
	timedOut := false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(ch, func(r workflow.ReceiveChannel, _ bool) { r.Receive(ctx, &c) })
	sel.AddFuture(workflow.NewTimer(ctx, confirmationWait), func(workflow.Future) { timedOut = true })
	sel.Select(ctx)
	if timedOut {
		return "", fmt.Errorf("no operator confirmed the old signer stopped within %s: %w", confirmationWait, err)
	}
	_ = run(ctx, quick, nil, acts.OpenIncident, IncidentRequest{
		NodeID: res.NodeID, DedupeKey: "migration-signer-confirmed", Severity: engine.SeverityCritical,
		Summary: fmt.Sprintf("operator %s confirmed the old signer of node %s stopped; its leases were released on their word", c.By, res.NodeID),
	})
	note("confirm", "operator "+c.By+" confirmed the old signer stopped")
	return "operator:" + c.By, nil
}

// saveOldChain captures the stopped signer's state files and snapshots its
// chain data. An unreachable old host gives neither. A snapshot that fails
// (an agent older than snapshots) leaves the new host to sync from scratch;
// a state that cannot be captured stops the move: it is what keeps the key
// from signing twice.
func saveOldChain(ctx workflow.Context, m *custodyMove, note func(string, string)) error {
	if !m.oldStopped {
		return nil
	}
	nodeID := m.plan.NodeID
	if len(m.plan.StateFiles) > 0 && len(m.plan.Keys) > 0 {
		req := StateRequest{NodeID: nodeID, StateFiles: m.plan.StateFiles}
		for _, f := range m.plan.StateFiles {
			req.CommandIDs = append(req.CommandIDs, commandID(ctx, "capture-state/"+f.Name))
		}
		if err := run(ctx, waiting, nil, acts.CaptureSigningState, req); err != nil {
			return fmt.Errorf("capture the signer's state: %w", err)
		}
		note("state", fmt.Sprintf("%d state file(s) captured", len(req.StateFiles)))
	}
	snap := &SnapshotPlan{SnapshotID: "s" + incarnation(ctx)[1:], Exclude: m.plan.Exclude}
	if err := awaitRequest(ctx, acts.SendSnapshotCommand, CommandRequest{NodeID: nodeID, Snapshot: snap}, "snapshot"); err != nil {
		note("snapshot", "no snapshot, the new host syncs from scratch: "+err.Error())
		return nil
	}
	m.snapshot = snap
	note("snapshot", "snapshot "+snap.SnapshotID+" taken")
	return nil
}

func releaseLeases(ctx workflow.Context, m *custodyMove, holder engine.LeaseHolder, reason string) error {
	if len(m.plan.Keys) == 0 {
		return nil
	}
	req := LeaseRequest{NodeID: m.plan.NodeID, Holder: holder, Reason: reason}
	for _, l := range m.plan.Leases {
		if l.Holder == holder && l.ReleasedAt.IsZero() {
			req.Keys, req.Epochs = append(req.Keys, l.KeyName), append(req.Epochs, l.Epoch)
		}
	}
	m.releasing = true
	if len(req.Keys) == 0 {
		m.releasedAt = workflow.Now(ctx)
		return nil
	}
	if err := run(ctx, quick, &m.releasedAt, acts.ReleaseSigningLeases, req); err != nil {
		return fmt.Errorf("release the signing leases: %w", err)
	}
	return nil
}

// waitGap lets the profile's gap go by since the release: its time, and
// its blocks as the chain's other nodes see them. With no other node to
// see them, twice the time stands in.
func waitGap(ctx workflow.Context, m *custodyMove, note func(string, string)) error {
	if len(m.plan.Keys) == 0 {
		return nil
	}
	wait := m.plan.Gap
	if m.plan.GapBlocks > 0 {
		var seen bool
		g := BlockGap{NodeID: m.plan.NodeID, ChainProfileID: m.plan.ChainProfileID, Blocks: m.plan.GapBlocks, Timeout: blockGapWait}
		if err := run(ctx, waiting, &seen, acts.WaitForChainBlocks, g); err != nil {
			return fmt.Errorf("wait for %d blocks: %w", m.plan.GapBlocks, err)
		}
		if !seen {
			wait *= 2
			note("gap", fmt.Sprintf("no other node sees the chain: %s stands in for %d blocks", wait, m.plan.GapBlocks))
		}
	}
	if left := m.releasedAt.Add(wait).Sub(workflow.Now(ctx)); left > 0 {
		if err := workflow.Sleep(ctx, left); err != nil {
			return err
		}
	}
	note("gap", fmt.Sprintf("%s since the release", wait))
	return nil
}

func grantLeases(ctx workflow.Context, m *custodyMove, holder engine.LeaseHolder) error {
	if len(m.plan.Keys) == 0 {
		return nil
	}
	req := LeaseRequest{NodeID: m.plan.NodeID, Keys: m.plan.Keys, Holder: holder, Gap: m.plan.Gap}
	if err := run(ctx, quick, &m.granted, acts.GrantSigningLeases, req); err != nil {
		return fmt.Errorf("grant the signing leases: %w", err)
	}
	return nil
}

// bringUpInCustody delivers keys and state, configures and starts the
// chain under the granted leases.
func bringUpInCustody(ctx workflow.Context, nodeID string, m *custodyMove) error {
	if err := deliverNodeKeys(ctx, nodeID); err != nil {
		return err
	}
	if err := awaitCommand(ctx, acts.SendConfigureCommand, nodeID, "configure"); err != nil {
		return err
	}
	m.startSent = true
	return awaitRequest(ctx, acts.StartNode, CommandRequest{NodeID: nodeID, Leases: m.granted}, "start")
}

// finishMove destroys the old host, records the new one and follows the
// node to running once it caught up. An old host left standing with a
// signer's key on it is critical: it must not come back.
func finishMove(ctx workflow.Context, res *MigrateResult, ph ProvisionedHost, signs bool, note func(string, string)) {
	nodeID := res.NodeID
	if err := run(ctx, hostOp, nil, acts.DestroyHost, res.OldHost); err != nil {
		note("destroy-old", err.Error())
		severity, what := engine.SeverityWarning, "old host not destroyed after migration"
		if signs {
			severity, what = engine.SeverityCritical, "old host not destroyed after migration: it still holds the signing key; destroy it before it comes back"
		}
		_ = run(ctx, quick, nil, acts.OpenIncident, IncidentRequest{
			NodeID: nodeID, DedupeKey: "migration-old-host", Severity: severity, Summary: summary(what, err),
		})
	} else {
		note("destroy-old", "old host destroyed")
	}
	_ = run(ctx, quick, nil, acts.UpdateHostInfo, HostUpdate{NodeID: nodeID, Host: ph.Host})
	_ = run(ctx, quick, nil, acts.SetNodeState, stateChange(nodeID, engine.NodeSyncing, "migrated"))
	var caughtUp bool
	_ = run(ctx, waiting, &caughtUp, acts.WaitForCaughtUp, CaughtUp{NodeID: nodeID, Timeout: caughtUpWait})
	if caughtUp {
		_ = run(ctx, quick, nil, acts.SetNodeState, stateChange(nodeID, engine.NodeRunning, "caught up after migration"))
		note("done", "caught up: running")
		return
	}
	note("done", "not caught up yet: left syncing")
}

// compensateCustodyMove undoes a failed move so that each key ends with
// one holder. Once the new host was told to start it may have signed: it
// keeps the key and the node is left to an operator. Before that, the new
// host is destroyed (it never signed), the leases it was granted are
// released and, when its agent had stopped it, the old signer gets them
// back after the gap and starts again. A signer an operator vouched for is
// left stopped: its host is unreachable.
func compensateCustodyMove(ctx workflow.Context, res *MigrateResult, m *custodyMove, cause error) {
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	logger := workflow.GetLogger(ctx)
	nodeID := res.NodeID
	fail := func(step string, err error) {
		logger.Error("migration compensation step failed", "step", step, "node_id", nodeID, "error", err)
	}
	if m.startSent {
		_ = run(ctx, quick, nil, acts.OpenIncident, IncidentRequest{
			NodeID: nodeID, DedupeKey: "migration-new-signer-kept", Severity: engine.SeverityCritical,
			Summary: summary("migration failed after the new host was told to start: it keeps the signing key; the old host stays stopped", cause),
		})
	} else {
		undoNewHost(ctx, m, fail)
		if m.oldStopped {
			if err := restartOldSigner(ctx, m); err != nil {
				fail("start the old signer again", err)
			}
		}
	}
	if m.snapshot != nil {
		_ = run(ctx, once, nil, acts.DeleteSnapshot, SnapshotRef{NodeID: nodeID, SnapshotID: m.snapshot.SnapshotID})
	}
	recordStep(ctx, nodeID, "compensated", cause.Error())
	if err := run(ctx, quick, nil, acts.SetNodeState, stateChange(nodeID, engine.NodeDegraded, summary("migration failed", cause))); err != nil {
		fail("mark node degraded", err)
	}
}

// undoNewHost destroys a new host that never started, gives the node back
// to its old agent and releases what the Store shows the new host holding.
func undoNewHost(ctx workflow.Context, m *custodyMove, fail func(string, error)) {
	if m.newHost != nil {
		if err := run(ctx, hostOp, nil, acts.DestroyHost, m.newHost.Host); err != nil {
			fail("destroy new host", err)
		}
		if m.oldAgent != nil {
			if err := run(ctx, quick, nil, acts.RestoreAgentRegistration, *m.oldAgent); err != nil {
				fail("give the node back to its old agent", err)
			}
		}
	}
	if m.granting {
		req := LeaseRequest{NodeID: m.plan.NodeID, Keys: m.plan.Keys, Holder: m.newHolder, Reason: "never_started"}
		if err := run(ctx, quick, &m.releasedAt, acts.ReleaseHeldLeases, req); err != nil {
			fail("release the new host's leases", err)
		}
	}
}

// restartOldSigner gives the leases back to the old host, a gap after
// any release, and starts its chain under them. A grant to the holder of a
// lease is that lease, so a lease never released comes back as it was.
func restartOldSigner(ctx workflow.Context, m *custodyMove) error {
	var leases []StartLease
	if len(m.plan.Keys) > 0 {
		if m.releasing {
			// The release may be in the Store even if its activity failed:
			// a whole gap from now is never too short.
			if err := workflow.Sleep(ctx, m.plan.Gap); err != nil {
				return err
			}
		}
		req := LeaseRequest{NodeID: m.plan.NodeID, Keys: m.plan.Keys, Holder: m.oldHolder, Gap: m.plan.Gap}
		if err := run(ctx, quick, &leases, acts.GrantSigningLeases, req); err != nil {
			return err
		}
	}
	start := CommandRequest{NodeID: m.plan.NodeID, CommandID: commandID(ctx, "start-old"), Leases: leases}
	return run(ctx, waiting, nil, acts.StartNode, start)
}

func leasesText(ls []StartLease) string {
	if len(ls) == 0 {
		return "no signing keys"
	}
	s := "leases granted:"
	for _, l := range ls {
		s += fmt.Sprintf(" %s@%d", l.KeyName, l.Epoch)
	}
	return s
}

// recordStep keeps a step of the migration on the node, for people; a
// failure to record is logged, never a reason to stop.
func recordStep(ctx workflow.Context, nodeID, step, text string) {
	rec := MigrationStepRecord{NodeID: nodeID, MigrationID: workflow.GetInfo(ctx).WorkflowExecution.RunID, Step: step, Note: text, At: workflow.Now(ctx)}
	if err := run(ctx, quick, nil, acts.RecordMigrationStep, rec); err != nil && !errors.Is(err, workflow.ErrCanceled) {
		workflow.GetLogger(ctx).Warn("migration step not recorded", "node_id", nodeID, "step", step, "error", err)
	}
}
