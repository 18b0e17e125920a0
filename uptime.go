package main

import (
	"context"

	"github.com/hoodcloud/hoodcloud/engine"
)

// openUptime builds uptime accounting: the worker, run every uptime
// interval while this instance leads until the appliance closes, and the
// reports the API serves. Both only read and write the Store.
func (m *Main) openUptime(context.Context) error {
	cfg := engine.UptimeConfig{
		Nodes: m.Store, Buckets: m.Store,
		Grace: m.Config.UptimeGrace, Retention: m.Config.UptimeRetention,
		Logger: m.Logger.With("component", "uptime"),
	}
	w, err := engine.NewUptimeWorker(cfg)
	if err != nil {
		return err
	}
	u, err := engine.NewUptime(cfg)
	if err != nil {
		return err
	}
	m.UptimeWorker, m.Uptime = w, u
	m.lead(m.Config.UptimeInterval, m.accountUptime)
	return nil
}

// accountUptime is one pass of the uptime worker.
func (m *Main) accountUptime(ctx context.Context) {
	p, err := m.UptimeWorker.Run(ctx)
	m.Logger.Debug("uptime pass", "nodes", p.Nodes, "buckets", p.Buckets, "recomputed", p.Recomputed, "failed", p.Failed, "purged", p.Purged)
	if err != nil {
		m.Logger.Warn("uptime pass stopped", "err", err)
	}
}
