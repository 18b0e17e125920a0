package incidents_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/incidents"
	"github.com/hoodcloud/hoodcloud/store/bolt"
)

var t0 = time.Date(2031, 5, 4, 10, 0, 0, 0, time.UTC)

// clock is the dispatcher's time, moved by the test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// receiver is a fake notifier: it keeps what it accepted, and refuses
// what fail says to.
type receiver struct {
	mu       sync.Mutex
	accepted []incidents.Notification
	attempts int
	fail     func(n incidents.Notification) error
}

func (r *receiver) Notify(_ context.Context, n incidents.Notification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if r.fail != nil {
		if err := r.fail(n); err != nil {
			return err
		}
	}
	r.accepted = append(r.accepted, n)
	return nil
}

// got is what the receiver accepted, as "<delivery id>".
func (r *receiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, n := range r.accepted {
		out = append(out, n.DeliveryID)
	}
	return out
}

func (r *receiver) tries() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts
}

// pipeline is a bolt store, a clock and dispatchers over them.
type pipeline struct {
	t     *testing.T
	path  string
	store *bolt.Store
	clock *clock
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	p := &pipeline{t: t, path: filepath.Join(t.TempDir(), "hoodcloud.db"), clock: &clock{now: t0}}
	p.open()
	t.Cleanup(func() { p.store.Close() })
	return p
}

func (p *pipeline) open() {
	p.t.Helper()
	p.store = bolt.New(p.path)
	if err := p.store.Open(context.Background()); err != nil {
		p.t.Fatal(err)
	}
}

// restart closes the store and opens it again, as a new process would.
func (p *pipeline) restart() {
	p.t.Helper()
	p.store.Close()
	p.open()
}

func (p *pipeline) dispatcher(cfg incidents.Config) *incidents.Dispatcher {
	cfg.Store, cfg.Now = p.store, p.clock.Now
	return incidents.NewDispatcher(cfg)
}

func (p *pipeline) raise(node string) *engine.Incident {
	p.t.Helper()
	in, opened, err := engine.RaiseIncident(context.Background(), p.store,
		engine.IncidentSpec{NodeID: node, DedupeKey: "policy:stuck", Severity: engine.SeverityCritical, Summary: "node is stuck"}, p.clock.Now())
	if err != nil || !opened {
		p.t.Fatalf("raise: %v, opened %v", err, opened)
	}
	return in
}

func (p *pipeline) resolve(node string) {
	p.t.Helper()
	if in, err := engine.ResolveIncident(context.Background(), p.store, node, "policy:stuck", p.clock.Now()); err != nil || in == nil {
		p.t.Fatalf("resolve: %v, %v", in, err)
	}
}

func (p *pipeline) get(id string) *engine.Incident {
	p.t.Helper()
	in, err := p.store.GetIncident(context.Background(), id)
	if err != nil {
		p.t.Fatal(err)
	}
	return in
}

// dispatchAt runs one turn at t.
func (p *pipeline) dispatchAt(d *incidents.Dispatcher, t time.Time) {
	p.t.Helper()
	p.clock.set(t)
	if err := d.Dispatch(context.Background()); err != nil {
		p.t.Fatalf("dispatch at %v: %v", t, err)
	}
}

func id(in *engine.Incident, e engine.IncidentEvent) string { return incidents.DeliveryID(in.ID, e) }

func wantGot(t *testing.T, r *receiver, want ...string) {
	t.Helper()
	if got := r.got(); !slices.Equal(got, want) {
		t.Fatalf("receiver accepted %q, want %q", got, want)
	}
}

// kinds lists the incident's history as "kind:note".
func kinds(in *engine.Incident) []string {
	var out []string
	for _, tr := range in.Transitions {
		out = append(out, string(tr.Kind)+":"+tr.Note)
	}
	return out
}

func TestAnOpenIncidentIsDeliveredOnceToEachNotifier(t *testing.T) {
	p := newPipeline(t)
	hook, bus := &receiver{}, &receiver{}
	d := p.dispatcher(incidents.Config{Channels: []incidents.Channel{
		{Name: "webhook", Notifier: hook}, {Name: "events", Notifier: bus},
	}})
	in := p.raise("node_a")
	for _, at := range []time.Duration{0, time.Second, time.Hour} {
		p.dispatchAt(d, t0.Add(at))
	}
	wantGot(t, hook, id(in, engine.IncidentOpened))
	wantGot(t, bus, id(in, engine.IncidentOpened))
	got := p.get(in.ID)
	if want := []string{"opened:node is stuck", "notified:webhook: opened", "notified:events: opened"}; !slices.Equal(kinds(got), want) {
		t.Errorf("history = %q, want %q", kinds(got), want)
	}
	if !got.NotifiedAt.Equal(t0) {
		t.Errorf("NotifiedAt = %v, want %v", got.NotifiedAt, t0)
	}
	for _, name := range []string{"webhook", "events"} {
		if dl := got.Delivery(name); dl == nil || !slices.Equal(dl.Delivered, []engine.IncidentEvent{engine.IncidentOpened}) {
			t.Errorf("delivery of %s = %+v, want the opening delivered", name, dl)
		}
	}
}

func TestAFailingNotifierIsRetriedWithBackoffThenDeadLettered(t *testing.T) {
	p := newPipeline(t)
	down := errors.New("receiver answered 503")
	hook, bus := &receiver{fail: func(incidents.Notification) error { return down }}, &receiver{}
	d := p.dispatcher(incidents.Config{MaxAttempts: 4, Backoff: 10 * time.Second, MaxBackoff: 25 * time.Second,
		Channels: []incidents.Channel{{Name: "webhook", Notifier: hook}, {Name: "events", Notifier: bus}}})
	in := p.raise("node_a")
	steps := []struct {
		at          time.Duration
		wantTries   int
		wantNext    time.Duration // zero: no backoff pending
		wantDead    bool
		wantAttempt int
	}{
		{0, 1, 10 * time.Second, false, 1},
		{9 * time.Second, 1, 10 * time.Second, false, 1}, // still backing off
		{10 * time.Second, 2, 30 * time.Second, false, 2},
		{30 * time.Second, 3, 55 * time.Second, false, 3}, // 20s, then capped at 25s
		{55 * time.Second, 4, 0, true, 0},
		{time.Hour, 4, 0, true, 0}, // given up: never tried again
	}
	for _, s := range steps {
		p.dispatchAt(d, t0.Add(s.at))
		dl := p.get(in.ID).Delivery("webhook")
		var next time.Duration
		if !dl.NextAttemptAt.IsZero() {
			next = dl.NextAttemptAt.Sub(t0)
		}
		if hook.tries() != s.wantTries || next != s.wantNext || dl.Done(engine.IncidentOpened) != s.wantDead || dl.Attempts != s.wantAttempt {
			t.Fatalf("at +%v: %d tries, next at +%v, dead %v, attempts %d; want %d, +%v, %v, %d",
				s.at, hook.tries(), next, dl.Done(engine.IncidentOpened), dl.Attempts, s.wantTries, s.wantNext, s.wantDead, s.wantAttempt)
		}
	}
	got := p.get(in.ID)
	dl := got.Delivery("webhook")
	if !slices.Equal(dl.DeadLettered, []engine.IncidentEvent{engine.IncidentOpened}) || len(dl.Delivered) != 0 || dl.LastError != down.Error() {
		t.Errorf("webhook delivery = %+v, want the opening dead-lettered with the last error", dl)
	}
	if want := "dead_lettered:webhook: opened given up after 4 attempts: receiver answered 503"; !slices.Contains(kinds(got), want) {
		t.Errorf("history %q lacks %q", kinds(got), want)
	}
	wantGot(t, bus, id(in, engine.IncidentOpened)) // the other notifier was not held up

	hook.fail = nil // the receiver is back: the resolution still reaches it
	p.clock.set(t0.Add(2 * time.Hour))
	p.resolve("node_a")
	p.dispatchAt(d, t0.Add(2*time.Hour))
	wantGot(t, hook, id(in, engine.IncidentResolved))
}

func TestAResolutionIsNotifiedOnceThenTheIncidentDropsOut(t *testing.T) {
	p := newPipeline(t)
	hook := &receiver{}
	d := p.dispatcher(incidents.Config{Channels: []incidents.Channel{{Name: "webhook", Notifier: hook}}})
	in := p.raise("node_a")
	p.dispatchAt(d, t0)
	p.clock.set(t0.Add(time.Minute))
	p.resolve("node_a")
	for _, at := range []time.Duration{time.Minute, 2 * time.Minute, 24 * time.Hour} {
		p.dispatchAt(d, t0.Add(at))
	}
	wantGot(t, hook, id(in, engine.IncidentOpened), id(in, engine.IncidentResolved))
	if got := p.get(in.ID); !got.NotifyAt.IsZero() {
		t.Errorf("a resolved incident told everywhere is still due at %v", got.NotifyAt)
	}
	due, err := p.store.ListIncidentsToNotify(context.Background(), t0.Add(1000*time.Hour), 0)
	if err != nil || len(due) != 0 {
		t.Fatalf("due = %v, %v; want none", due, err)
	}
}

func TestEventsGoOutInOrderWhenTheReceiverComesBack(t *testing.T) {
	p := newPipeline(t)
	down := true
	hook := &receiver{fail: func(incidents.Notification) error {
		if down {
			return errors.New("connection refused")
		}
		return nil
	}}
	d := p.dispatcher(incidents.Config{Backoff: time.Second, Channels: []incidents.Channel{{Name: "webhook", Notifier: hook}}})
	in := p.raise("node_a")
	p.dispatchAt(d, t0)
	if _, err := engine.AcknowledgeIncident(context.Background(), p.store, in.ID, "user_ops", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	p.clock.set(t0.Add(2 * time.Second))
	p.resolve("node_a")
	down = false
	p.dispatchAt(d, t0.Add(time.Minute))
	wantGot(t, hook, id(in, engine.IncidentOpened), id(in, engine.IncidentAcknowledged), id(in, engine.IncidentResolved))
}

func TestAlertmanagerStyleNotifiersHearOfAnOpenIncidentAgainUntilItIsResolved(t *testing.T) {
	p := newPipeline(t)
	am := &receiver{}
	d := p.dispatcher(incidents.Config{Channels: []incidents.Channel{{Name: "alertmanager", Notifier: am,
		Events: []engine.IncidentEvent{engine.IncidentOpened, engine.IncidentResolved}, Repost: time.Minute}}})
	in := p.raise("node_a")
	opened, resolved := id(in, engine.IncidentOpened), id(in, engine.IncidentResolved)
	p.dispatchAt(d, t0)
	p.dispatchAt(d, t0.Add(30*time.Second))
	wantGot(t, am, opened)
	if due := p.get(in.ID).NotifyAt; !due.Equal(t0.Add(time.Minute)) {
		t.Fatalf("next look at %v, want a minute after the post", due)
	}
	if _, err := engine.AcknowledgeIncident(context.Background(), p.store, in.ID, "user_ops", t0.Add(40*time.Second)); err != nil {
		t.Fatal(err)
	}
	p.dispatchAt(d, t0.Add(time.Minute))
	p.dispatchAt(d, t0.Add(2*time.Minute))
	wantGot(t, am, opened, opened, opened) // re-posts; no acknowledgement, which it does not take
	p.clock.set(t0.Add(150 * time.Second))
	p.resolve("node_a")
	p.dispatchAt(d, t0.Add(150*time.Second))
	p.dispatchAt(d, t0.Add(time.Hour))
	wantGot(t, am, opened, opened, opened, resolved)
	notified := 0
	for _, k := range kinds(p.get(in.ID)) {
		if k == "notified:alertmanager: opened" {
			notified++
		}
	}
	if notified != 1 {
		t.Errorf("history %q: re-posts must not add to it", kinds(p.get(in.ID)))
	}
}

// TestARestartNeitherLosesNorRepeatsANotification stops the dispatcher
// right after a delivery, and in the middle of one, then starts a new one
// on the reopened store: each event reaches the receiver once.
func TestARestartNeitherLosesNorRepeatsANotification(t *testing.T) {
	for _, tt := range []struct {
		name      string
		interrupt bool // stop during the third delivery rather than after it
	}{{"after a delivery", false}, {"during a delivery", true}} {
		t.Run(tt.name, func(t *testing.T) {
			p := newPipeline(t)
			var ins []*engine.Incident
			for k := range 5 {
				ins = append(ins, p.raise(fmt.Sprint("node_", k)))
			}
			ctx, stop := context.WithCancel(context.Background())
			hook := &receiver{}
			hook.fail = func(incidents.Notification) error {
				if len(hook.accepted) < 2 {
					return nil
				}
				stop()
				if tt.interrupt {
					return ctx.Err() // the stop cut the request short: not received
				}
				return nil
			}
			cfg := incidents.Config{Channels: []incidents.Channel{{Name: "webhook", Notifier: hook}}}
			if err := p.dispatcher(cfg).Dispatch(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("first dispatcher: %v, want it stopped", err)
			}
			p.restart()
			hook.fail = nil
			p.dispatchAt(p.dispatcher(cfg), t0.Add(time.Second))
			p.dispatchAt(p.dispatcher(cfg), t0.Add(time.Hour))
			var want []string
			for _, in := range ins {
				want = append(want, id(in, engine.IncidentOpened))
			}
			got := hook.got()
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("received %q, want each opening once: %q", got, want)
			}
			for _, in := range ins {
				if dl := p.get(in.ID).Delivery("webhook"); dl.Attempts != 0 || !dl.Done(engine.IncidentOpened) {
					t.Errorf("%s: delivery %+v, want the opening delivered with no failure counted", in.ID, dl)
				}
			}
		})
	}
}

// racingStore resolves the incident the dispatcher is about to record,
// once, so the dispatcher's write meets a newer version.
type racingStore struct {
	*bolt.Store
	once sync.Once
	now  time.Time
}

func (s *racingStore) UpdateIncident(ctx context.Context, in *engine.Incident) error {
	s.once.Do(func() {
		if _, err := engine.ResolveIncident(ctx, s.Store, in.NodeID, in.DedupeKey, s.now); err != nil {
			panic(err)
		}
	})
	return s.Store.UpdateIncident(ctx, in)
}

func TestADeliveryRecordedWhileTheIncidentIsResolvedKeepsBoth(t *testing.T) {
	p := newPipeline(t)
	hook := &receiver{}
	in := p.raise("node_a")
	store := &racingStore{Store: p.store, now: t0.Add(time.Second)}
	d := incidents.NewDispatcher(incidents.Config{Store: store, Now: p.clock.Now, Channels: []incidents.Channel{{Name: "webhook", Notifier: hook}}})
	p.dispatchAt(d, t0.Add(time.Second))
	// The write of the opening met the resolution: both are kept, and the
	// resolution is told in the same turn.
	wantGot(t, hook, id(in, engine.IncidentOpened), id(in, engine.IncidentResolved))
	got := p.get(in.ID)
	if got.Open() || !slices.Equal(got.Delivery("webhook").Delivered, []engine.IncidentEvent{engine.IncidentOpened, engine.IncidentResolved}) {
		t.Fatalf("incident = %+v, want resolved with both deliveries recorded", got)
	}
	if want := []string{"opened:node is stuck", "resolved:", "notified:webhook: opened", "notified:webhook: resolved"}; !slices.Equal(kinds(got), want) {
		t.Fatalf("history = %q, want %q", kinds(got), want)
	}
}

// fencedStore refuses writes as a deposed leader's are.
type fencedStore struct{ *bolt.Store }

func (fencedStore) UpdateIncident(context.Context, *engine.Incident) error {
	return fmt.Errorf("update incident: %w", engine.ErrStaleLeader)
}

func TestADeposedLeaderStopsAtItsFirstRefusedWrite(t *testing.T) {
	p := newPipeline(t)
	hook := &receiver{}
	p.raise("node_a")
	p.raise("node_b")
	d := incidents.NewDispatcher(incidents.Config{Store: fencedStore{p.store}, Now: p.clock.Now,
		Channels: []incidents.Channel{{Name: "webhook", Notifier: hook}}})
	if err := d.Dispatch(context.Background()); !errors.Is(err, engine.ErrStaleLeader) {
		t.Fatalf("dispatch: %v, want the stale leader error", err)
	}
	if hook.tries() != 1 {
		t.Fatalf("%d deliveries, want the turn to stop after the first", hook.tries())
	}
}

func TestOnlyDueIncidentsAreReadAndANewNotifierHearsOfOpenOnesAtTheRecheck(t *testing.T) {
	p := newPipeline(t)
	hook := &receiver{}
	d := p.dispatcher(incidents.Config{Recheck: 10 * time.Minute, Channels: []incidents.Channel{{Name: "webhook", Notifier: hook}}})
	in := p.raise("node_a")
	p.dispatchAt(d, t0)
	if due := p.get(in.ID).NotifyAt; !due.Equal(t0.Add(10 * time.Minute)) {
		t.Fatalf("due at %v, want at the recheck", due)
	}
	am := &receiver{}
	d = p.dispatcher(incidents.Config{Recheck: 10 * time.Minute, Channels: []incidents.Channel{
		{Name: "webhook", Notifier: hook}, {Name: "alertmanager", Notifier: am}}})
	p.dispatchAt(d, t0.Add(5*time.Minute))
	wantGot(t, am)
	p.dispatchAt(d, t0.Add(10*time.Minute))
	wantGot(t, am, id(in, engine.IncidentOpened))
	wantGot(t, hook, id(in, engine.IncidentOpened))
}

func TestOneTurnTellsEveryDueIncidentBatchAfterBatch(t *testing.T) {
	p := newPipeline(t)
	hook := &receiver{}
	d := p.dispatcher(incidents.Config{Batch: 2, Channels: []incidents.Channel{{Name: "webhook", Notifier: hook}}})
	var want []string
	for _, node := range []string{"node_a", "node_b", "node_c", "node_d", "node_e"} {
		want = append(want, id(p.raise(node), engine.IncidentOpened))
	}
	p.dispatchAt(d, t0)
	got := hook.got()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("one turn told %q; want all five openings", got)
	}
}
