package web

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/prometheus/client_golang/prometheus"
)

// Limits are the request rates the API allows; zero fields take the
// defaults.
type Limits struct {
	AuthPerMinute int // sign-in, refresh and sign-up, per client IP; default 20
	APIPerMinute  int // authenticated requests, per credential; default 600
	// BreakerFailures is how many cache failures in a row switch counting
	// to this instance's memory; default 3.
	BreakerFailures int
	// BreakerProbe is how often, while counting in memory, the cache is
	// pinged to switch back; default 5s.
	BreakerProbe time.Duration
}

func (l Limits) withDefaults() Limits {
	l.AuthPerMinute = cmp0(l.AuthPerMinute, 20)
	l.APIPerMinute = cmp0(l.APIPerMinute, 600)
	l.BreakerFailures = cmp0(l.BreakerFailures, 3)
	if l.BreakerProbe <= 0 {
		l.BreakerProbe = 5 * time.Second
	}
	return l
}

func cmp0(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

const (
	rateWindow   = time.Minute
	probeTimeout = time.Second
)

// rateLimiter counts requests in the Cache, shared by every instance, and
// behind a circuit breaker: after BreakerFailures cache failures in a row it
// counts in this instance's memory instead (so limits still hold, per
// instance), and while it does, the first request after each BreakerProbe
// pings the cache and switches back when it answers. Probing rides on
// requests, so no goroutine outlives the server.
type rateLimiter struct {
	cache  engine.Cache // nil: memory only
	memory *memoryLimiter
	limits Limits
	mode   prometheus.Gauge // 1 cache, 0 memory
	logger *slog.Logger
	now    func() time.Time

	mu        sync.Mutex
	failures  int
	fallback  bool
	lastProbe time.Time
}

func newRateLimiter(cache engine.Cache, limits Limits, reg prometheus.Registerer, logger *slog.Logger) *rateLimiter {
	l := &rateLimiter{cache: cache, memory: newMemoryLimiter(), limits: limits, logger: logger, now: time.Now,
		fallback: cache == nil}
	l.mode = registerGauge(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "hoodcloud_ratelimit_mode",
		Help: "Where rate limits are counted: 1 in the shared cache, 0 in this instance's memory (fallback).",
	}))
	l.setMode()
	return l
}

// registerGauge registers g, or reuses the gauge already registered under
// its name (a second server on the same registry, as in tests).
func registerGauge(reg prometheus.Registerer, g prometheus.Gauge) prometheus.Gauge {
	if reg == nil {
		return g
	}
	err := reg.Register(g)
	var dup prometheus.AlreadyRegisteredError
	if errors.As(err, &dup) {
		if existing, ok := dup.ExistingCollector.(prometheus.Gauge); ok {
			return existing
		}
	}
	return g
}

func (l *rateLimiter) setMode() {
	if l.fallback {
		l.mode.Set(0)
	} else {
		l.mode.Set(1)
	}
}

// allow counts one request for key against limit per minute.
func (l *rateLimiter) allow(ctx context.Context, key string, limit int) engine.RateDecision {
	if l.useCache(ctx) {
		d, err := l.cache.Allow(ctx, key, limit, rateWindow, engine.FixedWindow)
		if err == nil {
			l.succeeded()
			return d
		}
		l.failed(err)
	}
	return l.memory.allow(key, limit, rateWindow, l.now())
}

// useCache reports whether to count in the cache, probing it when due.
func (l *rateLimiter) useCache(ctx context.Context) bool {
	if l.cache == nil {
		return false
	}
	l.mu.Lock()
	due := l.fallback && l.now().Sub(l.lastProbe) >= l.limits.BreakerProbe
	if due {
		l.lastProbe = l.now() // one prober per interval
	}
	fallback := l.fallback
	l.mu.Unlock()
	if !fallback {
		return true
	}
	if !due {
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if err := l.cache.Ping(pctx); err != nil {
		return false
	}
	l.succeeded()
	return true
}

func (l *rateLimiter) succeeded() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fallback {
		l.logger.Info("rate limits counted in the cache again")
	}
	l.failures, l.fallback = 0, false
	l.setMode()
}

// failed counts a cache failure; only unavailability trips the breaker,
// any failure falls back for the request at hand.
func (l *rateLimiter) failed(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !engine.IsCode(err, engine.EUnavailable) {
		l.logger.Error("rate limit in cache failed", "err", err)
		return
	}
	l.failures++
	if l.failures >= l.limits.BreakerFailures && !l.fallback {
		l.logger.Warn("cache unavailable: counting rate limits in memory", "err", err)
		l.fallback, l.lastProbe = true, l.now()
		l.setMode()
	}
}

// limit is middleware allowing limit requests per minute per key(c).
func (l *rateLimiter) limit(limit int, key func(*gin.Context) string) gin.HandlerFunc {
	return func(c *gin.Context) {
		d := l.allow(c.Request.Context(), key(c), limit)
		if !d.Allowed {
			secs := int(math.Ceil(d.RetryAfter.Seconds()))
			c.Header("Retry-After", strconv.Itoa(max(secs, 1)))
			writeError(c, engine.Errorf(engine.ERateLimited, "too many requests; retry later"))
			return
		}
		c.Next()
	}
}

// memoryLimiter counts fixed windows in this process.
type memoryLimiter struct {
	mu        sync.Mutex
	windows   map[string]*memoryWindow
	lastSweep time.Time
}

type memoryWindow struct {
	ends  time.Time
	count int
}

func newMemoryLimiter() *memoryLimiter {
	return &memoryLimiter{windows: make(map[string]*memoryWindow)}
}

func (m *memoryLimiter) allow(key string, limit int, window time.Duration, now time.Time) engine.RateDecision {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now, window)
	w := m.windows[key]
	if w == nil || !now.Before(w.ends) {
		w = &memoryWindow{ends: now.Add(window)}
		m.windows[key] = w
	}
	if w.count >= limit {
		return engine.RateDecision{RetryAfter: w.ends.Sub(now)}
	}
	w.count++
	return engine.RateDecision{Allowed: true, Remaining: limit - w.count}
}

// sweep forgets ended windows, at most once per window, so memory follows
// the number of recent clients.
func (m *memoryLimiter) sweep(now time.Time, window time.Duration) {
	if now.Sub(m.lastSweep) < window {
		return
	}
	m.lastSweep = now
	for k, w := range m.windows {
		if !now.Before(w.ends) {
			delete(m.windows, k)
		}
	}
}
