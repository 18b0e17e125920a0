package engine

import (
	"context"
	"time"
)

// UptimeWindows are the rolling windows uptime is reported over, by name.
var UptimeWindows = map[string]time.Duration{
	"24h": 24 * time.Hour,
	"7d":  7 * 24 * time.Hour,
	"30d": 30 * 24 * time.Hour,
}

// UptimeGranularity is the length of the periods of an uptime history.
type UptimeGranularity string

const (
	UptimeHourly UptimeGranularity = "hourly"
	UptimeDaily  UptimeGranularity = "daily"
)

// ParseUptimeWindow reads a window name: 24h, 7d or 30d; else EInvalid.
func ParseUptimeWindow(name string) (time.Duration, error) {
	if d, ok := UptimeWindows[name]; ok {
		return d, nil
	}
	return 0, Errorf(EInvalid, "window must be 24h, 7d or 30d")
}

// ParseUptimeGranularity reads hourly or daily; else EInvalid.
func ParseUptimeGranularity(name string) (UptimeGranularity, error) {
	switch g := UptimeGranularity(name); g {
	case UptimeHourly, UptimeDaily:
		return g, nil
	}
	return "", Errorf(EInvalid, "granularity must be hourly or daily")
}

// UptimePeriod is a node's uptime over a stretch of time: the hours from
// Start (inclusive) to End (exclusive) that its buckets cover.
type UptimePeriod struct {
	Start, End  time.Time
	UpSeconds   int64
	DownSeconds int64
	// Complete is false while a bucket of the period is not: the current
	// hour, counted up to the worker's latest pass.
	Complete bool
}

// Percent is the share of the counted time the node was up, and false
// when no time counts (the node did not exist, or was terminating).
func (p UptimePeriod) Percent() (float64, bool) {
	total := p.UpSeconds + p.DownSeconds
	if total == 0 {
		return 0, false
	}
	return 100 * float64(p.UpSeconds) / float64(total), true
}

func (p *UptimePeriod) add(b *UptimeBucket) {
	p.UpSeconds += b.UpSeconds
	p.DownSeconds += b.DownSeconds
	p.Complete = p.Complete && b.Complete
}

// Uptime answers for nodes' uptime from their buckets, and flags buckets
// for the worker to recompute. It reads no state log: the worker keeps the
// buckets current to within its interval. Safe for concurrent use.
type Uptime struct {
	cfg UptimeConfig
}

// NewUptime checks cfg and fills its defaults; it does no I/O.
func NewUptime(cfg UptimeConfig) (*Uptime, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Uptime{cfg: cfg}, nil
}

// windowHours is the hours a window covers: the whole hours it reaches back
// over before the current one, and the current hour.
func (u *Uptime) windowHours(window time.Duration) (from, to time.Time) {
	to = u.cfg.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	return to.Add(-time.Hour - window), to
}

// Summary is the node's uptime over the window: the window's whole hours
// before the current one and the current hour so far (as of the worker's
// latest pass), over the time the node existed in them.
func (u *Uptime) Summary(ctx context.Context, nodeID string, window time.Duration) (UptimePeriod, error) {
	from, to := u.windowHours(window)
	bs, err := u.cfg.Buckets.ListUptimeBuckets(ctx, nodeID, from, to)
	if err != nil {
		return UptimePeriod{}, err
	}
	p := UptimePeriod{Start: from, End: to, Complete: true}
	for _, b := range bs {
		p.add(b)
	}
	return p, nil
}

// History is the node's uptime over the window, hour by hour or by UTC
// day, oldest first. Only periods with buckets appear: none before the
// node existed.
func (u *Uptime) History(ctx context.Context, nodeID string, window time.Duration, g UptimeGranularity) ([]UptimePeriod, error) {
	from, to := u.windowHours(window)
	bs, err := u.cfg.Buckets.ListUptimeBuckets(ctx, nodeID, from, to)
	if err != nil {
		return nil, err
	}
	length := time.Hour
	if g == UptimeDaily {
		length = 24 * time.Hour
	}
	var out []UptimePeriod
	for _, b := range bs {
		start := b.Hour.Truncate(length)
		if len(out) == 0 || !out[len(out)-1].Start.Equal(start) {
			out = append(out, UptimePeriod{Start: start, End: start.Add(length), Complete: true})
		}
		out[len(out)-1].add(b)
	}
	return out, nil
}

// MarkRecompute flags the node's buckets of the hours from from (its hour)
// up to to for the worker's next pass, and returns how many it flagged.
// Hours without a bucket are left: the node did not exist then, or the
// worker has yet to compute them.
// from must be before to (EInvalid).
func (u *Uptime) MarkRecompute(ctx context.Context, nodeID string, from, to time.Time) (int, error) {
	if !from.Before(to) {
		return 0, Errorf(EInvalid, "from must be before to")
	}
	bs, err := u.cfg.Buckets.ListUptimeBuckets(ctx, nodeID, from.UTC().Truncate(time.Hour), to)
	if err != nil || len(bs) == 0 {
		return 0, err
	}
	// One write for the range. Should the worker rewrite a bucket between
	// the read and this write, its figures come back old but flagged, and
	// the next pass computes them again.
	for _, b := range bs {
		b.Recompute = true
	}
	if err := u.cfg.Buckets.PutUptimeBuckets(ctx, bs); err != nil {
		return 0, err
	}
	return len(bs), nil
}
