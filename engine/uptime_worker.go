package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of uptime accounting.
const (
	DefaultUptimeInterval  = 5 * time.Minute
	DefaultUptimeBatchSize = 500
	DefaultUptimeGrace     = 10 * time.Minute
	DefaultUptimeRetention = 90 * 24 * time.Hour
	// DefaultUptimeConcurrency is the nodes a pass computes at once: each
	// is a few reads, so on PostgreSQL the round trips overlap.
	DefaultUptimeConcurrency = 4
)

// uptimeLookback is how far back a pass looks for a node's last complete
// bucket before it reads the node's whole retention.
const uptimeLookback = 24 * time.Hour

// uptimeFlushAt bounds the buckets a pass holds before writing them, for
// the first pass over nodes with months of history; uptimeChunk is how
// many nodes it computes before it looks whether to write.
const (
	uptimeFlushAt = 10_000
	uptimeChunk   = 64
)

// UptimeConfig configures the uptime worker and reports. Nodes and Buckets
// are required.
type UptimeConfig struct {
	Nodes   NodeStore
	Buckets UptimeStore
	// BatchSize is how many nodes a pass reads and writes at a time: zero
	// is DefaultUptimeBatchSize.
	BatchSize int
	// Grace is how long from its creation a provisioning node counts as
	// up: zero is DefaultUptimeGrace.
	Grace time.Duration
	// Retention is how long buckets are kept: zero is DefaultUptimeRetention.
	Retention time.Duration
	// Concurrency is how many nodes a pass computes at once (each a few
	// store reads): zero is DefaultUptimeConcurrency. On PostgreSQL keep
	// it below the pool's size (pool_max_conns) so requests find one.
	Concurrency int
	Logger      *slog.Logger
	Now         func() time.Time // time.Now when nil
}

func (c UptimeConfig) withDefaults() (UptimeConfig, error) {
	if c.Nodes == nil || c.Buckets == nil {
		return c, errors.New("uptime: nodes and buckets are required")
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultUptimeBatchSize
	}
	if c.Grace <= 0 {
		c.Grace = DefaultUptimeGrace
	}
	if c.Retention <= 0 {
		c.Retention = DefaultUptimeRetention
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultUptimeConcurrency
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// UptimeWorker materialises each node's hourly uptime buckets from its
// state log, one pass at a time (Run). It keeps no cursor: a node's
// progress is its last complete bucket, so a restarted worker catches up
// from there, and a pass repeated is a pass redone. The current hour is
// kept incomplete and recomputed by every pass. Leader-only work: run it
// on one instance, with a leader-fenced context.
type UptimeWorker struct {
	cfg UptimeConfig
}

// NewUptimeWorker checks cfg and fills its defaults; it does no I/O.
func NewUptimeWorker(cfg UptimeConfig) (*UptimeWorker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &UptimeWorker{cfg: cfg}, nil
}

// UptimePass is what one pass did.
type UptimePass struct {
	Nodes      int // nodes looked at
	Buckets    int // buckets written as nodes were brought up to date
	Recomputed int // flagged buckets written again
	Failed     int // nodes whose buckets could not be computed or written
	Purged     int // buckets past the retention, deleted
}

// Run makes one pass: it recomputes the buckets flagged for it, brings
// every node's buckets up to the current hour, and purges the buckets past
// the retention. A node that fails is logged, counted and left for the
// next pass; the others go on. Run returns an error only for what stops
// the pass: ctx ending, a newer leader fencing the writes, or a failure
// to list nodes or to purge.
func (w *UptimeWorker) Run(ctx context.Context) (UptimePass, error) {
	now := w.cfg.Now().UTC()
	var p UptimePass
	err := w.recomputeFlagged(ctx, now, &p)
	if err == nil {
		err = w.advanceAll(ctx, now, &p)
	}
	if err == nil {
		p.Purged, err = w.cfg.Buckets.DeleteUptimeBucketsBefore(ctx, w.keepFrom(now))
		if err != nil {
			err = fmt.Errorf("purge uptime buckets: %w", err)
		}
	}
	return p, err
}

// keepFrom is the oldest hour kept: older buckets are purged, and never
// computed again.
func (w *UptimeWorker) keepFrom(now time.Time) time.Time {
	return now.Add(-w.cfg.Retention).Truncate(time.Hour)
}

// uptimeBatch gathers the buckets of a batch of nodes, to write them in
// one transaction.
type uptimeBatch struct {
	w       *UptimeWorker
	pass    *UptimePass
	written *int // the pass's count of what the batch writes
	buckets []*UptimeBucket
	nodes   []string // whose buckets are held
}

// add holds the node's buckets, or logs and counts its failure.
func (b *uptimeBatch) add(nodeID string, bs []*UptimeBucket, err error) {
	if err != nil {
		b.pass.Failed++
		b.w.cfg.Logger.Warn("failed to compute uptime for node", "node_id", nodeID, "err", err)
		return
	}
	if len(bs) > 0 {
		b.buckets = append(b.buckets, bs...)
		b.nodes = append(b.nodes, nodeID)
	}
}

// computeAll computes the buckets of the nodes named by ids through
// compute, Concurrency nodes at a time, adds them in order, and writes
// whenever the batch holds uptimeFlushAt buckets.
func (b *uptimeBatch) computeAll(ctx context.Context, ids []string, compute func(i int) ([]*UptimeBucket, error)) error {
	for start := 0; start < len(ids); start += uptimeChunk {
		chunk := ids[start:min(len(ids), start+uptimeChunk)]
		results := make([]computed, len(chunk))
		inParallel(len(chunk), b.w.cfg.Concurrency, func(i int) {
			results[i].buckets, results[i].err = compute(start + i)
		})
		if err := ctx.Err(); err != nil {
			return err
		}
		for i, r := range results {
			if passStopped(ctx, r.err) {
				return r.err
			}
			b.add(chunk[i], r.buckets, r.err)
		}
		if len(b.buckets) >= uptimeFlushAt {
			if err := b.flush(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// computed is what computing one node's buckets gave.
type computed struct {
	buckets []*UptimeBucket
	err     error
}

// inParallel calls fn(0) to fn(n-1) from up to workers goroutines and
// returns when every call has.
func inParallel(n, workers int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, workers) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// flush writes what the batch holds. A write the leader fence refuses
// stops the pass; any other failure is logged, and the batch's nodes are
// left for the next pass.
func (b *uptimeBatch) flush(ctx context.Context) error {
	if len(b.buckets) == 0 {
		return nil
	}
	err := b.w.cfg.Buckets.PutUptimeBuckets(ctx, b.buckets)
	switch {
	case err == nil:
		*b.written += len(b.buckets)
	case passStopped(ctx, err):
		return err
	default:
		b.pass.Failed += len(b.nodes)
		b.w.cfg.Logger.Warn("failed to compute uptime batch", "nodes", len(b.nodes), "err", err)
	}
	b.buckets, b.nodes = b.buckets[:0], b.nodes[:0]
	return nil
}

// passStopped reports an error after which the pass must not go on.
func passStopped(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, ErrStaleLeader)
}

// advanceAll pages through the nodes of every state, batch by batch.
func (w *UptimeWorker) advanceAll(ctx context.Context, now time.Time, p *UptimePass) error {
	for _, state := range NodeStates {
		if err := w.advanceState(ctx, state, now, p); err != nil {
			return err
		}
	}
	return nil
}

func (w *UptimeWorker) advanceState(ctx context.Context, state NodeState, now time.Time, p *UptimePass) error {
	batch := &uptimeBatch{w: w, pass: p, written: &p.Buckets}
	for after := ""; ; {
		nodes, err := w.cfg.Nodes.ListNodesByState(ctx, state, after, w.cfg.BatchSize)
		if err != nil {
			return fmt.Errorf("list %s nodes: %w", state, err)
		}
		p.Nodes += len(nodes)
		ids := make([]string, len(nodes))
		for i, n := range nodes {
			ids[i] = n.ID
		}
		err = batch.computeAll(ctx, ids, func(i int) ([]*UptimeBucket, error) { return w.advance(ctx, nodes[i], now) })
		if err == nil {
			err = batch.flush(ctx)
		}
		if err != nil {
			return err
		}
		if len(nodes) < w.cfg.BatchSize {
			return nil
		}
		after = nodes[len(nodes)-1].ID
	}
}

// advance computes the node's buckets from the hour after its last
// complete one through the current hour (or the hour it terminated in).
func (w *UptimeWorker) advance(ctx context.Context, n *Node, now time.Time) ([]*UptimeBucket, error) {
	first, last := w.span(n, now)
	if last.Before(first) {
		return nil, nil
	}
	from, err := w.frontier(ctx, n.ID, first, last)
	if err != nil || from.After(last) {
		return nil, err
	}
	h, err := w.history(ctx, n, last.Add(time.Hour))
	if err != nil {
		return nil, err
	}
	if end, ok := h.Terminated(); ok {
		last = earliest(last, end.Truncate(time.Hour))
	}
	var bs []*UptimeBucket
	for hour := from; !hour.After(last); hour = hour.Add(time.Hour) {
		bs = append(bs, h.Bucket(hour, now, w.cfg.Grace))
	}
	return bs, nil
}

// span is the first and last hour of the node's buckets within the
// retention. A terminated node's last hour is at most that of its last
// update: the store stamps the final state change there, and nothing
// updates a terminated node after it.
func (w *UptimeWorker) span(n *Node, now time.Time) (first, last time.Time) {
	first = latest(n.CreatedAt.UTC().Truncate(time.Hour), w.keepFrom(now))
	last = now.Truncate(time.Hour)
	if n.State == NodeTerminated && !n.UpdatedAt.IsZero() {
		last = earliest(last, n.UpdatedAt.UTC().Truncate(time.Hour))
	}
	return first, last
}

// frontier is the hour after the node's last complete bucket between
// first and last, or first when there is none. Complete buckets are a
// prefix of the node's hours (every pass writes from the frontier on), so
// it looks back in steps: the previous hour finds it on a worker that ran
// within the hour, the last day on one stopped for less than a day, and
// only a longer stop reads the node's whole retention.
func (w *UptimeWorker) frontier(ctx context.Context, nodeID string, first, last time.Time) (time.Time, error) {
	to := last.Add(time.Hour)
	for _, back := range []time.Duration{time.Hour, uptimeLookback, last.Sub(first)} {
		from := latest(first, last.Add(-back))
		if !from.Before(to) {
			continue
		}
		bs, err := w.cfg.Buckets.ListUptimeBuckets(ctx, nodeID, from, to)
		if err != nil {
			return time.Time{}, err
		}
		if h, ok := afterLastComplete(bs); ok {
			return h, nil
		}
		to = from
	}
	return first, nil
}

// afterLastComplete is the hour after the last complete bucket of bs.
func afterLastComplete(bs []*UptimeBucket) (time.Time, bool) {
	for i := len(bs) - 1; i >= 0; i-- {
		if bs[i].Complete {
			return bs[i].Hour.Add(time.Hour), true
		}
	}
	return time.Time{}, false
}

// history reads the node's state log up to until. The whole log from the
// creation is read, as the state an hour starts in may have been entered
// long before it; a node's log is a handful of entries a day.
func (w *UptimeWorker) history(ctx context.Context, n *Node, until time.Time) (NodeHistory, error) {
	log, err := w.cfg.Nodes.ListNodeStateLog(ctx, n.ID, time.Time{}, until)
	if err != nil {
		return NodeHistory{}, fmt.Errorf("read state log: %w", err)
	}
	return NodeHistory{NodeID: n.ID, Created: n.CreatedAt, Log: log}, nil
}

// recomputeFlagged recomputes, node by node, the buckets flagged for it.
func (w *UptimeWorker) recomputeFlagged(ctx context.Context, now time.Time, p *UptimePass) error {
	batch := &uptimeBatch{w: w, pass: p, written: &p.Recomputed}
	for after := ""; ; {
		ids, err := w.cfg.Buckets.ListUptimeRecomputeNodes(ctx, after, w.cfg.BatchSize)
		if err != nil {
			return fmt.Errorf("list nodes to recompute: %w", err)
		}
		err = batch.computeAll(ctx, ids, func(i int) ([]*UptimeBucket, error) { return w.recompute(ctx, ids[i], now) })
		if err == nil {
			err = batch.flush(ctx)
		}
		if err != nil {
			return err
		}
		if len(ids) < w.cfg.BatchSize {
			return nil
		}
		after = ids[len(ids)-1]
	}
}

// recompute computes the node's flagged buckets again, unflagged.
func (w *UptimeWorker) recompute(ctx context.Context, nodeID string, now time.Time) ([]*UptimeBucket, error) {
	n, err := w.cfg.Nodes.GetNode(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	stored, err := w.cfg.Buckets.ListUptimeBuckets(ctx, nodeID, w.keepFrom(now), now.Truncate(time.Hour).Add(time.Hour))
	if err != nil {
		return nil, err
	}
	var flagged []time.Time
	for _, b := range stored {
		if b.Recompute {
			flagged = append(flagged, b.Hour)
		}
	}
	if len(flagged) == 0 {
		return nil, nil
	}
	h, err := w.history(ctx, n, flagged[len(flagged)-1].Add(time.Hour))
	if err != nil {
		return nil, err
	}
	bs := make([]*UptimeBucket, len(flagged))
	for i, hour := range flagged {
		bs[i] = h.Bucket(hour, now, w.cfg.Grace)
	}
	return bs, nil
}
