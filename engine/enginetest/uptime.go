package enginetest

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// RunUptime runs the uptime worker and reports on a store: each test gets
// a fresh store from open, nodes with a known state log and a clock the
// test moves.
func RunUptime(t *testing.T, open StoreOpener) {
	for _, c := range []struct {
		name string
		run  func(t *testing.T, u *uptimeFixture)
	}{
		{"BucketsAndPercentagesFromTheStateLog", testUptimeExactBuckets},
		{"ARestartedWorkerCatchesUpFromTheLastCompleteBucket", testUptimeCatchUp},
		{"ATerminatedNodeStopsAtItsLastHour", testUptimeTerminated},
		{"FlaggedBucketsAreRecomputed", testUptimeRecompute},
		{"BucketsPastTheRetentionArePurgedAndNotComputed", testUptimeRetention},
		{"EveryStateIsPagedAndAFailingNodeDoesNotBlockItsBatch", testUptimePagingAndFailures},
		{"AFencedWriteStopsThePass", testUptimeFenced},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, newUptimeFixture(t, openStore(t, open))) })
	}
}

// upT0 is 08:00 of the day the uptime tests take place.
var upT0 = time.Date(2031, 5, 4, 8, 0, 0, 0, time.UTC)

// upAt is upT0 plus hours and minutes.
func upAt(h, m int) time.Time {
	return upT0.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

type uptimeFixture struct {
	t       *testing.T
	s       engine.Store
	buckets *recordingBuckets
	nodes   *flakyNodes
	now     time.Time
	cfg     engine.UptimeConfig
	log     *strings.Builder
}

func newUptimeFixture(t *testing.T, s engine.Store) *uptimeFixture {
	u := &uptimeFixture{t: t, s: s, buckets: &recordingBuckets{UptimeStore: s}, nodes: &flakyNodes{NodeStore: s}, log: &strings.Builder{}}
	u.cfg = engine.UptimeConfig{
		Nodes: u.nodes, Buckets: u.buckets, Now: func() time.Time { return u.now },
		Logger: slog.New(slog.NewTextHandler(u.log, nil)),
	}
	return u
}

// node creates a node at created in its first state, then moves it
// through the changes.
func (u *uptimeFixture) node(created time.Time, first engine.NodeState, changes ...upChange) *engine.Node {
	u.t.Helper()
	n := stNode(engine.NewID("user"), "uptime-chain", first)
	n.CreatedAt, n.UpdatedAt = created, created
	stOK(u.t, u.s.CreateNode(u.t.Context(), n))
	for _, c := range changes {
		var err error
		n, err = u.s.ChangeNodeState(u.t.Context(), n.Version, &engine.NodeStateChange{NodeID: n.ID, To: c.to, Reason: "test", At: c.at})
		stOK(u.t, err)
	}
	return n
}

type upChange struct {
	to engine.NodeState
	at time.Time
}

func becomes(to engine.NodeState, at time.Time) upChange { return upChange{to: to, at: at} }

// pass runs one pass of a new worker (a restart, as far as the worker
// knows) at now and returns the buckets it wrote.
func (u *uptimeFixture) pass(now time.Time) (engine.UptimePass, []*engine.UptimeBucket) {
	u.t.Helper()
	u.now = now
	w, err := engine.NewUptimeWorker(u.cfg)
	stOK(u.t, err)
	u.buckets.reset()
	p, err := w.Run(u.t.Context())
	stOK(u.t, err)
	return p, u.buckets.written()
}

func (u *uptimeFixture) reports() *engine.Uptime {
	u.t.Helper()
	r, err := engine.NewUptime(u.cfg)
	stOK(u.t, err)
	return r
}

// stored is every bucket of the node.
func (u *uptimeFixture) stored(nodeID string) []*engine.UptimeBucket {
	u.t.Helper()
	bs, err := u.s.ListUptimeBuckets(u.t.Context(), nodeID, upT0.Add(-365*24*time.Hour), upT0.Add(365*24*time.Hour))
	stOK(u.t, err)
	return bs
}

// upBucket is a bucket of node at hour h of the test day (8 is upT0).
func upBucket(node string, h int, up, down int64, complete bool) *engine.UptimeBucket {
	return &engine.UptimeBucket{NodeID: node, Hour: upAt(h-8, 0), UpSeconds: up, DownSeconds: down, Complete: complete}
}

func testUptimeExactBuckets(t *testing.T, u *uptimeFixture) {
	// Created 08:10 provisioning, running 08:14 (within the grace),
	// degraded 09:20 to 09:35, running since; the pass runs at 10:30.
	n := u.node(upAt(0, 10), engine.NodeProvisioning,
		becomes(engine.NodeRunning, upAt(0, 14)),
		becomes(engine.NodeDegraded, upAt(1, 20)),
		becomes(engine.NodeRunning, upAt(1, 35)))
	// Still provisioning 20 minutes after its creation at 10:10: 10 up, 10 down.
	late := u.node(upAt(2, 10), engine.NodeProvisioning)
	p, _ := u.pass(upAt(2, 30))
	if p.Nodes != 2 || p.Buckets != 4 || p.Failed != 0 {
		t.Fatalf("pass = %+v, want 2 nodes, 4 buckets", p)
	}
	stSame(t, u.stored(n.ID), []*engine.UptimeBucket{
		upBucket(n.ID, 8, 3000, 0, true),
		upBucket(n.ID, 9, 2700, 900, true),
		upBucket(n.ID, 10, 1800, 0, false),
	})
	stSame(t, u.stored(late.ID), []*engine.UptimeBucket{upBucket(late.ID, 10, 600, 600, false)})

	sum, err := u.reports().Summary(t.Context(), n.ID, 24*time.Hour)
	stOK(t, err)
	pct, ok := sum.Percent()
	if sum.UpSeconds != 7500 || sum.DownSeconds != 900 || sum.Complete || !ok || pct < 89.285 || pct > 89.286 {
		t.Fatalf("24h summary = %+v (%.3f%%), want 7500 up, 900 down, 89.286%%, incomplete", sum, pct)
	}
	if !sum.Start.Equal(upAt(2, 0).Add(-24*time.Hour)) || !sum.End.Equal(upAt(3, 0)) {
		t.Fatalf("24h summary covers %s to %s, want the 24 hours before 10:00 and the current hour", sum.Start, sum.End)
	}
	days, err := u.reports().History(t.Context(), n.ID, 7*24*time.Hour, engine.UptimeDaily)
	stOK(t, err)
	stSame(t, days, []engine.UptimePeriod{{Start: upAt(-8, 0), End: upAt(16, 0), UpSeconds: 7500, DownSeconds: 900}})
	hours, err := u.reports().History(t.Context(), n.ID, 24*time.Hour, engine.UptimeHourly)
	stOK(t, err)
	stSame(t, hours, []engine.UptimePeriod{
		{Start: upAt(0, 0), End: upAt(1, 0), UpSeconds: 3000, Complete: true},
		{Start: upAt(1, 0), End: upAt(2, 0), UpSeconds: 2700, DownSeconds: 900, Complete: true},
		{Start: upAt(2, 0), End: upAt(3, 0), UpSeconds: 1800},
	})
}

func testUptimeCatchUp(t *testing.T, u *uptimeFixture) {
	n := u.node(upAt(0, 0), engine.NodeRunning, becomes(engine.NodeDegraded, upAt(3, 50)))
	u.pass(upAt(2, 30))
	// Stopped from 10:30 to 12:10: the next worker writes 10:00 (now
	// complete), 11:00 and the current 12:00, not the complete 08:00 and 09:00.
	_, wrote := u.pass(upAt(4, 10))
	stSame(t, wrote, []*engine.UptimeBucket{
		upBucket(n.ID, 10, 3600, 0, true),
		upBucket(n.ID, 11, 3000, 600, true),
		upBucket(n.ID, 12, 0, 600, false),
	})
	_, wrote = u.pass(upAt(4, 20))
	stSame(t, wrote, []*engine.UptimeBucket{upBucket(n.ID, 12, 0, 1200, false)})
	if got := len(u.stored(n.ID)); got != 5 {
		t.Fatalf("%d buckets stored, want 5 (08:00 to 12:00)", got)
	}
	// Stopped for three days: it resumes from 12:00, older than a day.
	_, wrote = u.pass(upAt(4+72, 5))
	if len(wrote) != 73 || !wrote[0].Hour.Equal(upAt(4, 0)) || !wrote[0].Complete || wrote[72].Complete {
		t.Fatalf("after three days the pass wrote %d buckets from %s, want 73 from 12:00, the last incomplete", len(wrote), wrote[0].Hour)
	}
}

func testUptimeTerminated(t *testing.T, u *uptimeFixture) {
	n := u.node(upAt(0, 0), engine.NodeRunning,
		becomes(engine.NodeTerminating, upAt(1, 40)),
		becomes(engine.NodeTerminated, upAt(1, 45)))
	u.pass(upAt(4, 30))
	want := []*engine.UptimeBucket{upBucket(n.ID, 8, 3600, 0, true), upBucket(n.ID, 9, 2400, 0, true)}
	stSame(t, u.stored(n.ID), want)
	if _, wrote := u.pass(upAt(5, 30)); len(wrote) != 0 {
		t.Fatalf("a later pass wrote %s for a node terminated and accounted for", stShow(wrote))
	}
	sum, err := u.reports().Summary(t.Context(), n.ID, 24*time.Hour)
	stOK(t, err)
	if pct, ok := sum.Percent(); sum.UpSeconds != 6000 || sum.DownSeconds != 0 || !ok || pct != 100 || !sum.Complete {
		t.Fatalf("summary = %+v, want 6000 s up of 6000, complete", sum)
	}
}

func testUptimeRecompute(t *testing.T, u *uptimeFixture) {
	n := u.node(upAt(0, 0), engine.NodeRunning,
		becomes(engine.NodeDegraded, upAt(1, 20)),
		becomes(engine.NodeRunning, upAt(1, 35)))
	u.pass(upAt(2, 30))
	// A bug wrote a wrong complete bucket for 09:00: complete buckets are
	// final, so passes leave it.
	stOK(t, u.s.PutUptimeBuckets(t.Context(), []*engine.UptimeBucket{upBucket(n.ID, 9, 0, 3600, true)}))
	if _, wrote := u.pass(upAt(2, 40)); len(wrote) != 1 || !wrote[0].Hour.Equal(upAt(2, 0)) {
		t.Fatalf("pass wrote %s, want the current hour only", stShow(wrote))
	}
	marked, err := u.reports().MarkRecompute(t.Context(), n.ID, upAt(1, 30), upAt(2, 0))
	stOK(t, err)
	if marked != 1 {
		t.Fatalf("marked %d buckets, want 1 (09:00)", marked)
	}
	p, _ := u.pass(upAt(2, 50))
	if p.Recomputed != 1 {
		t.Fatalf("pass = %+v, want 1 bucket recomputed", p)
	}
	stSame(t, u.stored(n.ID), []*engine.UptimeBucket{
		upBucket(n.ID, 8, 3600, 0, true),
		upBucket(n.ID, 9, 2700, 900, true),
		upBucket(n.ID, 10, 3000, 0, false),
	})
	left, err := u.s.ListUptimeRecomputeNodes(t.Context(), "", 0)
	stOK(t, err)
	stSameIDs(t, left, nil)
	if _, err := u.reports().MarkRecompute(t.Context(), n.ID, upAt(2, 0), upAt(1, 0)); !engine.IsCode(err, engine.EInvalid) {
		t.Fatalf("mark with from after to = %v, want EInvalid", err)
	}
}

func testUptimeRetention(t *testing.T, u *uptimeFixture) {
	u.cfg.Retention = 48 * time.Hour
	n := u.node(upAt(-5*24, 0), engine.NodeRunning)
	old := upBucket(n.ID, 8-4*24, 3600, 0, true)
	stOK(t, u.s.PutUptimeBuckets(t.Context(), []*engine.UptimeBucket{old}))
	p, _ := u.pass(upAt(2, 30))
	if p.Purged != 1 {
		t.Fatalf("pass = %+v, want the bucket of 4 days ago purged", p)
	}
	bs := u.stored(n.ID)
	keepFrom := upAt(2-48, 0)
	if len(bs) != 49 || !bs[0].Hour.Equal(keepFrom) {
		t.Fatalf("%d buckets from %s, want 49 from %s: the hours the retention keeps", len(bs), bs[0].Hour, keepFrom)
	}
}

func testUptimePagingAndFailures(t *testing.T, u *uptimeFixture) {
	u.cfg.BatchSize = 2
	var ids []string
	for _, s := range []engine.NodeState{engine.NodeRunning, engine.NodeRunning, engine.NodeRunning, engine.NodeSyncing, engine.NodeDegraded, engine.NodeFailed} {
		ids = append(ids, u.node(upAt(0, 0), s).ID)
	}
	u.nodes.failLog = ids[1]
	p, _ := u.pass(upAt(0, 30))
	if p.Nodes != 6 || p.Failed != 1 || p.Buckets != 5 {
		t.Fatalf("pass = %+v, want 6 nodes seen, 1 failed, 5 buckets", p)
	}
	for i, id := range ids {
		if got := len(u.stored(id)); (got == 1) != (i != 1) {
			t.Errorf("node %d (%s) has %d buckets", i, id, got)
		}
	}
	if !strings.Contains(u.log.String(), "failed to compute uptime for node") || !strings.Contains(u.log.String(), ids[1]) {
		t.Fatalf("log does not name the failed node:\n%s", u.log)
	}
	// The next pass retries it.
	u.nodes.failLog = ""
	if _, wrote := u.pass(upAt(0, 40)); len(wrote) != 6 {
		t.Fatalf("retry wrote %d buckets, want 6", len(wrote))
	}
}

func testUptimeFenced(t *testing.T, u *uptimeFixture) {
	u.node(upAt(0, 0), engine.NodeRunning)
	u.node(upAt(0, 0), engine.NodeDegraded)
	u.cfg.BatchSize = 1
	u.buckets.err = engine.ErrStaleLeader
	w, err := engine.NewUptimeWorker(u.cfg)
	stOK(t, err)
	u.now = upAt(1, 0)
	p, err := w.Run(t.Context())
	if !errors.Is(err, engine.ErrStaleLeader) || p.Failed != 0 {
		t.Fatalf("Run = %+v, %v; want it stopped by the fence", p, err)
	}
	if u.buckets.tries != 1 {
		t.Fatalf("%d writes tried, want the pass to stop after the first", u.buckets.tries)
	}
}

// recordingBuckets records the buckets written, and fails every write
// with err when set.
type recordingBuckets struct {
	engine.UptimeStore
	mu    sync.Mutex
	puts  []*engine.UptimeBucket
	tries int
	err   error
}

func (r *recordingBuckets) PutUptimeBuckets(ctx context.Context, bs []*engine.UptimeBucket) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tries++
	if r.err != nil {
		return r.err
	}
	if err := r.UptimeStore.PutUptimeBuckets(ctx, bs); err != nil {
		return err
	}
	for _, b := range bs {
		c := *b
		r.puts = append(r.puts, &c)
	}
	return nil
}

func (r *recordingBuckets) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.puts, r.tries = nil, 0
}

func (r *recordingBuckets) written() []*engine.UptimeBucket {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*engine.UptimeBucket(nil), r.puts...)
}

// flakyNodes fails to read the state log of the node failLog names.
type flakyNodes struct {
	engine.NodeStore
	failLog string
}

func (f *flakyNodes) ListNodeStateLog(ctx context.Context, nodeID string, since, until time.Time) ([]*engine.NodeStateChange, error) {
	if nodeID == f.failLog {
		return nil, errors.New("state log unreadable")
	}
	return f.NodeStore.ListNodeStateLog(ctx, nodeID, since, until)
}
