package agentload

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hoodcloud/hoodcloud/agent"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// Load is what every agent of the fleet does during a Session.
type Load struct {
	// Interval is each agent's heartbeat interval, with the ops-agent's ±10%
	// jitter.
	Interval time.Duration
	// Rate, when set, is the fleet's heartbeats per second instead:
	// Interval becomes agents/Rate.
	Rate float64
	// Duration ends the Session; 0 runs it until Stop.
	Duration time.Duration
}

func (l Load) interval(agents int) time.Duration {
	if l.Rate > 0 {
		return time.Duration(float64(agents) / l.Rate * float64(time.Second))
	}
	return l.Interval
}

// Session is the fleet heartbeating under one Load. Each agent keeps its
// own schedule, open loop: the next heartbeat is due one jittered interval
// after the previous one was due, however long that one took, and latency
// counts from when it was due. After a failure the agent waits as the
// ops-agent does: min(interval, backoff), jittered. Result and Rejoin may
// be called while it runs, but not while Stop does.
type Session struct {
	fleet    *Fleet
	interval time.Duration
	start    time.Time
	end      time.Time // zero until Stop when the Load has no Duration
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu      sync.Mutex
	samples []sample

	rejoinFrom atomic.Int64   // unix ns; 0 while no rejoin is watched
	rejoinedAt []atomic.Int64 // per agent: unix ns its first heartbeat sent after rejoinFrom succeeded
}

// sample is one heartbeat, in offsets from the Session's start.
type sample struct {
	due     time.Duration
	lag     time.Duration // due until actually sent: the generator's own delay
	latency time.Duration // due until the reply
	code    string        // gRPC code; "" for success
	connect bool          // the connection was not ready when it was sent
}

// Start begins the Load; Wait or Stop ends it.
func (f *Fleet) Start(ctx context.Context, l Load) (*Session, error) {
	interval := l.interval(len(f.agents))
	if interval <= 0 || l.Duration < 0 {
		return nil, errors.New("agentload: a load needs a positive interval or rate")
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Session{fleet: f, interval: interval, start: time.Now(), cancel: cancel, rejoinedAt: make([]atomic.Int64, len(f.agents))}
	if l.Duration > 0 {
		s.end = s.start.Add(l.Duration)
	}
	for i, a := range f.agents {
		s.wg.Go(func() { s.drive(ctx, i, a) })
	}
	return s, nil
}

// Run applies a Load with a Duration and returns its Result.
func (f *Fleet) Run(ctx context.Context, l Load) (Result, error) {
	if l.Duration <= 0 {
		return Result{}, errors.New("agentload: Run needs a duration; use Start and Stop")
	}
	s, err := f.Start(ctx, l)
	if err != nil {
		return Result{}, err
	}
	return s.Wait(), ctx.Err()
}

// Wait waits until the Load's Duration has passed and every heartbeat due
// in it has finished.
func (s *Session) Wait() Result {
	s.wg.Wait()
	s.cancel()
	return s.Result()
}

// Stop ends the Session now; heartbeats in flight are abandoned and not
// counted.
func (s *Session) Stop() Result {
	now := time.Now()
	s.cancel()
	s.wg.Wait()
	if s.end.IsZero() || now.Before(s.end) {
		s.end = now
	}
	return s.Result()
}

// drive is one agent's loop.
func (s *Session) drive(ctx context.Context, i int, a *simAgent) {
	cfg := s.fleet.cfg
	due := s.start.Add(time.Duration(rand.Int64N(int64(s.interval)))) // spread over one interval
	for failures := 0; ; {
		if !s.end.IsZero() && !due.Before(s.end) || !sleepUntil(ctx, due) {
			return
		}
		connect := a.conn.GetState() != connectivity.Ready
		sent := time.Now()
		cctx, cancel := context.WithTimeout(ctx, cfg.CallTimeout)
		_, err := a.heartbeat(cctx, cfg.Version)
		cancel()
		done := time.Now()
		if ctx.Err() != nil {
			return // stopped: not the gateway's doing
		}
		s.record(sample{due: due.Sub(s.start), lag: sent.Sub(due), latency: done.Sub(due), connect: connect}, err)
		if err == nil {
			failures = 0
			s.noteRejoined(i, sent, done)
			due = due.Add(agent.Jitter(s.interval, 0.1))
			continue
		}
		due = done.Add(agent.Jitter(min(s.interval, agent.BackoffDelay(cfg.MinBackoff, cfg.MaxBackoff, failures)), 0.1))
		failures++
	}
}

func (s *Session) record(smp sample, err error) {
	if err != nil {
		smp.code = status.Code(err).String()
	}
	s.mu.Lock()
	s.samples = append(s.samples, smp)
	s.mu.Unlock()
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// Result summarises the heartbeats due from the start until the end.
func (s *Session) Result() Result {
	end := s.end
	if end.IsZero() {
		end = time.Now()
	}
	return s.resultBetween(s.start, end)
}

// resultBetween summarises the heartbeats due in [from, to).
func (s *Session) resultBetween(from, to time.Time) Result {
	lo, hi := from.Sub(s.start), to.Sub(s.start)
	s.mu.Lock()
	var window []sample
	for _, smp := range s.samples {
		if smp.due >= lo && smp.due < hi {
			window = append(window, smp)
		}
	}
	s.mu.Unlock()
	return summarise(window, len(s.fleet.agents), s.interval, hi-lo)
}

// WatchRejoin starts watching the fleet come back: an agent has rejoined
// once a heartbeat it sent at or after t succeeded.
func (s *Session) WatchRejoin(t time.Time) { s.rejoinFrom.Store(t.UnixNano()) }

func (s *Session) noteRejoined(i int, sent, done time.Time) {
	from := s.rejoinFrom.Load()
	if from != 0 && sent.UnixNano() >= from && s.rejoinedAt[i].Load() < from {
		s.rejoinedAt[i].Store(done.UnixNano())
	}
}

// Rejoin is how much of the fleet has come back since WatchRejoin.
type Rejoin struct {
	Agents        int           // agents that have rejoined
	Last          time.Duration // from the watched time until the latest of them rejoined
	PeakPerSecond int           // most agents rejoining within one second
}

// Rejoin reports the agents that have rejoined so far.
func (s *Session) Rejoin() Rejoin {
	from := s.rejoinFrom.Load()
	if from == 0 {
		return Rejoin{}
	}
	var r Rejoin
	perSecond := map[int64]int{}
	for i := range s.rejoinedAt {
		at := s.rejoinedAt[i].Load()
		if at < from {
			continue
		}
		r.Agents++
		r.Last = max(r.Last, time.Duration(at-from))
		sec := (at - from) / int64(time.Second)
		perSecond[sec]++
		r.PeakPerSecond = max(r.PeakPerSecond, perSecond[sec])
	}
	return r
}
