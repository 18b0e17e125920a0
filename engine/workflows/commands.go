package workflows

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// CommandRequest names a command the workflow chose the id of, so that a
// retried activity finds the command an earlier attempt enqueued.
type CommandRequest struct {
	NodeID    string
	CommandID string
	// Leases are START's signing leases; Snapshot is what SNAPSHOT and
	// RESTORE_SNAPSHOT name. Absent for other commands.
	Leases   []StartLease  `json:",omitempty"`
	Snapshot *SnapshotPlan `json:",omitempty"`
	Upgrade  *UpgradePlan  `json:",omitempty"`
}

// CaptureRequest asks for the chain-generated keys of a node; CommandIDs
// holds one id per key.
type CaptureRequest struct {
	NodeID     string
	Keys       []ChainKey
	CommandIDs []string
}

// WaitProgress is what WaitForCommandCompletion heartbeats: the latest
// progress and the stall count, which survives a retried attempt.
type WaitProgress struct {
	Percent float64
	Message string
	Stalls  int
	// Omitted counts the agent's heartbeats since the acknowledgement that
	// did not list the command as running; LastOmission is the latest.
	Omitted      int
	LastOmission time.Time
}

// ErrCommandLost is the error type of a command the agent acknowledged,
// then stopped running without reporting an outcome (its process was
// restarted, say). It is safe to send the same work again as a new command.
const ErrCommandLost = "CommandLost"

// omissionsForLoss is how many heartbeats after the acknowledgement must
// leave the command out before it counts as lost: one could have been
// taken just before the agent marked it running.
const omissionsForLoss = 2

// captureKeyPayload and captureKeyResult are the protocol's CAPTURE_KEY
// messages in their JSON form.
type captureKeyPayload struct {
	KeyName string `json:"key_name"`
	KeyPath string `json:"key_path"`
	KeyType string `json:"key_type"`
}

type captureKeyResult struct {
	KeyName      string `json:"key_name"`
	EncryptedKey []byte `json:"encrypted_key"`
}

// StartNode queues START, with the request's signing leases, and waits
// for the agent to acknowledge it.
func (a *Activities) StartNode(ctx context.Context, req CommandRequest) error {
	var payload []byte
	if len(req.Leases) > 0 {
		var err error
		if payload, err = json.Marshal(struct {
			Leases []StartLease `json:"leases"`
		}{req.Leases}); err != nil {
			return err
		}
	}
	return a.sendAndAwaitAck(ctx, req, engine.CommandStart, payload)
}

// StopNode queues STOP and waits up to Timing.StopWait for it to finish.
func (a *Activities) StopNode(ctx context.Context, req CommandRequest) error {
	if err := a.enqueueOnce(ctx, req, engine.CommandStop, nil); err != nil {
		return classify(err)
	}
	c, err := a.awaitCommand(ctx, req.CommandID, a.timing().StopWait, engine.CommandStatus.Finished)
	if err != nil {
		return err
	}
	return commandOutcome(c)
}

func (a *Activities) sendAndAwaitAck(ctx context.Context, req CommandRequest, typ engine.CommandType, payload []byte) error {
	if err := a.enqueueOnce(ctx, req, typ, payload); err != nil {
		return classify(err)
	}
	c, err := a.awaitCommand(ctx, req.CommandID, a.timing().Ack, acknowledged)
	if err != nil {
		return err
	}
	if c.Status == engine.CommandFailed || c.Status == engine.CommandCancelled {
		return commandOutcome(c)
	}
	return nil
}

// runCommand queues a short command unless an earlier attempt did and
// waits up to Timing.CaptureWait for it to finish.
func (a *Activities) runCommand(ctx context.Context, req CommandRequest, typ engine.CommandType, payload []byte) (*engine.Command, error) {
	if err := a.enqueueOnce(ctx, req, typ, payload); err != nil {
		return nil, classify(err)
	}
	return a.awaitCommand(ctx, req.CommandID, a.timing().CaptureWait, engine.CommandStatus.Finished)
}

func acknowledged(s engine.CommandStatus) bool {
	return s == engine.CommandAcknowledged || s.Finished()
}

// enqueueOnce queues the command unless an earlier attempt did.
func (a *Activities) enqueueOnce(ctx context.Context, req CommandRequest, typ engine.CommandType, payload []byte) error {
	_, err := a.Store.GetCommand(ctx, req.CommandID)
	if err == nil {
		return nil
	}
	if !engine.IsCode(err, engine.ENotFound) {
		return fmt.Errorf("read command %s: %w", req.CommandID, err)
	}
	c := &engine.Command{ID: req.CommandID, NodeID: req.NodeID, Type: typ, Payload: payload}
	err = engine.EnqueueCommand(ctx, a.Store, a.Cache, c)
	if engine.IsCode(err, engine.EConflict) {
		return nil // a concurrent attempt recorded it
	}
	return err
}

// awaitCommand polls the command until done reports its status, or fails
// for good after timeout.
func (a *Activities) awaitCommand(ctx context.Context, id string, timeout time.Duration, done func(engine.CommandStatus) bool) (*engine.Command, error) {
	deadline := a.now().Add(timeout)
	for {
		c, err := a.Store.GetCommand(ctx, id)
		if err != nil {
			return nil, classify(fmt.Errorf("read command %s: %w", id, err))
		}
		if done(c.Status) {
			return c, nil
		}
		if a.now().After(deadline) {
			return nil, permanent(engine.EUnavailable, "command %s is still %s after %s", id, c.Status, timeout)
		}
		heartbeat(ctx)
		if err := sleep(ctx, a.timing().Poll); err != nil {
			return nil, err
		}
	}
}

// commandOutcome is nil for a completed command and a permanent error
// carrying the agent's message otherwise.
func commandOutcome(c *engine.Command) error {
	if c.Status == engine.CommandCompleted {
		return nil
	}
	// Not retryable whatever its code: a retry finds the same command, with
	// the same outcome.
	msg := engine.Errorf(engine.EInternal, "command %s %s: %s", c.ID, c.Status, c.Error).Error()
	return temporal.NewNonRetryableApplicationError(msg, string(engine.EInternal), nil)
}

// WaitForCommandCompletion waits for an acknowledged command to finish,
// judging by liveness instead of a fixed timeout: it fails when the agent's
// progress is stalled Timing.StallThreshold readings in a row, or when no
// fresh progress arrived for Timing.LivenessGrace.
//
// It also fails, with ErrCommandLost, when the agent's heartbeats stop
// listing the command among its running_command_ids without an outcome.
func (a *Activities) WaitForCommandCompletion(ctx context.Context, req CommandRequest) error {
	w := a.resumeWait(ctx)
	for {
		c, err := a.Store.GetCommand(ctx, req.CommandID)
		if err != nil {
			return classify(fmt.Errorf("read command %s: %w", req.CommandID, err))
		}
		if c.Status.Finished() {
			return a.finish(ctx, c)
		}
		if err := a.checkLiveness(ctx, c, &w); err != nil {
			return err
		}
		if err := a.checkRunning(ctx, c, &w); err != nil {
			return err
		}
		heartbeat(ctx, w)
		if err := sleep(ctx, a.timing().Poll); err != nil {
			return err
		}
	}
}

// finish judges a finished command; a completed CONFIGURE leaves what the
// host made of it on the node.
func (a *Activities) finish(ctx context.Context, c *engine.Command) error {
	if err := commandOutcome(c); err != nil {
		return err
	}
	if c.Type == engine.CommandConfigure {
		return a.recordRuntime(ctx, c)
	}
	return nil
}

// resumeWait picks up the stall count of a previous attempt.
func (a *Activities) resumeWait(ctx context.Context) WaitProgress {
	var w WaitProgress
	if activity.IsActivity(ctx) && activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &w)
	}
	return w
}

// checkLiveness updates w from the command's progress and fails when the
// command looks dead.
func (a *Activities) checkLiveness(ctx context.Context, c *engine.Command, w *WaitProgress) error {
	t, now := a.timing(), a.now()
	if c.Status != engine.CommandAcknowledged {
		if now.Sub(c.CreatedAt) > t.Ack {
			return permanent(engine.EUnavailable, "command %s was not acknowledged within %s", c.ID, t.Ack)
		}
		return nil
	}
	p, err := a.Cache.GetProgress(ctx, c.ID)
	if err != nil && !engine.IsCode(err, engine.ENotFound) {
		return fmt.Errorf("read progress of command %s: %w", c.ID, err)
	}
	last := c.AckedAt
	if p != nil {
		w.Percent, w.Message, last = p.Percent, p.Message, later(last, p.UpdatedAt)
		w.Stalls = stallCount(w.Stalls, p.Stalled)
	}
	if w.Stalls >= t.StallThreshold {
		return permanent(engine.EUnavailable, "command %s stalled %d times in a row", c.ID, w.Stalls)
	}
	if !last.IsZero() && now.Sub(last) > t.LivenessGrace {
		return permanent(engine.EUnavailable, "command %s reported no progress for %s", c.ID, t.LivenessGrace)
	}
	return nil
}

// checkRunning fails with ErrCommandLost once omissionsForLoss heartbeats
// after the acknowledgement did not list the command among the agent's
// running ones and the command still has no outcome. The outcome of a
// command that just finished may trail the heartbeat that dropped it, so
// the command is read again up to 3 times, 100 ms apart, before a heartbeat
// counts against it.
func (a *Activities) checkRunning(ctx context.Context, c *engine.Command, w *WaitProgress) error {
	if a.Statuses == nil || c.Status != engine.CommandAcknowledged {
		return nil
	}
	st, err := a.Statuses.GetAgentStatus(ctx, c.NodeID)
	if engine.IsCode(err, engine.ENotFound) {
		return nil // the agent is quiet: the liveness grace judges
	}
	if err != nil {
		return fmt.Errorf("read agent status of node %s: %w", c.NodeID, err)
	}
	if st.Running(c.ID) || !st.ReportedAt.After(c.AckedAt) || !st.ReportedAt.After(w.LastOmission) {
		return nil
	}
	for range 3 {
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
		again, err := a.Store.GetCommand(ctx, c.ID)
		if err != nil {
			return classify(fmt.Errorf("read command %s: %w", c.ID, err))
		}
		if again.Status != engine.CommandAcknowledged {
			return nil // finished: the caller reads the outcome next
		}
	}
	w.Omitted, w.LastOmission = w.Omitted+1, st.ReportedAt
	if w.Omitted >= omissionsForLoss {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("command %s is no longer running on the agent of node %s and reported no outcome", c.ID, c.NodeID),
			ErrCommandLost, nil)
	}
	return nil
}

func stallCount(n int, stalled bool) int {
	if stalled {
		return n + 1
	}
	return 0
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// CaptureChainGeneratedKeys asks the agent for each key file the chain
// generated and stores the ciphertext it returns. Keys already stored are
// skipped.
func (a *Activities) CaptureChainGeneratedKeys(ctx context.Context, req CaptureRequest) error {
	if len(req.CommandIDs) != len(req.Keys) {
		return permanent(engine.EInvalid, "capture of node %s: %d keys but %d command ids", req.NodeID, len(req.Keys), len(req.CommandIDs))
	}
	for i, k := range req.Keys {
		if err := a.captureKey(ctx, CommandRequest{NodeID: req.NodeID, CommandID: req.CommandIDs[i]}, k); err != nil {
			return err
		}
	}
	return nil
}

func (a *Activities) captureKey(ctx context.Context, req CommandRequest, k ChainKey) error {
	if has, err := a.hasKey(ctx, req.NodeID, k.Name); err != nil || has {
		return err
	}
	payload, err := json.Marshal(captureKeyPayload{KeyName: k.Name, KeyPath: k.Path, KeyType: k.KeyType})
	if err != nil {
		return err
	}
	c, err := a.runCommand(ctx, req, engine.CommandCaptureKey, payload)
	if err != nil {
		return err
	}
	if err := commandOutcome(c); err != nil {
		return err
	}
	return a.storeCaptured(ctx, req.NodeID, k, sourceChainGenerated, c.Result)
}

// storeCaptured keeps what a CAPTURE_KEY returned as the node's key k,
// recorded as coming from source, once it opens under the node's data key.
func (a *Activities) storeCaptured(ctx context.Context, nodeID string, k ChainKey, source string, result []byte) error {
	var r captureKeyResult
	if err := json.Unmarshal(result, &r); err != nil || len(r.EncryptedKey) == 0 {
		return permanent(engine.EInvalid, "CAPTURE_KEY of %q on node %s returned nothing", k.Name, nodeID)
	}
	if err := a.checkSealedWithDEK(ctx, nodeID, r.EncryptedKey); err != nil {
		return err
	}
	nk := &engine.NodeKey{NodeID: nodeID, Name: k.Name, KeyType: k.KeyType, Source: source, Ciphertext: r.EncryptedKey, CreatedAt: a.now()}
	if err := a.Store.PutNodeKey(ctx, nk); err != nil {
		return fmt.Errorf("store captured %q of node %s: %w", k.Name, nodeID, err)
	}
	return nil
}

// checkSealedWithDEK refuses a captured key that does not open under the
// node's data key (an agent sealing with another key), so that no key is
// stored that could never be used.
func (a *Activities) checkSealedWithDEK(ctx context.Context, nodeID string, sealed []byte) error {
	dek, err := a.loadDEK(ctx, nodeID)
	if err != nil {
		return classify(err)
	}
	defer engine.Zero(dek)
	plain, err := engine.OpenWithDataKey(dek, sealed)
	if err != nil {
		return permanent(engine.EInvalid, "the key captured on node %s does not open under its data key", nodeID)
	}
	engine.Zero(plain)
	return nil
}
