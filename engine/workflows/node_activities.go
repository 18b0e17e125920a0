package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// StateChange moves a node to To.
type StateChange struct {
	NodeID string
	To     engine.NodeState
	Reason string
}

// IncidentRequest opens an incident unless one with the same dedupe key is
// open for the node.
type IncidentRequest struct {
	NodeID    string
	DedupeKey string
	Severity  engine.Severity
	Summary   string
}

// HostUpdate records Host as the node's host.
type HostUpdate struct {
	NodeID string
	Host   engine.Host
}

// SetNodeState moves the node through engine.TransitionNode; a change
// stored but not announced counts as done.
func (a *Activities) SetNodeState(ctx context.Context, c StateChange) error {
	return a.transition(ctx, c.NodeID, c.To, c.Reason)
}

func (a *Activities) transition(ctx context.Context, nodeID string, to engine.NodeState, reason string) error {
	_, err := engine.TransitionNode(ctx, a.Store, a.Events, nodeID, to, reason, a.now())
	if errors.Is(err, engine.ErrNotAnnounced) {
		return nil
	}
	return classify(err)
}

// NodeHost returns the host the node record holds.
func (a *Activities) NodeHost(ctx context.Context, nodeID string) (engine.Host, error) {
	n, err := a.Store.GetNode(ctx, nodeID)
	if err != nil {
		return engine.Host{}, classify(fmt.Errorf("read node %s: %w", nodeID, err))
	}
	return n.Host, nil
}

// DestroyNodeHost destroys the host the node record holds, if any.
func (a *Activities) DestroyNodeHost(ctx context.Context, nodeID string) error {
	h, err := a.NodeHost(ctx, nodeID)
	if err != nil {
		return err
	}
	return a.DestroyHost(ctx, h)
}

// DestroyHost destroys h; one already gone, or never created, is no error.
func (a *Activities) DestroyHost(ctx context.Context, h engine.Host) error {
	if h.ProviderID == "" {
		return nil
	}
	defer keepBeating(ctx)()
	if err := a.Provisioner.DestroyHost(ctx, h); err != nil {
		return classify(fmt.Errorf("destroy host %s/%s: %w", h.Provider, h.ProviderID, err))
	}
	return nil
}

// UpdateHostInfo records the node's new host.
func (a *Activities) UpdateHostInfo(ctx context.Context, u HostUpdate) error {
	return a.recordHost(ctx, u.NodeID, u.Host)
}

// DeleteNodeKeys removes every key of the node, its data key included,
// their signing leases (no host signs with a key that is gone) and the
// snapshots of its chain data a failed move left.
func (a *Activities) DeleteNodeKeys(ctx context.Context, nodeID string) error {
	if err := a.Store.DeleteNodeKeys(ctx, nodeID); err != nil {
		return classify(fmt.Errorf("delete keys of node %s: %w", nodeID, err))
	}
	if err := a.Store.DeleteSigningLeases(ctx, nodeID); err != nil {
		return classify(fmt.Errorf("delete signing leases of node %s: %w", nodeID, err))
	}
	return a.deleteSnapshots(ctx, nodeID)
}

func (a *Activities) deleteSnapshots(ctx context.Context, nodeID string) error {
	if a.Snapshots == nil {
		return nil
	}
	snaps, err := a.Snapshots.List(ctx, nodeID)
	if err != nil {
		return classify(fmt.Errorf("list snapshots of node %s: %w", nodeID, err))
	}
	for _, s := range snaps {
		if err := a.DeleteSnapshot(ctx, SnapshotRef{NodeID: nodeID, SnapshotID: s.SnapshotID}); err != nil {
			return err
		}
	}
	return nil
}

// RevokeAgent ends the node's agent registration; none is no error.
func (a *Activities) RevokeAgent(ctx context.Context, nodeID string) error {
	err := a.Enroller.Revoke(ctx, nodeID)
	if err == nil || engine.IsCode(err, engine.ENotFound) {
		return nil
	}
	return classify(fmt.Errorf("revoke agent of node %s: %w", nodeID, err))
}

// OpenIncident opens the incident; an open one with the same node and
// dedupe key makes it a no-op.
func (a *Activities) OpenIncident(ctx context.Context, r IncidentRequest) error {
	spec := engine.IncidentSpec{NodeID: r.NodeID, DedupeKey: r.DedupeKey, Severity: r.Severity, Summary: r.Summary}
	if _, _, err := engine.RaiseIncident(ctx, a.Store, spec, a.now()); err != nil {
		return classify(err)
	}
	return nil
}

// VerifyCleanup checks a terminated node left nothing behind: no keys, and
// its host gone or going.
func (a *Activities) VerifyCleanup(ctx context.Context, nodeID string) error {
	keys, err := a.Store.ListNodeKeys(ctx, nodeID)
	if err != nil {
		return fmt.Errorf("list keys of node %s: %w", nodeID, err)
	}
	if len(keys) > 0 {
		return engine.Errorf(engine.EConflict, "node %s still has %d keys", nodeID, len(keys))
	}
	h, err := a.NodeHost(ctx, nodeID)
	if err != nil || h.ProviderID == "" {
		return err
	}
	st, err := a.Provisioner.DescribeHost(ctx, h)
	switch {
	case engine.IsCode(err, engine.ENotFound):
		return nil
	case err != nil:
		return fmt.Errorf("describe host of node %s: %w", nodeID, err)
	case st.Phase != engine.HostDeleting:
		return engine.Errorf(engine.EConflict, "host of node %s is still %s", nodeID, st.Phase)
	}
	return nil
}

// ProvisionMigrationHost creates the node's new host without recording it
// (the old one stays the node's until UpdateHostInfo). It refuses, for good,
// when the provisioner hands back the old host: CreateHost is idempotent by
// node, so a provisioner that finds the old host cannot hold two.
func (a *Activities) ProvisionMigrationHost(ctx context.Context, req HostRequest) (*ProvisionedHost, error) {
	old, err := a.NodeHost(ctx, req.NodeID)
	if err != nil {
		return nil, err
	}
	ph, err := a.createHost(ctx, req)
	if err != nil {
		return nil, err
	}
	if old.ProviderID != "" && ph.Host.Provider == old.Provider && ph.Host.ProviderID == old.ProviderID {
		return nil, permanent(engine.EUnsupported, "provisioner %q returned the current host of node %s: it cannot hold a second one", old.Provider, req.NodeID)
	}
	return ph, nil
}

// AgentRegistration returns the node's agent registration, nil if it has
// none.
func (a *Activities) AgentRegistration(ctx context.Context, nodeID string) (*engine.AgentRegistration, error) {
	reg, err := a.Store.GetAgentRegistration(ctx, nodeID)
	if engine.IsCode(err, engine.ENotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, classify(fmt.Errorf("read agent of node %s: %w", nodeID, err))
	}
	return reg, nil
}

// RestoreAgentRegistration makes reg the node's registration again, so the
// agent that holds its certificate is served again: after a failed
// migration, the old host's agent. A revoked node (terminated meanwhile)
// stays revoked.
func (a *Activities) RestoreAgentRegistration(ctx context.Context, reg engine.AgentRegistration) error {
	cur, err := a.Store.GetAgentRegistration(ctx, reg.NodeID)
	if err != nil && !engine.IsCode(err, engine.ENotFound) {
		return classify(fmt.Errorf("read agent of node %s: %w", reg.NodeID, err))
	}
	if err == nil && !cur.RevokedAt.IsZero() {
		return nil
	}
	if err := a.Store.PutAgentRegistration(ctx, &reg); err != nil {
		return classify(fmt.Errorf("restore agent of node %s: %w", reg.NodeID, err))
	}
	return nil
}

// MigrationCheck is what CheckBackup and RestoreSnapshot report.
type MigrationCheck struct {
	NodeID string
	Note   string
}

// CheckBackup would find the newest backup of the node's chain data. There
// is no backup store yet, so it reports that the new host syncs from
// scratch.
func (a *Activities) CheckBackup(ctx context.Context, nodeID string) (*MigrationCheck, error) {
	return &MigrationCheck{NodeID: nodeID, Note: "no backup store configured: the new host syncs from genesis or its chain's own snapshot"}, nil
}

// RestoreSnapshot would restore that backup on the new host; with none it
// records that nothing was restored.
func (a *Activities) RestoreSnapshot(ctx context.Context, nodeID string) (*MigrationCheck, error) {
	return &MigrationCheck{NodeID: nodeID, Note: "nothing restored"}, nil
}

// NodeRecord returns the node record (it holds nothing secret): the
// migration needs its subscription and chain profile.
func (a *Activities) NodeRecord(ctx context.Context, nodeID string) (*engine.Node, error) {
	n, err := a.Store.GetNode(ctx, nodeID)
	if err != nil {
		return nil, classify(fmt.Errorf("read node %s: %w", nodeID, err))
	}
	return n, nil
}

// MigrationStepRecord is one step of a migration to keep on its node.
type MigrationStepRecord struct {
	NodeID      string
	MigrationID string
	Step        string
	Note        string
	At          time.Time
}

// maxMigrationSteps bounds a node's migration record; the oldest steps
// of a long wait go first.
const maxMigrationSteps = 50

// RecordMigrationStep appends the step to the node's last migration, which
// it starts afresh when the step belongs to another one. A step already
// recorded (a retried attempt) is not added twice.
func (a *Activities) RecordMigrationStep(ctx context.Context, r MigrationStepRecord) error {
	return a.updateNode(ctx, r.NodeID, func(n *engine.Node) bool {
		m := &n.LastMigration
		if m.ID != r.MigrationID {
			*m = engine.MigrationRecord{ID: r.MigrationID}
		}
		step := engine.MigrationStep{Step: r.Step, Note: r.Note, At: r.At.UTC()}
		if slices.Contains(m.Steps, step) {
			return false
		}
		m.Steps = append(m.Steps, step)
		if len(m.Steps) > maxMigrationSteps {
			m.Steps = m.Steps[len(m.Steps)-maxMigrationSteps:]
		}
		return true
	})
}
