package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/store/postgres"
	"github.com/prometheus/client_golang/prometheus"
)

// openLeader decides who runs the singleton work. Instances sharing a
// PostgreSQL store elect one; on bbolt the instance holding the file lock
// is the only one, so it leads.
func (m *Main) openLeader(ctx context.Context) error {
	if isPostgres(m.Config.Store) {
		if err := m.openElection(ctx); err != nil {
			return err
		}
	} else {
		l, err := engine.TakeSoleLeadership(ctx, m.Store, m.instanceName())
		if err != nil {
			return err
		}
		epoch, _ := l.Leading()
		m.Logger.Info("leadership taken", "holder", m.instanceName(), "epoch", epoch)
		m.Leader = l
		m.addCheck("leader", false, func(context.Context) error { return nil })
	}
	m.registerLeaderMetrics()
	return nil
}

func (m *Main) openElection(ctx context.Context) error {
	e := postgres.NewElector(postgres.ElectorConfig{
		URL: m.Config.Store, Epochs: m.Store, Holder: m.instanceName(),
		Probe: m.Config.LeaderProbeInterval, Lease: m.Config.LeaderLease,
		Logger: m.Logger.With("component", "leader"),
	})
	if err := e.Open(ctx); err != nil {
		return err
	}
	if _, ok := e.Leading(); !ok {
		m.Logger.Info("standing by: another instance leads", "holder", m.instanceName())
	}
	m.Leader = e
	m.onClose(func(context.Context) error { return e.Close() })
	// Healthy as leader or standby; unhealthy while the election cannot
	// reach the store. Not critical: a standby serves the API all the same.
	m.addCheck("leader", false, e.Ping)
	return nil
}

// instanceName tells instances apart in the leader record and logs.
func (m *Main) instanceName() string {
	return hostname() + "/" + m.Config.HTTPAddr
}

// lead runs work every interval while this instance leads, from now
// until the appliance closes (before the components opened earlier).
func (m *Main) lead(every time.Duration, work func(context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.whileLeading(ctx, every, work)
	}()
	m.onClose(func(context.Context) error { cancel(); <-done; return nil })
}

// leaderRole is the leader component's detail in /readyz.
func (m *Main) leaderRole() string {
	if m.Leader == nil {
		return ""
	}
	if epoch, ok := m.Leader.Leading(); ok {
		return fmt.Sprintf("leader (epoch %d)", epoch)
	}
	return "standby"
}

// componentDetail says what a component does now, for /readyz.
func (m *Main) componentDetail(name string) string {
	if name == "leader" {
		return m.leaderRole()
	}
	return ""
}

// registerLeaderMetrics exports whether this instance leads, read at each
// scrape, and how its fenced writes ended.
func (m *Main) registerLeaderMetrics() {
	leading := func() float64 {
		if _, ok := m.Leader.Leading(); ok {
			return 1
		}
		return 0
	}
	m.fencedWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hoodcloud_leader_fenced_writes_total",
		Help: "Leader-only writes: written, or refused because a newer leader took over since the work began.",
	}, []string{"outcome"})
	m.fencedWrites.WithLabelValues("written")
	m.fencedWrites.WithLabelValues("refused")
	m.Registry.MustRegister(m.fencedWrites,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hoodcloud_is_leader", Help: "Whether this instance runs the singleton work (1) or stands by (0).",
		}, leading),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "health_evaluator_is_leader", Help: "Whether this instance's health evaluator is the one at work (1) or stands by (0).",
		}, leading))
}

// countFencedWrite observes each write of leader-only work.
func (m *Main) countFencedWrite(err error) {
	switch {
	case err == nil:
		m.fencedWrites.WithLabelValues("written").Inc()
	case errors.Is(err, engine.ErrStaleLeader):
		m.fencedWrites.WithLabelValues("refused").Inc()
	}
}

// openLeaderWork starts the singleton work that has no component of its
// own; each turn runs only on the leader. The payment consumer and
// heartbeat ingestion are idempotent and run on every instance.
func (m *Main) openLeaderWork(context.Context) error {
	m.lead(m.Config.SubscriptionExpiryInterval, m.expireSubscriptions)
	if m.Config.ReapInterval > 0 {
		m.lead(m.Config.ReapInterval, m.reapHosts)
	}
	if m.rotations != nil {
		m.lead(rewrapCheckInterval, func(context.Context) { m.rotations.Resume() })
	}
	return nil
}

// rewrapCheckInterval is how soon a new leader resumes a master key rewrap
// that the previous one left unfinished.
const rewrapCheckInterval = 10 * time.Second

// whileLeading runs work every interval for as long as ctx lasts, skipping
// the turns on which this instance does not lead. Work runs with ctx
// fenced by the leader epoch, so a deposed leader's writes are refused.
func (m *Main) whileLeading(ctx context.Context, every time.Duration, work func(context.Context)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if epoch, ok := m.Leader.Leading(); ok {
				work(engine.ObserveFencedWrites(engine.WithLeaderEpoch(ctx, epoch), m.countFencedWrite))
			}
		}
	}
}

// reapHosts destroys this installation's hosts that no live node needs,
// as `admin reap` does.
func (m *Main) reapHosts(ctx context.Context) {
	reaped, err := engine.ReapHosts(ctx, m.Provisioner, m.Store, false)
	for _, r := range reaped {
		m.Logger.Info("host reaped", "provider", r.Host.Host.Provider, "host", r.Host.Host.ProviderID,
			"node", r.Host.NodeID, "reason", r.Reason)
	}
	if err != nil {
		m.Logger.Warn("reaping hosts", "err", err)
	}
}

// checkLeaderTimings keeps a takeover well within the lease + probe the
// operator chose.
func (c *Config) checkLeaderTimings() error {
	switch {
	case c.LeaderProbeInterval <= 0:
		return configErrorf("leader-probe-interval: must be positive, got %s", c.LeaderProbeInterval)
	case c.LeaderLease <= 2*c.LeaderProbeInterval:
		return configErrorf("leader-lease: must exceed twice leader-probe-interval (%s), got %s", c.LeaderProbeInterval, c.LeaderLease)
	case c.SubscriptionExpiryInterval <= 0:
		return configErrorf("subscription-expiry-interval: must be positive, got %s", c.SubscriptionExpiryInterval)
	case c.ReapInterval < 0:
		return configErrorf("reap-interval: must not be negative (0 turns reaping off), got %s", c.ReapInterval)
	}
	return nil
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}
