package workflows

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
)

// Custody keeps a node's signing keys to one live signer each: a signer
// starts only under a lease the Store grants (engine.SigningLease), and a
// lease passes to another host only after its holder was confirmed stopped
// and the profile's gap went by. START carries the leases' fencing epochs,
// which the agent and the gateway check.

// CustodyPlan is what a migration needs to know of a node's keys.
type CustodyPlan struct {
	NodeID         string
	ChainProfileID string
	// Keys are the keys the node's components sign with; their leases.
	Keys   []string
	Leases []engine.SigningLease
	// StateFiles go with the keys; Exclude is what a snapshot leaves out:
	// every key file and state file.
	StateFiles []profile.StateFile
	Exclude    []string
	Gap        time.Duration
	GapBlocks  int
}

// StartLease is the protocol's SigningLease: START's payload carries one
// per key the chain signs with.
type StartLease struct {
	KeyName string `json:"key_name"`
	Epoch   uint64 `json:"epoch"`
}

// LeaseRequest grants or releases the leases of a node's keys.
type LeaseRequest struct {
	NodeID string
	Keys   []string
	Holder engine.LeaseHolder
	// Gap, for a grant: the least time since the last release.
	Gap time.Duration
	// Epochs and Reason, for a release: the epoch of each key released.
	Epochs []uint64
	Reason string
}

// PlanCustody reads the node's signing keys, their leases and the
// profile's custody rules.
func (a *Activities) PlanCustody(ctx context.Context, nodeID string) (*CustodyPlan, error) {
	n, err := a.Store.GetNode(ctx, nodeID)
	if err != nil {
		return nil, classify(fmt.Errorf("read node %s: %w", nodeID, err))
	}
	p, err := a.Chains(n.ChainProfileID)
	if err != nil {
		return nil, classify(fmt.Errorf("chain profile of node %s: %w", nodeID, err))
	}
	plan := &CustodyPlan{NodeID: nodeID, ChainProfileID: p.ID, Keys: p.SigningKeys(n.NodeType),
		StateFiles: p.Custody.StateFiles, Gap: p.Custody.Gap, GapBlocks: p.Custody.GapBlocks}
	if a.simulated(n, p) {
		// The simulated chain signs nothing and keeps no state: no lease
		// to hold, no gap to wait.
		plan.Keys, plan.StateFiles = nil, nil
	}
	for _, rel := range p.KeyPaths(n.NodeType) {
		plan.Exclude = append(plan.Exclude, rel)
	}
	for _, f := range p.Custody.StateFiles {
		plan.Exclude = append(plan.Exclude, f.Path)
	}
	slices.Sort(plan.Exclude)
	for _, k := range plan.Keys {
		l, err := a.Store.GetSigningLease(ctx, nodeID, k)
		if engine.IsCode(err, engine.ENotFound) {
			continue // never granted: the node never started
		}
		if err != nil {
			return nil, classify(fmt.Errorf("read lease of key %q of node %s: %w", k, nodeID, err))
		}
		plan.Leases = append(plan.Leases, *l)
	}
	return plan, nil
}

// GrantSigningLeases grants the leases of req.Keys to req.Holder and
// returns them as START carries them. A lease the holder has already is
// returned as it is, so a retry grants nothing twice.
func (a *Activities) GrantSigningLeases(ctx context.Context, req LeaseRequest) ([]StartLease, error) {
	var out []StartLease
	for _, k := range req.Keys {
		l, err := a.Store.GrantSigningLease(ctx, engine.LeaseGrant{NodeID: req.NodeID, KeyName: k, Holder: req.Holder, Gap: req.Gap, Now: a.now()})
		if err != nil {
			return nil, classify(fmt.Errorf("grant the lease of key %q of node %s: %w", k, req.NodeID, err))
		}
		out = append(out, StartLease{KeyName: k, Epoch: l.Epoch})
	}
	return out, nil
}

// ReleaseSigningLeases records that req.Holder no longer signs with
// req.Keys, at the epochs given; it returns when the last was released.
func (a *Activities) ReleaseSigningLeases(ctx context.Context, req LeaseRequest) (time.Time, error) {
	if len(req.Epochs) != len(req.Keys) {
		return time.Time{}, permanent(engine.EInvalid, "release of node %s: %d keys but %d epochs", req.NodeID, len(req.Keys), len(req.Epochs))
	}
	var last time.Time
	for i, k := range req.Keys {
		l, err := a.Store.ReleaseSigningLease(ctx, req.NodeID, k, req.Holder, req.Epochs[i], req.Reason, a.now())
		if err != nil {
			return time.Time{}, classify(fmt.Errorf("release the lease of key %q of node %s: %w", k, req.NodeID, err))
		}
		last = maxTime(last, l.ReleasedAt)
	}
	return last, nil
}

// ReleaseHeldLeases releases each of req.Keys the Store shows req.Holder
// holding, at the epoch it holds it: what undoing a grant needs, whatever
// part of the grant was recorded. It returns when the last was released.
func (a *Activities) ReleaseHeldLeases(ctx context.Context, req LeaseRequest) (time.Time, error) {
	var last time.Time
	for _, k := range req.Keys {
		l, err := a.Store.GetSigningLease(ctx, req.NodeID, k)
		if engine.IsCode(err, engine.ENotFound) {
			continue
		}
		if err != nil {
			return time.Time{}, classify(fmt.Errorf("read the lease of key %q of node %s: %w", k, req.NodeID, err))
		}
		if l.Holder != req.Holder || !l.Held() {
			continue
		}
		if l, err = a.Store.ReleaseSigningLease(ctx, req.NodeID, k, req.Holder, l.Epoch, req.Reason, a.now()); err != nil {
			return time.Time{}, classify(fmt.Errorf("release the lease of key %q of node %s: %w", k, req.NodeID, err))
		}
		last = maxTime(last, l.ReleasedAt)
	}
	return last, nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// StateRequest captures the state files of a stopped signer.
type StateRequest struct {
	NodeID     string
	StateFiles []profile.StateFile
	CommandIDs []string
}

// CaptureSigningState captures each state file, encrypted under the node's
// data key, and keeps it as the node's key of that name, replacing the one
// an earlier move kept: the newest state is the one that protects.
func (a *Activities) CaptureSigningState(ctx context.Context, req StateRequest) error {
	if len(req.CommandIDs) != len(req.StateFiles) {
		return permanent(engine.EInvalid, "capture of node %s: %d state files but %d command ids", req.NodeID, len(req.StateFiles), len(req.CommandIDs))
	}
	for i, f := range req.StateFiles {
		k := ChainKey{Name: f.Name, Path: f.Path, KeyType: stateKeyType}
		payload, err := json.Marshal(captureKeyPayload{KeyName: k.Name, KeyPath: k.Path, KeyType: k.KeyType})
		if err != nil {
			return err
		}
		c, err := a.runCommand(ctx, CommandRequest{NodeID: req.NodeID, CommandID: req.CommandIDs[i]}, engine.CommandCaptureKey, payload)
		if err != nil {
			return err
		}
		if err := commandOutcome(c); err != nil {
			return err
		}
		if err := a.storeCaptured(ctx, req.NodeID, k, sourceSigningState, c.Result); err != nil {
			return err
		}
	}
	return nil
}

// stateKeyType marks a node key that holds a signer's state file.
const stateKeyType = "signing-state"

// sourceSigningState is the NodeKey.Source of a captured state file.
const sourceSigningState = "signing_state"

// stateKeys are the captured state files of the node, to deliver with its
// keys; none before its first move.
func (a *Activities) stateKeys(ctx context.Context, nodeID string, p *profile.ChainProfile) ([]deliveredKey, error) {
	var out []deliveredKey
	for _, f := range p.Custody.StateFiles {
		k, err := a.Store.GetNodeKey(ctx, nodeID, f.Name)
		if engine.IsCode(err, engine.ENotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read state %q of node %s: %w", f.Name, nodeID, err)
		}
		out = append(out, deliveredKey{Name: f.Name, Path: f.Path, KeyType: stateKeyType, EncryptedKey: k.Ciphertext})
	}
	return out, nil
}

// SnapshotPlan names a snapshot and what it leaves out.
type SnapshotPlan struct {
	SnapshotID string
	Exclude    []string
}

// snapshotPayload is the protocol's SnapshotPayload and
// RestoreSnapshotPayload.
type snapshotPayload struct {
	SnapshotID string   `json:"snapshot_id"`
	Exclude    []string `json:"exclude,omitempty"`
}

// SendSnapshotCommand queues SNAPSHOT and waits for the acknowledgement.
func (a *Activities) SendSnapshotCommand(ctx context.Context, req CommandRequest) error {
	return a.sendSnapshotCommand(ctx, req, engine.CommandSnapshot)
}

// SendRestoreCommand queues RESTORE_SNAPSHOT and waits for the
// acknowledgement.
func (a *Activities) SendRestoreCommand(ctx context.Context, req CommandRequest) error {
	return a.sendSnapshotCommand(ctx, req, engine.CommandRestoreSnapshot)
}

func (a *Activities) sendSnapshotCommand(ctx context.Context, req CommandRequest, typ engine.CommandType) error {
	if req.Snapshot == nil {
		return permanent(engine.EInvalid, "command %s names no snapshot", req.CommandID)
	}
	payload, err := json.Marshal(snapshotPayload(*req.Snapshot))
	if err != nil {
		return err
	}
	return a.sendAndAwaitAck(ctx, req, typ, payload)
}

// SnapshotRef names a node's snapshot.
type SnapshotRef struct {
	NodeID     string
	SnapshotID string
}

// DeleteSnapshot removes a snapshot once restored: it holds the chain's
// data, and the next move takes a fresh one.
func (a *Activities) DeleteSnapshot(ctx context.Context, r SnapshotRef) error {
	if a.Snapshots == nil {
		return nil
	}
	if err := a.Snapshots.Delete(ctx, r.NodeID, r.SnapshotID); err != nil {
		return classify(fmt.Errorf("delete snapshot %s of node %s: %w", r.SnapshotID, r.NodeID, err))
	}
	return nil
}

// BlockGap waits for Blocks more blocks of a chain after Since.
type BlockGap struct {
	NodeID         string
	ChainProfileID string
	Blocks         int
	Timeout        time.Duration
}

// WaitForChainBlocks waits until the chain's other nodes report Blocks
// more blocks than the highest they reported at the start. It returns
// false when no other node of the chain reports a height: nothing then
// observes the chain, and the caller decides what stands in.
func (a *Activities) WaitForChainBlocks(ctx context.Context, g BlockGap) (bool, error) {
	start, seen, err := a.chainHeight(ctx, g)
	if err != nil || !seen {
		return false, classify(err)
	}
	deadline := a.now().Add(g.Timeout)
	for {
		h, _, err := a.chainHeight(ctx, g)
		if err != nil {
			return false, classify(err)
		}
		if h >= start+uint64(g.Blocks) {
			return true, nil
		}
		if a.now().After(deadline) {
			return false, permanent(engine.EUnavailable, "the chain of node %s made %d of %d blocks in %s", g.NodeID, max(h, start)-start, g.Blocks, g.Timeout)
		}
		heartbeat(ctx)
		if err := sleep(ctx, a.timing().Poll); err != nil {
			return false, err
		}
	}
}

// chainHeight is the highest block the chain's other nodes report.
func (a *Activities) chainHeight(ctx context.Context, g BlockGap) (uint64, bool, error) {
	if a.Statuses == nil {
		return 0, false, nil
	}
	var best uint64
	seen := false
	for after := ""; ; {
		nodes, err := a.Store.ListNodesByChain(ctx, g.ChainProfileID, after, 200)
		if err != nil {
			return 0, false, fmt.Errorf("list nodes of chain %s: %w", g.ChainProfileID, err)
		}
		for _, n := range nodes {
			if n.ID == g.NodeID {
				continue
			}
			st, err := a.Statuses.GetAgentStatus(ctx, n.ID)
			if err == nil && st.BlockHeight > 0 {
				best, seen = max(best, st.BlockHeight), true
			}
		}
		if len(nodes) < 200 {
			return best, seen, nil
		}
		after = nodes[len(nodes)-1].ID
	}
}

// CaughtUp waits for a migrated node.
type CaughtUp struct {
	NodeID  string
	Timeout time.Duration
}

// WaitForCaughtUp waits until the node's agent reports it is not syncing
// and its height grew since the wait began. It returns false, not an
// error, when that does not happen within Timeout: the node stays syncing
// for the health evaluator to judge.
func (a *Activities) WaitForCaughtUp(ctx context.Context, w CaughtUp) (bool, error) {
	if a.Statuses == nil {
		return false, nil
	}
	deadline := a.now().Add(w.Timeout)
	var first uint64
	for {
		st, err := a.Statuses.GetAgentStatus(ctx, w.NodeID)
		if err == nil && st.BlockHeight > 0 {
			if first == 0 {
				first = st.BlockHeight
			}
			if !st.Syncing && st.BlockHeight > first && (st.HighestBlock == 0 || st.BlockHeight+1 >= st.HighestBlock) {
				return true, nil
			}
		}
		if a.now().After(deadline) {
			return false, nil
		}
		heartbeat(ctx)
		if err := sleep(ctx, a.timing().Poll); err != nil {
			return false, err
		}
	}
}
