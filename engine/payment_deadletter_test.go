package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// deadLetterCount counts the letters the consumer reports made dead.
type deadLetterCount struct{ n atomic.Int64 }

func (d *deadLetterCount) option(cfg *engine.PaymentConsumerConfig) {
	cfg.OnDeadLetter = func(*engine.PaymentDeadLetter) { d.n.Add(1) }
}

// temporalDown makes every StartProvision fail, until fixed.
func (p *payments) temporalDown() {
	p.workflows.mu.Lock()
	defer p.workflows.mu.Unlock()
	p.workflows.fail = func(string, int) error { return engine.Errorf(engine.EUnavailable, "temporal is down") }
}

func (p *payments) temporalBack() {
	p.workflows.mu.Lock()
	defer p.workflows.mu.Unlock()
	p.workflows.fail = nil
}

// onlyLetter returns the one dead letter the store holds.
func (p *payments) onlyLetter() *engine.PaymentDeadLetter {
	p.t.Helper()
	ls, err := p.store.ListPaymentDeadLetters(context.Background(), "", 0)
	if err != nil {
		p.t.Fatal(err)
	}
	if len(ls) != 1 {
		p.t.Fatalf("%d dead letters, want 1", len(ls))
	}
	return ls[0]
}

// openIncident returns the open incident of letter id, failing if none.
func (p *payments) openIncident(id string) *engine.Incident {
	p.t.Helper()
	in, err := p.store.FindOpenIncident(context.Background(), "", engine.PaymentDeadLetterIncidentKey(id))
	if err != nil {
		p.t.Fatalf("no open incident for dead letter %s: %v", id, err)
	}
	if in.Severity != engine.SeverityCritical || in.NodeID != "" {
		p.t.Fatalf("incident %+v, want critical and of no node", in)
	}
	return in
}

func (p *payments) requireNoOpenIncident(id string) {
	p.t.Helper()
	if in, err := p.store.FindOpenIncident(context.Background(), "", engine.PaymentDeadLetterIncidentKey(id)); err == nil {
		p.t.Fatalf("incident %s of dead letter %s is still open", in.ID, id)
	}
}

// deadLettered has a linked payment's event fail MaxDeliver (3) times on
// a workflow engine that is down, and returns the consumer, the payment
// and the message.
func (p *payments) deadLettered(opts ...func(*engine.PaymentConsumerConfig)) (*engine.PaymentConsumer, *engine.Payment, *engine.Message) {
	p.t.Helper()
	p.temporalDown()
	c, _ := p.consumer(append(opts, func(cfg *engine.PaymentConsumerConfig) { cfg.MaxDeliver = 3 })...)
	pay := p.pendingLinked(1)
	m := &engine.Message{Subject: engine.SubjectPaymentCompleted, ID: "msg-1",
		Data: eventJSON(p.t, engine.PaymentCompletedEvent{EventID: "ev-dead", PaymentID: pay.ID})}
	for d, want := range []engine.Ack{engine.AckRetry, engine.AckRetry, engine.AckDrop} {
		m.Deliveries = d + 1
		if got := c.Handle(context.Background(), m); got != want {
			p.t.Fatalf("delivery %d: %v, want %v", d+1, got, want)
		}
	}
	return c, pay, m
}

func TestPaymentConsumerDeadLettersOnTheLastDelivery(t *testing.T) {
	p := newPayments(t)
	var count deadLetterCount
	_, pay, m := p.deadLettered(count.option)
	l := p.onlyLetter()
	if l.Status != engine.DeadLetterDead || l.Subject != engine.SubjectPaymentCompleted || l.MessageID != "msg-1" ||
		l.EventID != "ev-dead" || l.PaymentID != pay.ID || string(l.Payload) != string(m.Data) || l.Deliveries != 3 {
		t.Fatalf("dead letter %+v, want the last delivery as received", l)
	}
	if !strings.Contains(l.Error, "temporal is down") || l.FirstSeenAt.IsZero() || l.LastSeenAt.Before(l.FirstSeenAt) {
		t.Fatalf("dead letter says %q, first %v last %v; want the cause and when", l.Error, l.FirstSeenAt, l.LastSeenAt)
	}
	in := p.openIncident(l.ID)
	if !strings.Contains(in.Summary, l.ID) || !strings.Contains(in.Summary, "ev-dead") {
		t.Errorf("incident summary %q does not name the dead letter and its event", in.Summary)
	}
	if n := count.n.Load(); n != 1 {
		t.Errorf("%d dead letters counted, want 1", n)
	}
}

// A crash between recording the letter and the ack delivers the message
// again: the same letter records it, not a second one, nor a second incident.
func TestPaymentDeadLetterIsRecordedOnceAcrossRedeliveries(t *testing.T) {
	p := newPayments(t)
	var count deadLetterCount
	c, _, m := p.deadLettered(count.option)
	first := p.onlyLetter()
	m.Deliveries = 4
	if got := c.Handle(context.Background(), m); got != engine.AckDrop {
		t.Fatalf("redelivery after the last: %v, want AckDrop", got)
	}
	again := p.onlyLetter()
	if again.ID != first.ID || again.Deliveries != 4 || !again.FirstSeenAt.Equal(first.FirstSeenAt) {
		t.Fatalf("letter after redelivery %+v, want %s with 4 deliveries, first seen as before", again, first.ID)
	}
	incidents, err := p.store.ListIncidents(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(incidents) != 1 || !incidents[0].Open() {
		t.Fatalf("%d incidents, want the one open", len(incidents))
	}
	if n := count.n.Load(); n != 1 {
		t.Errorf("%d dead letters counted, want 1", n)
	}
}

// Events that can never be processed are money all the same: dead-lettered
// on their first delivery, with the payload as received.
func TestPaymentEventsThatCanNeverBeProcessedAreDeadLetteredAtOnce(t *testing.T) {
	p := newPayments(t)
	cancelled := p.pendingLinked(1)
	s, err := p.store.GetSubscription(context.Background(), cancelled.SubscriptionIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	s.Status = engine.SubscriptionCancelled
	if err := p.store.UpdateSubscription(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	c, _ := p.consumer()
	tests := []struct {
		name, data, msgID, event, reason string
	}{
		{"not JSON", `{"event_id":`, "m-json", "", "not valid JSON"},
		{"no event id", `{"payment_id":"pay_1"}`, "", "", "event_id is required"},
		{"a line item no profile offers", `{"event_id":"ev-offer","line_items":[{"chain_profile_id":"nope","node_type":"full","duration":"1m","user_id":"` + p.alice.ID + `"}]}`, "m-offer", "ev-offer", "unknown chain profile"},
		{"a payment for cancelled subscriptions", `{"event_id":"ev-cancelled","payment_id":"` + cancelled.ID + `"}`, "m-cancelled", "ev-cancelled", "cancelled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &engine.Message{Subject: engine.SubjectPaymentCompleted, ID: tt.msgID, Data: []byte(tt.data), Deliveries: 1}
			for range 2 { // delivered again after a crash: still one letter
				if got := c.Handle(context.Background(), m); got != engine.AckDrop {
					t.Fatalf("Handle = %v, want AckDrop", got)
				}
			}
			l := letterOf(t, p, tt.data)
			if l.EventID != tt.event || l.MessageID != tt.msgID || l.Deliveries != 1 || !strings.Contains(l.Error, tt.reason) {
				t.Fatalf("dead letter %+v, want event %q, message %q, an error about %q", l, tt.event, tt.msgID, tt.reason)
			}
			p.openIncident(l.ID)
		})
	}
	if n := p.workflows.starts(cancelled.SubscriptionIDs[0]); n != 0 {
		t.Fatalf("StartProvision called %d times for a cancelled subscription", n)
	}
}

// letterOf returns the one dead letter of payload.
func letterOf(t *testing.T, p *payments, payload string) *engine.PaymentDeadLetter {
	t.Helper()
	ls, err := p.store.ListPaymentDeadLetters(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var found []*engine.PaymentDeadLetter
	for _, l := range ls {
		if string(l.Payload) == payload {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d dead letters of %s, want 1", len(found), payload)
	}
	return found[0]
}

// deadLetterOutage fails RecordPaymentDeadLetter while down is set.
type deadLetterOutage struct {
	engine.Store
	down atomic.Bool
}

func (s *deadLetterOutage) RecordPaymentDeadLetter(ctx context.Context, l *engine.PaymentDeadLetter) (*engine.PaymentDeadLetter, bool, error) {
	if s.down.Load() {
		return nil, false, engine.Errorf(engine.EUnavailable, "store is down")
	}
	return s.Store.RecordPaymentDeadLetter(ctx, l)
}

// Over JetStream: the bus does not give the message up after MaxDeliver;
// the consumer does, once the dead letter is stored.
func TestPaymentConsumerDeliversAgainUntilTheDeadLetterIsStored(t *testing.T) {
	p := newPayments(t)
	p.temporalDown()
	st := &deadLetterOutage{Store: p.store}
	st.down.Store(true)
	c, _ := p.consumer(func(cfg *engine.PaymentConsumerConfig) { cfg.Store, cfg.MaxDeliver = st, 2 })
	bus := openEmbeddedBus(t, "")
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
	log.wait(t, 3) // the second delivery is the last allowed; its dead letter is not stored
	st.down.Store(false)
	for {
		log.mu.Lock()
		last := log.acks[len(log.acks)-1]
		log.mu.Unlock()
		if last == engine.AckDrop {
			break
		}
		log.wait(t, 1)
	}
	if l := p.onlyLetter(); l.EventID != "mark-paid:"+pay.ID || l.Deliveries < 3 {
		t.Fatalf("dead letter %+v, want the mark-paid event after 3 deliveries or more", l)
	}
	log.requireNoMore(t, bus, engine.SubjectPaymentCompleted)
}

func TestRedriveActivatesOnceAndResolvesTheIncident(t *testing.T) {
	p := newPayments(t)
	c, pay, _ := p.deadLettered()
	id := p.onlyLetter().ID
	p.temporalBack()

	d := c.DeadLetters()
	const n = 4
	results := make([]*engine.PaymentDeadLetter, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = d.Redrive(context.Background(), id, fmt.Sprint("user_", i)) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			t.Fatalf("redrives %d and %d both redrove it", winner, i)
		case !engine.IsCode(err, engine.EConflict) || results[i] == nil || results[i].Status != engine.DeadLetterRedriven:
			t.Fatalf("losing redrive: %v with %+v, want EConflict with the letter redriven", err, results[i])
		}
	}
	if winner < 0 {
		t.Fatalf("no redrive succeeded: %v", errs)
	}
	l := p.onlyLetter()
	if l.Status != engine.DeadLetterRedriven || l.RedrivenBy != fmt.Sprint("user_", winner) || l.RedrivenAt.IsZero() {
		t.Fatalf("letter %+v, want redriven by user_%d", l, winner)
	}
	p.requireActivatedOnce(pay)
	p.requireNoOpenIncident(id)

	again, err := d.Redrive(context.Background(), id, "user_late")
	if !engine.IsCode(err, engine.EConflict) || again.Status != engine.DeadLetterRedriven || again.RedrivenBy != l.RedrivenBy {
		t.Fatalf("redrive of a redriven letter = %+v, %v; want EConflict with it as it is", again, err)
	}
	p.requireActivatedOnce(pay)
}

func TestRedriveThatStillFailsKeepsTheLetterDead(t *testing.T) {
	p := newPayments(t)
	c, pay, _ := p.deadLettered()
	before := p.onlyLetter()
	got, err := c.DeadLetters().Redrive(context.Background(), before.ID, "user_root")
	if !engine.IsCode(err, engine.EConflict) || !strings.Contains(engine.ErrorMessage(err), "temporal is down") {
		t.Fatalf("Redrive = %v, want EConflict saying why", err)
	}
	if got.Status != engine.DeadLetterDead || got.Deliveries != before.Deliveries+1 || !got.RedrivenAt.IsZero() {
		t.Fatalf("letter after a failed redrive %+v, want dead with one more delivery", got)
	}
	p.openIncident(before.ID)

	p.temporalBack()
	if _, err := c.DeadLetters().Redrive(context.Background(), before.ID, "user_root"); err != nil {
		t.Fatal(err)
	}
	p.requireActivatedOnce(pay)
	p.requireNoOpenIncident(before.ID)
}

func TestRedriveOfAMalformedEventNeverSucceeds(t *testing.T) {
	p := newPayments(t)
	c, _ := p.consumer()
	m := &engine.Message{Subject: engine.SubjectPaymentCompleted, ID: "m-bad", Data: []byte(`[1,2]`), Deliveries: 1}
	if got := c.Handle(context.Background(), m); got != engine.AckDrop {
		t.Fatalf("Handle = %v, want AckDrop", got)
	}
	l := p.onlyLetter()
	if _, err := c.DeadLetters().Redrive(context.Background(), l.ID, "user_root"); !engine.IsCode(err, engine.EConflict) {
		t.Fatalf("Redrive = %v, want EConflict: it stays dead", err)
	}
	p.openIncident(l.ID)
}

func TestDeadLetterUseCasesRefuseWhatIsNotThere(t *testing.T) {
	p := newPayments(t)
	c, _ := p.consumer()
	d := c.DeadLetters()
	if _, err := d.Redrive(context.Background(), "pdl_nope", "user_root"); !engine.IsCode(err, engine.ENotFound) {
		t.Errorf("Redrive of an unknown letter = %v, want ENotFound", err)
	}
	if _, err := d.Get(context.Background(), "pdl_nope"); !engine.IsCode(err, engine.ENotFound) {
		t.Errorf("Get of an unknown letter = %v, want ENotFound", err)
	}
	if _, err := d.List(context.Background(), "buried", 10); !engine.IsCode(err, engine.EInvalid) {
		t.Errorf("List of an unknown status = %v, want EInvalid", err)
	}
}

// The provider sending the same event again once the cause is fixed
// settles the payment without a redrive: the letter is resolved.
func TestTheSameEventComingAgainResolvesItsDeadLetter(t *testing.T) {
	p := newPayments(t)
	c, pay, m := p.deadLettered()
	id := p.onlyLetter().ID
	p.temporalBack()
	resent := &engine.Message{Subject: m.Subject, ID: "msg-resent", Data: m.Data, Deliveries: 1}
	if got := c.Handle(context.Background(), resent); got != engine.AckDone {
		t.Fatalf("Handle = %v, want AckDone", got)
	}
	if l := p.onlyLetter(); l.ID != id || l.Status != engine.DeadLetterResolved || !l.RedrivenAt.IsZero() {
		t.Fatalf("letter %+v, want %s resolved, not redriven", l, id)
	}
	p.requireNoOpenIncident(id)
	p.requireActivatedOnce(pay)
	if _, err := c.DeadLetters().Redrive(context.Background(), id, "user_root"); !engine.IsCode(err, engine.EConflict) {
		t.Fatalf("Redrive of a resolved letter = %v, want EConflict", err)
	}
}

// secretLeak fails activation with an error a driver might produce.
type secretLeak struct{ engine.Store }

func (s secretLeak) UpdateSubscription(context.Context, *engine.Subscription) error {
	return errors.New("dial postgres://admin:hunter2@db.internal:5432: connection refused")
}

func TestDeadLetterKeepsNoInternalErrorDetails(t *testing.T) {
	p := newPayments(t)
	c, _ := p.consumer(func(cfg *engine.PaymentConsumerConfig) { cfg.Store, cfg.MaxDeliver = secretLeak{p.store}, 1 })
	pay := p.pendingLinked(1)
	m := &engine.Message{Data: eventJSON(t, engine.PaymentCompletedEvent{EventID: "ev-leak", PaymentID: pay.ID}), Deliveries: 1}
	if got := c.Handle(context.Background(), m); got != engine.AckDrop {
		t.Fatalf("Handle = %v, want AckDrop", got)
	}
	l := p.onlyLetter()
	in := p.openIncident(l.ID)
	for _, text := range []string{l.Error, in.Summary} {
		if strings.Contains(text, "hunter2") || strings.Contains(text, "db.internal") {
			t.Fatalf("%q shows an internal error's details", text)
		}
	}
	if l.Error != "internal error" {
		t.Errorf("dead letter error %q, want the generic message", l.Error)
	}
}

// The durable consumer of an appliance upgraded from a bus-side limit
// takes the consumer-side one.
func TestPaymentConsumerTakesOverAConsumerWithABusLimit(t *testing.T) {
	p := newPayments(t)
	bus := openEmbeddedBus(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream := engine.PaymentStream()
	if err := bus.EnsureStream(ctx, stream); err != nil {
		t.Fatal(err)
	}
	old, err := bus.Consume(ctx, engine.ConsumerSpec{Stream: stream.Name, Durable: engine.PaymentConsumerDurable,
		FilterSubject: stream.Subjects[0], MaxDeliver: 5, AckWait: time.Minute}, func(context.Context, *engine.Message) engine.Ack { return engine.AckDone })
	if err != nil {
		t.Fatal(err)
	}
	old()
	c, _ := p.consumer()
	stop, err := c.Start(ctx, bus)
	if err != nil {
		t.Fatalf("Start over a consumer with a bus limit: %v", err)
	}
	stop()
}

// A last delivery cut short by the consumer stopping is delivered again
// after the restart, not given up.
func TestAStopIsNotAPaymentFailure(t *testing.T) {
	p := newPayments(t)
	c, _ := p.consumer(func(cfg *engine.PaymentConsumerConfig) { cfg.MaxDeliver = 1 })
	pay := p.pendingLinked(1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := &engine.Message{Data: eventJSON(t, engine.PaymentCompletedEvent{EventID: "ev-stop", PaymentID: pay.ID}), Deliveries: 1}
	if got := c.Handle(ctx, m); got != engine.AckRetry {
		t.Fatalf("Handle while stopping = %v, want AckRetry", got)
	}
	if ls, err := p.store.ListPaymentDeadLetters(context.Background(), "", 0); err != nil || len(ls) != 0 {
		t.Fatalf("dead letters %v, %v; want none", ls, err)
	}
	m.Deliveries = 2
	if got := c.Handle(context.Background(), m); got != engine.AckDone {
		t.Fatalf("Handle after the restart = %v, want AckDone", got)
	}
	p.requireActivatedOnce(pay)
}
