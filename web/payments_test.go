package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/mock"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"github.com/hoodcloud/hoodcloud/store/redis"
	"github.com/hoodcloud/hoodcloud/web"
)

// recordingEvents is an engine.Events that keeps what is published.
type recordingEvents struct {
	engine.Events // nil: any other call panics
	mu            sync.Mutex
	streams       []engine.StreamSpec
	published     []published
	down          bool
}

type published struct {
	subject, msgID string
	data           []byte
}

func (e *recordingEvents) EnsureStream(_ context.Context, spec engine.StreamSpec) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.down {
		return engine.Errorf(engine.EUnavailable, "nats is down")
	}
	e.streams = append(e.streams, spec)
	return nil
}

func (e *recordingEvents) Publish(_ context.Context, subject, msgID string, data []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.down {
		return engine.Errorf(engine.EUnavailable, "nats is down")
	}
	e.published = append(e.published, published{subject, msgID, data})
	return nil
}

func (e *recordingEvents) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.published)
}

var testWebhookSecret = []byte("0123456789abcdef0123456789abcdef")

// paymentsFixture is the API with payments enabled over a bbolt store.
func paymentsFixture(t *testing.T) (*fixture, *recordingEvents) {
	t.Helper()
	return paymentsFixtureWith(t, engine.PaymentWebhookConfig{Secret: testWebhookSecret})
}

// paymentsFixtureWith is paymentsFixture with the webhook configured as
// wh says (its Events are the recording ones).
func paymentsFixtureWith(t *testing.T, wh engine.PaymentWebhookConfig) (*fixture, *recordingEvents) {
	t.Helper()
	st := bolt.New(filepath.Join(t.TempDir(), "hoodcloud.db"))
	mustOpen(t, st.Open(context.Background()), st.Close)
	cache := redis.NewEmbedded(redis.Options{})
	mustOpen(t, cache.Open(context.Background()), cache.Close)
	events := &recordingEvents{}
	f := newFixtureOn(t, st, cache, func(cfg *web.Config) {
		cfg.Store, cfg.Events = st, events
		wh.Events = events
		cfg.Payments = newPayments(t, st, events, holeskyPrices())
		cfg.Webhook = engine.NewPaymentWebhook(wh)
	})
	return f, events
}

// holeskyPrices offers every node type of ethereum-holesky for 1m: full
// at 49 EUR, the others free.
func holeskyPrices() *mock.Catalog {
	return &mock.Catalog{PlacementFn: func(chainProfileID, nodeType, _ string) (engine.Placement, error) {
		if chainProfileID != "ethereum-holesky" {
			return engine.Placement{}, engine.Errorf(engine.EInvalid, "unknown chain profile %q", chainProfileID)
		}
		if nodeType == "full" {
			return engine.Placement{PriceCents: 4900}, nil
		}
		return engine.Placement{}, nil
	}}
}

// newPayments is the payment use-cases over st.
func newPayments(tb testing.TB, st engine.PaymentsStore, events engine.Events, cat engine.Catalog) *engine.Payments {
	tb.Helper()
	p, err := engine.NewPayments(engine.PaymentsConfig{Store: st, Catalog: cat, Events: events})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// signed is a webhook request with the headers a payment service sends.
func signed(body string, at time.Time) request {
	return request{method: "POST", path: "/api/v1/payments/webhook", body: body, headers: map[string]string{
		engine.WebhookTimestampHeader: strconv.FormatInt(at.Unix(), 10),
		engine.WebhookSignatureHeader: engine.SignWebhook(testWebhookSecret, at, []byte(body)),
	}}
}

func TestPaymentWebhook(t *testing.T) {
	f, events := paymentsFixture(t)
	now := time.Now()
	body := `{"event_id":"ev-1","payment_id":"pay_1"}`
	with := func(r request, mutate func(h map[string]string)) request {
		h := map[string]string{}
		for k, v := range r.headers {
			h[k] = v
		}
		mutate(h)
		r.headers = h
		return r
	}
	tampered := signed(body, now)
	tampered.body = `{"event_id":"ev-1","payment_id":"pay_2"}`
	tests := []struct {
		name       string
		req        request
		wantStatus int
		wantBody   string
	}{
		{"a valid signature is accepted", signed(body, now), 202, `"event_id":"ev-1"`},
		{"an external id alone is accepted", signed(`{"event_id":"ev-2","external_id":"cs_123"}`, now), 202, `"status":"accepted"`},
		{"a bad signature", with(signed(body, now), func(h map[string]string) {
			h[engine.WebhookSignatureHeader] = "sha256=" + strings.Repeat("0", 64)
		}), 401, "does not match"},
		{"no headers", request{method: "POST", path: "/api/v1/payments/webhook", body: body}, 401, "required"},
		{"no signature", with(signed(body, now), func(h map[string]string) { delete(h, engine.WebhookSignatureHeader) }), 401, "required"},
		{"no timestamp", with(signed(body, now), func(h map[string]string) { delete(h, engine.WebhookTimestampHeader) }), 401, "required"},
		{"a stale timestamp", signed(body, now.Add(-10*time.Minute)), 401, "window"},
		{"a future timestamp", signed(body, now.Add(10*time.Minute)), 401, "window"},
		{"a tampered body", tampered, 401, "does not match"},
		{"a bearer token is no webhook credential", request{method: "POST", path: "/api/v1/payments/webhook", body: body, credential: bootstrapToken}, 401, "required"},
		{"malformed JSON, correctly signed", signed(`{"event_id":`, now), 400, "JSON"},
		{"no event id, correctly signed", signed(`{"payment_id":"pay_1"}`, now), 400, "event_id"},
		{"nothing to pay for, correctly signed", signed(`{"event_id":"ev-3"}`, now), 400, "payment_id"},
		{"an incomplete line item, correctly signed", signed(`{"event_id":"ev-4","line_items":[{"node_type":"full"}]}`, now), 400, "line_items[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.do(tt.req)
			if rec.Code != tt.wantStatus || !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Fatalf("status %d body %s, want %d with %q", rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
			}
		})
	}
	if events.count() != 2 {
		t.Fatalf("%d messages published, want one per accepted webhook", events.count())
	}
	first := events.published[0]
	if first.subject != engine.SubjectPaymentCompleted || first.msgID != "ev-1" {
		t.Errorf("published %s with id %q, want payment.completed with the event id", first.subject, first.msgID)
	}
	var e engine.PaymentCompletedEvent
	if err := json.Unmarshal(events.published[1].data, &e); err != nil || e.PaymentID != engine.PaymentIDFor("cs_123") {
		t.Errorf("published %+v (%v), want the external id resolved to its payment id", e, err)
	}
	if len(events.streams) != 1 || events.streams[0].Name != engine.PaymentsStreamName {
		t.Errorf("streams ensured %+v, want the payment stream once", events.streams)
	}
}

func TestPaymentWebhookBusDown(t *testing.T) {
	f, events := paymentsFixture(t)
	events.down = true
	rec := f.do(signed(`{"event_id":"ev-1","payment_id":"pay_1"}`, time.Now()))
	if rec.Code != 503 {
		t.Fatalf("status %d, want 503 so the payment service retries (body %s)", rec.Code, rec.Body)
	}
}

func TestPaymentWebhookNotConfigured(t *testing.T) {
	f := newFixture(t)
	rec := f.do(signed(`{"event_id":"ev-1","payment_id":"pay_1"}`, time.Now()))
	if rec.Code != 501 {
		t.Fatalf("status %d, want 501 without a webhook secret and a bus", rec.Code)
	}
}

func TestLinkPaymentScenarios(t *testing.T) {
	f, _ := paymentsFixture(t)
	a := newAccounts(f)
	ctx := context.Background()
	sub := func(owner *engine.User, status engine.SubscriptionStatus, nodeType string) string {
		t.Helper()
		s := &engine.Subscription{
			ID: engine.NewID("sub"), UserID: owner.ID, ChainProfileID: "ethereum-holesky", NodeType: nodeType,
			Duration: "1m", Status: status, ExpiresAt: time.Now().Add(time.Hour), CreatedAt: time.Now(),
		}
		if err := f.store.CreateSubscription(ctx, s); err != nil {
			t.Fatal(err)
		}
		return s.ID
	}
	alice1, alice2 := sub(a.alice, engine.SubscriptionPendingPayment, "full"), sub(a.alice, engine.SubscriptionPendingPayment, "archive")
	aliceActive := sub(a.alice, engine.SubscriptionActive, "validator")
	aliceOther := sub(a.alice, engine.SubscriptionPendingPayment, "light")
	bobs := sub(a.bob, engine.SubscriptionPendingPayment, "full")
	body := func(ext string, amount int, currency string, ids ...string) string {
		b, _ := json.Marshal(map[string]any{"external_id": ext, "amount_cents": amount, "currency": currency, "subscription_ids": ids})
		return string(b)
	}
	link := body("cs_alice", 4900, "eur", alice1, alice2)
	post := func(credential, body string) request {
		return request{method: "POST", path: "/api/v1/payments", credential: credential, body: body}
	}
	tests := []struct {
		name       string
		req        request
		wantStatus int
		wantBody   []string
	}{
		{"link pending subscriptions", post(a.aliceJWT, link), 201, []string{`"id":"` + engine.PaymentIDFor("cs_alice"), `"status":"pending"`, `"currency":"EUR"`, alice1, alice2}},
		{"the same request again is the same payment", post(a.aliceJWT, link), 200, []string{`"id":"` + engine.PaymentIDFor("cs_alice")}},
		{"the external id with other subscriptions is a conflict", post(a.aliceJWT, body("cs_alice", 4900, "EUR", aliceOther)), 409, []string{"external_id"}},
		{"a subscription linked to another payment is a conflict", post(a.aliceJWT, body("cs_again", 4900, "EUR", alice1)), 409, []string{"already linked"}},
		{"an active subscription is a conflict", post(a.aliceJWT, body("cs_act", 100, "EUR", aliceActive)), 409, []string{"not pending_payment"}},
		{"another tenant's subscription is not found", post(a.aliceJWT, body("cs_bob", 100, "EUR", aliceOther, bobs)), 404, []string{bobs}},
		{"an unknown subscription is not found", post(a.aliceJWT, body("cs_x", 100, "EUR", "sub_nope")), 404, nil},
		{"a read-only key lacks subscriptions:write", post(a.aliceReadKey, body("cs_r", 100, "EUR", aliceOther)), 403, []string{"subscriptions:write"}},
		{"subscriptions:read is not enough", post(a.bobKey, body("cs_b", 100, "EUR", bobs)), 403, []string{"subscriptions:write"}},
		{"the bootstrap administrator pays for nobody", post(bootstrapToken, body("cs_boot", 100, "EUR", aliceOther)), 403, nil},
		{"no credential", post("", link), 401, nil},
		{"malformed JSON", post(a.aliceJWT, `{"external_id":`), 400, []string{"JSON"}},
		{"an unknown field", post(a.aliceJWT, `{"external_id":"cs_u","amount":1}`), 400, []string{"unknown field"}},
		{"amount must be positive", post(a.aliceJWT, body("cs_0", 0, "EUR", aliceOther)), 400, []string{"amount_cents"}},
		{"currency must be ISO 4217", post(a.aliceJWT, body("cs_c", 100, "euro", aliceOther)), 400, []string{"currency"}},
		{"an external id is required", post(a.aliceJWT, body(" ", 100, "EUR", aliceOther)), 400, []string{"external_id"}},
		{"subscriptions are required", post(a.aliceJWT, body("cs_n", 100, "EUR")), 400, []string{"subscription_ids"}},
		{"subscriptions must be distinct", post(a.aliceJWT, body("cs_d", 100, "EUR", aliceOther, aliceOther)), 400, []string{"distinct"}},
		{"amount must be a number", post(a.aliceJWT, `{"external_id":"cs_s","amount_cents":"10","currency":"EUR","subscription_ids":["x"]}`), 400, []string{"amount_cents"}},
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
	for _, id := range []string{alice1, alice2} {
		s, err := f.store.GetSubscription(ctx, id)
		if err != nil || s.PaymentID != engine.PaymentIDFor("cs_alice") || s.Status != engine.SubscriptionPendingPayment {
			t.Errorf("subscription %s: %+v %v, want pending and linked", id, s, err)
		}
	}
	for _, id := range []string{aliceOther, bobs} {
		if s, _ := f.store.GetSubscription(ctx, id); s.PaymentID != "" {
			t.Errorf("subscription %s linked to %s by a failed request", id, s.PaymentID)
		}
	}
	if _, err := f.store.GetPayment(ctx, engine.PaymentIDFor("cs_bob")); !engine.IsCode(err, engine.ENotFound) {
		t.Errorf("a refused request left a payment behind: %v", fmt.Sprint(err))
	}
}
