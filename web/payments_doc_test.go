package web_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// signingExample is the worked example of the webhook route in the served
// OpenAPI document.
type signingExample struct {
	Secret       string            `json:"secret"`
	Timestamp    string            `json:"timestamp"`
	Body         string            `json:"body"`
	SignedString string            `json:"signed_string"`
	Headers      map[string]string `json:"headers"`
}

// documentedWebhook reads the webhook route's description and worked
// example from the served document.
func documentedWebhook(t *testing.T) (string, signingExample) {
	t.Helper()
	doc, _ := servedOpenAPI(t, newFixture(t))
	var op struct {
		Description string         `json:"description"`
		Example     signingExample `json:"x-signing-example"`
	}
	if err := json.Unmarshal(doc.Paths["/api/v1/payments/webhook"]["post"], &op); err != nil {
		t.Fatal(err)
	}
	if op.Example.Secret == "" || op.Example.Timestamp == "" || op.Example.Body == "" {
		t.Fatalf("the webhook route has no worked example: %+v", op.Example)
	}
	return op.Description, op.Example
}

// TestPaymentWebhookCanBeSignedFromTheDocumentation is what the developer
// of a payment integration does with only the OpenAPI document: follow
// the scheme it describes with a plain HMAC library, get the signature
// its worked example shows, and have the appliance accept the request.
func TestPaymentWebhookCanBeSignedFromTheDocumentation(t *testing.T) {
	description, ex := documentedWebhook(t)
	for _, v := range []string{ex.Secret, ex.Timestamp, ex.Body, ex.SignedString, ex.Headers["X-HoodCloud-Signature"]} {
		if !strings.Contains(description, v) {
			t.Errorf("the description's worked example lacks %q", v)
		}
	}
	for _, rule := range []string{`one full stop "."`, "HMAC-SHA256(key = secret, message = signed string)", `prefix "sha256="`, "Unix seconds", "5 minutes"} {
		if !strings.Contains(description, rule) {
			t.Errorf("the description does not state %q", rule)
		}
	}

	// The scheme, step by step: timestamp "." body, HMAC-SHA256, hex.
	signedString := ex.Timestamp + "." + ex.Body
	if signedString != ex.SignedString {
		t.Fatalf("signed string %q, the document shows %q", signedString, ex.SignedString)
	}
	mac := hmac.New(sha256.New, []byte(ex.Secret))
	mac.Write([]byte(signedString))
	signature := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if documented := ex.Headers["X-HoodCloud-Signature"]; signature != documented {
		t.Fatalf("computed %s, the document shows %s", signature, documented)
	}
	if ex.Headers["X-HoodCloud-Timestamp"] != ex.Timestamp {
		t.Fatalf("the timestamp header %q is not the example's timestamp %q", ex.Headers["X-HoodCloud-Timestamp"], ex.Timestamp)
	}

	// An appliance configured with the example's secret, whose clock reads
	// the example's time, accepts the request.
	sent, err := strconv.ParseInt(ex.Timestamp, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	f, events := paymentsFixtureWith(t, engine.PaymentWebhookConfig{
		Secret: []byte(ex.Secret), Now: func() time.Time { return time.Unix(sent, 0).Add(90 * time.Second) },
	})
	rec := f.do(request{method: "POST", path: "/api/v1/payments/webhook", body: ex.Body, headers: map[string]string{
		"X-HoodCloud-Timestamp": ex.Timestamp, "X-HoodCloud-Signature": signature,
	}})
	wantStatus(t, rec, 202, `"status":"accepted"`)
	if events.count() != 1 {
		t.Fatalf("%d events published, want the example's", events.count())
	}
}

// TestPaymentWebhookEventSchemaIsDocumented: the request body's schema
// names every field of payment.completed, and the example body is valid.
func TestPaymentWebhookEventSchemaIsDocumented(t *testing.T) {
	doc, _ := servedOpenAPI(t, newFixture(t))
	var schema struct {
		Required   []string                   `json:"required"`
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(doc.Components.Schemas["PaymentCompletedEvent"], &schema); err != nil {
		t.Fatal(err)
	}
	event := reflect.TypeFor[engine.PaymentCompletedEvent]()
	for i := range event.NumField() {
		field, _, _ := strings.Cut(event.Field(i).Tag.Get("json"), ",")
		if _, ok := schema.Properties[field]; !ok {
			t.Errorf("the schema PaymentCompletedEvent does not document %s", field)
		}
	}
	_, ex := documentedWebhook(t)
	if _, err := engine.DecodePaymentCompleted([]byte(ex.Body)); err != nil {
		t.Fatalf("the documented example body is refused: %v", err)
	}
}
