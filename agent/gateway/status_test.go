package gateway

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

func TestStatusOfBoundsWhatAnAgentMayMakeTheGatewayKeep(t *testing.T) {
	req := &agentv1.HeartbeatRequest{NodeId: "node_a", AppHealthMessage: strings.Repeat("x", 10_000),
		Metrics: &agentv1.MetricsSnapshot{Values: map[string]float64{}}}
	for i := range 1000 {
		req.RunningCommandIds = append(req.RunningCommandIds, fmt.Sprintf("cmd_%d", i))
		req.Metrics.Values[fmt.Sprintf("m_%04d", i)] = float64(i)
	}
	st := statusOf(req, time.Now())
	if len(st.RunningCommandIDs) != maxStatusRunning || len(st.Metrics) != maxStatusMetrics || len(st.HealthMessage) != maxStatusText {
		t.Errorf("kept %d ids, %d metrics, %d bytes of message", len(st.RunningCommandIDs), len(st.Metrics), len(st.HealthMessage))
	}
	if _, ok := st.Metrics["m_0000"]; !ok || st.Health != engine.AppHealthUnknown {
		t.Errorf("metrics kept = first names? %v; health %s", ok, st.Health)
	}
}

func TestStatusOfKeepsComponentsInOrderAndBounded(t *testing.T) {
	req := &agentv1.HeartbeatRequest{NodeId: "node_a"}
	for i := range 100 {
		req.Components = append(req.Components, &agentv1.ComponentStatus{Name: fmt.Sprintf("c%d", i), Version: "1",
			Running: i == 0, Restarts: 7, CrashLoop: i == 1, LastExit: strings.Repeat("x", 10_000)})
	}
	st := statusOf(req, time.Now())
	if len(st.Components) != maxComponents {
		t.Fatalf("kept %d components, want %d", len(st.Components), maxComponents)
	}
	first, second := st.Components[0], st.Components[1]
	if first.Name != "c0" || !first.Running || first.Restarts != 7 || !second.CrashLoop || len(second.LastExit) != maxStatusText {
		t.Errorf("components = %+v, %+v", first, second)
	}
}
