package web_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"github.com/hoodcloud/hoodcloud/store/redis"
	"github.com/hoodcloud/hoodcloud/web"
)

// newDeadLetters is the dead letter use-cases of a payment consumer over
// st that gives an event up on its first failed delivery.
func newDeadLetters(tb testing.TB, st engine.Store, cache engine.Cache, wf engine.Workflows, cat engine.Catalog) (*engine.PaymentConsumer, *engine.PaymentDeadLetters) {
	tb.Helper()
	c, err := engine.NewPaymentConsumer(engine.PaymentConsumerConfig{Store: st, Cache: cache, Workflows: wf, Catalog: cat, MaxDeliver: 1})
	if err != nil {
		tb.Fatal(err)
	}
	return c, c.DeadLetters()
}

// outageWorkflows fails StartProvision while down.
type outageWorkflows struct {
	fakeWorkflows
	down atomic.Bool
}

func (w *outageWorkflows) StartProvision(ctx context.Context, id string) error {
	if w.down.Load() {
		return engine.Errorf(engine.EUnavailable, "temporal is down")
	}
	return w.fakeWorkflows.StartProvision(ctx, id)
}

type deadLetterOut struct {
	ID            string    `json:"id"`
	Status        string    `json:"status"`
	EventID       string    `json:"event_id"`
	PaymentID     string    `json:"payment_id"`
	Payload       *string   `json:"payload"`
	PayloadBase64 string    `json:"payload_base64"`
	Error         string    `json:"error"`
	Deliveries    int       `json:"deliveries"`
	RedrivenBy    string    `json:"redriven_by"`
	RedrivenAt    time.Time `json:"redriven_at"`
	IncidentKey   string    `json:"incident_dedupe_key"`
}

// deadLetterFixture is the API over a consumer whose workflow engine is
// down: alice's payment is dead-lettered, and so is a malformed event.
type deadLetterFixture struct {
	*fixture
	*accounts
	workflows          *outageWorkflows
	payment, malformed string // ids
	letter             string // of the payment
}

func newDeadLetterFixture(t *testing.T) *deadLetterFixture {
	t.Helper()
	st := bolt.New(filepath.Join(t.TempDir(), "hoodcloud.db"))
	mustOpen(t, st.Open(context.Background()), st.Close)
	cache := redis.NewEmbedded(redis.Options{})
	mustOpen(t, cache.Open(context.Background()), cache.Close)
	cat := holeskyPrices()
	cat.ExpiryFn = func(d string, from time.Time) (time.Time, error) { return profile.Duration(d).Expiry(from) }
	wf := &outageWorkflows{}
	wf.down.Store(true)
	consumer, letters := newDeadLetters(t, st, cache, wf, cat)
	f := newFixtureOn(t, st, cache, func(c *web.Config) {
		c.Store, c.Workflows = st, wf
		c.Payments = newPayments(t, st, nil, cat)
		c.DeadLetters = letters
	})
	df := &deadLetterFixture{fixture: f, accounts: newAccounts(f), workflows: wf}
	df.payment = df.linkedPayment()
	for _, m := range []*engine.Message{
		{Subject: engine.SubjectPaymentCompleted, ID: "wh-1", Data: []byte(`{"event_id":"wh-1","payment_id":"` + df.payment + `"}`), Deliveries: 1},
		{Subject: engine.SubjectPaymentCompleted, Data: []byte("\xff\xfe not a payment"), Deliveries: 1},
	} {
		if a := consumer.Handle(context.Background(), m); a != engine.AckDrop {
			t.Fatalf("Handle = %v, want the event dead-lettered", a)
		}
	}
	for _, l := range df.list("") {
		if l.PaymentID == df.payment {
			df.letter = l.ID
		} else {
			df.malformed = l.ID
		}
	}
	return df
}

// linkedPayment is alice's pending subscription linked to a payment.
func (f *deadLetterFixture) linkedPayment() string {
	f.tb.Helper()
	s := &engine.Subscription{ID: engine.NewID("sub"), UserID: f.alice.ID, ChainProfileID: "ethereum-holesky", NodeType: "full",
		Duration: "1m", Status: engine.SubscriptionPendingPayment, CreatedAt: time.Now()}
	if err := f.store.CreateSubscription(context.Background(), s); err != nil {
		f.tb.Fatal(err)
	}
	var pay paymentOut
	f.decode(f.do(request{method: "POST", path: "/api/v1/payments", credential: f.aliceJWT,
		body: `{"external_id":"cs_dead","amount_cents":4900,"currency":"EUR","subscription_ids":["` + s.ID + `"]}`}), 201, &pay)
	return pay.ID
}

func (f *deadLetterFixture) list(query string) []deadLetterOut {
	f.tb.Helper()
	var page struct {
		DeadLetters []deadLetterOut `json:"dead_letters"`
	}
	f.decode(f.do(request{method: "GET", path: "/api/v1/admin/payments/dead-letters" + query, credential: f.rootJWT}), 200, &page)
	return page.DeadLetters
}

func TestDeadLettersAreForAdministratorsOnly(t *testing.T) {
	f := newDeadLetterFixture(t)
	_, everyCustomerScope := f.apiKey(f.aliceJWT, engine.ScopeNodesRead, engine.ScopeNodesWrite, engine.ScopeSubscriptionsRead, engine.ScopeSubscriptionsWrite)
	list, one := "/api/v1/admin/payments/dead-letters", "/api/v1/admin/payments/dead-letters/"+f.letter
	tests := []struct {
		name string
		req  request
		code int
		has  string
	}{
		{"no credential", request{method: "GET", path: list}, 401, "unauthorized"},
		{"a customer lists none", request{method: "GET", path: list, credential: f.aliceJWT}, 403, "admin scope"},
		{"a customer reads none, not even of her payment", request{method: "GET", path: one, credential: f.aliceJWT}, 403, "admin scope"},
		{"a customer redrives none", request{method: "POST", path: one + "/redrive", credential: f.aliceJWT}, 403, "admin scope"},
		{"nor does a key with every customer scope", request{method: "GET", path: list, credential: everyCustomerScope}, 403, "admin scope"},
		{"an administrator lists them", request{method: "GET", path: list, credential: f.rootJWT}, 200, f.malformed},
		{"so does the bootstrap administrator", request{method: "GET", path: list, credential: bootstrapToken}, 200, f.letter},
		{"an administrator reads one", request{method: "GET", path: one, credential: f.rootJWT}, 200, f.payment},
		{"an unknown one is not found", request{method: "GET", path: list + "/pdl_nope", credential: f.rootJWT}, 404, "not_found"},
		{"an unknown one is not redriven", request{method: "POST", path: list + "/pdl_nope/redrive", credential: f.rootJWT}, 404, "not_found"},
		{"an unknown status is refused", request{method: "GET", path: list + "?status=buried", credential: f.rootJWT}, 400, "status"},
		{"a bad limit is refused", request{method: "GET", path: list + "?limit=0", credential: f.rootJWT}, 400, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.do(tt.req)
			if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.has) {
				t.Fatalf("%d %s, want %d with %q", rec.Code, rec.Body, tt.code, tt.has)
			}
		})
	}
}

func TestDeadLettersShowWhatWasReceivedAndWhy(t *testing.T) {
	f := newDeadLetterFixture(t)
	all := f.list("?status=dead")
	if len(all) != 2 {
		t.Fatalf("%d dead letters listed, want 2", len(all))
	}
	var l deadLetterOut
	f.decode(f.do(request{method: "GET", path: "/api/v1/admin/payments/dead-letters/" + f.letter, credential: f.rootJWT}), 200, &l)
	if l.Status != "dead" || l.EventID != "wh-1" || l.Payload == nil || !strings.Contains(*l.Payload, `"event_id":"wh-1"`) ||
		!strings.Contains(l.Error, "temporal is down") || l.Deliveries != 1 || l.IncidentKey != engine.PaymentDeadLetterIncidentKey(f.letter) {
		t.Fatalf("dead letter %+v, want the payload as received, the error and its incident", l)
	}
	var bad deadLetterOut
	f.decode(f.do(request{method: "GET", path: "/api/v1/admin/payments/dead-letters/" + f.malformed, credential: f.rootJWT}), 200, &bad)
	if bad.Payload != nil || bad.PayloadBase64 != "//4gbm90IGEgcGF5bWVudA==" || !strings.Contains(bad.Error, "not valid JSON") {
		t.Fatalf("malformed dead letter %+v, want its bytes in base64 and why", bad)
	}
	if len(f.list("?limit=1")) != 1 || len(f.list("?status=redriven")) != 0 {
		t.Fatal("limit and status do not select")
	}
}

func TestRedriveOverTheAPI(t *testing.T) {
	f := newDeadLetterFixture(t)
	redrive := request{method: "POST", path: "/api/v1/admin/payments/dead-letters/" + f.letter + "/redrive", credential: f.rootJWT}
	var conflict struct {
		Error      struct{ Code, Message string } `json:"error"`
		DeadLetter deadLetterOut                  `json:"dead_letter"`
	}
	f.decode(f.do(redrive), 409, &conflict)
	if conflict.Error.Code != "conflict" || !strings.Contains(conflict.Error.Message, "still fails") ||
		conflict.DeadLetter.Status != "dead" || conflict.DeadLetter.Deliveries != 2 {
		t.Fatalf("redrive while the cause lasts = %+v, want 409 with the letter still dead", conflict)
	}

	f.workflows.down.Store(false)
	var l deadLetterOut
	f.decode(f.do(redrive), 200, &l)
	if l.Status != "redriven" || l.RedrivenBy != f.root.ID || l.RedrivenAt.IsZero() {
		t.Fatalf("redriven letter %+v, want redriven by %s", l, f.root.ID)
	}
	var pay paymentOut
	f.decode(f.do(request{method: "GET", path: "/api/v1/payments/" + f.payment, credential: f.aliceJWT}), 200, &pay)
	if pay.Status != "completed" || len(pay.ActivatedSubscriptionIDs) != 1 {
		t.Fatalf("payment after the redrive %+v, want completed", pay)
	}

	rec := f.do(redrive)
	conflict.DeadLetter = deadLetterOut{}
	if err := json.Unmarshal(rec.Body.Bytes(), &conflict); err != nil || rec.Code != 409 ||
		conflict.DeadLetter.Status != "redriven" || !strings.Contains(conflict.Error.Message, "not dead") {
		t.Fatalf("second redrive = %d %s, want 409 with the letter redriven", rec.Code, rec.Body)
	}
	if n := len(f.workflows.provisions()); n != 1 {
		t.Fatalf("provisioning started %d times, want once", n)
	}
}
