// Package nats implements engine.Events on NATS JetStream, against an
// external server or one embedded in the process (see embedded.go).
package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bus is engine.Events over one NATS connection.
type Bus struct {
	url     string
	opts    []nats.Option
	conn    *nats.Conn
	js      jetstream.JetStream
	onClose func() // stops the embedded server, if any
}

var _ engine.Events = (*Bus)(nil)

// New returns a Bus for the server at url; it does no I/O.
func New(url string) *Bus { return &Bus{url: url} }

// Open connects and checks JetStream is enabled.
func (b *Bus) Open(ctx context.Context) error {
	opts := append([]nats.Option{
		nats.Name("hoodcloud"),
		nats.Timeout(5 * time.Second),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
	}, b.opts...)
	conn, err := nats.Connect(b.url, opts...)
	if err != nil {
		// The URL may hold credentials: never echo it.
		return engine.Errorf(engine.EUnavailable, "connect to nats: %v", redact(err))
	}
	js, err := jetstream.New(conn)
	if err != nil {
		conn.Close()
		return fmt.Errorf("jetstream: %w", err)
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		conn.Close()
		return engine.Errorf(engine.EUnavailable, "jetstream is not enabled on the nats server: %v", err)
	}
	b.conn, b.js = conn, js
	return nil
}

// Close drains nothing: consumers are stopped by their owners first.
func (b *Bus) Close() error {
	if b.conn != nil {
		b.conn.Close()
		b.conn = nil
	}
	if b.onClose != nil {
		b.onClose()
		b.onClose = nil
	}
	return nil
}

// Ping round-trips to the server.
func (b *Bus) Ping(ctx context.Context) error {
	if b.conn == nil {
		return engine.Errorf(engine.EUnavailable, "nats is not connected")
	}
	d := 2 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	if err := b.conn.FlushTimeout(d); err != nil {
		return engine.Errorf(engine.EUnavailable, "nats ping: %v", err)
	}
	return nil
}

// EnsureStream creates or updates a file-backed stream.
func (b *Bus) EnsureStream(ctx context.Context, spec engine.StreamSpec) error {
	_, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       spec.Name,
		Subjects:   spec.Subjects,
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		MaxAge:     spec.MaxAge,
		MaxBytes:   maxBytes(spec.MaxBytes),
		Duplicates: spec.DuplicateWindow,
	})
	if err != nil {
		return fmt.Errorf("ensure stream %s: %w", spec.Name, err)
	}
	return nil
}

// maxBytes is JetStream's value for a size limit: -1 for none.
func maxBytes(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// Publish waits for the stream's acknowledgement, so the message is stored.
func (b *Bus) Publish(ctx context.Context, subject, msgID string, data []byte) error {
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	if _, err := b.js.Publish(ctx, subject, data, opts...); err != nil {
		return engine.Errorf(engine.EUnavailable, "publish %s: %v", subject, err)
	}
	return nil
}

// Announce is core NATS publish: no stream, no retry.
func (b *Bus) Announce(_ context.Context, subject string, data []byte) error {
	if err := b.conn.Publish(subject, data); err != nil {
		return engine.Errorf(engine.EUnavailable, "announce %s: %v", subject, err)
	}
	return nil
}

// Consume runs a durable pull consumer with manual acknowledgement.
func (b *Bus) Consume(ctx context.Context, spec engine.ConsumerSpec, h engine.MessageHandler) (func(), error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       spec.Durable,
		FilterSubject: spec.FilterSubject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       spec.AckWait,
		MaxDeliver:    spec.MaxDeliver,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if cfg.MaxDeliver <= 0 {
		cfg.MaxDeliver = -1
	}
	cons, err := b.js.CreateOrUpdateConsumer(ctx, spec.Stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", spec.Durable, spec.Stream, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var inFlight sync.WaitGroup
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		inFlight.Add(1)
		defer inFlight.Done()
		settle(msg, h(ctx, toMessage(msg)))
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("consume %s: %w", spec.Durable, err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cc.Stop()
			cancel()
			inFlight.Wait()
		})
	}
	go func() { <-ctx.Done(); stop() }()
	return stop, nil
}

// ackTries bounds how often an unconfirmed ack is sent.
const ackTries = 3

func toMessage(msg jetstream.Msg) *engine.Message {
	m := &engine.Message{Subject: msg.Subject(), Data: msg.Data(), ID: msg.Headers().Get(nats.MsgIdHdr)}
	if md, err := msg.Metadata(); err == nil {
		m.Deliveries = int(md.NumDelivered)
	}
	return m
}

// settle tells the server the handler's verdict. A failed ack is harmless:
// the message is redelivered and handlers are idempotent. An ack the server
// did not confirm (a busy server) is sent again a few times, so a handled
// message is not handled again an ack wait later.
func settle(msg jetstream.Msg, a engine.Ack) {
	switch a {
	case engine.AckDone:
		for range ackTries {
			if msg.DoubleAck(context.Background()) == nil {
				return
			}
		}
	case engine.AckRetry:
		msg.NakWithDelay(time.Second)
	default:
		msg.Term()
	}
}

// redact drops anything after the error's first line: nats errors can
// quote the server address, which may carry credentials.
func redact(err error) string {
	switch {
	case errors.Is(err, nats.ErrNoServers):
		return "no server reachable"
	case errors.Is(err, nats.ErrAuthorization):
		return "authorization failed"
	case errors.Is(err, nats.ErrTimeout):
		return "timed out"
	}
	return "connection failed"
}
