package web_test

import (
	"context"
	"strings"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/web"
	"github.com/prometheus/client_golang/prometheus"
)

func TestReadyzSaysWhatAComponentDoesOnlyWhenItHasADetail(t *testing.T) {
	s := web.New(web.Config{
		Gatherer: prometheus.NewRegistry(),
		Health: func(context.Context) engine.HealthReport {
			return engine.HealthReport{Status: engine.Healthy, Components: []engine.ComponentHealth{
				{Name: "store", Status: engine.Healthy},
				{Name: "leader", Status: engine.Healthy, Detail: "standby"},
			}}
		},
	})
	body := get(t, s, "GET", "/readyz").Body.String()
	if !strings.Contains(body, `"name":"leader","status":"healthy","latency_ms":0,"detail":"standby"`) {
		t.Fatalf("readyz = %s, want the leader's role as its detail", body)
	}
	if strings.Count(body, `"detail"`) != 1 {
		t.Fatalf("readyz = %s, want no detail on a component without one", body)
	}
}
