package incidents

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// IncidentSubject is where an event of an incident of node nodeID is
// published: events.node.{id}.incident_opened|incident_acknowledged|incident_resolved,
// or events.incident.{event} for an incident of no node (a dead-lettered
// payment): an empty subject token matches no stream.
func IncidentSubject(nodeID string, e engine.IncidentEvent) string {
	if nodeID == "" {
		return "events.incident." + string(e)
	}
	return "events.node." + nodeID + ".incident_" + string(e)
}

// EventStreamName is the durable stream of domain events.
const EventStreamName = "EVENTS"

// EventStream keeps every domain event (subjects events.>) for maxAge and
// up to maxBytes, the oldest dropped first. Node state changes, announced
// on events.node.{id}.state_changed without waiting for the stream, are
// kept on it too. A message id is remembered for an hour (or maxAge if
// shorter), so a delivery repeated after a crash is stored once.
func EventStream(maxAge time.Duration, maxBytes int64) engine.StreamSpec {
	window := time.Hour
	if maxAge > 0 && maxAge < window {
		window = maxAge
	}
	return engine.StreamSpec{Name: EventStreamName, Subjects: []string{"events.>"},
		MaxAge: maxAge, MaxBytes: maxBytes, DuplicateWindow: window}
}

// BusNotifier publishes incident events as domain events on a stream, as
// Payload JSON with the delivery id as the message id.
type BusNotifier struct {
	events engine.Events
	stream engine.StreamSpec
	mu     sync.Mutex
	ready  bool // the stream is known to exist
}

var _ Notifier = (*BusNotifier)(nil)

// NewBusNotifier publishes on events, into stream (EventStream); no I/O.
func NewBusNotifier(events engine.Events, stream engine.StreamSpec) *BusNotifier {
	return &BusNotifier{events: events, stream: stream}
}

func (b *BusNotifier) Notify(ctx context.Context, n Notification) error {
	if err := b.ensureStream(ctx); err != nil {
		return err
	}
	body, err := json.Marshal(NewPayload(n))
	if err != nil {
		return err
	}
	return b.events.Publish(ctx, IncidentSubject(n.Incident.NodeID, n.Event), n.DeliveryID, body)
}

// ensureStream creates or updates the stream on first use, and again after
// a failure, so changed limits apply from the next start.
func (b *BusNotifier) ensureStream(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ready {
		return nil
	}
	if err := b.events.EnsureStream(ctx, b.stream); err != nil {
		return err
	}
	b.ready = true
	return nil
}
