package enginetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// Uptime benchmark fixture: upBenchNodes nodes created 24 hours before
// the current hour began, so a pass from scratch writes 25 buckets per
// node (24 complete hours and the current one).
const upBenchNodes = 10_000

// upBenchHour is the current hour of the benchmark; the worker's clock
// reads half past it.
var upBenchHour = time.Date(2031, 6, 1, 12, 0, 0, 0, time.UTC)

// UptimeSeeder loads the uptime benchmark's fixture faster than one
// transaction per write, as an adapter can: Nodes as CreateNode would
// store them, Changes as ChangeNodeState would apply them (each node's in
// order, filling From). A nil field falls back to those methods.
type UptimeSeeder struct {
	Nodes   NodeSeeder
	Changes func(ctx context.Context, changes []*engine.NodeStateChange) error
}

// BenchUptime measures one pass of the uptime worker over upBenchNodes
// nodes with a day of history each: provisioning, syncing 3 minutes
// later, running after 20 to 40 minutes, then zero to three outages
// (degraded for 5 to 30 minutes). s must hold no other nodes. The fixture
// is seeded once, outside the timer. Sub-benchmarks:
//   - CatchUp24h: no bucket yet, as after the first start or a day's stop;
//   - Recompute24h: every bucket flagged for recomputation;
//   - Steady: every bucket up to date: the pass every interval.
func BenchUptime(b *testing.B, s engine.Store, seed UptimeSeeder) {
	upBenchSeed(b, s, seed)
	b.Run("CatchUp24h", func(b *testing.B) {
		upBenchPasses(b, s, 25*upBenchNodes, func() { upBenchOK(b, upBenchClear(b, s)) })
	})
	b.Run("Recompute24h", func(b *testing.B) {
		// The flagged 25 per node, then the current hour again as it advances.
		upBenchPasses(b, s, 26*upBenchNodes, func() { upBenchOK(b, upBenchFlagAll(b, s)) })
	})
	b.Run("Steady", func(b *testing.B) {
		upBenchPasses(b, s, upBenchNodes, func() {})
	})
}

// upBenchPasses times passes of a new worker, each after prepare (outside
// the timer), and checks each wrote want buckets.
func upBenchPasses(b *testing.B, s engine.Store, want int, prepare func()) {
	w, err := engine.NewUptimeWorker(engine.UptimeConfig{Nodes: s, Buckets: s,
		Now: func() time.Time { return upBenchHour.Add(30 * time.Minute) }})
	upBenchOK(b, err)
	upBenchPass(b, w) // from whatever the previous sub-benchmark left to up to date; b.Loop resets the timer
	for b.Loop() {
		b.StopTimer()
		prepare()
		b.StartTimer()
		p := upBenchPass(b, w)
		if got := p.Buckets + p.Recomputed; got != want {
			b.Fatalf("pass wrote %d buckets (%+v), want %d", got, p, want)
		}
	}
	b.ReportMetric(float64(want), "buckets/pass")
}

func upBenchPass(b *testing.B, w *engine.UptimeWorker) engine.UptimePass {
	p, err := w.Run(b.Context())
	upBenchOK(b, err)
	if p.Failed != 0 || p.Nodes != upBenchNodes {
		b.Fatalf("pass = %+v, want %d nodes and no failure", p, upBenchNodes)
	}
	return p
}

// upBenchClear deletes every bucket.
func upBenchClear(b *testing.B, s engine.Store) error {
	_, err := s.DeleteUptimeBucketsBefore(b.Context(), upBenchHour.Add(24*time.Hour))
	return err
}

// upBenchFlagAll flags every bucket of every node for recomputation.
func upBenchFlagAll(b *testing.B, s engine.Store) error {
	var all []*engine.UptimeBucket
	for after := ""; ; {
		nodes, err := s.ListNodesByState(b.Context(), engine.NodeRunning, after, 1000)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			bs, err := s.ListUptimeBuckets(b.Context(), n.ID, upBenchHour.Add(-48*time.Hour), upBenchHour.Add(time.Hour))
			if err != nil {
				return err
			}
			for _, bk := range bs {
				bk.Recompute = true
			}
			all = append(all, bs...)
		}
		if len(nodes) < 1000 {
			break
		}
		after = nodes[len(nodes)-1].ID
	}
	for len(all) > 0 {
		chunk := all[:min(len(all), 10_000)]
		if err := s.PutUptimeBuckets(b.Context(), chunk); err != nil {
			return err
		}
		all = all[len(chunk):]
	}
	return nil
}

// upBenchSeed stores the nodes and their day of state changes.
func upBenchSeed(b *testing.B, s engine.Store, seed UptimeSeeder) {
	start := time.Now()
	created := upBenchHour.Add(-24 * time.Hour)
	rng := rand.New(rand.NewPCG(24, 10_000))
	nodes := make([]*engine.Node, upBenchNodes)
	var changes []*engine.NodeStateChange
	for i := range nodes {
		n := stNode(fmt.Sprintf("bench-owner-%d", i%100), "bench-chain", engine.NodeProvisioning)
		n.CreatedAt, n.UpdatedAt = created, created
		nodes[i] = n
		for _, c := range upBenchPlan(rng, created) {
			changes = append(changes, &engine.NodeStateChange{NodeID: n.ID, To: c.to, Reason: "bench", At: c.at})
		}
	}
	if seed.Nodes == nil {
		seed.Nodes = func(ctx context.Context, ns []*engine.Node) error { return upBenchCreate(ctx, s, ns) }
	}
	if seed.Changes == nil {
		seed.Changes = func(ctx context.Context, cs []*engine.NodeStateChange) error { return upBenchChange(ctx, s, cs) }
	}
	upBenchOK(b, seed.Nodes(b.Context(), nodes))
	upBenchOK(b, seed.Changes(b.Context(), changes))
	b.Logf("seeded %d nodes with %d state changes in %v", len(nodes), len(changes), time.Since(start).Round(time.Millisecond))
}

func upBenchCreate(ctx context.Context, s engine.Store, nodes []*engine.Node) error {
	for _, n := range nodes {
		if err := s.CreateNode(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// upBenchPlan is one node's day: syncing 3 minutes after its creation,
// running 20 to 40 minutes later, then up to three outages of 5 to 30
// minutes, each in its own stretch of the day so they do not overlap.
func upBenchPlan(rng *rand.Rand, created time.Time) []upChange {
	at := created.Add(3 * time.Minute)
	plan := []upChange{becomes(engine.NodeSyncing, at)}
	at = at.Add(time.Duration(20+rng.IntN(21)) * time.Minute)
	plan = append(plan, becomes(engine.NodeRunning, at))
	outages := rng.IntN(4)
	for k := range outages {
		stretch := (24*time.Hour - time.Hour) / time.Duration(outages)
		down := created.Add(time.Hour + time.Duration(k)*stretch + time.Duration(rng.Int64N(int64(stretch-30*time.Minute))))
		plan = append(plan, becomes(engine.NodeDegraded, down),
			becomes(engine.NodeRunning, down.Add(time.Duration(5+rng.IntN(26))*time.Minute)))
	}
	return plan
}

// upBenchChange applies the changes through ChangeNodeState from 16
// goroutines, each node's changes in order on one of them.
func upBenchChange(ctx context.Context, s engine.Store, changes []*engine.NodeStateChange) error {
	const workers = 16
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for _, c := range changes {
				if int(c.NodeID[len(c.NodeID)-1])%workers != w {
					continue
				}
				if err := upBenchChangeOne(ctx, s, c); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func upBenchChangeOne(ctx context.Context, s engine.Store, c *engine.NodeStateChange) error {
	n, err := s.GetNode(ctx, c.NodeID)
	if err != nil {
		return err
	}
	_, err = s.ChangeNodeState(ctx, n.Version, c)
	return err
}

func upBenchOK(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatalf("unexpected error: %v", err)
	}
}
