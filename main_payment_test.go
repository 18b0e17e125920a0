package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
)

// TestSignedPaymentActivatesAndStartsProvisioning follows a customer from
// sign-up to the hand-off to provisioning, through the real HTTP API, the
// embedded JetStream and the embedded Temporal.
func TestSignedPaymentActivatesAndStartsProvisioning(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.DevToken = "e2e-admin"
	m := MustOpenMain(t, cfg)
	api := apiClient{t: t, base: "http://" + m.HTTP.Addr() + "/api/v1"}

	api.token = "e2e-admin"
	api.do("POST", "/users", `{"email":"alice@example.com","password":"a long enough password"}`, 201, nil)
	var tokens struct {
		AccessToken string `json:"access_token"`
	}
	api.do("POST", "/auth/login", `{"email":"alice@example.com","password":"a long enough password"}`, 200, &tokens)
	api.token = tokens.AccessToken

	var sub struct{ ID, Status string }
	api.do("POST", "/subscriptions", `{"chain_profile_id":"ethereum-holesky","node_type":"full","duration":"1m"}`, 201, &sub)
	api.do("POST", "/subscriptions", `{"chain_profile_id":"ethereum-holesky","node_type":"full","duration":"1m"}`, 200, nil)
	api.do("POST", "/subscriptions/"+sub.ID+"/inputs", `{"inputs":[{"name":"fee_recipient","value":"0x52908400098527886E0F7030069857D2E4169EE7"}]}`, 200, nil)
	var pay struct{ ID string }
	api.do("POST", "/payments", `{"external_id":"inv-1","amount_cents":4900,"currency":"EUR","subscription_ids":["`+sub.ID+`"]}`, 201, &pay)

	body := []byte(`{"event_id":"evt-1","payment_id":"` + pay.ID + `"}`)
	for range 2 { // a provider retrying its webhook changes nothing
		api.webhook(body, m.Boot.WebhookSecret, 202)
	}
	api.webhook(body, []byte("not the secret"), 401)

	waitFor(t, 20*time.Second, "the subscription to be active and its node created", func() bool {
		s, err := m.Store.GetSubscription(t.Context(), sub.ID)
		if err != nil || s.Status != engine.SubscriptionActive {
			return false
		}
		_, err = m.Store.GetNodeBySubscription(t.Context(), sub.ID)
		return err == nil
	})
	// Marking it paid again by hand (staging) changes nothing.
	code, out, errOut := runAdmin(t, "", map[string]string{"HOODCLOUD_ADMIN_TOKEN": "e2e-admin"},
		"mark-paid", "--api-url", "http://"+m.HTTP.Addr(), pay.ID)
	if code != 0 || !strings.Contains(out, "marked paid") {
		t.Fatalf("admin mark-paid = %d %q %q", code, out, errOut)
	}
	code, _, errOut = runAdmin(t, "", map[string]string{"HOODCLOUD_ADMIN_TOKEN": "e2e-admin"},
		"mark-paid", "--api-url", "http://"+m.HTTP.Addr(), "pay_unknown")
	if code != 1 || !strings.Contains(errOut, "404") {
		t.Fatalf("mark-paid of an unknown payment = %d %q, want exit 1 with the 404", code, errOut)
	}
	var got struct {
		Status                   string
		ActivatedSubscriptionIDs []string `json:"activated_subscription_ids"`
	}
	api.do("GET", "/payments/"+pay.ID, "", 200, &got)
	if got.Status != string(engine.PaymentCompleted) || len(got.ActivatedSubscriptionIDs) != 1 || got.ActivatedSubscriptionIDs[0] != sub.ID {
		t.Fatalf("the customer reads the payment as %+v; want completed, having activated %s", got, sub.ID)
	}
}

type apiClient struct {
	t      testing.TB
	base   string
	token  string
	client *http.Client // nil: http.DefaultClient
}

func (a apiClient) do(method, path, body string, want int, out any) {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	a.check(req, want, out)
}

func (a apiClient) webhook(body, secret []byte, want int) {
	a.t.Helper()
	now := time.Now()
	req, _ := http.NewRequest("POST", a.base+"/payments/webhook", strings.NewReader(string(body)))
	req.Header.Set(engine.WebhookTimestampHeader, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(engine.WebhookSignatureHeader, engine.SignWebhook(secret, now, body))
	a.check(req, want, nil)
}

func (a apiClient) check(req *http.Request, want int, out any) {
	a.t.Helper()
	client := a.client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		a.t.Fatalf("%s %s = %d %s, want %d", req.Method, req.URL.Path, resp.StatusCode, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			a.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
		}
	}
}

// waitFor polls ok until it holds. limit is how long it takes on a quiet
// machine; the wait gives up only after testenv.Patience at least, as a
// loaded one can be many times slower.
func waitFor(t testing.TB, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	limit = max(limit, testenv.Patience)
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// requireLoopbackRange: sign-up is limited per client IP, so each customer
// signs up from an address of its own in 127.0.0.0/8, all loopback on Linux.
func requireLoopbackRange(t testing.TB) {
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("needs 127.0.0.0/8 on loopback: %v", err)
	}
	l.Close()
}

// loopbackClient connects from 127.0.0.x (x from i; i 0 is 127.0.0.1),
// so that per-IP limits count each client apart.
func loopbackClient(i int) *http.Client {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, byte(i/250), byte(1+i%250))}
	dialer := &net.Dialer{LocalAddr: local, Timeout: 10 * time.Second}
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 4},
	}
}
