package engine_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/mock"
)

func TestEnqueueCommandRecordsThenQueues(t *testing.T) {
	queue := newQueueCache()
	var recorded *engine.Command
	store := &mock.CommandStore{CreateCommandFn: func(_ context.Context, c *engine.Command) error {
		if got := queue.pending("n1"); len(got) != 0 {
			t.Errorf("queued %q before the Store recorded the command", got)
		}
		recorded = c
		return nil
	}}

	c := &engine.Command{NodeID: "n1", Type: engine.CommandStart}
	if err := engine.EnqueueCommand(context.Background(), store, queue, c); err != nil {
		t.Fatal(err)
	}
	if recorded == nil || recorded.Status != engine.CommandQueued || recorded.ID == "" || recorded.CreatedAt.IsZero() {
		t.Fatalf("recorded %+v, want a queued command with an ID and a creation time", recorded)
	}
	if got := queue.pending("n1"); !slices.Equal(got, []string{c.ID}) {
		t.Fatalf("queue of n1 = %q, want [%s]", got, c.ID)
	}
}

func TestEnqueueCommandFailures(t *testing.T) {
	recordOK := func(context.Context, *engine.Command) error { return nil }
	tests := []struct {
		name         string
		command      engine.Command
		record       func(context.Context, *engine.Command) error // nil: must not be called
		cacheDown    bool
		want         engine.Code
		wantRecorded bool
	}{
		{name: "no node", command: engine.Command{Type: engine.CommandStart}, want: engine.EInvalid},
		{name: "no type", command: engine.Command{NodeID: "n1"}, want: engine.EInvalid},
		{
			name:    "the Store refuses: nothing is queued",
			command: engine.Command{ID: "c1", NodeID: "n1", Type: engine.CommandStart},
			record: func(context.Context, *engine.Command) error {
				return engine.Errorf(engine.EConflict, "command c1 exists")
			},
			want: engine.EConflict,
		},
		{
			name:         "the Cache is down: recorded, and the error says unavailable",
			command:      engine.Command{ID: "c1", NodeID: "n1", Type: engine.CommandStart},
			record:       recordOK,
			cacheDown:    true,
			want:         engine.EUnavailable,
			wantRecorded: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			queue := newQueueCache()
			if tc.cacheDown {
				queue.err = engine.Errorf(engine.EUnavailable, "cache down")
			}
			recorded := false
			store := &mock.CommandStore{}
			if tc.record != nil {
				store.CreateCommandFn = func(ctx context.Context, c *engine.Command) error {
					err := tc.record(ctx, c)
					recorded = err == nil
					return err
				}
			}
			err := engine.EnqueueCommand(context.Background(), store, queue, &tc.command)
			if got := engine.ErrorCode(err); got != tc.want {
				t.Fatalf("error %v has code %q, want %q", err, got, tc.want)
			}
			if recorded != tc.wantRecorded {
				t.Fatalf("recorded = %v, want %v", recorded, tc.wantRecorded)
			}
			if got := queue.pending("n1"); len(got) != 0 {
				t.Fatalf("queued %q after a failure", got)
			}
		})
	}
}

func TestRebuildCommandQueue(t *testing.T) {
	at := func(sec int) time.Time { return time.Date(2031, 5, 4, 10, 0, sec, 0, time.UTC) }
	byStatus := map[engine.CommandStatus][]*engine.Command{
		engine.CommandDelivered: {
			{ID: "d1", NodeID: "n1", CreatedAt: at(1)},
			{ID: "d3", NodeID: "n1", CreatedAt: at(3)},
		},
		engine.CommandQueued: {
			{ID: "q2", NodeID: "n1", CreatedAt: at(2)},
			{ID: "q4", NodeID: "n2", CreatedAt: at(4)},
			{ID: "q5", NodeID: "n1", CreatedAt: at(5)},
		},
	}
	store := &mock.CommandStore{ListCommandsByStatusFn: listByStatus(t, byStatus)}
	queue := newQueueCache()
	queue.enqueue("n1", "q2") // survived in an external Redis: keeps its place

	n, err := engine.RebuildCommandQueue(context.Background(), store, queue)
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Fatalf("enqueued %d, want 5", n)
	}
	for node, want := range map[string][]string{"n1": {"q2", "d1", "d3", "q5"}, "n2": {"q4"}} {
		if got := queue.pending(node); !slices.Equal(got, want) {
			t.Errorf("queue of %s = %q, want %q", node, got, want)
		}
	}
}

func TestRebuildCommandQueueFailures(t *testing.T) {
	one := map[engine.CommandStatus][]*engine.Command{
		engine.CommandQueued: {{ID: "q1", NodeID: "n1"}},
	}
	t.Run("the Store fails", func(t *testing.T) {
		store := &mock.CommandStore{ListCommandsByStatusFn: func(context.Context, engine.CommandStatus, int) ([]*engine.Command, error) {
			return nil, engine.Errorf(engine.EUnavailable, "store down")
		}}
		n, err := engine.RebuildCommandQueue(context.Background(), store, newQueueCache())
		if n != 0 || !engine.IsCode(err, engine.EUnavailable) {
			t.Fatalf("got %d, %v; want 0 and EUnavailable", n, err)
		}
	})
	t.Run("the Cache fails", func(t *testing.T) {
		queue := newQueueCache()
		queue.err = engine.Errorf(engine.EUnavailable, "cache down")
		store := &mock.CommandStore{ListCommandsByStatusFn: listByStatus(t, one)}
		n, err := engine.RebuildCommandQueue(context.Background(), store, queue)
		if n != 0 || !engine.IsCode(err, engine.EUnavailable) {
			t.Fatalf("got %d, %v; want 0 and EUnavailable", n, err)
		}
	})
	t.Run("more than a listing holds", func(t *testing.T) {
		store := &mock.CommandStore{ListCommandsByStatusFn: func(_ context.Context, _ engine.CommandStatus, limit int) ([]*engine.Command, error) {
			full := make([]*engine.Command, limit)
			for i := range full {
				full[i] = one[engine.CommandQueued][0]
			}
			return full, nil
		}}
		queue := newQueueCache()
		n, err := engine.RebuildCommandQueue(context.Background(), store, queue)
		if err == nil || n == 0 || len(queue.pending("n1")) != 1 {
			t.Fatalf("got %d, %v; want the oldest queued and an error saying some were left out", n, err)
		}
	})
}

// listByStatus serves ListCommandsByStatus from byStatus, checking the
// rebuild asks for a usable limit.
func listByStatus(t *testing.T, byStatus map[engine.CommandStatus][]*engine.Command) func(context.Context, engine.CommandStatus, int) ([]*engine.Command, error) {
	return func(_ context.Context, status engine.CommandStatus, limit int) ([]*engine.Command, error) {
		if limit <= 0 {
			t.Errorf("ListCommandsByStatus(%s, %d): want a positive limit", status, limit)
		}
		return byStatus[status], nil
	}
}

// queueCache is an in-memory Cache with only the command queue; any other
// method panics on the nil embedded interface.
type queueCache struct {
	engine.Cache
	mu     sync.Mutex
	queues map[string][]string
	err    error // returned by EnqueueCommand when set
}

func newQueueCache() *queueCache { return &queueCache{queues: map[string][]string{}} }

func (q *queueCache) EnqueueCommand(_ context.Context, nodeID, commandID string) error {
	if q.err != nil {
		return q.err
	}
	q.enqueue(nodeID, commandID)
	return nil
}

func (q *queueCache) enqueue(nodeID, commandID string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !slices.Contains(q.queues[nodeID], commandID) {
		q.queues[nodeID] = append(q.queues[nodeID], commandID)
	}
}

func (q *queueCache) pending(nodeID string) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.queues[nodeID])
}
