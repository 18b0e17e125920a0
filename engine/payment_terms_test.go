package engine_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// offerPrices are the prices (euro cents) of the node types the payment
// tests buy: together 849 EUR.
var offerPrices = map[string]int64{"validator": 60000, "archive": 24900}

// linkedAt creates alice's pending subscriptions of nodeTypes and links
// them to a payment declaring amount EUR cents.
func (p *payments) linkedAt(amount int64, nodeTypes ...string) *engine.Payment {
	p.t.Helper()
	ctx := context.Background()
	var ids []string
	for _, nt := range nodeTypes {
		s := &engine.Subscription{
			ID: engine.NewID("sub"), UserID: p.alice.ID, ChainProfileID: "ethereum-holesky", NodeType: nt,
			Duration: "1m", Status: engine.SubscriptionPendingPayment, ExpiresAt: time.Now().Add(time.Hour), CreatedAt: time.Now(),
		}
		if err := p.store.CreateSubscription(ctx, s); err != nil {
			p.t.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	pay, _, err := p.service().Link(ctx, &engine.Principal{UserID: p.alice.ID}, engine.LinkPaymentRequest{
		ExternalID: engine.NewID("ext"), AmountCents: amount, Currency: "EUR", SubscriptionIDs: ids,
	})
	if err != nil {
		p.t.Fatal(err)
	}
	return pay
}

func (p *payments) payment(id string) *engine.Payment {
	p.t.Helper()
	got, err := p.store.GetPayment(context.Background(), id)
	if err != nil {
		p.t.Fatal(err)
	}
	return got
}

func (p *payments) subscription(id string) *engine.Subscription {
	p.t.Helper()
	got, err := p.store.GetSubscription(context.Background(), id)
	if err != nil {
		p.t.Fatal(err)
	}
	return got
}

// handleTwice delivers e, then delivers it again as JetStream would after
// a lost ack: both are AckDone.
func handleTwice(t *testing.T, c *engine.PaymentConsumer, e engine.PaymentCompletedEvent) {
	t.Helper()
	m := &engine.Message{Data: eventJSON(t, e), Deliveries: 1}
	for i := range 2 {
		m.Deliveries = i + 1
		if got := c.Handle(context.Background(), m); got != engine.AckDone {
			t.Fatalf("delivery %d: Handle = %v, want AckDone", i+1, got)
		}
	}
}

func TestPaymentMustCoverThePriceOfWhatItActivates(t *testing.T) {
	tests := []struct {
		name       string
		amount     int64
		currency   string
		wantStatus engine.PaymentStatus
		wantAmount int64
		wantReason string
	}{
		{"one cent for an 849 EUR order activates nothing", 1, "EUR", engine.PaymentUnderpaid, 1, "costs 84900"},
		{"a cent short activates nothing", 84899, "EUR", engine.PaymentUnderpaid, 84899, "costs 84900"},
		{"the price in another currency activates nothing", 84900, "ZZZ", engine.PaymentUnderpaid, 84900, `"ZZZ"`},
		{"the exact price activates both", 84900, "eur", engine.PaymentCompleted, 84900, ""},
		{"more than the price activates both and records what was paid", 90000, "EUR", engine.PaymentCompleted, 90000, ""},
		{"no amount reported: the declared amount counts", 0, "", engine.PaymentCompleted, 84900, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPayments(t)
			p.catalog = testCatalog(offerPrices)
			c, _ := p.consumer()
			pay := p.linkedAt(84900, "validator", "archive")
			handleTwice(t, c, engine.PaymentCompletedEvent{EventID: "ev-" + tt.name, PaymentID: pay.ID, AmountCents: tt.amount, Currency: tt.currency})

			got := p.payment(pay.ID)
			if got.Status != tt.wantStatus || got.AmountCents != tt.wantAmount || !strings.Contains(got.StatusReason, tt.wantReason) {
				t.Fatalf("payment %s %d %s (%q), want %s %d with a reason holding %q",
					got.Status, got.AmountCents, got.Currency, got.StatusReason, tt.wantStatus, tt.wantAmount, tt.wantReason)
			}
			wantSub, wantStarts, wantActivated := engine.SubscriptionPendingPayment, 0, []string(nil)
			if tt.wantStatus == engine.PaymentCompleted {
				wantSub, wantStarts, wantActivated = engine.SubscriptionActive, 1, pay.SubscriptionIDs
			}
			if !slices.Equal(got.ActivatedIDs, wantActivated) {
				t.Errorf("activated %v, want %v", got.ActivatedIDs, wantActivated)
			}
			for _, id := range pay.SubscriptionIDs {
				if s := p.subscription(id); s.Status != wantSub || p.workflows.starts(id) != wantStarts {
					t.Errorf("subscription %s %s, provisioned %d times; want %s, %d", id, s.Status, p.workflows.starts(id), wantSub, wantStarts)
				}
			}
		})
	}
}

func TestUnderpaidPaymentIsSettledByALaterEventThatCovers(t *testing.T) {
	p := newPayments(t)
	p.catalog = testCatalog(offerPrices)
	c, _ := p.consumer()
	pay := p.linkedAt(84900, "validator", "archive")
	handleTwice(t, c, engine.PaymentCompletedEvent{EventID: "ev-short", PaymentID: pay.ID, AmountCents: 100, Currency: "EUR"})
	if got := p.payment(pay.ID); got.Status != engine.PaymentUnderpaid {
		t.Fatalf("payment %s, want underpaid", got.Status)
	}
	handleTwice(t, c, engine.PaymentCompletedEvent{EventID: "ev-full", PaymentID: pay.ID, AmountCents: 84900, Currency: "EUR"})
	if got := p.payment(pay.ID); got.Status != engine.PaymentCompleted || got.StatusReason != "" || len(got.ActivatedIDs) != 2 {
		t.Fatalf("payment %+v, want completed with both subscriptions activated", got)
	}
}

func TestUnderpaidSubscriptionsCanBeLinkedToANewPayment(t *testing.T) {
	p := newPayments(t)
	p.catalog = testCatalog(offerPrices)
	c, _ := p.consumer()
	pay := p.linkedAt(60000, "validator")
	handleTwice(t, c, engine.PaymentCompletedEvent{EventID: "ev-short", PaymentID: pay.ID, AmountCents: 1, Currency: "EUR"})
	again, created, err := p.service().Link(context.Background(), &engine.Principal{UserID: p.alice.ID}, engine.LinkPaymentRequest{
		ExternalID: "ext-again", AmountCents: 60000, Currency: "EUR", SubscriptionIDs: pay.SubscriptionIDs,
	})
	if err != nil || !created {
		t.Fatalf("Link = %v, %v; want a new payment for what the underpaid one did not pay", created, err)
	}
	if s := p.subscription(pay.SubscriptionIDs[0]); s.PaymentID != again.ID {
		t.Fatalf("subscription linked to %s, want %s", s.PaymentID, again.ID)
	}
	// A late event of the old payment no longer pays for it: it is
	// dropped, loudly, for an operator to refund.
	late := &engine.Message{Data: eventJSON(t, engine.PaymentCompletedEvent{EventID: "ev-late", PaymentID: pay.ID, AmountCents: 60000, Currency: "EUR"})}
	if got := c.Handle(context.Background(), late); got != engine.AckDrop {
		t.Fatalf("late event Handle = %v, want AckDrop", got)
	}
	if s := p.subscription(pay.SubscriptionIDs[0]); s.Status != engine.SubscriptionPendingPayment {
		t.Fatalf("subscription %s after the old payment's late event, want pending_payment", s.Status)
	}
}

func TestLinkRefusesWhatCouldNeverActivate(t *testing.T) {
	p := newPayments(t)
	p.catalog = testCatalog(offerPrices)
	p.catalog.RequiredInputsFn = func(_, nodeType string) ([]string, error) {
		if nodeType == "validator" {
			return []string{"fee_recipient", "withdrawal_address"}, nil
		}
		return nil, nil
	}
	ctx := context.Background()
	newSub := func(nodeType string) string {
		s := &engine.Subscription{ID: engine.NewID("sub"), UserID: p.alice.ID, ChainProfileID: "ethereum-holesky", NodeType: nodeType,
			Duration: "1m", Status: engine.SubscriptionPendingPayment, CreatedAt: time.Now()}
		if err := p.store.CreateSubscription(ctx, s); err != nil {
			t.Fatal(err)
		}
		return s.ID
	}
	archive, validator := newSub("archive"), newSub("validator")
	tests := []struct {
		name     string
		amount   int64
		currency string
		ids      []string
		wantCode engine.Code
		wantMsg  []string
	}{
		{"a currency other than EUR", 24900, "USD", []string{archive}, engine.EInvalid, []string{"EUR"}},
		{"less than the price", 1, "EUR", []string{archive}, engine.EInvalid, []string{"24900"}},
		{"required inputs missing", 84900, "EUR", []string{archive, validator}, engine.EConflict, []string{validator, "fee_recipient", "withdrawal_address"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := p.service().Link(ctx, &engine.Principal{UserID: p.alice.ID}, engine.LinkPaymentRequest{
				ExternalID: fmt.Sprint("ext-", i), AmountCents: tt.amount, Currency: tt.currency, SubscriptionIDs: tt.ids,
			})
			if !engine.IsCode(err, tt.wantCode) {
				t.Fatalf("Link = %v, want %s", err, tt.wantCode)
			}
			for _, w := range tt.wantMsg {
				if !strings.Contains(engine.ErrorMessage(err), w) {
					t.Errorf("message %q does not name %q", engine.ErrorMessage(err), w)
				}
			}
		})
	}
	if s := p.subscription(archive); s.PaymentID != "" {
		t.Fatalf("a refused link linked %s to %s", archive, s.PaymentID)
	}
}

func TestPaymentIsReadByItsOwnerOnly(t *testing.T) {
	p := newPayments(t)
	pay := p.pendingLinked(1)
	ctx := context.Background()
	got, err := p.service().Get(ctx, &engine.Principal{UserID: p.alice.ID}, pay.ID)
	if err != nil || got.ID != pay.ID {
		t.Fatalf("owner's Get = %v, %v", got, err)
	}
	for name, id := range map[string]string{"another user's": pay.ID, "an unknown": "pay_nope"} {
		if _, err := p.service().Get(ctx, &engine.Principal{UserID: "user_bob"}, id); !engine.IsCode(err, engine.ENotFound) {
			t.Errorf("%s payment: Get = %v, want not found", name, err)
		}
	}
}

func TestPaidSubscriptionLackingInputsWaitsThenActivates(t *testing.T) {
	p := newPayments(t)
	p.catalog = testCatalog(offerPrices)
	p.catalog.RequiredInputsFn = func(_, nodeType string) ([]string, error) {
		if nodeType == "validator" {
			return []string{"fee_recipient"}, nil
		}
		return nil, nil
	}
	c, _ := p.consumer()
	ctx := context.Background()
	items := []engine.PaymentLineItem{
		{ChainProfileID: "ethereum-holesky", NodeType: "validator", Duration: "1m", UserID: p.alice.ID},
		{ChainProfileID: "ethereum-holesky", NodeType: "archive", Duration: "1m", UserID: p.alice.ID},
	}
	handleTwice(t, c, engine.PaymentCompletedEvent{EventID: "ev-items", AmountCents: 84900, Currency: "EUR", LineItems: items})
	subs, err := p.store.ListSubscriptions(ctx, p.alice.ID)
	if err != nil || len(subs) != 2 {
		t.Fatalf("subscriptions %v, %v; want one per line item", subs, err)
	}
	byType := map[string]*engine.Subscription{}
	for _, s := range subs {
		byType[s.NodeType] = s
	}
	validator, archive := byType["validator"], byType["archive"]
	if validator.Status != engine.SubscriptionWaitingForInputs || p.workflows.starts(validator.ID) != 0 {
		t.Fatalf("validator %s, provisioned %d times; want waiting_for_inputs, not provisioned", validator.Status, p.workflows.starts(validator.ID))
	}
	if archive.Status != engine.SubscriptionActive || p.workflows.starts(archive.ID) != 1 {
		t.Fatalf("archive %s, provisioned %d times; want active, provisioned once", archive.Status, p.workflows.starts(archive.ID))
	}
	pay := p.payment(validator.PaymentID)
	if pay.UserID != p.alice.ID || pay.Status != engine.PaymentWaitingForInputs || !strings.Contains(pay.StatusReason, validator.ID) ||
		!slices.Equal(pay.ActivatedIDs, []string{archive.ID}) {
		t.Fatalf("payment %+v, want alice's, waiting for the validator's inputs, the archive activated", pay)
	}

	// The owner supplies the input; the payment is announced again.
	if err := p.store.PutInput(ctx, &engine.ProvisioningInput{SubscriptionID: validator.ID, Name: "fee_recipient", Type: engine.InputText,
		Value: "0x" + strings.Repeat("ab", 20), Status: engine.InputPending}); err != nil {
		t.Fatal(err)
	}
	handleTwice(t, c, engine.PaymentCompletedEvent{EventID: "ev-resume", PaymentID: pay.ID})
	if s := p.subscription(validator.ID); s.Status != engine.SubscriptionActive || time.Until(s.ExpiresAt) < 27*24*time.Hour {
		t.Fatalf("validator %s expiring %v, want active for a month from now", s.Status, s.ExpiresAt)
	}
	if p.workflows.starts(validator.ID) != 1 || p.workflows.starts(archive.ID) != 1 {
		t.Fatal("each subscription is provisioned exactly once")
	}
	if got := p.payment(pay.ID); got.Status != engine.PaymentCompleted || len(got.ActivatedIDs) != 2 {
		t.Fatalf("payment %+v, want completed with both activated", got)
	}
}

func TestLineItemsShortOfThePriceCreateNothing(t *testing.T) {
	p := newPayments(t)
	p.catalog = testCatalog(offerPrices)
	c, _ := p.consumer()
	item := engine.PaymentLineItem{ChainProfileID: "ethereum-holesky", NodeType: "validator", Duration: "1m", UserID: p.alice.ID}
	handleTwice(t, c, engine.PaymentCompletedEvent{EventID: "ev-cheap", AmountCents: 1, Currency: "EUR", LineItems: []engine.PaymentLineItem{item}})
	subs, err := p.store.ListSubscriptions(context.Background(), p.alice.ID)
	if err != nil || len(subs) != 0 {
		t.Fatalf("subscriptions %v, %v; want none", subs, err)
	}
	var e engine.PaymentEvent
	if got, err := p.store.GetPaymentEvent(context.Background(), "ev-cheap"); err == nil {
		e = *got
	}
	pay := p.payment(e.PaymentID)
	if pay.Status != engine.PaymentUnderpaid || pay.UserID != p.alice.ID {
		t.Fatalf("payment %+v, want alice's, underpaid", pay)
	}
}
