package temporal

import (
	"context"
	"time"

	"go.temporal.io/sdk/workflow"
)

// PingWorkflow runs one activity and returns its answer.
func PingWorkflow(ctx workflow.Context, msg string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var out string
	err := workflow.ExecuteActivity(ctx, PingActivity, msg).Get(ctx, &out)
	return out, err
}

// PingActivity answers "pong" to "ping", and echoes anything else.
func PingActivity(_ context.Context, msg string) (string, error) {
	if msg == "ping" {
		return "pong", nil
	}
	return msg, nil
}
