package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
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
	// the chain profiles do not offer (EInvalid) dead-letters the message.
	Catalog Catalog

	Stream         StreamSpec    // zero: PaymentStream()
	Durable        string        // zero: PaymentConsumerDurable
	MaxDeliver     int           // deliveries before an event is dead-lettered; zero: DefaultPaymentMaxDeliver
	AckWait        time.Duration // zero: DefaultPaymentAckWait
	IdempotencyTTL time.Duration // zero: DefaultPaymentIdempotencyTTL
	Logger         *slog.Logger
	Now            func() time.Time
	// OnDeadLetter, if set, is told of each letter that becomes dead (a
	// metric counts them); not again when the same letter is recorded again.
	OnDeadLetter func(*PaymentDeadLetter)
}

// PaymentConsumer activates what a payment.completed message pays for and
// starts provisioning it, exactly once in effect however often the message
// is delivered.
//
// The verdicts, after the error table of the spec:
//   - a body that is not JSON, or lacks required fields, and an event that
//     can never be processed (EInvalid: a line item no profile offers, a
//     payment for cancelled subscriptions): dead-lettered, then AckDrop.
//     The spec says NAK for an unmarshal failure, but a body that does not
//     parse never will, so a retry only burns deliveries.
//   - a duplicate (the event is processed in the Store inbox): AckDone.
//   - a Store failure, a subscription that cannot be activated, or a
//     workflow that does not start: AckRetry, the cache key deleted so the
//     retry is processed; on the MaxDeliver-th delivery, dead-lettered,
//     then AckDrop.
//
// A payment event never disappears silently: giving one up records a
// PaymentDeadLetter and opens a critical incident, which an operator
// resolves by redriving it (PaymentDeadLetters). The consumer, not the
// bus, counts the deliveries: the bus delivers a message until the
// consumer acknowledges it, so one whose dead letter cannot be recorded
// yet (the Store is down) is delivered again rather than lost.
//   - success: AckDone. Success includes two outcomes that activate
//     nothing or not everything, recorded on the payment for the customer
//     (GET /api/v1/payments/{id}) and, for money, an operator: money that
//     is not in PaymentCurrency or short of the price leaves the payment
//     underpaid (a warning is logged); a paid subscription lacking required
//     inputs waits as waiting_for_inputs, its payment too, and activates
//     when its owner supplies them (SubmitInputs announces the payment
//     again).
//
// Exactly once: the cache key is the fast path only. A cache hit is
// confirmed by the Store inbox, because a crash between the cache write and
// the end of processing would otherwise lose the payment while the key
// lives. Every step is safe to repeat: activation is a versioned update
// that skips active subscriptions, path 2 derives its payment and
// subscription ids from the event, StartProvision is idempotent, and the payment is marked completed
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
		MaxDeliver: 0, // unlimited: Handle gives up after MaxDeliver, once the dead letter is stored
		AckWait:    c.cfg.AckWait,
	}
	return events.Consume(ctx, spec, c.Handle)
}

// PaymentIdempotencyKey is the cache key of a payment event.
func PaymentIdempotencyKey(eventID string) string { return paymentIdempotencyKeyPrefix + eventID }

// Handle processes one delivery of payment.completed.
func (c *PaymentConsumer) Handle(ctx context.Context, m *Message) Ack {
	e, err := DecodePaymentCompleted(m.Data)
	if err != nil {
		c.log.Warn("malformed payment.completed", "msg_id", m.ID, "deliveries", m.Deliveries, "reason", ErrorMessage(err))
		return c.giveUp(ctx, m, nil, err)
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
		return c.failed(ctx, m, e, err, log)
	}
	c.resolveDeadLetter(ctx, e)
	return AckDone
}

// failed is the verdict on a delivery of e that failed with err: given
// up when it can never succeed or was the last allowed, else retried.
func (c *PaymentConsumer) failed(ctx context.Context, m *Message, e *PaymentCompletedEvent, err error, log *slog.Logger) Ack {
	if IsCode(err, EInvalid) {
		log.Error("payment.completed can never be processed", "reason", ErrorMessage(err))
		return c.giveUp(ctx, m, e, err)
	}
	if err := c.cfg.Cache.DeleteKey(ctx, PaymentIdempotencyKey(e.EventID)); err != nil {
		log.Warn("forget idempotency key", "err", err)
	}
	// A delivery a stop cut short is not the payment's failure.
	if m.Deliveries >= c.cfg.MaxDeliver && ctx.Err() == nil {
		log.Error("payment.completed failed on its last delivery", "err", err)
		return c.giveUp(ctx, m, e, err)
	}
	log.Warn("payment.completed failed; it will be retried", "err", err)
	return AckRetry
}

// processed reports whether the Store inbox holds eventID as processed.
func (c *PaymentConsumer) processed(ctx context.Context, eventID string) bool {
	e, err := c.cfg.Store.GetPaymentEvent(ctx, eventID)
	return err == nil && !e.ProcessedAt.IsZero()
}

// errDuplicate ends processing of an event the inbox holds as processed.
var errDuplicate = errors.New("payment event already processed")

// process runs the event through the inbox, then settles its payment
// unless it is completed; it returns EInvalid for an event that can never
// succeed.
func (c *PaymentConsumer) process(ctx context.Context, e *PaymentCompletedEvent, log *slog.Logger) error {
	err := c.record(ctx, e)
	if errors.Is(err, errDuplicate) {
		log.Info("duplicate payment.completed skipped")
		return nil
	}
	if err != nil {
		return err
	}
	pay, err := c.payment(ctx, e)
	if err != nil {
		return err
	}
	if pay.Status != PaymentCompleted {
		if err := c.settle(ctx, e, pay, log); err != nil {
			return err
		}
	}
	if err := c.cfg.Store.MarkPaymentEventProcessed(ctx, e.EventID, c.cfg.Now().UTC()); err != nil {
		return fmt.Errorf("mark payment event processed: %w", err)
	}
	log.Info("payment.completed processed", "payment_id", pay.ID, "status", pay.Status)
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

// payment returns the payment the event is for: the linked one (path 1),
// or else one recorded from the event's line items (path 2).
func (c *PaymentConsumer) payment(ctx context.Context, e *PaymentCompletedEvent) (*Payment, error) {
	if e.PaymentID != "" {
		p, err := c.cfg.Store.GetPayment(ctx, e.PaymentID)
		if err == nil {
			return p, nil
		}
		if !IsCode(err, ENotFound) {
			return nil, fmt.Errorf("read payment %s: %w", e.PaymentID, err)
		}
	}
	if len(e.LineItems) == 0 {
		// The link may not be committed yet: retry, within MaxDeliver.
		return nil, Errorf(ENotFound, "payment %q is unknown and the event has no line items", e.PaymentID)
	}
	return c.lineItemPayment(ctx, e)
}

// lineItemPayment records the payment of path 2, pending, for the
// subscriptions its line items will become; ids derive from the event, so
// a repeat finds what an earlier attempt recorded.
func (c *PaymentConsumer) lineItemPayment(ctx context.Context, e *PaymentCompletedEvent) (*Payment, error) {
	userID := e.LineItems[0].UserID
	if _, err := c.cfg.Store.GetUser(ctx, userID); err != nil {
		if IsCode(err, ENotFound) {
			return nil, Errorf(EInvalid, "line item user %s does not exist", userID)
		}
		return nil, fmt.Errorf("read user %s: %w", userID, err)
	}
	ids := make([]string, len(e.LineItems))
	for i, it := range e.LineItems {
		if _, err := c.place(it); err != nil {
			return nil, err
		}
		ids[i] = "sub_" + derivedHex("payment-line", e.EventID, fmt.Sprint(i))
	}
	p := &Payment{
		ID: e.PaymentID, UserID: userID, ExternalID: e.ExternalID,
		AmountCents: e.AmountCents, Currency: strings.ToUpper(e.Currency), Status: PaymentPending,
		SubscriptionIDs: ids, CreatedAt: c.cfg.Now().UTC(),
	}
	err := c.cfg.Store.CreatePayment(ctx, p)
	if IsCode(err, EConflict) { // recorded by an earlier attempt
		return c.cfg.Store.GetPayment(ctx, p.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("record payment of line items: %w", err)
	}
	return p, nil
}

// place is where a line item's node runs; EInvalid when no profile offers it.
func (c *PaymentConsumer) place(item PaymentLineItem) (Placement, error) {
	pl, err := c.cfg.Catalog.Placement(item.ChainProfileID, item.NodeType, item.Duration)
	if IsCode(err, EInvalid) { // no profile offers it: never will
		return pl, Errorf(EInvalid, "line item: %s", ErrorMessage(err))
	}
	if err != nil {
		return pl, fmt.Errorf("place line item: %w", err)
	}
	return pl, nil
}

// paidItem is one subscription a payment pays for; sub is nil while it
// is still to be made from line.
type paidItem struct {
	id   string
	sub  *Subscription
	line *PaymentLineItem
}

// settle judges the money against the price, activates what it pays for
// and has inputs, provisions that and records the outcome on the payment.
// A payment waiting for inputs was judged already.
func (c *PaymentConsumer) settle(ctx context.Context, e *PaymentCompletedEvent, pay *Payment, log *slog.Logger) error {
	items, err := c.itemsOf(ctx, e, pay)
	if err != nil {
		return err
	}
	if pay.Status != PaymentWaitingForInputs {
		paid, err := c.judge(ctx, e, pay, items, log)
		if err != nil || !paid {
			return err
		}
	}
	active, waiting, err := c.activate(ctx, pay, items)
	if err != nil {
		return err
	}
	for _, s := range active {
		if slices.Contains(pay.ActivatedIDs, s.ID) { // provisioning started by an earlier event
			continue
		}
		if err := c.cfg.Workflows.StartProvision(ctx, s.ID); err != nil {
			return fmt.Errorf("start provisioning subscription %s: %w", s.ID, err)
		}
		log.Info("provisioning started", "subscription_id", s.ID)
	}
	return c.finish(ctx, pay, active, waiting, log)
}

// itemsOf reads the subscriptions the payment pays for, leaving out those
// cancelled, expired or linked to another payment since. A subscription
// not there yet is made from the event's line item of the same position.
func (c *PaymentConsumer) itemsOf(ctx context.Context, e *PaymentCompletedEvent, pay *Payment) ([]paidItem, error) {
	var items []paidItem
	for i, id := range pay.SubscriptionIDs {
		s, err := c.cfg.Store.GetSubscription(ctx, id)
		switch {
		case IsCode(err, ENotFound) && len(e.LineItems) == len(pay.SubscriptionIDs):
			items = append(items, paidItem{id: id, line: &e.LineItems[i]})
			continue
		case err != nil:
			// Missing: the link may not be committed yet; retry.
			return nil, fmt.Errorf("read subscription %s of payment %s: %w", id, pay.ID, err)
		case s.PaymentID == "":
			return nil, Errorf(EConflict, "subscription %s is not linked to payment %s yet", id, pay.ID)
		case s.PaymentID != pay.ID || s.Status == SubscriptionCancelled || s.Status == SubscriptionExpired:
			continue
		}
		items = append(items, paidItem{id: id, sub: s})
	}
	if len(items) == 0 { // paid for cancelled subscriptions: a refund, not a retry
		return nil, Errorf(EInvalid, "every subscription of payment %s is cancelled, expired or paid by another payment", pay.ID)
	}
	return items, nil
}

// judge reports whether what was received pays the current price of the
// items; if not, the payment is stored underpaid and an operator warned.
func (c *PaymentConsumer) judge(ctx context.Context, e *PaymentCompletedEvent, pay *Payment, items []paidItem, log *slog.Logger) (bool, error) {
	bought := make([]purchase, len(items))
	for i, it := range items {
		if it.sub != nil {
			bought[i] = it.sub.purchase()
		} else {
			bought[i] = it.line.purchase()
		}
	}
	price, err := priceOf(c.cfg.Catalog, bought)
	if IsCode(err, EInvalid) {
		return false, Errorf(EInvalid, "price of payment %s: %s", pay.ID, ErrorMessage(err))
	}
	if err != nil {
		return false, fmt.Errorf("price of payment %s: %w", pay.ID, err)
	}
	if e.Currency != "" { // what the provider received replaces what was declared
		pay.AmountCents, pay.Currency = e.AmountCents, strings.ToUpper(e.Currency)
	}
	why := shortfall(pay.AmountCents, pay.Currency, price)
	if why == "" {
		return true, nil
	}
	pay.Status, pay.StatusReason = PaymentUnderpaid, why
	if err := c.cfg.Store.UpdatePayment(ctx, pay); err != nil {
		return false, fmt.Errorf("record payment %s underpaid: %w", pay.ID, err)
	}
	log.Warn("payment does not cover what it pays for: nothing activated; settle it with the customer",
		"payment_id", pay.ID, "amount_cents", pay.AmountCents, "currency", pay.Currency, "price_cents", price)
	return false, nil
}

// activate makes each item's subscription active, or waiting_for_inputs
// while it lacks required inputs, and returns both kinds.
func (c *PaymentConsumer) activate(ctx context.Context, pay *Payment, items []paidItem) (active, waiting []*Subscription, err error) {
	for _, it := range items {
		s := it.sub
		if s == nil {
			s, err = c.createFromLineItem(ctx, it.id, pay.ID, *it.line)
		} else {
			s, err = c.activateOne(ctx, s)
		}
		if err != nil {
			return nil, nil, err
		}
		switch s.Status {
		case SubscriptionActive:
			active = append(active, s)
		case SubscriptionWaitingForInputs:
			waiting = append(waiting, s)
		}
	}
	return active, waiting, nil
}

// finish records what the payment activated: completed when everything,
// waiting_for_inputs while some subscription lacks inputs.
func (c *PaymentConsumer) finish(ctx context.Context, pay *Payment, active, waiting []*Subscription, log *slog.Logger) error {
	pay.ActivatedIDs = subscriptionIDs(active)
	pay.Status, pay.StatusReason = PaymentCompleted, ""
	if len(waiting) > 0 {
		pay.Status = PaymentWaitingForInputs
		pay.StatusReason = fmt.Sprintf("paid; waiting for the required inputs of %s", strings.Join(subscriptionIDs(waiting), ", "))
		log.Info("payment waits for provisioning inputs", "payment_id", pay.ID, "waiting", len(waiting))
	} else {
		pay.CompletedAt = c.cfg.Now().UTC()
	}
	if err := c.cfg.Store.UpdatePayment(ctx, pay); err != nil {
		return fmt.Errorf("record payment %s %s: %w", pay.ID, pay.Status, err)
	}
	return nil
}

func subscriptionIDs(subs []*Subscription) []string {
	ids := make([]string, len(subs))
	for i, s := range subs {
		ids[i] = s.ID
	}
	return ids
}

// activateOne moves a paid subscription to active with its real expiry,
// or to waiting_for_inputs while it lacks required inputs; a version
// conflict re-reads it and tries again.
func (c *PaymentConsumer) activateOne(ctx context.Context, s *Subscription) (*Subscription, error) {
	for attempt := 1; ; attempt++ {
		next, err := c.paidState(ctx, s)
		if err != nil || next == nil {
			return s, err
		}
		err = c.cfg.Store.UpdateSubscription(ctx, next)
		if err == nil {
			return next, nil
		}
		if !IsCode(err, EConflict) || attempt == maxSubscriptionUpdateAttempts {
			return nil, fmt.Errorf("activate subscription %s: %w", s.ID, err)
		}
		if s, err = c.cfg.Store.GetSubscription(ctx, s.ID); err != nil {
			return nil, fmt.Errorf("read subscription %s: %w", s.ID, err)
		}
	}
}

// paidState is s as paid: active, or waiting_for_inputs; nil when s stays
// as it is.
func (c *PaymentConsumer) paidState(ctx context.Context, s *Subscription) (*Subscription, error) {
	if s.Status != SubscriptionPendingPayment && s.Status != SubscriptionWaitingForInputs {
		return nil, nil
	}
	missing, err := missingInputs(ctx, c.cfg.Store, c.cfg.Catalog, s)
	if err != nil {
		return nil, err
	}
	now := c.cfg.Now().UTC()
	next := *s
	if len(missing) > 0 {
		if s.Status == SubscriptionWaitingForInputs {
			return nil, nil
		}
		next.Status, next.UpdatedAt = SubscriptionWaitingForInputs, now
		return &next, nil
	}
	exp, err := c.cfg.Catalog.Expiry(s.Duration, now)
	if err != nil {
		return nil, fmt.Errorf("expiry of subscription %s: %w", s.ID, err)
	}
	next.Status, next.ExpiresAt, next.UpdatedAt = SubscriptionActive, exp, now
	return &next, nil
}

// createFromLineItem makes the subscription of a paid line item: active,
// or waiting_for_inputs when its profile requires inputs (a new
// subscription has none). Made meanwhile by a concurrent delivery, it is
// read back.
func (c *PaymentConsumer) createFromLineItem(ctx context.Context, id, paymentID string, item PaymentLineItem) (*Subscription, error) {
	pl, err := c.place(item)
	if err != nil {
		return nil, err
	}
	required, err := c.cfg.Catalog.RequiredInputs(item.ChainProfileID, item.NodeType)
	if err != nil {
		return nil, fmt.Errorf("inputs of line item: %w", err)
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
	if len(required) > 0 { // its term starts when it activates
		s.Status = SubscriptionWaitingForInputs
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
