package gateway

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// Limits on what one heartbeat may make the gateway keep.
const (
	maxStatusRunning   = 64
	maxStatusMetrics   = 128
	maxComponents      = 16
	maxStatusText      = agentv1.MaxStatusText
	statusWriters      = 8
	statusWriteTimeout = 5 * time.Second
)

// statusOf is what a heartbeat says, as the Cache keeps it. Agents are not
// trusted with the gateway's memory: lists, maps and text are bounded.
func statusOf(req *agentv1.HeartbeatRequest, now time.Time) *engine.AgentStatus {
	chain := req.GetSync()
	st := &engine.AgentStatus{
		NodeID:            req.GetNodeId(),
		AgentVersion:      agentv1.StatusText(req.GetAgentVersion()),
		RunningCommandIDs: req.GetRunningCommandIds()[:min(len(req.GetRunningCommandIds()), maxStatusRunning)],
		Health:            appHealthOf(req.GetAppHealth()),
		HealthMessage:     agentv1.StatusText(req.GetAppHealthMessage()),
		Syncing:           chain.GetSyncing(),
		BlockHeight:       chain.GetCurrentHeight(),
		HighestBlock:      chain.GetHighestHeight(),
		Peers:             int(chain.GetPeers()),
		ReportedAt:        now.UTC(),
		Components:        componentsOf(req.GetComponents()),
	}
	if m := req.GetMetrics(); m != nil {
		st.Metrics = boundedMetrics(m.GetValues())
		if m.GetCollectedAt().IsValid() {
			st.MetricsAt = m.GetCollectedAt().AsTime().UTC()
		}
	}
	return st
}

// componentsOf keeps the first maxComponents statuses, their text bounded.
func componentsOf(cs []*agentv1.ComponentStatus) []engine.ComponentStatus {
	if len(cs) == 0 {
		return nil
	}
	out := make([]engine.ComponentStatus, 0, min(len(cs), maxComponents))
	for _, c := range cs[:min(len(cs), maxComponents)] {
		out = append(out, engine.ComponentStatus{
			Name: agentv1.StatusText(c.GetName()), Version: agentv1.StatusText(c.GetVersion()),
			Running: c.GetRunning(), Restarts: int(c.GetRestarts()), CrashLoop: c.GetCrashLoop(),
			LastExit: agentv1.StatusText(c.GetLastExit()),
		})
	}
	return out
}

func appHealthOf(h agentv1.AppHealth) engine.AppHealth {
	switch h {
	case agentv1.AppHealth_APP_HEALTH_HEALTHY:
		return engine.AppHealthHealthy
	case agentv1.AppHealth_APP_HEALTH_DEGRADED:
		return engine.AppHealthDegraded
	case agentv1.AppHealth_APP_HEALTH_CRITICAL:
		return engine.AppHealthCritical
	default:
		return engine.AppHealthUnknown
	}
}

// boundedMetrics keeps the first maxStatusMetrics names in order.
func boundedMetrics(values map[string]float64) map[string]float64 {
	if len(values) == 0 {
		return nil
	}
	names := make([]string, 0, len(values))
	for k := range values {
		if len(k) <= maxStatusText {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	out := make(map[string]float64, min(len(names), maxStatusMetrics))
	for _, k := range names[:min(len(names), maxStatusMetrics)] {
		out[k] = values[k]
	}
	return out
}

// statusRecorder writes heartbeat statuses to the Cache behind the
// heartbeat: a heartbeat only hands its status over, and a node that
// heartbeats again before the write has its newer status written instead.
type statusRecorder struct {
	cache  engine.AgentStatusCache // nil: statuses are not kept
	ttl    time.Duration
	logger *slog.Logger

	mu       sync.Mutex
	pending  map[string]*engine.AgentStatus
	wake     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

func newStatusRecorder(cache engine.AgentStatusCache, ttl time.Duration, logger *slog.Logger) *statusRecorder {
	r := &statusRecorder{cache: cache, ttl: ttl, logger: logger, pending: map[string]*engine.AgentStatus{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if cache == nil {
		close(r.done)
		return r
	}
	go r.run()
	return r
}

// record hands st over to be written; it never blocks on the Cache.
func (r *statusRecorder) record(st *engine.AgentStatus) {
	if r.cache == nil {
		return
	}
	r.mu.Lock()
	r.pending[st.NodeID] = st
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run writes what is pending, statusWriters at a time, until close.
func (r *statusRecorder) run() {
	defer close(r.done)
	for {
		select {
		case <-r.wake:
			r.flush()
		case <-r.stop:
			r.flush()
			return
		}
	}
}

func (r *statusRecorder) flush() {
	r.mu.Lock()
	batch := r.pending
	r.pending = make(map[string]*engine.AgentStatus, len(batch))
	r.mu.Unlock()
	slots := make(chan struct{}, statusWriters)
	var wg sync.WaitGroup
	for _, st := range batch {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			r.write(st)
		})
	}
	wg.Wait()
}

func (r *statusRecorder) write(st *engine.AgentStatus) {
	ctx, cancel := context.WithTimeout(context.Background(), statusWriteTimeout)
	defer cancel()
	if err := r.cache.SetAgentStatus(ctx, st, r.ttl); err != nil {
		r.logger.Warn("heartbeat: record agent status", "node_id", st.NodeID, "err", err)
	}
}

// close writes what is pending and stops.
func (r *statusRecorder) close() {
	r.stopOnce.Do(func() { close(r.stop) })
	<-r.done
}
