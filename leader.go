package main

import (
	"context"
	"os"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// openLeader decides who runs the singleton work. On bbolt the instance
// holding the file lock is the only one, so it leads.
func (m *Main) openLeader(ctx context.Context) error {
	l, err := engine.TakeSoleLeadership(ctx, m.Store, m.instanceName())
	if err != nil {
		return err
	}
	m.Leader = l
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
				work(engine.WithLeaderEpoch(ctx, epoch))
			}
		}
	}
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}
