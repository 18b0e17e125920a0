package temporal_test

import (
	"context"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/store/temporal"
	"go.temporal.io/sdk/testsuite"
)

func TestPingWorkflowAnswersPong(t *testing.T) {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterActivity(temporal.PingActivity)
	env.ExecuteWorkflow(temporal.PingWorkflow, "ping")
	var out string
	if err := env.GetWorkflowResult(&out); err != nil || out != "pong" {
		t.Fatalf("result = %q, %v; want pong", out, err)
	}
}

func TestClientNeedsAnAddressAndAnOpenConnection(t *testing.T) {
	if _, err := temporal.New(temporal.Config{}); err == nil {
		t.Fatal("New without an address must fail")
	}
	c, err := temporal.New(temporal.Config{HostPort: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(context.Background()); !engine.IsCode(err, engine.EUnavailable) {
		t.Fatalf("Ping before Open = %v, want EUnavailable", err)
	}
}
