package engine

import (
	"context"
	"time"
)

// Subjects the control plane publishes on.
const (
	SubjectPaymentCompleted = "payment.completed"
)

// NodeStateChangedSubject is where a node's state changes are announced.
func NodeStateChangedSubject(nodeID string) string {
	return "events.node." + nodeID + ".state_changed"
}

// StreamSpec describes a durable stream of messages.
type StreamSpec struct {
	Name     string
	Subjects []string
	// MaxAge drops messages older than this; zero keeps them.
	MaxAge time.Duration
	// MaxBytes drops the oldest messages beyond this size; zero: no limit.
	MaxBytes int64
	// DuplicateWindow is how long a message id is remembered for dedupe.
	DuplicateWindow time.Duration
}

// ConsumerSpec describes a durable consumer of a stream.
type ConsumerSpec struct {
	Stream        string
	Durable       string // survives restarts; one position per name
	FilterSubject string // empty: every subject of the stream
	MaxDeliver    int    // attempts before a message is given up; <= 0: unlimited
	AckWait       time.Duration
}

// Message is one delivery to a consumer.
type Message struct {
	Subject    string
	ID         string // the publisher's message id, used for dedupe
	Data       []byte
	Deliveries int // 1 on the first delivery
}

// Ack is a handler's verdict on a delivery.
type Ack int

const (
	AckDone  Ack = iota // processed (or a duplicate): never deliver again
	AckRetry            // failed for now: deliver again after a delay
	AckDrop             // can never be processed (malformed): never deliver again
)

// MessageHandler processes one delivery. It must be idempotent: a message
// may be delivered again after a crash before the ack.
type MessageHandler func(ctx context.Context, m *Message) Ack

// Events is the message bus: durable streams with at-least-once consumers,
// and fire-and-forget announcements. Adapters: NATS JetStream in process
// (default) and an external NATS. Safe for concurrent use.
type Events interface {
	// EnsureStream creates the stream or updates it to spec.
	EnsureStream(ctx context.Context, spec StreamSpec) error
	// Publish stores data on subject's stream and returns once it is
	// persisted. A repeated msgID within the duplicate window is stored once.
	// Returns EUnavailable when the bus cannot be reached.
	Publish(ctx context.Context, subject, msgID string, data []byte) error
	// Announce sends data to current subscribers only, without persistence.
	Announce(ctx context.Context, subject string, data []byte) error
	// Consume delivers the durable consumer's messages to h, one at a time,
	// until ctx ends or the returned stop is called; stop waits for the
	// handler in progress.
	Consume(ctx context.Context, spec ConsumerSpec, h MessageHandler) (stop func(), err error)
	// Ping checks the bus answers.
	Ping(ctx context.Context) error
	// Close releases the connection (and the embedded server, if any).
	Close() error
}
