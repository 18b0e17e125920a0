package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/mock"
	"github.com/hoodcloud/hoodcloud/engine/profile"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	hnats "github.com/hoodcloud/hoodcloud/store/nats"
	"github.com/hoodcloud/hoodcloud/store/redis"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// countingWorkflows records StartProvision calls; fail, when set, decides
// from the call's number (1 for the first of all) whether it fails. A
// failed call is not counted as a start.
type countingWorkflows struct {
	mu      sync.Mutex
	started map[string]int
	fail    func(subscriptionID string, call int) error
	calls   int
}

var _ engine.Workflows = (*countingWorkflows)(nil)

func newCountingWorkflows() *countingWorkflows {
	return &countingWorkflows{started: map[string]int{}}
}

func (w *countingWorkflows) StartProvision(_ context.Context, id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if w.fail != nil {
		if err := w.fail(id, w.calls); err != nil {
			return err
		}
	}
	w.started[id]++
	return nil
}

func (w *countingWorkflows) StartTerminate(context.Context, string, string) error       { return nil }
func (w *countingWorkflows) StartMigrate(context.Context, string) error                 { return nil }
func (w *countingWorkflows) ConfirmSignerStopped(context.Context, string, string) error { return nil }

func (w *countingWorkflows) starts(id string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.started[id]
}

// payments is a bbolt store with a customer, her pending subscriptions
// and workflows that count.
type payments struct {
	t         *testing.T
	store     engine.Store
	workflows *countingWorkflows
	alice     *engine.User
	catalog   *mock.Catalog
}

// testCatalog offers every node type of ethereum-holesky but "unoffered",
// at prices (euro cents) some tests set.
func testCatalog(prices map[string]int64) *mock.Catalog {
	return &mock.Catalog{
		ExpiryFn: func(d string, from time.Time) (time.Time, error) { return profile.Duration(d).Expiry(from) },
		PlacementFn: func(chainProfileID, nodeType, _ string) (engine.Placement, error) {
			if chainProfileID != "ethereum-holesky" {
				return engine.Placement{}, engine.Errorf(engine.EInvalid, "unknown chain profile %q", chainProfileID)
			}
			if nodeType == "unoffered" {
				return engine.Placement{}, engine.Errorf(engine.EInvalid, "no node type %q", nodeType)
			}
			return engine.Placement{Provider: "local", Region: "here", InstanceType: "small", PriceCents: prices[nodeType]}, nil
		},
	}
}

func newPayments(t *testing.T) *payments {
	t.Helper()
	st := bolt.New(filepath.Join(t.TempDir(), "hoodcloud.db"))
	if err := st.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	alice := &engine.User{ID: engine.NewID("user"), Email: "alice@example.com", CreatedAt: time.Now()}
	if err := st.CreateUser(context.Background(), alice); err != nil {
		t.Fatal(err)
	}
	return &payments{t: t, store: st, workflows: newCountingWorkflows(), alice: alice, catalog: testCatalog(nil)}
}

// consumer is a fresh consumer instance with its own embedded cache, as
// after a restart of the appliance.
func (p *payments) consumer(opts ...func(*engine.PaymentConsumerConfig)) (*engine.PaymentConsumer, engine.Cache) {
	p.t.Helper()
	cache := redis.NewEmbedded(redis.Options{})
	if err := cache.Open(context.Background()); err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { cache.Close() })
	cfg := engine.PaymentConsumerConfig{
		Store: p.store, Cache: cache, Workflows: p.workflows,
		Catalog: p.catalog,
		AckWait: time.Minute, // nothing is redelivered while a loaded machine handles it
	}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := engine.NewPaymentConsumer(cfg)
	if err != nil {
		p.t.Fatal(err)
	}
	return c, cache
}

// pendingLinked creates n pending subscriptions of alice linked to a new
// payment and returns the payment.
func (p *payments) pendingLinked(n int) *engine.Payment {
	p.t.Helper()
	ctx := context.Background()
	var ids []string
	for i := range n {
		s := &engine.Subscription{
			ID: engine.NewID("sub"), UserID: p.alice.ID, ChainProfileID: "ethereum-holesky",
			NodeType: fmt.Sprintf("type-%d", i), Duration: "1m", Status: engine.SubscriptionPendingPayment,
			ExpiresAt: time.Now().Add(time.Hour), CreatedAt: time.Now(),
		}
		if err := p.store.CreateSubscription(ctx, s); err != nil {
			p.t.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	pay, _, err := p.service().Link(ctx, &engine.Principal{UserID: p.alice.ID}, engine.LinkPaymentRequest{
		ExternalID: engine.NewID("ext"), AmountCents: 1000, Currency: "eur", SubscriptionIDs: ids,
	})
	if err != nil {
		p.t.Fatal(err)
	}
	return pay
}

// service is the payment use-cases over the same store and catalogue.
func (p *payments) service() *engine.Payments {
	p.t.Helper()
	u, err := engine.NewPayments(engine.PaymentsConfig{Store: p.store, Catalog: p.catalog})
	if err != nil {
		p.t.Fatal(err)
	}
	return u
}

// requireActivatedOnce checks every subscription of the payment is active
// with a real expiry, was updated exactly once after linking, and had
// provisioning started exactly once; and that the payment is completed.
func (p *payments) requireActivatedOnce(pay *engine.Payment) {
	p.t.Helper()
	ctx := context.Background()
	for _, id := range pay.SubscriptionIDs {
		s, err := p.store.GetSubscription(ctx, id)
		if err != nil {
			p.t.Fatal(err)
		}
		if s.Status != engine.SubscriptionActive || s.PaymentID != pay.ID {
			p.t.Errorf("subscription %s: status %s payment %q, want active with %s", id, s.Status, s.PaymentID, pay.ID)
		}
		if d := time.Until(s.ExpiresAt); d < 27*24*time.Hour || d > 32*24*time.Hour {
			p.t.Errorf("subscription %s expires in %s, want about a month", id, d)
		}
		if s.Version != 3 { // created, linked, activated
			p.t.Errorf("subscription %s at version %d, want 3: activated more than once?", id, s.Version)
		}
		if n := p.workflows.starts(id); n != 1 {
			p.t.Errorf("subscription %s: StartProvision called %d times, want 1", id, n)
		}
	}
	got, err := p.store.GetPayment(ctx, pay.ID)
	if err != nil {
		p.t.Fatal(err)
	}
	if got.Status != engine.PaymentCompleted || got.CompletedAt.IsZero() {
		p.t.Errorf("payment status %s completed at %v, want completed", got.Status, got.CompletedAt)
	}
}

func eventJSON(t *testing.T, e engine.PaymentCompletedEvent) []byte {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPaymentConsumerVerdicts(t *testing.T) {
	p := newPayments(t)
	c, _ := p.consumer()
	ctx := context.Background()
	tests := []struct {
		name string
		data string
		want engine.Ack
	}{
		{"invalid JSON is dropped, never retried", `{"event_id":`, engine.AckDrop},
		{"a JSON array is dropped", `[1,2]`, engine.AckDrop},
		{"no event id is dropped", `{"payment_id":"pay_1"}`, engine.AckDrop},
		{"no payment and no line items is dropped", `{"event_id":"ev-empty"}`, engine.AckDrop},
		{"an incomplete line item is dropped", `{"event_id":"ev-li","line_items":[{"chain_profile_id":"x"}]}`, engine.AckDrop},
		{"a line item no profile offers is dropped", `{"event_id":"ev-offer","line_items":[{"chain_profile_id":"nope","node_type":"full","duration":"1m","user_id":"` + p.alice.ID + `"}]}`, engine.AckDrop},
		{"a line item of a node type not offered is dropped", `{"event_id":"ev-type","line_items":[{"chain_profile_id":"ethereum-holesky","node_type":"unoffered","duration":"1m","user_id":"` + p.alice.ID + `"}]}`, engine.AckDrop},
		{"a line item of an unknown user is dropped", `{"event_id":"ev-user","line_items":[{"chain_profile_id":"ethereum-holesky","node_type":"full","duration":"1m","user_id":"user_nobody"}]}`, engine.AckDrop},
		{"an unknown payment without line items is retried (its link may be on the way)", `{"event_id":"ev-unknown","payment_id":"pay_unknown"}`, engine.AckRetry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.Handle(ctx, &engine.Message{Data: []byte(tt.data), Deliveries: 1}); got != tt.want {
				t.Fatalf("Handle = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPaymentConsumerPathOneActivatesLinkedSubscriptions(t *testing.T) {
	p := newPayments(t)
	c, cache := p.consumer()
	pay := p.pendingLinked(2)
	ctx := context.Background()
	m := &engine.Message{Data: eventJSON(t, engine.PaymentCompletedEvent{EventID: "ev-1", PaymentID: pay.ID}), Deliveries: 1}
	if got := c.Handle(ctx, m); got != engine.AckDone {
		t.Fatalf("Handle = %v, want AckDone", got)
	}
	p.requireActivatedOnce(pay)
	if fresh, _ := cache.SetIfAbsent(ctx, engine.PaymentIdempotencyKey("ev-1"), time.Minute); fresh {
		t.Error("the idempotency key was not left in the cache")
	}
	if e, err := p.store.GetPaymentEvent(ctx, "ev-1"); err != nil || e.ProcessedAt.IsZero() {
		t.Errorf("inbox entry = %+v, %v; want processed", e, err)
	}
	if got := c.Handle(ctx, m); got != engine.AckDone {
		t.Fatalf("duplicate Handle = %v, want AckDone", got)
	}
	// Another notification of the same payment (say mark-paid after the
	// webhook) finds the payment completed and does nothing.
	other := &engine.Message{Data: eventJSON(t, engine.PaymentCompletedEvent{EventID: "ev-2", PaymentID: pay.ID}), Deliveries: 1}
	if got := c.Handle(ctx, other); got != engine.AckDone {
		t.Fatalf("second event Handle = %v, want AckDone", got)
	}
	p.requireActivatedOnce(pay)
}

func TestPaymentConsumerFindsPaymentByExternalID(t *testing.T) {
	p := newPayments(t)
	c, _ := p.consumer()
	pay := p.pendingLinked(1)
	m := &engine.Message{Data: eventJSON(t, engine.PaymentCompletedEvent{EventID: "ev-ext", ExternalID: pay.ExternalID})}
	if got := c.Handle(context.Background(), m); got != engine.AckDone {
		t.Fatalf("Handle = %v, want AckDone", got)
	}
	p.requireActivatedOnce(pay)
}

func TestPaymentConsumerPathTwoCreatesFromLineItems(t *testing.T) {
	p := newPayments(t)
	c, _ := p.consumer()
	ctx := context.Background()
	item := engine.PaymentLineItem{ChainProfileID: "ethereum-holesky", NodeType: "full", Duration: "1w", UserID: p.alice.ID}
	m := &engine.Message{Data: eventJSON(t, engine.PaymentCompletedEvent{EventID: "ev-items", LineItems: []engine.PaymentLineItem{item, item}})}
	for range 3 {
		if got := c.Handle(ctx, m); got != engine.AckDone {
			t.Fatalf("Handle = %v, want AckDone", got)
		}
	}
	subs, err := p.store.ListSubscriptions(ctx, p.alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 2 {
		t.Fatalf("%d subscriptions, want one per line item", len(subs))
	}
	for _, s := range subs {
		if s.Status != engine.SubscriptionActive || s.Provider != "local" || s.Version != 1 {
			t.Errorf("subscription %+v, want active, placed, created once", s)
		}
		if d := time.Until(s.ExpiresAt); d < 6*24*time.Hour || d > 8*24*time.Hour {
			t.Errorf("expires in %s, want a week", d)
		}
		if n := p.workflows.starts(s.ID); n != 1 {
			t.Errorf("StartProvision %d times, want 1", n)
		}
	}
}

// failingStore fails UpdateSubscription while fail is set.
type failingStore struct {
	engine.Store
	mu   sync.Mutex
	fail bool
}

func (s *failingStore) UpdateSubscription(ctx context.Context, sub *engine.Subscription) error {
	s.mu.Lock()
	fail := s.fail
	s.mu.Unlock()
	if fail {
		return errors.New("disk on fire")
	}
	return s.Store.UpdateSubscription(ctx, sub)
}

func TestPaymentConsumerRetriesFailuresAndForgetsTheKey(t *testing.T) {
	t.Run("subscription failure", func(t *testing.T) {
		p := newPayments(t)
		pay := p.pendingLinked(1)
		fs := &failingStore{Store: p.store, fail: true}
		c, cache := p.consumer(func(cfg *engine.PaymentConsumerConfig) { cfg.Store = fs })
		m := &engine.Message{Data: eventJSON(t, engine.PaymentCompletedEvent{EventID: "ev-s", PaymentID: pay.ID}), Deliveries: 1}
		requireRetryForgets(t, c, cache, m)
		fs.mu.Lock()
		fs.fail = false
		fs.mu.Unlock()
		if got := c.Handle(context.Background(), m); got != engine.AckDone {
			t.Fatalf("retry = %v, want AckDone", got)
		}
		p.requireActivatedOnce(pay)
	})
	t.Run("workflow start failure", func(t *testing.T) {
		p := newPayments(t)
		pay := p.pendingLinked(2)
		p.workflows.fail = func(_ string, call int) error {
			if call == 1 {
				return engine.Errorf(engine.EUnavailable, "temporal is down")
			}
			return nil
		}
		c, cache := p.consumer()
		m := &engine.Message{Data: eventJSON(t, engine.PaymentCompletedEvent{EventID: "ev-w", PaymentID: pay.ID}), Deliveries: 1}
		requireRetryForgets(t, c, cache, m)
		for c.Handle(context.Background(), m) != engine.AckDone {
		}
		p.requireActivatedOnce(pay)
	})
}

func requireRetryForgets(t *testing.T, c *engine.PaymentConsumer, cache engine.Cache, m *engine.Message) {
	t.Helper()
	if got := c.Handle(context.Background(), m); got != engine.AckRetry {
		t.Fatalf("Handle = %v, want AckRetry", got)
	}
	var e engine.PaymentCompletedEvent
	json.Unmarshal(m.Data, &e)
	fresh, err := cache.SetIfAbsent(context.Background(), engine.PaymentIdempotencyKey(e.EventID), time.Minute)
	if err != nil || !fresh {
		t.Fatalf("idempotency key still set after a failure (%v), so the retry would be skipped", err)
	}
	cache.DeleteKey(context.Background(), engine.PaymentIdempotencyKey(e.EventID))
}

func TestPaymentConsumerCacheHitIsConfirmedByTheInbox(t *testing.T) {
	// A shared cache that outlived a crash still holds the key of an event
	// that was never finished: the payment must not be skipped.
	p := newPayments(t)
	c, cache := p.consumer()
	pay := p.pendingLinked(1)
	ctx := context.Background()
	if _, err := cache.SetIfAbsent(ctx, engine.PaymentIdempotencyKey("ev-crashed"), time.Hour); err != nil {
		t.Fatal(err)
	}
	m := &engine.Message{Data: eventJSON(t, engine.PaymentCompletedEvent{EventID: "ev-crashed", PaymentID: pay.ID}), Deliveries: 2}
	if got := c.Handle(ctx, m); got != engine.AckDone {
		t.Fatalf("Handle = %v, want AckDone", got)
	}
	p.requireActivatedOnce(pay)
}

// openEmbeddedBus starts an in-process NATS with JetStream; with listen it
// also serves TCP on a free loopback port.
func openEmbeddedBus(t *testing.T, listen string) *hnats.EmbeddedBus {
	t.Helper()
	bus, err := hnats.NewEmbedded(hnats.EmbeddedConfig{StoreDir: t.TempDir(), Listen: listen})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	return bus
}

// deliveryLog counts handled deliveries and wakes waiters.
type deliveryLog struct {
	mu    sync.Mutex
	acks  []engine.Ack
	maxes []int
	ids   []string
	ch    chan struct{}
}

func newDeliveryLog() *deliveryLog { return &deliveryLog{ch: make(chan struct{}, 100)} }

func (l *deliveryLog) wrap(h engine.MessageHandler) engine.MessageHandler {
	return func(ctx context.Context, m *engine.Message) engine.Ack {
		a := h(ctx, m)
		l.mu.Lock()
		l.acks, l.maxes, l.ids = append(l.acks, a), append(l.maxes, m.Deliveries), append(l.ids, m.ID)
		l.mu.Unlock()
		l.ch <- struct{}{}
		return a
	}
}

func (l *deliveryLog) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-l.ch:
		case <-time.After(testenv.Patience):
			t.Fatalf("waited for %d deliveries, got fewer", n)
		}
	}
}

// requireNoMore checks the consumer got nothing beyond the deliveries
// logged so far. It publishes a marker on subject, behind everything the
// test published, and waits for it: a consumer is handed a stream's
// messages in order, one at a time, so once the marker is handled every
// message stored before it has been delivered.
func (l *deliveryLog) requireNoMore(t *testing.T, bus engine.Events, subject string) {
	t.Helper()
	l.mu.Lock()
	want := len(l.ids)
	l.mu.Unlock()
	const marker = "end-of-test-marker" // not JSON: the consumer drops it
	if err := bus.Publish(context.Background(), subject, marker, []byte(marker)); err != nil {
		t.Fatal(err)
	}
	for !l.delivered(marker) {
		l.wait(t, 1)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if got := len(l.ids) - 1; got != want {
		t.Fatalf("%d deliveries before the marker, want %d: %q", got, want, l.ids)
	}
}

func (l *deliveryLog) delivered(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.ids, id)
}

// consume runs c on stream, logging its deliveries. A delivery is made
// again when the handler asks (AckRetry), or when it stays unacknowledged
// for a minute: never while a loaded machine is still handling it.
func consume(t *testing.T, bus engine.Events, c *engine.PaymentConsumer, stream engine.StreamSpec, log *deliveryLog) {
	t.Helper()
	consumeAckWait(t, bus, c, stream, log, time.Minute)
}

// consumeAckWait is consume with the time after which an unacknowledged
// delivery is made again.
func consumeAckWait(t *testing.T, bus engine.Events, c *engine.PaymentConsumer, stream engine.StreamSpec, log *deliveryLog, ackWait time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := bus.EnsureStream(ctx, stream); err != nil {
		t.Fatal(err)
	}
	stop, err := bus.Consume(ctx, engine.ConsumerSpec{
		Stream: stream.Name, Durable: engine.PaymentConsumerDurable, FilterSubject: stream.Subjects[0],
		MaxDeliver: 5, AckWait: ackWait,
	}, log.wrap(c.Handle))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
}

func TestPaymentConsumerExactlyOnceOverJetStream(t *testing.T) {
	for _, n := range []int{1, 2, 5} {
		t.Run(fmt.Sprintf("delivered %d times", n), func(t *testing.T) {
			p := newPayments(t)
			bus := openEmbeddedBus(t, "")
			c, _ := p.consumer()
			log := newDeliveryLog()
			consume(t, bus, c, engine.PaymentStream(), log)
			pay := p.pendingLinked(2)
			data := eventJSON(t, engine.PaymentCompletedEvent{EventID: "ev-" + pay.ID, PaymentID: pay.ID})
			for i := range n {
				// Distinct message ids: the repeats arrive after the
				// duplicate window, so only the consumer can dedupe them.
				if err := bus.Publish(context.Background(), engine.SubjectPaymentCompleted, fmt.Sprintf("msg-%d", i), data); err != nil {
					t.Fatal(err)
				}
			}
			log.wait(t, n)
			p.requireActivatedOnce(pay)
			for i, a := range log.acks {
				if a != engine.AckDone {
					t.Errorf("delivery %d: %v, want AckDone", i, a)
				}
			}
		})
	}
}

func TestPaymentStreamDedupesTheEventID(t *testing.T) {
	p := newPayments(t)
	bus := openEmbeddedBus(t, "")
	c, _ := p.consumer()
	log := newDeliveryLog()
	consume(t, bus, c, engine.PaymentStream(), log)
	pay := p.pendingLinked(1)
	for range 3 {
		if err := engine.MarkPaid(context.Background(), bus, pay.ID); err != nil {
			t.Fatal(err)
		}
	}
	log.wait(t, 1)
	log.requireNoMore(t, bus, engine.SubjectPaymentCompleted)
	p.requireActivatedOnce(pay)
}

func TestPaymentConsumerRedeliversAfterRetry(t *testing.T) {
	p := newPayments(t)
	p.workflows.fail = func(_ string, call int) error {
		if call < 3 {
			return engine.Errorf(engine.EUnavailable, "temporal is down")
		}
		return nil
	}
	bus := openEmbeddedBus(t, "")
	c, _ := p.consumer()
	log := newDeliveryLog()
	consume(t, bus, c, engine.PaymentStream(), log)
	pay := p.pendingLinked(1)
	if err := engine.MarkPaid(context.Background(), bus, pay.ID); err != nil {
		t.Fatal(err)
	}
	log.wait(t, 3)
	p.requireActivatedOnce(pay)
	if want := []engine.Ack{engine.AckRetry, engine.AckRetry, engine.AckDone}; fmt.Sprint(log.acks) != fmt.Sprint(want) {
		t.Errorf("verdicts %v, want %v", log.acks, want)
	}
	if fmt.Sprint(log.maxes) != "[1 2 3]" {
		t.Errorf("delivery counts %v, want [1 2 3]", log.maxes)
	}
}

// Over JetStream, the MaxDeliver-th failed delivery is the last: the
// event is dead-lettered and never delivered again.
func TestPaymentConsumerDeadLettersAfterMaxDeliverOverJetStream(t *testing.T) {
	p := newPayments(t)
	p.temporalDown()
	bus := openEmbeddedBus(t, "")
	c, _ := p.consumer(func(cfg *engine.PaymentConsumerConfig) { cfg.MaxDeliver = 2 })
	log := newDeliveryLog()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stop, err := c.Start(ctx, log.wrapEvents(bus))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	pay := p.pendingLinked(1)
	if err := engine.MarkPaid(ctx, bus, pay.ID); err != nil {
		t.Fatal(err)
	}
	log.wait(t, 2)
	if l := p.onlyLetter(); l.Deliveries != 2 || l.PaymentID != pay.ID {
		t.Fatalf("dead letter %+v, want payment %s after MaxDeliver (2) deliveries", l, pay.ID)
	}
	log.requireNoMore(t, bus, engine.SubjectPaymentCompleted)
	if want := []engine.Ack{engine.AckRetry, engine.AckDrop}; fmt.Sprint(log.acks[:2]) != fmt.Sprint(want) {
		t.Errorf("verdicts %v, want %v", log.acks[:2], want)
	}
}

func TestPaymentConsumerCrashBeforeAck(t *testing.T) {
	p := newPayments(t)
	server := openEmbeddedBus(t, "127.0.0.1:0")
	pay := p.pendingLinked(2)

	// The first instance processes the payment, then dies before its ack.
	first := hnats.New(server.ClientURL())
	if err := first.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	c1, _ := p.consumer()
	handled, release := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(release) })
	ctx1, cancel1 := context.WithCancel(context.Background())
	t.Cleanup(cancel1)
	stream := engine.PaymentStream()
	if err := first.EnsureStream(ctx1, stream); err != nil {
		t.Fatal(err)
	}
	hang := func(ctx context.Context, m *engine.Message) engine.Ack {
		a := c1.Handle(ctx, m)
		close(handled)
		<-release
		return a
	}
	if _, err := first.Consume(ctx1, engine.ConsumerSpec{
		Stream: stream.Name, Durable: engine.PaymentConsumerDurable, FilterSubject: stream.Subjects[0],
		MaxDeliver: 5, AckWait: time.Second,
	}, hang); err != nil {
		t.Fatal(err)
	}
	if err := engine.MarkPaid(context.Background(), first, pay.ID); err != nil {
		t.Fatal(err)
	}
	<-handled
	first.Close() // the process is gone: no ack will ever come

	// A new instance with an empty cache gets the redelivery.
	second := hnats.New(server.ClientURL())
	if err := second.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Close() })
	c2, _ := p.consumer()
	log := newDeliveryLog()
	consumeAckWait(t, second, c2, stream, log, time.Second) // the dead instance's delivery is made again after it
	log.wait(t, 1)
	if log.maxes[0] != 2 || log.acks[0] != engine.AckDone {
		t.Fatalf("redelivery %d with verdict %v, want delivery 2 acked", log.maxes[0], log.acks[0])
	}
	p.requireActivatedOnce(pay)
}

func TestPaymentWebhookToConsumer(t *testing.T) {
	p := newPayments(t)
	bus := openEmbeddedBus(t, "")
	secret := []byte("0123456789abcdef0123456789abcdef")
	wh := engine.NewPaymentWebhook(engine.PaymentWebhookConfig{Secret: secret, Events: bus})
	pay := p.pendingLinked(1)
	body := eventJSON(t, engine.PaymentCompletedEvent{EventID: "wh-1", ExternalID: pay.ExternalID})
	now := time.Now()
	for range 2 { // the provider retries its notification
		if _, err := wh.Receive(context.Background(), fmt.Sprint(now.Unix()), engine.SignWebhook(secret, now, body), body); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := p.consumer()
	log := newDeliveryLog()
	consume(t, bus, c, engine.PaymentStream(), log)
	log.wait(t, 1)
	log.requireNoMore(t, bus, engine.SubjectPaymentCompleted)
	p.requireActivatedOnce(pay)
}

func TestPaymentConsumerExternalNATS(t *testing.T) {
	url := testenv.NATSURL(t)
	p := newPayments(t)
	bus := hnats.New(url)
	if err := bus.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	tag := strings.ToUpper(engine.NewID("")[1:11])
	stream := engine.StreamSpec{
		Name: "TPAY_" + tag, Subjects: []string{"tpay." + strings.ToLower(tag) + ".payment.completed"},
		DuplicateWindow: 2 * time.Minute,
	}
	t.Cleanup(func() { deleteStream(t, url, stream.Name) })
	c, _ := p.consumer(func(cfg *engine.PaymentConsumerConfig) { cfg.Stream = stream })
	log := newDeliveryLog()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stop, err := c.Start(ctx, log.wrapEvents(bus))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	pay := p.pendingLinked(2)
	e := &engine.PaymentCompletedEvent{EventID: "ev-" + tag, PaymentID: pay.ID}
	for range 2 {
		if err := engine.PublishPaymentCompleted(ctx, bus, stream.Subjects[0], e); err != nil {
			t.Fatal(err)
		}
	}
	data := eventJSON(t, *e)
	if err := bus.Publish(ctx, stream.Subjects[0], "late-repeat", data); err != nil {
		t.Fatal(err)
	}
	log.wait(t, 2) // the first two are one message
	log.requireNoMore(t, bus, stream.Subjects[0])
	p.requireActivatedOnce(pay)
}

// wrapEvents makes Start's consumer report to the log.
func (l *deliveryLog) wrapEvents(ev engine.Events) engine.Events { return loggedEvents{ev, l} }

type loggedEvents struct {
	engine.Events
	log *deliveryLog
}

func (e loggedEvents) Consume(ctx context.Context, spec engine.ConsumerSpec, h engine.MessageHandler) (func(), error) {
	return e.Events.Consume(ctx, spec, e.log.wrap(h))
}

func deleteStream(t *testing.T, url, name string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Errorf("cleanup connect: %v", err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	if err := js.DeleteStream(context.Background(), name); err != nil {
		t.Errorf("delete stream %s: %v", name, err)
	}
}

func TestPaymentConsumerDropsPaymentForCancelledSubscriptions(t *testing.T) {
	p := newPayments(t)
	c, _ := p.consumer()
	pay := p.pendingLinked(1)
	ctx := context.Background()
	s, err := p.store.GetSubscription(ctx, pay.SubscriptionIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	s.Status = engine.SubscriptionCancelled
	if err := p.store.UpdateSubscription(ctx, s); err != nil {
		t.Fatal(err)
	}
	m := &engine.Message{Data: eventJSON(t, engine.PaymentCompletedEvent{EventID: "ev-cancelled", PaymentID: pay.ID})}
	if got := c.Handle(ctx, m); got != engine.AckDrop {
		t.Fatalf("Handle = %v, want AckDrop: retrying cannot revive a cancelled subscription", got)
	}
	if n := p.workflows.starts(s.ID); n != 0 {
		t.Fatalf("StartProvision called %d times for a cancelled subscription", n)
	}
}
