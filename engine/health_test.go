package engine_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

func TestCheckHealth(t *testing.T) {
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return engine.Errorf(engine.EUnavailable, "down") }
	broken := func(context.Context) error { return errors.New("dsn=postgres://secret") }
	slow := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

	tests := []struct {
		name   string
		checks []engine.HealthCheck
		want   engine.HealthStatus
		codes  []engine.Code
	}{
		{"all up", []engine.HealthCheck{{"store", true, ok}, {"leader", false, ok}}, engine.Healthy, []engine.Code{"", ""}},
		{"non-critical down degrades", []engine.HealthCheck{{"store", true, ok}, {"leader", false, down}}, engine.Degraded, []engine.Code{"", engine.EUnavailable}},
		{"critical down is unhealthy", []engine.HealthCheck{{"store", true, broken}, {"leader", false, down}}, engine.Unhealthy, []engine.Code{engine.EInternal, engine.EUnavailable}},
		{"slow check times out", []engine.HealthCheck{{"events", true, slow}}, engine.Unhealthy, []engine.Code{"timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := engine.CheckHealth(context.Background(), tt.checks, 20*time.Millisecond)
			if r.Status != tt.want {
				t.Fatalf("status = %s, want %s", r.Status, tt.want)
			}
			for i, c := range r.Components {
				if c.Name != tt.checks[i].Name || c.ErrorCode != tt.codes[i] {
					t.Errorf("component %d = %s/%q, want %s/%q", i, c.Name, c.ErrorCode, tt.checks[i].Name, tt.codes[i])
				}
			}
		})
	}
}
