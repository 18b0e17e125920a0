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

	// A timeout only the slow check reaches: a check that answers is never
	// taken for a timeout, however slow the machine.
	const answers = time.Minute
	tests := []struct {
		name    string
		checks  []engine.HealthCheck
		timeout time.Duration
		want    engine.HealthStatus
		codes   []engine.Code
	}{
		{"all up", []engine.HealthCheck{{"store", true, ok}, {"leader", false, ok}}, answers, engine.Healthy, []engine.Code{"", ""}},
		{"non-critical down degrades", []engine.HealthCheck{{"store", true, ok}, {"leader", false, down}}, answers, engine.Degraded, []engine.Code{"", engine.EUnavailable}},
		{"critical down is unhealthy", []engine.HealthCheck{{"store", true, broken}, {"leader", false, down}}, answers, engine.Unhealthy, []engine.Code{engine.EInternal, engine.EUnavailable}},
		{"slow check times out", []engine.HealthCheck{{"events", true, slow}}, 20 * time.Millisecond, engine.Unhealthy, []engine.Code{"timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := engine.CheckHealth(context.Background(), tt.checks, tt.timeout)
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
