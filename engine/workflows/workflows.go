package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Workflow ids derive from domain ids, so each process runs once per subject.
func ProvisionID(subscriptionID string) string { return "provision-" + subscriptionID }
func TerminateID(nodeID string) string         { return "terminate-" + nodeID }
func MigrateID(nodeID string) string           { return "migrate-" + nodeID }

// acts names the activities for the workflows; its methods are never
// called on it, only referenced.
var acts *Activities

// activityProfile is the timeouts and retries of one kind of activity.
type activityProfile struct {
	startToClose time.Duration
	heartbeat    time.Duration
	attempts     int32
}

// The heartbeat timeouts are short so that activities a crashed worker was
// running are retried within seconds of its restart, not when a long
// start-to-close timeout runs out; activities that may run long heartbeat
// (keepBeating for provider calls).
var (
	// quick: reads and writes of our own ports.
	quick = activityProfile{startToClose: 20 * time.Second, attempts: 5}
	// hostOp: provider calls, which may take minutes.
	hostOp = activityProfile{startToClose: 15 * time.Minute, heartbeat: beatTimeout, attempts: 3}
	// waiting: activities that poll with heartbeats and judge time out
	// themselves (their Timing); the limits here only bound a lost worker.
	waiting = activityProfile{startToClose: time.Hour, heartbeat: beatTimeout, attempts: 3}
	// longRun: a command such as a snapshot download may run for hours;
	// liveness, not this limit, fails it.
	longRun = activityProfile{startToClose: 48 * time.Hour, heartbeat: beatTimeout, attempts: 3}
	// upgrade: an agent's upgrade of one component, 10 minutes, 3 tries.
	upgrade = activityProfile{startToClose: 10 * time.Minute, heartbeat: beatTimeout, attempts: 3}
	// critical: the final state change of terminate is retried longest.
	critical = activityProfile{startToClose: 20 * time.Second, attempts: 10}
	// once: best-effort steps whose failure is only recorded.
	once = activityProfile{startToClose: 5 * time.Minute, heartbeat: beatTimeout, attempts: 2}
)

// beatTimeout is how long an activity may go without a heartbeat before
// Temporal presumes its worker dead and retries it elsewhere.
const beatTimeout = 10 * time.Second

func withProfile(ctx workflow.Context, p activityProfile) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: p.startToClose,
		HeartbeatTimeout:    p.heartbeat,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
			MaximumAttempts:    p.attempts,
		},
	})
}

// run executes one activity under profile p and decodes its result into out
// (nil for none).
func run(ctx workflow.Context, p activityProfile, out any, fn any, args ...any) error {
	return workflow.ExecuteActivity(withProfile(ctx, p), fn, args...).Get(ctx, out)
}

// commandID derives a command's id from the run and the step, so that a
// retried activity (or a replayed workflow) names the same command, and
// another run (a later migration) a different one.
func commandID(ctx workflow.Context, step string) string {
	sum := sha256.Sum256([]byte(workflow.GetInfo(ctx).WorkflowExecution.RunID + "/" + step))
	return "cmd_" + hex.EncodeToString(sum[:12])
}

func stateChange(nodeID string, to engine.NodeState, reason string) StateChange {
	return StateChange{NodeID: nodeID, To: to, Reason: reason}
}

// summary is an error's text for an incident, bounded.
func summary(prefix string, err error) string {
	s := prefix + ": " + err.Error()
	if len(s) > 500 {
		s = s[:500]
	}
	return s
}

// awaitCommand sends a command through send (which waits for the agent's
// acknowledgement), then waits for it to finish.
// A command the agent lost (ErrCommandLost) is sent again as a new command,
// up to sendsPerCommand times in all.
func awaitCommand(ctx workflow.Context, send any, nodeID, step string) error {
	return awaitRequest(ctx, send, CommandRequest{NodeID: nodeID}, step)
}

// awaitRequest is awaitCommand for a request with more than a node: START's
// leases, a snapshot.
func awaitRequest(ctx workflow.Context, send any, base CommandRequest, step string) error {
	return awaitRequestWith(ctx, send, base, step, longRun)
}

// awaitRequestWith is awaitRequest waiting for completion under profile wait.
func awaitRequestWith(ctx workflow.Context, send any, base CommandRequest, step string, wait activityProfile) error {
	nodeID := base.NodeID
	var err error
	for attempt := 1; attempt <= sendsPerCommand; attempt++ {
		id := step
		if attempt > 1 {
			id = fmt.Sprintf("%s#%d", step, attempt)
		}
		req := base
		req.CommandID = commandID(ctx, id)
		if err = run(ctx, waiting, nil, send, req); err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
		err = run(ctx, wait, nil, acts.WaitForCommandCompletion, req)
		if !isLost(err) {
			break
		}
		workflow.GetLogger(ctx).Warn("agent lost a command; sending it again", "node_id", nodeID, "step", step, "attempt", attempt)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	return nil
}

// sendsPerCommand bounds how often a lost command is sent.
const sendsPerCommand = 3

func isLost(err error) bool {
	var app *temporal.ApplicationError
	return errors.As(err, &app) && app.Type() == ErrCommandLost
}
