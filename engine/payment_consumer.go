package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults of the payment consumer.
const (
	PaymentConsumerDurable        = "payment-consumer"
	DefaultPaymentMaxDeliver      = 5
	DefaultPaymentAckWait         = 30 * time.Second
	DefaultPaymentIdempotencyTTL  = 24 * time.Hour
	paymentIdempotencyKeyPrefix   = "idempotency:payment:"
	maxSubscriptionUpdateAttempts = 3
)

// PaymentConsumerConfig configures a PaymentConsumer. Store, Cache,
// Workflows and Catalog are required.
type PaymentConsumerConfig struct {
	Store     Store
	Cache     Cache
	Workflows Workflows
	// Catalog dates expiries and places line items (path 2); a line item
	// the chain profiles do not offer (EInvalid) drops the message.
	Catalog Catalog

	Stream         StreamSpec    // zero: PaymentStream()
	Durable        string        // zero: PaymentConsumerDurable
	MaxDeliver     int           // zero: DefaultPaymentMaxDeliver
	AckWait        time.Duration // zero: DefaultPaymentAckWait
	IdempotencyTTL time.Duration // zero: DefaultPaymentIdempotencyTTL
	Logger         *slog.Logger
	Now            func() time.Time
}

// PaymentConsumer activates what a payment.completed message pays for and
// starts provisioning it, exactly once in effect however often the message
// is delivered.
//
// The verdicts, after the error table of the spec:
//   - a body that is not JSON, or lacks required fields: AckDrop (logged).
//     The spec says NAK for an unmarshal failure, but a body that does not
//     parse never will, so a retry only burns deliveries; both cases drop.
//   - a duplicate (the event is processed in the Store inbox): AckDone.
//   - a Store failure, a subscription that cannot be activated, or a
//     workflow that does not start: AckRetry, up to MaxDeliver deliveries;
//     the cache key is deleted so the retry is processed.
//   - success: AckDone.
//
// Exactly once: the cache key is the fast path only. A cache hit is
// confirmed by the Store inbox, because a crash between the cache write and
// the end of processing would otherwise lose the payment while the key
// lives. Every step is safe to repeat: activation is a versioned update
// that skips active subscriptions, path 2 derives subscription ids from the
// event, StartProvision is idempotent, and the payment is marked completed
// only after every workflow started, so a later event for a completed
// payment does nothing.
type PaymentConsumer struct {
	cfg PaymentConsumerConfig
	log *slog.Logger
}

// NewPaymentConsumer checks cfg and fills its defaults; it does no I/O.
func NewPaymentConsumer(cfg PaymentConsumerConfig) (*PaymentConsumer, error) {
	if cfg.Store == nil || cfg.Cache == nil || cfg.Workflows == nil || cfg.Catalog == nil {
		return nil, errors.New("payment consumer: store, cache, workflows and catalog are required")
	}
	if cfg.Stream.Name == "" {
		cfg.Stream = PaymentStream()
	}
	cfg.Durable = cmp.Or(cfg.Durable, PaymentConsumerDurable)
	cfg.MaxDeliver = cmp.Or(cfg.MaxDeliver, DefaultPaymentMaxDeliver)
	cfg.AckWait = cmp.Or(cfg.AckWait, DefaultPaymentAckWait)
	cfg.IdempotencyTTL = cmp.Or(cfg.IdempotencyTTL, DefaultPaymentIdempotencyTTL)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &PaymentConsumer{cfg: cfg, log: cfg.Logger.With("consumer", cfg.Durable)}, nil
}

// Start ensures the payment stream and consumes it with the durable
// consumer until ctx ends or stop is called.
func (c *PaymentConsumer) Start(ctx context.Context, events Events) (stop func(), err error) {
	if err := events.EnsureStream(ctx, c.cfg.Stream); err != nil {
		return nil, fmt.Errorf("payment stream: %w", err)
	}
	spec := ConsumerSpec{
		Stream: c.cfg.Stream.Name, Durable: c.cfg.Durable, FilterSubject: c.cfg.Stream.Subjects[0],
		MaxDeliver: c.cfg.MaxDeliver, AckWait: c.cfg.AckWait,
	}
	return events.Consume(ctx, spec, c.Handle)
}

// PaymentIdempotencyKey is the cache key of a payment event.
func PaymentIdempotencyKey(eventID string) string { return paymentIdempotencyKeyPrefix + eventID }

// Handle processes one delivery of payment.completed.
func (c *PaymentConsumer) Handle(ctx context.Context, m *Message) Ack {
	e, err := DecodePaymentCompleted(m.Data)
	if err != nil {
		c.log.Warn("dropping malformed payment.completed", "msg_id", m.ID, "deliveries", m.Deliveries, "reason", ErrorMessage(err))
		return AckDrop
	}
	log := c.log.With("event_id", e.EventID, "payment_id", e.PaymentID, "deliveries", m.Deliveries)
	key := PaymentIdempotencyKey(e.EventID)
	fresh, err := c.cfg.Cache.SetIfAbsent(ctx, key, c.cfg.IdempotencyTTL)
	if err != nil {
		log.Warn("idempotency cache unavailable; the store inbox decides", "err", err)
		fresh = true
	}
	if !fresh && c.processed(ctx, e.EventID) {
		log.Info("duplicate payment.completed skipped")
		return AckDone
	}
	if err := c.process(ctx, e, log); err != nil {
		if IsCode(err, EInvalid) {
			log.Error("dropping payment.completed that can never be processed", "reason", ErrorMessage(err))
			return AckDrop
		}
		log.Warn("payment.completed failed; it will be retried", "err", err)
		if err := c.cfg.Cache.DeleteKey(ctx, key); err != nil {
			log.Warn("forget idempotency key", "err", err)
		}
		return AckRetry
	}
	return AckDone
}

// processed reports whether the Store inbox holds eventID as processed.
func (c *PaymentConsumer) processed(ctx context.Context, eventID string) bool {
	e, err := c.cfg.Store.GetPaymentEvent(ctx, eventID)
	return err == nil && !e.ProcessedAt.IsZero()
}

// errDuplicate ends processing of an event the inbox holds as processed.
var errDuplicate = errors.New("payment event already processed")

// process runs the event through the inbox, activation, provisioning and
// completion; it returns EInvalid for an event that can never succeed.
func (c *PaymentConsumer) process(ctx context.Context, e *PaymentCompletedEvent, log *slog.Logger) error {
	err := c.record(ctx, e)
	if errors.Is(err, errDuplicate) {
		log.Info("duplicate payment.completed skipped")
		return nil
	}
	if err != nil {
		return err
	}
	pay, err := c.payment(ctx, e.PaymentID)
	if err != nil {
		return err
	}
	if pay == nil || pay.Status != PaymentCompleted {
		if err := c.activateAndProvision(ctx, e, log); err != nil {
			return err
		}
	}
	if err := c.completePayment(ctx, pay); err != nil {
		return err
	}
	if err := c.cfg.Store.MarkPaymentEventProcessed(ctx, e.EventID, c.cfg.Now().UTC()); err != nil {
		return fmt.Errorf("mark payment event processed: %w", err)
	}
	log.Info("payment.completed processed")
	return nil
}

// record enters the event in the Store inbox; an unfinished entry from an
// earlier attempt is resumed, a finished one is errDuplicate.
func (c *PaymentConsumer) record(ctx context.Context, e *PaymentCompletedEvent) error {
	err := c.cfg.Store.RecordPaymentEvent(ctx, &PaymentEvent{EventID: e.EventID, PaymentID: e.PaymentID, ReceivedAt: c.cfg.Now().UTC()})
	if !IsCode(err, EConflict) {
		if err != nil {
			return fmt.Errorf("record payment event: %w", err)
		}
		return nil
	}
	if c.processed(ctx, e.EventID) {
		return errDuplicate
	}
	return nil
}

// payment returns the linked payment, nil when the event names none or the
// Store does not know it.
func (c *PaymentConsumer) payment(ctx context.Context, id string) (*Payment, error) {
	if id == "" {
		return nil, nil
	}
	p, err := c.cfg.Store.GetPayment(ctx, id)
	if IsCode(err, ENotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read payment %s: %w", id, err)
	}
	return p, nil
}

func (c *PaymentConsumer) activateAndProvision(ctx context.Context, e *PaymentCompletedEvent, log *slog.Logger) error {
	subs, err := c.activate(ctx, e)
	if err != nil {
		return err
	}
	if len(subs) == 0 {
		// The link may not be committed yet: retry, within MaxDeliver.
		return fmt.Errorf("no subscription is linked to payment %q and the event has no line items", e.PaymentID)
	}
	for _, s := range subs {
		if err := c.cfg.Workflows.StartProvision(ctx, s.ID); err != nil {
			return fmt.Errorf("start provisioning subscription %s: %w", s.ID, err)
		}
		log.Info("provisioning started", "subscription_id", s.ID)
	}
	return nil
}

// activate returns the active subscriptions the event pays for: path 1,
// those linked to the payment; path 2 (no linked subscription), those
// made from the line items.
func (c *PaymentConsumer) activate(ctx context.Context, e *PaymentCompletedEvent) ([]*Subscription, error) {
	if e.PaymentID != "" {
		linked, err := c.cfg.Store.ListSubscriptionsByPayment(ctx, e.PaymentID)
		if err != nil {
			return nil, fmt.Errorf("list subscriptions of payment %s: %w", e.PaymentID, err)
		}
		if len(linked) > 0 {
			return c.activateLinked(ctx, linked)
		}
	}
	return c.createFromLineItems(ctx, e)
}

// activateLinked is path 1. Subscriptions already active (activated by an
// earlier attempt) are kept; cancelled or expired ones are left alone.
func (c *PaymentConsumer) activateLinked(ctx context.Context, linked []*Subscription) ([]*Subscription, error) {
	var active []*Subscription
	for _, s := range linked {
		s, err := c.activateOne(ctx, s)
		if err != nil {
			return nil, err
		}
		if s.Status == SubscriptionActive {
			active = append(active, s)
		}
	}
	if len(active) == 0 { // paid for cancelled subscriptions: a refund, not a retry
		return nil, Errorf(EInvalid, "every subscription linked to the payment is cancelled or expired")
	}
	return active, nil
}

// activateOne moves a pending subscription to active with its real expiry;
// a version conflict re-reads it and tries again.
func (c *PaymentConsumer) activateOne(ctx context.Context, s *Subscription) (*Subscription, error) {
	for attempt := 1; ; attempt++ {
		if s.Status != SubscriptionPendingPayment {
			return s, nil
		}
		now := c.cfg.Now().UTC()
		exp, err := c.cfg.Catalog.Expiry(s.Duration, now)
		if err != nil {
			return nil, fmt.Errorf("expiry of subscription %s: %w", s.ID, err)
		}
		next := *s
		next.Status, next.ExpiresAt, next.UpdatedAt = SubscriptionActive, exp, now
		err = c.cfg.Store.UpdateSubscription(ctx, &next)
		if err == nil {
			return &next, nil
		}
		if !IsCode(err, EConflict) || attempt == maxSubscriptionUpdateAttempts {
			return nil, fmt.Errorf("activate subscription %s: %w", s.ID, err)
		}
		fresh, err := c.cfg.Store.GetSubscription(ctx, s.ID)
		if err != nil {
			return nil, fmt.Errorf("read subscription %s: %w", s.ID, err)
		}
		s = fresh
	}
}

// createFromLineItems is path 2. Ids derive from the event and the line, so
// a repeat finds what an earlier attempt created.
func (c *PaymentConsumer) createFromLineItems(ctx context.Context, e *PaymentCompletedEvent) ([]*Subscription, error) {
	subs := make([]*Subscription, 0, len(e.LineItems))
	for i, item := range e.LineItems {
		id := "sub_" + derivedHex("payment-line", e.EventID, fmt.Sprint(i))
		s, err := c.cfg.Store.GetSubscription(ctx, id)
		if IsCode(err, ENotFound) {
			s, err = c.createFromLineItem(ctx, id, e.PaymentID, item)
		}
		if err != nil {
			return nil, err
		}
		if s.Status == SubscriptionActive {
			subs = append(subs, s)
		}
	}
	return subs, nil
}

func (c *PaymentConsumer) createFromLineItem(ctx context.Context, id, paymentID string, item PaymentLineItem) (*Subscription, error) {
	if _, err := c.cfg.Store.GetUser(ctx, item.UserID); err != nil {
		if IsCode(err, ENotFound) {
			return nil, Errorf(EInvalid, "line item user %s does not exist", item.UserID)
		}
		return nil, fmt.Errorf("read user %s: %w", item.UserID, err)
	}
	pl, err := c.cfg.Catalog.Placement(item.ChainProfileID, item.NodeType, item.Duration)
	if IsCode(err, EInvalid) { // no profile offers it: never will
		return nil, Errorf(EInvalid, "line item: %s", ErrorMessage(err))
	}
	if err != nil {
		return nil, fmt.Errorf("place line item: %w", err)
	}
	now := c.cfg.Now().UTC()
	exp, err := c.cfg.Catalog.Expiry(item.Duration, now)
	if err != nil {
		return nil, fmt.Errorf("expiry of line item: %w", err)
	}
	s := &Subscription{
		ID: id, UserID: item.UserID, ChainProfileID: item.ChainProfileID, NodeType: item.NodeType,
		Duration: item.Duration, Provider: pl.Provider, Region: pl.Region, InstanceType: pl.InstanceType,
		Status: SubscriptionActive, PaymentID: paymentID, ExpiresAt: exp, CreatedAt: now, UpdatedAt: now,
	}
	err = c.cfg.Store.CreateSubscription(ctx, s)
	if IsCode(err, EConflict) { // created meanwhile by a concurrent delivery
		return c.cfg.Store.GetSubscription(ctx, id)
	}
	if err != nil {
		return nil, fmt.Errorf("create subscription from line item: %w", err)
	}
	return s, nil
}

// completePayment marks the linked payment completed, after provisioning
// started, so a later event for it knows there is nothing left to do.
func (c *PaymentConsumer) completePayment(ctx context.Context, p *Payment) error {
	if p == nil || p.Status == PaymentCompleted {
		return nil
	}
	p.Status, p.CompletedAt = PaymentCompleted, c.cfg.Now().UTC()
	if err := c.cfg.Store.UpdatePayment(ctx, p); err != nil {
		return fmt.Errorf("complete payment %s: %w", p.ID, err)
	}
	return nil
}
