package enginetest

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// fenceOutcomes counts what the store reported through
// engine.ObserveFencedWrites.
type fenceOutcomes struct {
	mu               sync.Mutex
	written, refused int
}

func (o *fenceOutcomes) observe(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case err == nil:
		o.written++
	case errors.Is(err, engine.ErrStaleLeader):
		o.refused++
	}
}

func (o *fenceOutcomes) want(t *testing.T, written, refused int) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.written != written || o.refused != refused {
		t.Fatalf("the store reported %d fenced writes written and %d refused, want %d and %d", o.written, o.refused, written, refused)
	}
}

// fenceFixture is one node with what leader-only work writes about it:
// its state, incidents, uptime buckets and subscription.
type fenceFixture struct {
	s       engine.Store
	node    string
	sub     string
	inc     string
	hour    time.Time // a bucket not marked for recompute
	oldHour time.Time // a bucket due to be purged
	tick    int       // makes every write different from the last
}

func newFenceFixture(t *testing.T, s engine.Store) *fenceFixture {
	f := &fenceFixture{s: s}
	f.node = stMustNode(t, s, "user_fence", "ethereum-holesky", engine.NodeSyncing).ID
	inc := stIncident(f.node, "fence", stAt(0))
	stOK(t, s.OpenIncident(t.Context(), inc))
	f.inc = inc.ID
	sub := stSubscription("user_fence", engine.SubscriptionActive)
	stOK(t, s.CreateSubscription(t.Context(), sub))
	f.sub = sub.ID
	f.refill(t)
	return f
}

// refill puts, unfenced, a fresh bucket to mark and an old one to purge.
func (f *fenceFixture) refill(t *testing.T) {
	f.tick++
	f.hour = time.Date(2031, 5, 4, 0, 0, 0, 0, time.UTC).Add(time.Duration(f.tick) * time.Hour)
	f.oldHour = f.hour.Add(-100 * 24 * time.Hour)
	stOK(t, f.s.PutUptimeBuckets(t.Context(), []*engine.UptimeBucket{
		{NodeID: f.node, Hour: f.hour, UpSeconds: 3600, Complete: true},
		{NodeID: f.node, Hour: f.oldHour, UpSeconds: 60, Complete: true},
	}))
}

// fenceWrite is one leader-only write about the fixture.
type fenceWrite struct {
	name  string
	write func(ctx context.Context, f *fenceFixture) error
}

// leaderOnlyWrites are the writes of the health evaluator, the incident
// pipeline, the uptime worker and subscription expiry. Each reads what it
// changes unfenced, as the use cases do, and writes with ctx.
var leaderOnlyWrites = []fenceWrite{
	{"ChangeNodeState", func(ctx context.Context, f *fenceFixture) error {
		n, err := f.s.GetNode(context.WithoutCancel(ctx), f.node)
		if err != nil {
			return err
		}
		to := engine.NodeRunning
		if n.State == to {
			to = engine.NodeDegraded
		}
		_, err = f.s.ChangeNodeState(ctx, n.Version, &engine.NodeStateChange{NodeID: f.node, To: to, Reason: "fence", At: stAt(f.tick)})
		return err
	}},
	{"OpenIncident", func(ctx context.Context, f *fenceFixture) error {
		return f.s.OpenIncident(ctx, stIncident(f.node, engine.NewID("key"), stAt(f.tick)))
	}},
	{"UpdateIncident", func(ctx context.Context, f *fenceFixture) error {
		i, err := f.s.GetIncident(context.WithoutCancel(ctx), f.inc)
		if err != nil {
			return err
		}
		i.NotifiedAt = i.NotifiedAt.Add(time.Second)
		return f.s.UpdateIncident(ctx, i)
	}},
	{"PutUptimeBuckets", func(ctx context.Context, f *fenceFixture) error {
		return f.s.PutUptimeBuckets(ctx, []*engine.UptimeBucket{{NodeID: f.node, Hour: f.hour.Add(time.Hour), UpSeconds: 1}})
	}},
	{"MarkUptimeRecompute", func(ctx context.Context, f *fenceFixture) error {
		return f.s.MarkUptimeRecompute(ctx, f.node, f.hour)
	}},
	{"DeleteUptimeBucketsBefore", func(ctx context.Context, f *fenceFixture) error {
		_, err := f.s.DeleteUptimeBucketsBefore(ctx, f.oldHour.Add(time.Hour))
		return err
	}},
	{"CreateCommand", func(ctx context.Context, f *fenceFixture) error {
		// The evaluator's RESTART of a stuck node.
		return f.s.CreateCommand(ctx, &engine.Command{ID: engine.NewID("cmd"), NodeID: f.node, Type: engine.CommandRestart,
			Status: engine.CommandQueued, CreatedAt: stAt(f.tick), UpdatedAt: stAt(f.tick)})
	}},
	{"UpdateSubscription", func(ctx context.Context, f *fenceFixture) error {
		s, err := f.s.GetSubscription(context.WithoutCancel(ctx), f.sub)
		if err != nil {
			return err
		}
		s.UpdatedAt = s.UpdatedAt.Add(time.Second)
		return f.s.UpdateSubscription(ctx, s)
	}},
}

// fenceView is everything the writes can change.
type fenceView struct {
	Node         *engine.Node
	StateLog     []*engine.NodeStateChange
	Incidents    []*engine.Incident
	Subscription *engine.Subscription
	Buckets      []*engine.UptimeBucket
	Commands     []*engine.Command
}

func (f *fenceFixture) view(t *testing.T) fenceView {
	t.Helper()
	ctx := t.Context()
	var v fenceView
	var err error
	v.Node, err = f.s.GetNode(ctx, f.node)
	stOK(t, err)
	v.StateLog, err = f.s.ListNodeStateLog(ctx, f.node, time.Time{}, stAt(1e6))
	stOK(t, err)
	v.Incidents, err = f.s.ListIncidents(ctx, f.node)
	stOK(t, err)
	v.Subscription, err = f.s.GetSubscription(ctx, f.sub)
	stOK(t, err)
	v.Buckets, err = f.s.ListUptimeBuckets(ctx, f.node, time.Time{}, stAt(1e6))
	stOK(t, err)
	v.Commands, err = f.s.ListCommandsByNode(ctx, f.node)
	stOK(t, err)
	return v
}

func sameView(a, b fenceView) bool {
	return reflect.DeepEqual(stNormal(reflect.ValueOf(a)).Interface(), stNormal(reflect.ValueOf(b)).Interface())
}

func testStoreLeaderFence(t *testing.T, s engine.Store, _ StoreOpener) {
	f := newFenceFixture(t, s)
	var seen fenceOutcomes
	ctx := engine.ObserveFencedWrites(t.Context(), seen.observe)
	first, err := s.AdvanceLeaderEpoch(ctx, "first")
	stOK(t, err)
	deposed := engine.WithLeaderEpoch(ctx, first)

	t.Run("AWriteOfTheCurrentEpochLands", func(t *testing.T) {
		for _, w := range leaderOnlyWrites {
			before := f.view(t)
			if err := w.write(deposed, f); err != nil {
				t.Fatalf("%s with the current epoch: %v", w.name, err)
			}
			if sameView(before, f.view(t)) {
				t.Fatalf("%s with the current epoch changed nothing", w.name)
			}
		}
		seen.want(t, len(leaderOnlyWrites), 0)
	})
	second, err := s.AdvanceLeaderEpoch(ctx, "second")
	stOK(t, err)
	f.refill(t)

	t.Run("AWriteOfAnOldEpochIsRefusedAndChangesNothing", func(t *testing.T) {
		for _, w := range leaderOnlyWrites {
			before := f.view(t)
			if err := w.write(deposed, f); !errors.Is(err, engine.ErrStaleLeader) {
				t.Fatalf("%s with an old epoch: err = %v, want engine.ErrStaleLeader", w.name, err)
			}
			if after := f.view(t); !sameView(before, after) {
				t.Fatalf("%s with an old epoch changed the store\nbefore: %s\n after: %s", w.name, stShow(before), stShow(after))
			}
		}
		seen.want(t, len(leaderOnlyWrites), len(leaderOnlyWrites))
	})
	t.Run("TheNewLeadersWritesLand", func(t *testing.T) {
		for _, w := range leaderOnlyWrites {
			if err := w.write(engine.WithLeaderEpoch(ctx, second), f); err != nil {
				t.Fatalf("%s with the new epoch: %v", w.name, err)
			}
		}
		seen.want(t, 2*len(leaderOnlyWrites), len(leaderOnlyWrites))
	})
	t.Run("WritesWithoutAnEpochAreNotFenced", func(t *testing.T) {
		f.refill(t)
		for _, w := range leaderOnlyWrites {
			before := f.view(t)
			if err := w.write(ctx, f); err != nil {
				t.Fatalf("%s without an epoch: %v", w.name, err)
			}
			if sameView(before, f.view(t)) {
				t.Fatalf("%s without an epoch changed nothing", w.name)
			}
		}
		seen.want(t, 2*len(leaderOnlyWrites), len(leaderOnlyWrites))
	})
}
