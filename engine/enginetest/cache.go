package enginetest

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// CacheClock is implemented by caches whose server clock a test can move
// (an embedded miniredis). For the others RunCache sleeps through TTLs.
type CacheClock interface {
	// Advance makes d pass for keys' TTLs and the server's clock.
	Advance(d time.Duration)
}

// RunCache is the conformance suite of engine.Cache. Every test gets its own
// cache from open, which must be empty and is closed by the opener's
// cleanup; the tests run in parallel, so waiting on a real clock overlaps.
//
// Besides the contract written on each method, every adapter must hold to:
//   - PendingCommands on an empty or unknown queue returns no ids and no error.
//   - An acknowledged id can be enqueued again; it then goes to the back.
//   - Allow reports Remaining = limit minus the requests counted so far in
//     the window, and a positive RetryAfter of at most the window when it
//     refuses. A sliding window does not count refused requests.
//   - Unlock with a token that does not hold the lock is a no-op, not an error.
func RunCache(t *testing.T, open func(t *testing.T) engine.Cache) {
	for _, tc := range cacheTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, open(t))
		})
	}
}

var cacheTests = []struct {
	name string
	run  func(t *testing.T, c engine.Cache)
}{
	{"QueueKeepsOrderAndDedupes", testQueueOrder},
	{"PendingLeavesCommandsUntilAcked", testQueuePending},
	{"AckRemovesOnlyThatCommand", testQueueAck},
	{"QueuesOfNodesAreSeparate", testQueueIsolation},
	{"ProgressRoundTrip", testProgressRoundTrip},
	{"ProgressExpires", testProgressExpires},
	{"SetIfAbsentOnce", testSetIfAbsent},
	{"SetIfAbsentExpires", testSetIfAbsentExpires},
	{"SetIfAbsentConcurrent", testSetIfAbsentConcurrent},
	{"FixedWindow", func(t *testing.T, c engine.Cache) { testRateLimit(t, c, engine.FixedWindow) }},
	{"SlidingWindow", func(t *testing.T, c engine.Cache) { testRateLimit(t, c, engine.SlidingWindow) }},
	{"SlidingWindowSlides", testSlidingWindowSlides},
	{"RateKeysAreSeparate", testRateKeys},
	{"LockExcludes", testLockExcludes},
	{"LockExpires", testLockExpires},
	{"Ping", func(t *testing.T, c engine.Cache) { cacheOK(t, c.Ping(context.Background())) }},
}

// cacheTTL is short enough to wait out on a real server; cacheWait is
// comfortably past it.
const (
	cacheTTL  = time.Second
	cacheWait = cacheTTL + 200*time.Millisecond
)

func testQueueOrder(t *testing.T, c engine.Cache) {
	for _, id := range []string{"c1", "c2", "c3", "c2", "c1"} {
		cacheOK(t, c.EnqueueCommand(context.Background(), "n1", id))
	}
	cacheQueue(t, c, "n1", "c1", "c2", "c3")
}

func testQueuePending(t *testing.T, c engine.Cache) {
	ctx := context.Background()
	cacheQueue(t, c, "n1")
	for _, id := range []string{"c1", "c2", "c3"} {
		cacheOK(t, c.EnqueueCommand(ctx, "n1", id))
	}
	for range 2 { // reading twice proves reading does not remove
		got, err := c.PendingCommands(ctx, "n1", 2)
		cacheOK(t, err)
		cacheSameIDs(t, got, []string{"c1", "c2"})
	}
}

func testQueueAck(t *testing.T, c engine.Cache) {
	ctx := context.Background()
	for _, id := range []string{"c1", "c2", "c3"} {
		cacheOK(t, c.EnqueueCommand(ctx, "n1", id))
	}
	cacheOK(t, c.AckCommand(ctx, "n1", "c2"))
	cacheQueue(t, c, "n1", "c1", "c3")
	cacheOK(t, c.AckCommand(ctx, "n1", "c2"))      // twice
	cacheOK(t, c.AckCommand(ctx, "n1", "unknown")) // never queued
	cacheOK(t, c.AckCommand(ctx, "n9", "c1"))      // another node's queue
	cacheQueue(t, c, "n1", "c1", "c3")

	cacheOK(t, c.AckCommand(ctx, "n1", "c1"))
	cacheOK(t, c.AckCommand(ctx, "n1", "c3"))
	cacheQueue(t, c, "n1")
	cacheOK(t, c.EnqueueCommand(ctx, "n1", "c4"))
	cacheOK(t, c.EnqueueCommand(ctx, "n1", "c1")) // acked, so it is new again
	cacheQueue(t, c, "n1", "c4", "c1")
}

func testQueueIsolation(t *testing.T, c engine.Cache) {
	ctx := context.Background()
	cacheOK(t, c.EnqueueCommand(ctx, "n1", "a"))
	cacheOK(t, c.EnqueueCommand(ctx, "n2", "b"))
	cacheOK(t, c.EnqueueCommand(ctx, "n2", "a")) // same id, other node: queued there too
	cacheOK(t, c.AckCommand(ctx, "n2", "a"))
	cacheQueue(t, c, "n1", "a")
	cacheQueue(t, c, "n2", "b")
}

func testProgressRoundTrip(t *testing.T, c engine.Cache) {
	ctx := context.Background()
	_, err := c.GetProgress(ctx, "c1")
	cacheCode(t, err, engine.ENotFound)

	want := &engine.CommandProgress{
		CommandID: "c1", Percent: 42.5, Bytes: 130 << 30, Message: "downloading snapshot",
		Stalled: true, UpdatedAt: time.Date(2031, 5, 4, 10, 20, 30, 123456789, time.UTC),
	}
	cacheOK(t, c.SetProgress(ctx, want, time.Minute))
	cacheProgress(t, c, want)

	want.Percent, want.Stalled = 50, false // a later report replaces the first
	cacheOK(t, c.SetProgress(ctx, want, time.Minute))
	cacheProgress(t, c, want)
}

func testProgressExpires(t *testing.T, c engine.Cache) {
	ctx := context.Background()
	cacheOK(t, c.SetProgress(ctx, &engine.CommandProgress{CommandID: "c1", Percent: 1}, cacheTTL))
	cacheOK(t, c.SetProgress(ctx, &engine.CommandProgress{CommandID: "c2", Percent: 2}, time.Hour))
	cacheAdvance(c, cacheWait)
	_, err := c.GetProgress(ctx, "c1")
	cacheCode(t, err, engine.ENotFound)
	cacheProgress(t, c, &engine.CommandProgress{CommandID: "c2", Percent: 2})
}

func testSetIfAbsent(t *testing.T, c engine.Cache) {
	ctx := context.Background()
	cacheAbsent(t, c, "payment:1", true)
	cacheAbsent(t, c, "payment:1", false)
	cacheAbsent(t, c, "payment:2", true)
	cacheOK(t, c.DeleteKey(ctx, "payment:1"))
	cacheOK(t, c.DeleteKey(ctx, "payment:never"))
	cacheAbsent(t, c, "payment:1", true) // a failed attempt can be retried
	cacheAbsent(t, c, "payment:2", false)
}

func testSetIfAbsentExpires(t *testing.T, c engine.Cache) {
	ok, err := c.SetIfAbsent(context.Background(), "k", cacheTTL)
	cacheOK(t, err)
	if !ok {
		t.Fatal("SetIfAbsent on a new key = false")
	}
	cacheAdvance(c, cacheWait)
	cacheAbsent(t, c, "k", true)
}

func testSetIfAbsentConcurrent(t *testing.T, c engine.Cache) {
	const n = 20
	var won atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			ok, err := c.SetIfAbsent(context.Background(), "race", time.Minute)
			if err != nil {
				t.Error(err)
			}
			if ok {
				won.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := won.Load(); got != 1 {
		t.Fatalf("%d of %d concurrent SetIfAbsent calls won, want exactly 1", got, n)
	}
}

func testRateLimit(t *testing.T, c engine.Cache, kind engine.RateWindow) {
	onTime(t, c, func(key string, late lateFunc) bool {
		const limit = 3
		first := time.Now()
		for want := limit - 1; want >= 0; want-- {
			d := cacheAllow(t, c, key, limit, cacheTTL, kind)
			if late(first, cacheTTL) {
				return false
			}
			if !d.Allowed || d.Remaining != want {
				t.Fatalf("request %d: %+v, want allowed with %d remaining", limit-want, d, want)
			}
		}
		for range 2 {
			d := cacheAllow(t, c, key, limit, cacheTTL, kind)
			if late(first, cacheTTL) {
				return false
			}
			cacheRefused(t, d, cacheTTL)
		}

		cacheAdvance(c, cacheWait)
		if d := cacheAllow(t, c, key, limit, cacheTTL, kind); !d.Allowed || d.Remaining != limit-1 {
			t.Fatalf("after the window: %+v, want allowed with %d remaining", d, limit-1)
		}
		return true
	})
}

// testSlidingWindowSlides shows what a fixed window would get wrong: just
// after a boundary the requests of the last moments still count.
func testSlidingWindowSlides(t *testing.T, c engine.Cache) {
	onTime(t, c, func(key string, late lateFunc) bool {
		const window = time.Second
		allow := func() engine.RateDecision {
			return cacheAllow(t, c, key, 2, window, engine.SlidingWindow)
		}
		first := time.Now()
		if d := allow(); !d.Allowed { // at 0
			t.Fatalf("first request refused: %+v", d)
		}
		cacheAdvance(c, 500*time.Millisecond)
		second := time.Now()
		if d := allow(); !d.Allowed { // at 0.5s
			t.Fatalf("second request refused: %+v", d)
		}
		d := allow()
		if late(first, window) {
			return false
		}
		cacheRefused(t, d, window/2) // the first leaves the window at 1s
		cacheAdvance(c, 700*time.Millisecond)
		d = allow()
		if late(second, window) {
			return false
		}
		if !d.Allowed || d.Remaining != 0 { // at 1.2s: only the one at 0.5s counts
			t.Fatalf("after the first left the window: %+v, want allowed with 0 remaining", d)
		}
		d = allow()
		if late(second, window) {
			return false
		}
		cacheRefused(t, d, window)
		return true
	})
}

// lateFunc reports whether a request answered now may have come within
// of since on the cache's clock no more: a check that needs it to is then
// inconclusive.
type lateFunc func(since time.Time, within time.Duration) bool

// onTime runs a timed scenario on a fresh key until a run kept to its
// timing. A cache with a CacheClock keeps to it always; on the others the
// windows run on the server's wall clock, and a loaded machine can take
// longer over a few requests than the window they must fall in. Such a run
// shows nothing about the cache (scenario returns false) and is repeated,
// up to 5 times.
func onTime(t *testing.T, c engine.Cache, scenario func(key string, late lateFunc) bool) {
	t.Helper()
	_, clocked := c.(CacheClock)
	late := func(since time.Time, within time.Duration) bool { return !clocked && time.Since(since) >= within }
	for run := 1; run <= 5; run++ {
		if scenario("client-"+strconv.Itoa(run), late) {
			return
		}
		t.Logf("run %d took longer than its window on the wall clock; running it again", run)
	}
	t.Fatal("5 runs took longer than their windows on the wall clock: the machine is too slow to check them")
}

func testRateKeys(t *testing.T, c engine.Cache) {
	for _, kind := range []engine.RateWindow{engine.FixedWindow, engine.SlidingWindow} {
		if d := cacheAllow(t, c, "a", 1, time.Minute, kind); !d.Allowed {
			t.Fatalf("kind %d: first request of a refused: %+v", kind, d)
		}
		cacheRefused(t, cacheAllow(t, c, "a", 1, time.Minute, kind), time.Minute)
		if d := cacheAllow(t, c, "b", 1, time.Minute, kind); !d.Allowed {
			t.Fatalf("kind %d: b refused because of a: %+v", kind, d)
		}
	}
}

func testLockExcludes(t *testing.T, c engine.Cache) {
	ctx := context.Background()
	token := cacheLock(t, c, "rollout:1", time.Minute)
	cacheLocked(t, c, "rollout:1")
	other := cacheLock(t, c, "rollout:2", time.Minute) // another key is free
	if other == token {
		t.Fatal("two locks got the same token")
	}

	cacheOK(t, c.Unlock(ctx, "rollout:1", "not-the-token"))
	cacheOK(t, c.Unlock(ctx, "rollout:1", other))
	cacheLocked(t, c, "rollout:1")

	cacheOK(t, c.Unlock(ctx, "rollout:1", token))
	next := cacheLock(t, c, "rollout:1", time.Minute)
	if next == token {
		t.Fatal("a retaken lock reused the old token")
	}
	cacheOK(t, c.Unlock(ctx, "rollout:1", token)) // the old holder cannot free the new one
	cacheLocked(t, c, "rollout:1")
}

func testLockExpires(t *testing.T, c engine.Cache) {
	first := cacheLock(t, c, "k", cacheTTL)
	cacheAdvance(c, cacheWait)
	cacheLock(t, c, "k", time.Minute)
	// The first holder, late, must not free the lock it lost.
	cacheOK(t, c.Unlock(context.Background(), "k", first))
	cacheLocked(t, c, "k")
}

// cacheAdvance lets d pass for c, on its clock if it has one.
func cacheAdvance(c engine.Cache, d time.Duration) {
	if clock, ok := c.(CacheClock); ok {
		clock.Advance(d)
		return
	}
	time.Sleep(d)
}

func cacheOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func cacheCode(t testing.TB, err error, want engine.Code) {
	t.Helper()
	if got := engine.ErrorCode(err); got != want {
		t.Fatalf("error %v has code %q, want %q", err, got, want)
	}
}

func cacheSameIDs(t testing.TB, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ids = %q, want %q", got, want)
	}
}

// cacheQueue checks the node's whole queue, asking for more than it holds.
func cacheQueue(t testing.TB, c engine.Cache, nodeID string, want ...string) {
	t.Helper()
	got, err := c.PendingCommands(context.Background(), nodeID, len(want)+10)
	cacheOK(t, err)
	cacheSameIDs(t, got, want)
}

func cacheProgress(t testing.TB, c engine.Cache, want *engine.CommandProgress) {
	t.Helper()
	got, err := c.GetProgress(context.Background(), want.CommandID)
	cacheOK(t, err)
	same := got.CommandID == want.CommandID && got.Percent == want.Percent && got.Bytes == want.Bytes &&
		got.Message == want.Message && got.Stalled == want.Stalled && got.UpdatedAt.Equal(want.UpdatedAt)
	if !same {
		t.Fatalf("progress = %+v, want %+v", got, want)
	}
}

func cacheAbsent(t testing.TB, c engine.Cache, key string, want bool) {
	t.Helper()
	got, err := c.SetIfAbsent(context.Background(), key, time.Minute)
	cacheOK(t, err)
	if got != want {
		t.Fatalf("SetIfAbsent(%q) = %v, want %v", key, got, want)
	}
}

func cacheAllow(t testing.TB, c engine.Cache, key string, limit int, window time.Duration, kind engine.RateWindow) engine.RateDecision {
	t.Helper()
	d, err := c.Allow(context.Background(), key, limit, window, kind)
	cacheOK(t, err)
	return d
}

// cacheRefused checks d refuses with 0 < RetryAfter <= most.
func cacheRefused(t testing.TB, d engine.RateDecision, most time.Duration) {
	t.Helper()
	if d.Allowed || d.Remaining != 0 || d.RetryAfter <= 0 || d.RetryAfter > most {
		t.Fatalf("decision %+v, want refused with 0 remaining and 0 < RetryAfter <= %s", d, most)
	}
}

func cacheLock(t testing.TB, c engine.Cache, key string, ttl time.Duration) string {
	t.Helper()
	token, ok, err := c.Lock(context.Background(), key, ttl)
	cacheOK(t, err)
	if !ok || token == "" {
		t.Fatalf("Lock(%q) = %q, %v; want a token and true", key, token, ok)
	}
	return token
}

func cacheLocked(t testing.TB, c engine.Cache, key string) {
	t.Helper()
	token, ok, err := c.Lock(context.Background(), key, time.Minute)
	cacheOK(t, err)
	if ok || token != "" {
		t.Fatalf("Lock(%q) of a held lock = %q, %v; want \"\", false", key, token, ok)
	}
}

// cacheName numbers things a benchmark creates.
func cacheName(prefix string, i int) string { return prefix + strconv.Itoa(i) }
