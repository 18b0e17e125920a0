package main

import (
	"context"
	"errors"
	"time"

	"github.com/hoodcloud/hoodcloud/agent/gateway"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/observe"
	"github.com/prometheus/client_golang/prometheus"
)

// openEvaluator starts the health evaluator, which runs while this
// instance leads.
func (m *Main) openEvaluator(context.Context) error {
	statuses, ok := m.Cache.(engine.AgentStatusLister)
	if !ok {
		return engine.Errorf(engine.EUnsupported, "the cache cannot list agent statuses")
	}
	interval := gateway.DefaultHeartbeatInterval
	if m.Config.Provisioner == "local" {
		interval = localHeartbeatInterval
	}
	m.evaluator = observe.NewEvaluator(observe.Config{
		Nodes: m.Store, Incidents: m.Store, Commands: m.Store, Cache: m.Cache, Statuses: statuses, Events: m.Events,
		Policy: func(chainID string) *observe.Policy {
			p, err := m.Chains.Get(chainID)
			if err != nil {
				return nil // a profile since removed: the defaults
			}
			return p.Health.Policy
		},
		Logger:            m.Logger,
		HeartbeatInterval: interval,
		StuckAfter:        m.Config.HealthStuckAfter,
		Confirmations:     m.Config.HealthConfirmations,
		Remediate:         m.Config.HealthRemediate,
	})
	m.healthMetrics = newHealthMetrics(m.Registry)
	m.lead(m.Config.HealthInterval, m.evaluateHealth)
	return nil
}

// evaluateHealth runs one cycle of the evaluator.
func (m *Main) evaluateHealth(ctx context.Context) {
	start := time.Now()
	st, err := m.evaluator.Cycle(ctx)
	m.healthMetrics.record(st, time.Since(start))
	switch {
	case errors.Is(err, engine.ErrStaleLeader):
		m.Logger.Warn("health evaluation fenced: another instance leads now")
	case err != nil && ctx.Err() == nil:
		m.Logger.Warn("health evaluation", "err", err)
	}
}

// healthMetrics is what the evaluator did, for /metrics.
type healthMetrics struct {
	cycle       prometheus.Histogram
	verdicts    *prometheus.CounterVec
	transitions prometheus.Counter
	restarts    prometheus.Counter
}

func newHealthMetrics(r prometheus.Registerer) *healthMetrics {
	h := &healthMetrics{
		cycle: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hoodcloud_health_cycle_seconds", Help: "Duration of one health evaluation of every node.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hoodcloud_health_verdicts_total", Help: "Health verdicts given, by verdict.",
		}, []string{"verdict"}),
		transitions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hoodcloud_health_transitions_total", Help: "Node state changes made by the health evaluator.",
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hoodcloud_health_restarts_total", Help: "RESTART commands sent to remedy a node's health.",
		}),
	}
	r.MustRegister(h.cycle, h.verdicts, h.transitions, h.restarts)
	return h
}

func (h *healthMetrics) record(st observe.Stats, took time.Duration) {
	h.cycle.Observe(took.Seconds())
	for v, n := range st.Verdicts {
		h.verdicts.WithLabelValues(string(v)).Add(float64(n))
	}
	h.transitions.Add(float64(st.Transitions))
	h.restarts.Add(float64(st.Restarts))
}
