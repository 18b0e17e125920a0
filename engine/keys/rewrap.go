package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// SecretRewrapJob records the unfinished rewrap of node data keys; it is
// deleted when the rewrap completes. It holds no secret, but lives in
// Secrets so every instance sees it.
const SecretRewrapJob = "rotation/master-rewrap"

// maxRewrapPasses bounds the passes over the nodes; see rewrapJob.
const maxRewrapPasses = 5

// rewrapJob is the rewrap's progress. The nodes are visited state by
// state, in ID order, with a cursor. A node that changes state during a
// pass may be missed (it leaves a state not yet visited for one already
// done), so when a pass saw nodes change during it, another pass follows,
// rewrapping only nodes changed since the previous pass began, up to
// maxRewrapPasses. A data key missed even so stays on its older version,
// which keeps decrypting: the minimum decryption version is not raised.
type rewrapJob struct {
	Version     int       `json:"version"`
	Pass        int       `json:"pass"`
	PassStarted time.Time `json:"pass_started"`
	Since       time.Time `json:"since,omitzero"` // passes after the first: nodes changed since then
	Moved       bool      `json:"moved"`          // a node seen in this pass changed during it
	State       int       `json:"state"`          // index in NodeStates
	After       string    `json:"after"`          // the last node done in that state
	Rewrapped   int       `json:"rewrapped"`
	Failed      int       `json:"failed"`
	StartedAt   time.Time `json:"started_at"`
}

func (j *rewrapJob) progress() *RewrapProgress {
	return &RewrapProgress{Version: j.Version, Pass: j.Pass, Rewrapped: j.Rewrapped, Failed: j.Failed, StartedAt: j.StartedAt}
}

// loadJob returns the unfinished rewrap; nil when none.
func (r *Rotations) loadJob(ctx context.Context) (*rewrapJob, error) {
	raw, err := r.cfg.Secrets.Get(ctx, SecretRewrapJob)
	if engine.IsCode(err, engine.ENotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the rewrap progress: %w", err)
	}
	var j rewrapJob
	if err := json.Unmarshal(raw, &j); err != nil || j.Version < 1 {
		return nil, engine.Errorf(engine.EInternal, "%s is unreadable", SecretRewrapJob)
	}
	return &j, nil
}

func (r *Rotations) saveJob(ctx context.Context, j *rewrapJob) error {
	raw, err := json.Marshal(j)
	if err != nil {
		return engine.Errorf(engine.EInternal, "encode the rewrap progress")
	}
	if err := r.cfg.Secrets.Put(ctx, SecretRewrapJob, raw); err != nil {
		return fmt.Errorf("save the rewrap progress: %w", err)
	}
	return nil
}

// rewrap runs the recorded job to its end. It returns nil when there is
// none or it completed, and the error that stopped it otherwise, with the
// progress up to the last batch saved.
func (r *Rotations) rewrap(ctx context.Context) error {
	j, err := r.loadJob(ctx)
	if j == nil || err != nil {
		return err
	}
	for {
		if err := r.rewrapPass(ctx, j); err != nil {
			return err
		}
		r.cfg.Logger.Info("master key rewrap pass done", "version", j.Version, "pass", j.Pass,
			"rewrapped", j.Rewrapped, "failed", j.Failed, "nodes_changed_meanwhile", j.Moved)
		if !j.Moved || j.Pass >= maxRewrapPasses {
			break
		}
		j.Pass, j.Since, j.PassStarted, j.Moved = j.Pass+1, j.PassStarted, r.now(), false
		j.State, j.After = 0, ""
		if err := r.saveJob(ctx, j); err != nil {
			return err
		}
	}
	if err := r.cfg.Secrets.Delete(ctx, SecretRewrapJob); err != nil {
		return fmt.Errorf("finish the rewrap: %w", err)
	}
	r.cfg.Logger.Info("master key rewrap complete", "version", j.Version, "rewrapped", j.Rewrapped,
		"failed", j.Failed, "took", r.now().Sub(j.StartedAt).Round(time.Millisecond))
	return nil
}

// rewrapPass visits every node from the job's cursor on, saving the
// cursor after each batch.
func (r *Rotations) rewrapPass(ctx context.Context, j *rewrapJob) error {
	for j.State < len(engine.NodeStates) {
		nodes, err := r.cfg.Nodes.ListNodesByState(ctx, engine.NodeStates[j.State], j.After, r.cfg.BatchSize)
		if err != nil {
			return fmt.Errorf("list %s nodes: %w", engine.NodeStates[j.State], err)
		}
		for _, n := range nodes {
			if err := r.rewrapVisit(ctx, j, n); err != nil {
				r.saveJob(ctx, j) // keep what was done; the error says why it stopped
				return err
			}
		}
		visited := engine.NodeStates[j.State]
		if len(nodes) < r.cfg.BatchSize {
			j.State, j.After = j.State+1, ""
		}
		if err := r.saveJob(ctx, j); err != nil {
			return err
		}
		r.cfg.Logger.Debug("master key rewrap progress", "version", j.Version, "pass", j.Pass,
			"state", visited, "nodes", len(nodes), "rewrapped", j.Rewrapped)
	}
	return nil
}

// rewrapVisit rewraps n's data key if this pass is due to, and moves the
// cursor past n. A data key Secrets refuses (tampered, or of a version
// below the minimum) is counted and skipped: rewrapping cannot mend it.
func (r *Rotations) rewrapVisit(ctx context.Context, j *rewrapJob, n *engine.Node) error {
	if !n.UpdatedAt.Before(j.PassStarted) {
		j.Moved = true
	}
	if j.Pass == 1 || !n.UpdatedAt.Before(j.Since) {
		done, err := r.rewrapNode(ctx, n)
		switch {
		case engine.IsCode(err, engine.EInvalid):
			j.Failed++
			r.cfg.Logger.Warn("a node's data key cannot be rewrapped", "node", n.ID, "err", err)
		case err != nil:
			return err
		case done:
			j.Rewrapped++
		}
	}
	j.After = n.ID
	return nil
}

// rewrapNode rewraps n's data key under the latest master key version and
// reports whether it did. Nodes on their way out, and nodes without a data
// key yet, are left alone. The key is written back only if it is still
// the one read: a node whose keys were deleted, or made anew (at the
// latest version), meanwhile keeps what it has.
func (r *Rotations) rewrapNode(ctx context.Context, n *engine.Node) (bool, error) {
	if n.State == engine.NodeTerminating || n.State == engine.NodeTerminated {
		return false, nil
	}
	k, err := r.cfg.Keys.GetNodeKey(ctx, n.ID, engine.DataKeyName)
	if engine.IsCode(err, engine.ENotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the data key of node %s: %w", n.ID, err)
	}
	wrapped, err := r.cfg.Secrets.Rewrap(ctx, engine.KeyMaster, k.Ciphertext)
	if err != nil {
		return false, fmt.Errorf("rewrap the data key of node %s: %w", n.ID, err)
	}
	again, err := r.cfg.Keys.GetNodeKey(ctx, n.ID, engine.DataKeyName)
	if engine.IsCode(err, engine.ENotFound) || err == nil && !bytes.Equal(again.Ciphertext, k.Ciphertext) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the data key of node %s: %w", n.ID, err)
	}
	k.Ciphertext = wrapped
	if err := r.cfg.Keys.PutNodeKey(ctx, k); err != nil {
		return false, fmt.Errorf("store the data key of node %s: %w", n.ID, err)
	}
	return true, nil
}
