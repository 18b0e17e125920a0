package enginetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// RunEvents is the conformance suite of engine.Events. open returns a
// connected bus; names makes stream and subject names unique to the test,
// so a shared external server is safe (the caller deletes them after).
func RunEvents(t *testing.T, bus engine.Events, names func(string) string) {
	t.Run("PublishedMessagesReachDurableConsumer", func(t *testing.T) {
		stream, subject := ensureStream(t, bus, names("deliver"))
		for i := range 3 {
			mustPublish(t, bus, subject, fmt.Sprintf("m%d", i), fmt.Sprintf("payload-%d", i))
		}
		got := collect(t, bus, stream, names("deliver-c"), 3, func(*engine.Message) engine.Ack { return engine.AckDone })
		for i, m := range got {
			if want := fmt.Sprintf("payload-%d", i); string(m.Data) != want || m.ID != fmt.Sprintf("m%d", i) {
				t.Fatalf("message %d = %q (id %q), want %q in publish order", i, m.Data, m.ID, want)
			}
		}
	})
	t.Run("DuplicateMessageIDIsStoredOnce", func(t *testing.T) {
		stream, subject := ensureStream(t, bus, names("dedupe"))
		for range 3 {
			mustPublish(t, bus, subject, "same-id", "once")
		}
		mustPublish(t, bus, subject, "other-id", "twice")
		got := collect(t, bus, stream, names("dedupe-c"), 2, func(*engine.Message) engine.Ack { return engine.AckDone })
		if string(got[0].Data) != "once" || string(got[1].Data) != "twice" {
			t.Fatalf("got %q and %q, want each id once", got[0].Data, got[1].Data)
		}
	})
	t.Run("RetryRedeliversAndCountsDeliveries", func(t *testing.T) {
		stream, subject := ensureStream(t, bus, names("retry"))
		mustPublish(t, bus, subject, "r1", "flaky")
		got := collect(t, bus, stream, names("retry-c"), 2, func(m *engine.Message) engine.Ack {
			if m.Deliveries == 1 {
				return engine.AckRetry
			}
			return engine.AckDone
		})
		if got[0].Deliveries != 1 || got[1].Deliveries != 2 {
			t.Fatalf("deliveries = %d, %d; want 1 then 2", got[0].Deliveries, got[1].Deliveries)
		}
	})
	t.Run("DroppedMessageIsNotRedelivered", func(t *testing.T) {
		stream, subject := ensureStream(t, bus, names("drop"))
		mustPublish(t, bus, subject, "d1", "malformed")
		mustPublish(t, bus, subject, "d2", "fine")
		got := collect(t, bus, stream, names("drop-c"), 2, func(m *engine.Message) engine.Ack {
			if string(m.Data) == "malformed" {
				return engine.AckDrop
			}
			return engine.AckDone
		})
		assertNoMore(t, bus, engine.ConsumerSpec{Stream: stream, Durable: names("drop-c"), AckWait: time.Second})
		if string(got[1].Data) != "fine" {
			t.Fatalf("second delivery = %q, want the next message, not a redelivery", got[1].Data)
		}
	})
	t.Run("DurableConsumerResumesWhereItStopped", func(t *testing.T) {
		stream, subject := ensureStream(t, bus, names("resume"))
		mustPublish(t, bus, subject, "a", "first")
		collect(t, bus, stream, names("resume-c"), 1, func(*engine.Message) engine.Ack { return engine.AckDone })
		mustPublish(t, bus, subject, "b", "second")
		got := collect(t, bus, stream, names("resume-c"), 1, func(*engine.Message) engine.Ack { return engine.AckDone })
		if string(got[0].Data) != "second" {
			t.Fatalf("after restart got %q, want only the unacknowledged message", got[0].Data)
		}
	})
	t.Run("MaxDeliverGivesUp", func(t *testing.T) {
		stream, subject := ensureStream(t, bus, names("maxdeliver"))
		mustPublish(t, bus, subject, "x", "always-fails")
		spec := engine.ConsumerSpec{Stream: stream, Durable: names("maxdeliver-c"), MaxDeliver: 2, AckWait: time.Second}
		got := consume(t, bus, spec, 2, func(*engine.Message) engine.Ack { return engine.AckRetry })
		if len(got) != 2 {
			t.Fatalf("got %d deliveries, want 2", len(got))
		}
		assertNoMore(t, bus, spec)
	})
}

func ensureStream(t *testing.T, bus engine.Events, name string) (stream, subject string) {
	t.Helper()
	spec := engine.StreamSpec{Name: name, Subjects: []string{name + ".>"}, DuplicateWindow: time.Minute}
	if err := bus.EnsureStream(context.Background(), spec); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	return name, name + ".msg"
}

func mustPublish(t *testing.T, bus engine.Events, subject, id, data string) {
	t.Helper()
	if err := bus.Publish(context.Background(), subject, id, []byte(data)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

// patience bounds a wait for deliveries: long enough for a loaded CI
// runner, it only limits how long a broken adapter takes to fail (as
// internal/testenv.Patience, which this package does not import: it keeps
// to the engine's dependencies).
const patience = 30 * time.Second

// collect consumes n deliveries with an ack wait no handler here outlasts
// (they return at once), so none is made again while still handled. The
// wait is short because a consumer stopped and started again on one
// connection can lose a message to its predecessor's pull request, which
// the server may still hold: that message comes again an ack wait later,
// and the test must see it within its patience.
func collect(t *testing.T, bus engine.Events, stream, durable string, n int, h verdict) []*engine.Message {
	t.Helper()
	return consume(t, bus, engine.ConsumerSpec{Stream: stream, Durable: durable, AckWait: 5 * time.Second}, n, h)
}

// verdict decides a delivery's ack in a test.
type verdict func(*engine.Message) engine.Ack

// consume runs a consumer until n deliveries arrived, then stops it.
func consume(t *testing.T, bus engine.Events, spec engine.ConsumerSpec, n int, h verdict) []*engine.Message {
	t.Helper()
	var mu sync.Mutex
	var got []*engine.Message
	done := make(chan struct{})
	stop, err := bus.Consume(context.Background(), spec, func(ctx context.Context, m *engine.Message) engine.Ack {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
		if len(got) == n {
			close(done)
		}
		return h(m)
	})
	if err != nil {
		t.Fatalf("Consume: %v", err)
	}
	defer stop()
	select {
	case <-done:
	case <-time.After(patience):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("got %d deliveries within %s, want %d", len(got), patience, n)
	}
	mu.Lock()
	defer mu.Unlock()
	return got
}

// assertNoMore reattaches the consumer and fails on any delivery.
func assertNoMore(t *testing.T, bus engine.Events, spec engine.ConsumerSpec) {
	t.Helper()
	extra := make(chan *engine.Message, 1)
	stop, err := bus.Consume(context.Background(), spec,
		func(_ context.Context, m *engine.Message) engine.Ack {
			select {
			case extra <- m:
			default:
			}
			return engine.AckDone
		})
	if err != nil {
		t.Fatalf("Consume: %v", err)
	}
	defer stop()
	select {
	case m := <-extra:
		t.Fatalf("unexpected delivery %q (delivery %d)", m.Data, m.Deliveries)
	case <-time.After(1500 * time.Millisecond):
	}
}
