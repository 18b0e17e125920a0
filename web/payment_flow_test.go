package web_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// paymentOut is a decoded payment.
type paymentOut struct {
	ID                       string   `json:"id"`
	AmountCents              int64    `json:"amount_cents"`
	Currency                 string   `json:"currency"`
	Status                   string   `json:"status"`
	StatusReason             string   `json:"status_reason"`
	SubscriptionIDs          []string `json:"subscription_ids"`
	ActivatedSubscriptionIDs []string `json:"activated_subscription_ids"`
}

func TestGetPaymentIsTheOwners(t *testing.T) {
	f, _ := paymentsFixture(t)
	a := newAccounts(f)
	bobJWT, _ := f.login("bob@example.com")
	_, subsRead := f.apiKey(a.aliceJWT, engine.ScopeSubscriptionsRead)
	s := &engine.Subscription{ID: engine.NewID("sub"), UserID: a.alice.ID, ChainProfileID: "ethereum-holesky", NodeType: "full",
		Duration: "1m", Status: engine.SubscriptionPendingPayment, CreatedAt: time.Now()}
	if err := f.store.CreateSubscription(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	rec := f.do(request{method: "POST", path: "/api/v1/payments", credential: a.aliceJWT,
		body: `{"external_id":"cs_get","amount_cents":4900,"currency":"EUR","subscription_ids":["` + s.ID + `"]}`})
	var linked paymentOut
	f.decode(rec, 201, &linked)
	one := "/api/v1/payments/" + linked.ID
	tests := []struct {
		name       string
		req        request
		wantStatus int
		wantBody   []string
	}{
		{"the owner reads it", request{method: "GET", path: one, credential: a.aliceJWT}, 200,
			[]string{`"status":"pending"`, `"amount_cents":4900`, `"currency":"EUR"`, `"subscription_ids":["` + s.ID + `"]`, `"activated_subscription_ids":[]`}},
		{"with a subscriptions:read key", request{method: "GET", path: one, credential: subsRead}, 200, []string{linked.ID}},
		{"a key without subscriptions:read", request{method: "GET", path: one, credential: a.aliceReadKey}, 403, []string{"subscriptions:read"}},
		{"another user's is not found", request{method: "GET", path: one, credential: bobJWT}, 404, nil},
		{"another user's key with the scope finds nothing either", request{method: "GET", path: one, credential: a.bobKey}, 404, nil},
		{"an unknown id is not found", request{method: "GET", path: "/api/v1/payments/pay_nope", credential: a.aliceJWT}, 404, nil},
		{"an overlong id is not found", request{method: "GET", path: "/api/v1/payments/" + strings.Repeat("p", 300), credential: a.aliceJWT}, 404, nil},
		{"an administrator reads anyone's", request{method: "GET", path: one, credential: a.rootJWT}, 200, []string{linked.ID}},
		{"so does the bootstrap administrator", request{method: "GET", path: one, credential: bootstrapToken}, 200, []string{linked.ID}},
		{"no credential", request{method: "GET", path: one}, 401, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.do(tt.req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			for _, w := range tt.wantBody {
				if !strings.Contains(rec.Body.String(), w) {
					t.Errorf("body %s lacks %q", rec.Body, w)
				}
			}
		})
	}
}

func TestLinkPaymentRefusesWhatDoesNotPay(t *testing.T) {
	f, _ := paymentsFixture(t)
	a := newAccounts(f)
	s := &engine.Subscription{ID: engine.NewID("sub"), UserID: a.alice.ID, ChainProfileID: "ethereum-holesky", NodeType: "full",
		Duration: "1m", Status: engine.SubscriptionPendingPayment, CreatedAt: time.Now()}
	if err := f.store.CreateSubscription(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	link := func(ext, amount, currency string) request {
		return request{method: "POST", path: "/api/v1/payments", credential: a.aliceJWT,
			body: `{"external_id":"` + ext + `","amount_cents":` + amount + `,"currency":"` + currency + `","subscription_ids":["` + s.ID + `"]}`}
	}
	wantStatus(t, f.do(link("cs_1", "1", "EUR")), 400, "4900")
	wantStatus(t, f.do(link("cs_2", "4900", "ZZZ")), 400, "EUR")
	wantStatus(t, f.do(link("cs_3", "4900", "eur")), 201, `"currency":"EUR"`)
}

// paymentFlow is the API over testChain, whose fee_recipient is required,
// with the payment consumer fed from the recording bus.
type paymentFlow struct {
	*subscriptionFixture
	*accounts
	consumer  *engine.PaymentConsumer
	delivered int
}

func newPaymentFlow(t *testing.T) *paymentFlow {
	t.Helper()
	f := newSubscriptionFixture(t)
	c, err := engine.NewPaymentConsumer(engine.PaymentConsumerConfig{Store: f.store, Cache: f.cache, Workflows: f.workflows, Catalog: f.chains})
	if err != nil {
		t.Fatal(err)
	}
	return &paymentFlow{subscriptionFixture: f, accounts: newAccounts(f.fixture), consumer: c}
}

// deliver hands the consumer every message published since the last call,
// as JetStream would.
func (f *paymentFlow) deliver() {
	f.tb.Helper()
	f.events.mu.Lock()
	msgs := slices.Clone(f.events.published[f.delivered:])
	f.delivered = len(f.events.published)
	f.events.mu.Unlock()
	if len(msgs) == 0 {
		f.tb.Fatal("nothing was published for the payment consumer")
	}
	for _, m := range msgs {
		if got := f.consumer.Handle(context.Background(), &engine.Message{ID: m.msgID, Data: m.data, Deliveries: 1}); got != engine.AckDone {
			f.tb.Fatalf("consumer answered %v to %s", got, m.data)
		}
	}
}

func (f *paymentFlow) payment(credential, id string) paymentOut {
	f.tb.Helper()
	var p paymentOut
	f.decode(f.do(request{method: "GET", path: "/api/v1/payments/" + id, credential: credential}), 200, &p)
	return p
}

func (f *paymentFlow) subscriptionStatus(id string) string {
	f.tb.Helper()
	var s subscriptionOut
	f.decode(f.do(request{method: "GET", path: "/api/v1/subscriptions/" + id, credential: f.aliceJWT}), 200, &s)
	return s.Status
}

const feeRecipient = "0x00000000219ab540356cbb839cbe05303d7705fa"

func TestInputsAreRequiredBeforeAPaymentIsLinkedOrMarkedPaid(t *testing.T) {
	f := newPaymentFlow(t)
	sub := f.subscribe(f.aliceJWT, "1m", 201)
	link := request{method: "POST", path: "/api/v1/payments", credential: f.aliceJWT,
		body: `{"external_id":"cs_early","amount_cents":100,"currency":"EUR","subscription_ids":["` + sub + `"]}`}
	rec := f.do(link)
	wantStatus(t, rec, 409, "fee_recipient")
	if !strings.Contains(rec.Body.String(), sub) || !strings.Contains(rec.Body.String(), `"code":"conflict"`) {
		t.Fatalf("body %s, want a conflict naming the subscription and the input", rec.Body)
	}

	// Mark-paid refuses too: a payment linked before the profile required
	// the input (made here in the store) cannot be marked paid.
	early := &engine.Payment{ID: engine.NewID("pay"), UserID: f.alice.ID, AmountCents: 100, Currency: "EUR",
		Status: engine.PaymentPending, SubscriptionIDs: []string{sub}, CreatedAt: time.Now().UTC()}
	if err := f.store.CreatePayment(context.Background(), early); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, f.do(request{method: "POST", path: "/api/v1/payments/" + early.ID + "/mark-paid", credential: f.rootJWT}), 409, "fee_recipient")
	if n := f.events.count(); n != 0 {
		t.Fatalf("%d events published by refused requests", n)
	}

	wantStatus(t, f.do(request{method: "POST", path: "/api/v1/subscriptions/" + sub + "/inputs", credential: f.aliceJWT,
		body: inputsBody("fee_recipient", feeRecipient)}), 200, "fee_recipient")
	var linked paymentOut
	f.decode(f.do(link), 201, &linked)
	wantStatus(t, f.do(request{method: "POST", path: "/api/v1/payments/" + linked.ID + "/mark-paid", credential: f.rootJWT}), 202, "accepted")
	f.deliver()
	if got := f.subscriptionStatus(sub); got != "active" || !slices.Contains(f.workflows.provisions(), sub) {
		t.Fatalf("subscription %s, provisions %v; want active and provisioned", got, f.workflows.provisions())
	}
	if p := f.payment(f.aliceJWT, linked.ID); p.Status != "completed" || !slices.Equal(p.ActivatedSubscriptionIDs, []string{sub}) {
		t.Fatalf("payment %+v, want completed, having activated %s", p, sub)
	}
}

func TestMoneyReceivedBeforeInputsWaitsForThem(t *testing.T) {
	f := newPaymentFlow(t)
	body, _ := json.Marshal(engine.PaymentCompletedEvent{EventID: "ev-paid-first", AmountCents: 100, Currency: "EUR",
		LineItems: []engine.PaymentLineItem{{ChainProfileID: "test-chain", NodeType: "full", Duration: "1m", UserID: f.alice.ID}}})
	wantStatus(t, f.do(signed(string(body), time.Now())), 202, "accepted")
	f.deliver()

	var list struct{ Subscriptions []subscriptionOut }
	f.decode(f.do(request{method: "GET", path: "/api/v1/subscriptions", credential: f.aliceJWT}), 200, &list)
	if len(list.Subscriptions) != 1 || list.Subscriptions[0].Status != "waiting_for_inputs" {
		t.Fatalf("subscriptions %+v, want one waiting_for_inputs", list.Subscriptions)
	}
	sub := list.Subscriptions[0].ID
	var e engine.PaymentCompletedEvent
	json.Unmarshal(f.events.published[0].data, &e)
	p := f.payment(f.aliceJWT, e.PaymentID)
	if p.Status != "waiting_for_inputs" || !strings.Contains(p.StatusReason, sub) || len(p.ActivatedSubscriptionIDs) != 0 {
		t.Fatalf("payment %+v, want waiting_for_inputs naming %s, nothing activated", p, sub)
	}
	if len(f.workflows.provisions()) != 0 {
		t.Fatal("a subscription without its inputs was provisioned")
	}

	// Supplying the input resumes the payment: activation and provisioning.
	// With the bus down the customer is told to submit again.
	supply := request{method: "POST", path: "/api/v1/subscriptions/" + sub + "/inputs", credential: f.aliceJWT,
		body: inputsBody("fee_recipient", feeRecipient)}
	f.events.mu.Lock()
	f.events.down = true
	f.events.mu.Unlock()
	wantStatus(t, f.do(supply), 503, "submit them again")
	f.events.mu.Lock()
	f.events.down = false
	f.events.mu.Unlock()
	wantStatus(t, f.do(supply), 200, "fee_recipient")
	f.deliver()
	if got := f.subscriptionStatus(sub); got != "active" || !slices.Equal(f.workflows.provisions(), []string{sub}) {
		t.Fatalf("subscription %s, provisions %v; want active and provisioned once", got, f.workflows.provisions())
	}
	if p := f.payment(f.aliceJWT, e.PaymentID); p.Status != "completed" || p.StatusReason != "" || !slices.Equal(p.ActivatedSubscriptionIDs, []string{sub}) {
		t.Fatalf("payment %+v, want completed, having activated %s", p, sub)
	}
}

func TestTerminatingANodeEndsItsSubscription(t *testing.T) {
	f := newPaymentFlow(t)
	sub := f.subscribe(f.aliceJWT, "1m", 201)
	f.setStatus(sub, engine.SubscriptionActive)
	now := time.Now().UTC()
	n := &engine.Node{ID: engine.NewID("node"), SubscriptionID: sub, OwnerID: f.alice.ID, ChainProfileID: "test-chain",
		NodeType: "full", State: engine.NodeRunning, CreatedAt: now, UpdatedAt: now}
	if err := f.store.CreateNode(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	terminate := request{method: "POST", path: "/api/v1/nodes/" + n.ID + "/terminate", credential: f.aliceJWT}
	wantStatus(t, f.do(terminate), 202, n.ID)
	if got := f.subscriptionStatus(sub); got != "cancelled" {
		t.Fatalf("subscription %s after its node was terminated, want cancelled", got)
	}
	if !slices.Equal(f.workflows.terminations(), []string{n.ID}) {
		t.Fatalf("terminations %v, want the node once", f.workflows.terminations())
	}
}
