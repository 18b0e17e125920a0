package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/workflows"
	"go.temporal.io/api/workflowservice/v1"
)

// TestRedrivenPaymentActivatesExactlyOnce: a payment notification that
// arrives before its payment is linked fails every delivery, is
// dead-lettered with a critical incident, and activates exactly once when
// an operator redrives it after the link, however often redriven.
func TestRedrivenPaymentActivatesExactlyOnce(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.DevToken = "e2e-admin"
	cfg.PaymentMaxDeliver = 2
	m := MustOpenMain(t, cfg)
	base := "http://" + m.HTTP.Addr()
	admin := apiClient{t: t, base: base + "/api/v1", token: "e2e-admin"}
	alice := admin
	admin.do("POST", "/users", `{"email":"alice@example.com","password":"a long enough password"}`, 201, nil)
	var tokens struct {
		AccessToken string `json:"access_token"`
	}
	alice.do("POST", "/auth/login", `{"email":"alice@example.com","password":"a long enough password"}`, 200, &tokens)
	alice.token = tokens.AccessToken
	var sub struct{ ID string }
	alice.do("POST", "/subscriptions", `{"chain_profile_id":"ethereum-holesky","node_type":"full","duration":"1m"}`, 201, &sub)
	alice.do("POST", "/subscriptions/"+sub.ID+"/inputs", `{"inputs":[{"name":"fee_recipient","value":"0x52908400098527886E0F7030069857D2E4169EE7"}]}`, 200, nil)

	// The provider's notification comes before the payment is linked.
	admin.webhook([]byte(`{"event_id":"evt-early","external_id":"inv-early"}`), m.Boot.WebhookSecret, 202)
	letter := waitForDeadLetter(t, admin, "evt-early")
	if letter.Deliveries != 2 || !strings.Contains(letter.Error, "unknown") || letter.PaymentID != engine.PaymentIDFor("inv-early") {
		t.Fatalf("dead letter %+v, want the early event after 2 deliveries, saying the payment is unknown", letter)
	}
	incident, err := m.Store.FindOpenIncident(t.Context(), "", engine.PaymentDeadLetterIncidentKey(letter.ID))
	if err != nil || incident.Severity != engine.SeverityCritical {
		t.Fatalf("incident of the dead letter = %+v, %v; want a critical one open", incident, err)
	}
	if got := metric(t, base, "hoodcloud_payment_dead_letters_total"); got != "1" {
		t.Errorf("hoodcloud_payment_dead_letters_total = %q, want 1", got)
	}
	requireStillPending(t, m, sub.ID)
	code, out, errOut := runAdmin(t, "", map[string]string{"HOODCLOUD_ADMIN_TOKEN": "e2e-admin"},
		"payments", "dead-letters", "--api-url", base, "--status", "dead")
	if code != 0 || !strings.Contains(out, letter.ID+"  dead  2 deliveries") || !strings.Contains(out, `"event_id":"evt-early"`) {
		t.Fatalf("admin payments dead-letters = %d %q %q, want the letter with its payload", code, out, errOut)
	}

	// The cause is fixed: the payment is linked. Two operators redrive at
	// once, then one again by the CLI.
	var pay struct{ ID string }
	alice.do("POST", "/payments", `{"external_id":"inv-early","amount_cents":4900,"currency":"EUR","subscription_ids":["`+sub.ID+`"]}`, 201, &pay)
	codes := redriveConcurrently(t, admin, letter.ID, 2)
	if codes[200] != 1 || codes[409] != 1 {
		t.Fatalf("concurrent redrives answered %v, want one 200 and one 409", codes)
	}
	code, _, errOut = runAdmin(t, "", map[string]string{"HOODCLOUD_ADMIN_TOKEN": "e2e-admin"},
		"payments", "redrive", "--api-url", base, letter.ID)
	if code != 1 || !strings.Contains(errOut, "409") || !strings.Contains(errOut, "redriven, not dead") {
		t.Fatalf("redrive of a redriven letter = %d %q, want exit 1 with the 409", code, errOut)
	}

	waitFor(t, 20*time.Second, "the node of the redriven payment", func() bool {
		_, err := m.Store.GetNodeBySubscription(t.Context(), sub.ID)
		return err == nil
	})
	requireActivatedOnce(t, m, alice, sub.ID, pay.ID)
	if _, err := m.Store.FindOpenIncident(t.Context(), "", engine.PaymentDeadLetterIncidentKey(letter.ID)); !engine.IsCode(err, engine.ENotFound) {
		t.Fatalf("the incident is still open after the redrive (%v)", err)
	}
	code, out, errOut = runAdmin(t, "", map[string]string{"HOODCLOUD_ADMIN_TOKEN": "e2e-admin"},
		"payments", "dead-letters", "--api-url", base, "--output", "json")
	var listed struct {
		DeadLetters []deadLetterOutput `json:"dead_letters"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &listed) != nil || len(listed.DeadLetters) != 1 ||
		listed.DeadLetters[0].Status != "redriven" || listed.DeadLetters[0].RedrivenBy != engine.BootstrapPrincipalID {
		t.Fatalf("admin payments dead-letters = %d %q %q, want the letter redriven by the admin token", code, out, errOut)
	}
}

// waitForDeadLetter polls the API until the event is dead-lettered.
func waitForDeadLetter(t *testing.T, admin apiClient, eventID string) deadLetterOutput {
	t.Helper()
	var found deadLetterOutput
	waitFor(t, 10*time.Second, "the event to be dead-lettered", func() bool {
		var page struct {
			DeadLetters []deadLetterOutput `json:"dead_letters"`
		}
		admin.do("GET", "/admin/payments/dead-letters?status=dead", "", 200, &page)
		for _, l := range page.DeadLetters {
			if l.EventID == eventID {
				found = l
				return true
			}
		}
		return false
	})
	return found
}

// requireStillPending: nothing was activated while the letter is dead.
func requireStillPending(t *testing.T, m *Main, subID string) {
	t.Helper()
	s, err := m.Store.GetSubscription(t.Context(), subID)
	if err != nil || s.Status != engine.SubscriptionPendingPayment {
		t.Fatalf("subscription = %+v, %v; want it still pending_payment", s, err)
	}
}

// redriveConcurrently posts n redrives at once and counts their statuses.
func redriveConcurrently(t *testing.T, admin apiClient, id string, n int) map[int]int {
	t.Helper()
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", admin.base+"/admin/payments/dead-letters/"+id+"/redrive", nil)
			req.Header.Set("Authorization", "Bearer "+admin.token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return codes
}

// requireActivatedOnce checks the subscription was activated once, has
// one node and one provisioning workflow, and the payment completed.
func requireActivatedOnce(t *testing.T, m *Main, alice apiClient, subID, payID string) {
	t.Helper()
	s, err := m.Store.GetSubscription(t.Context(), subID)
	if err != nil || s.Status != engine.SubscriptionActive || s.Version != 3 { // created, linked, activated
		t.Fatalf("subscription = %+v, %v; want active at version 3 (activated once)", s, err)
	}
	var nodes struct {
		Nodes []struct {
			SubscriptionID string `json:"subscription_id"`
		} `json:"nodes"`
	}
	alice.do("GET", "/nodes", "", 200, &nodes)
	if len(nodes.Nodes) != 1 || nodes.Nodes[0].SubscriptionID != subID {
		t.Fatalf("alice has nodes %+v, want one, of %s", nodes.Nodes, subID)
	}
	var got struct {
		Status                   string
		ActivatedSubscriptionIDs []string `json:"activated_subscription_ids"`
	}
	alice.do("GET", "/payments/"+payID, "", 200, &got)
	if got.Status != string(engine.PaymentCompleted) || fmt.Sprint(got.ActivatedSubscriptionIDs) != "["+subID+"]" {
		t.Fatalf("payment %+v, want completed, having activated %s", got, subID)
	}
	query := fmt.Sprintf("WorkflowId = '%s'", workflows.ProvisionID(subID))
	waitFor(t, 10*time.Second, "the provisioning workflow to be listed", func() bool {
		n, err := m.Temporal.SDK().CountWorkflow(t.Context(), countRequest(m.Config.TemporalNamespace, query))
		if err != nil {
			t.Fatalf("count workflows: %v", err)
		}
		if n.Count > 1 {
			t.Fatalf("%d provisioning workflows of %s, want 1", n.Count, subID)
		}
		return n.Count == 1
	})
}

func countRequest(namespace, query string) *workflowservice.CountWorkflowExecutionsRequest {
	return &workflowservice.CountWorkflowExecutionsRequest{Namespace: namespace, Query: query}
}

// metric reads the value of an unlabelled metric from /metrics.
func metric(t *testing.T, base, name string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(body)) {
		if value, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			return value
		}
	}
	return ""
}

func TestAdminPaymentsBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", []string{"payments"}, "usage: hoodcloud admin payments"},
		{"unknown command", []string{"payments", "refund"}, `admin payments: unknown command "refund"`},
		{"redrive nothing", []string{"payments", "redrive"}, "want exactly one dead letter ID"},
		{"redrive two", []string{"payments", "redrive", "pdl_1", "pdl_2"}, "want exactly one dead letter ID"},
		{"list with an argument", []string{"payments", "dead-letters", "pdl_1"}, "takes flags only"},
		{"an unknown output", []string{"payments", "dead-letters", "--output", "yaml"}, "output: want one of text, json"},
		{"list without token", []string{"payments", "dead-letters"}, "set HOODCLOUD_ADMIN_TOKEN"},
		{"redrive without token", []string{"payments", "redrive", "--output", "json", "pdl_1"}, "set HOODCLOUD_ADMIN_TOKEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runAdmin(t, "", nil, tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 mentioning %q", code, errOut, tt.want)
			}
		})
	}
}
