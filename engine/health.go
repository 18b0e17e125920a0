package engine

import (
	"context"
	"sync"
	"time"
)

// HealthStatus summarises a component or the whole appliance.
type HealthStatus string

const (
	Healthy   HealthStatus = "healthy"
	Degraded  HealthStatus = "degraded"  // working, with a non-critical component down
	Unhealthy HealthStatus = "unhealthy" // a critical component is down
)

// HealthCheck probes one component.
type HealthCheck struct {
	Name     string
	Critical bool // when down, the appliance is unhealthy rather than degraded
	Check    func(ctx context.Context) error
}

// ComponentHealth is the outcome of one check.
type ComponentHealth struct {
	Name      string
	Status    HealthStatus
	Latency   time.Duration
	ErrorCode Code   // stable, for alerts; empty when healthy
	Detail    string // what the component does now (the leader's role), for operators; nothing secret
}

// HealthReport is the outcome of every check.
type HealthReport struct {
	Status     HealthStatus
	Components []ComponentHealth
}

// CheckHealth runs every check concurrently, each bounded by timeout.
func CheckHealth(ctx context.Context, checks []HealthCheck, timeout time.Duration) HealthReport {
	r := HealthReport{Status: Healthy, Components: make([]ComponentHealth, len(checks))}
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() { r.Components[i] = probe(ctx, c, timeout) })
	}
	wg.Wait()
	for i, c := range r.Components {
		switch {
		case c.Status == Healthy:
		case checks[i].Critical:
			r.Status = Unhealthy
		case r.Status == Healthy:
			r.Status = Degraded
		}
	}
	return r
}

func probe(ctx context.Context, c HealthCheck, timeout time.Duration) ComponentHealth {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	err := c.Check(ctx)
	h := ComponentHealth{Name: c.Name, Status: Healthy, Latency: time.Since(start)}
	if err != nil {
		h.Status = Unhealthy
		h.ErrorCode = ErrorCode(err)
		if ctx.Err() != nil {
			h.ErrorCode = "timeout"
		}
	}
	return h
}
