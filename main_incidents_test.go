package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/incidents"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/hoodcloud/hoodcloud/store/webhook"
)

// TestIncidentsAreToldToTheWebhookAndTheBus runs the appliance with an
// incident webhook: an incident raised, acknowledged over the API and
// resolved reaches the webhook signed, in order, and the EVENTS stream.
func TestIncidentsAreToldToTheWebhookAndTheBus(t *testing.T) {
	secret := "incident-webhook-secret-0123456789abcdef"
	secretFile := filepath.Join(t.TempDir(), "incident-webhook.secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hook := &signedReceiver{t: t, secret: []byte(secret)}
	srv := httptest.NewServer(hook)
	defer srv.Close()

	cfg := testConfig(t, t.TempDir())
	cfg.DevToken = "test-dev-token"
	cfg.Incidents.WebhookURL = srv.URL + "/hooks/hoodcloud"
	cfg.Incidents.WebhookSecretFile = secretFile
	cfg.Incidents.DispatchInterval = 50 * time.Millisecond
	m := MustOpenMain(t, cfg)
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error)
	go func() { ran <- m.Run(ctx) }()
	t.Cleanup(func() { stop(); <-ran })

	in, _, err := engine.RaiseIncident(ctx, m.Store, engine.IncidentSpec{NodeID: "node_e2e", DedupeKey: "policy:stuck",
		Severity: engine.SeverityCritical, Summary: "node is stuck"}, time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	hook.waitFor(t, incidents.DeliveryID(in.ID, engine.IncidentOpened))
	base := "http://" + m.HTTP.Addr() + "/api/v1/incidents/" + in.ID
	if code, body := call(t, http.DefaultClient, "POST", base+"/acknowledge", "test-dev-token"); code != 200 || !strings.Contains(body, `"acknowledged_by":"bootstrap"`) {
		t.Fatalf("acknowledge = %d %s", code, body)
	}
	hook.waitFor(t, incidents.DeliveryID(in.ID, engine.IncidentAcknowledged))
	if _, err := engine.ResolveIncident(ctx, m.Store, "node_e2e", "policy:stuck", time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	hook.waitFor(t, incidents.DeliveryID(in.ID, engine.IncidentResolved))
	if got := hook.deliveries(); len(got) != 3 {
		t.Fatalf("webhook got %q, want the three events once each", got)
	}

	want := []string{"incident_opened", "incident_acknowledged", "incident_resolved"}
	var mu sync.Mutex
	var subjects []string
	stopConsume, err := m.Events.Consume(ctx, engine.ConsumerSpec{Stream: incidents.EventStreamName, Durable: "e2e",
		FilterSubject: "events.node.node_e2e.>"}, func(_ context.Context, msg *engine.Message) engine.Ack {
		mu.Lock()
		defer mu.Unlock()
		subjects = append(subjects, msg.Subject[strings.LastIndex(msg.Subject, ".")+1:])
		return engine.AckDone
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stopConsume()
	testenv.WaitFor(t, "the incident's events on the EVENTS stream", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Equal(subjects, want)
	})
	testenv.WaitFor(t, "the incident to be told everywhere", func() bool {
		got, err := m.Store.GetIncident(ctx, in.ID)
		return err == nil && got.NotifyAt.IsZero()
	})
	_, metrics := call(t, http.DefaultClient, "GET", "http://"+m.HTTP.Addr()+"/metrics", "")
	if line := `hoodcloud_incident_notifications_total{event="resolved",notifier="webhook",outcome="delivered"} 1`; !strings.Contains(metrics, line) {
		t.Errorf("/metrics lacks %s", line)
	}
}

// signedReceiver verifies each delivery's signature and keeps the
// delivery ids, in order of arrival.
type signedReceiver struct {
	t      *testing.T
	secret []byte
	mu     sync.Mutex
	got    []string
}

func (r *signedReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := engine.VerifyWebhook(r.secret, req.Header.Get(engine.WebhookTimestampHeader), req.Header.Get(engine.WebhookSignatureHeader), body, time.Now()); err != nil {
		r.t.Errorf("webhook signature: %v", err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var p incidents.Payload
	if err := json.Unmarshal(body, &p); err != nil || p.DeliveryID != req.Header.Get(webhook.DeliveryHeader) {
		r.t.Errorf("webhook body %s: %v", body, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, p.DeliveryID)
}

func (r *signedReceiver) deliveries() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *signedReceiver) waitFor(t *testing.T, delivery string) {
	t.Helper()
	testenv.WaitFor(t, "webhook delivery "+delivery, func() bool { return slices.Contains(r.deliveries(), delivery) })
}

func TestIncidentSettingsAreCheckedWithoutEchoingURLs(t *testing.T) {
	shared := filepath.Join(t.TempDir(), "shared.secret")
	if err := os.WriteFile(shared, []byte("incident-webhook-secret-0123456789abcdef\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hook := "https://hooks.example.com/T0KEN"
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"alertmanager url not http", []string{"--alertmanager-url", "ftp://am.example.com"}, "alertmanager-url: want an http:// or https:// URL"},
		{"webhook url without a secret", []string{"--incident-webhook-url", hook}, "incident-webhook-secret-file: required with incident-webhook-url"},
		{"webhook secret without a url", []string{"--incident-webhook-secret-file", shared}, "incident-webhook-url: required with incident-webhook-secret-file"},
		{"webhook secret readable by others", []string{"--incident-webhook-url", hook, "--incident-webhook-secret-file", shared}, "incident-webhook-secret-file: "},
		{"no attempt", []string{"--incident-max-attempts", "0"}, "incident-max-attempts must be >= 1"},
		{"max backoff below the backoff", []string{"--incident-retry-backoff", "1m", "--incident-retry-max-backoff", "10s"}, "incident-retry-max-backoff"},
		{"negative stream size", []string{"--events-max-bytes", "-1"}, "events-max-bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(context.Background(), append([]string{"serve"}, tt.args...), func(string) string { return "" }, strings.NewReader(""), &bytes.Buffer{}, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tt.want) || strings.Contains(stderr.String(), "T0KEN") {
				t.Fatalf("exit %d, stderr %q; want 2 mentioning %q and no URL", code, stderr.String(), tt.want)
			}
		})
	}
	private := filepath.Join(t.TempDir(), "private.secret")
	if err := os.WriteFile(private, []byte("incident-webhook-secret-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	run(context.Background(), []string{"config", "print", "--incident-webhook-url", hook, "--incident-webhook-secret-file", private},
		func(string) string { return "" }, strings.NewReader(""), &stdout, &bytes.Buffer{})
	if strings.Contains(stdout.String(), "T0KEN") || !strings.Contains(stdout.String(), `incident_webhook_url: "<redacted>"`) {
		t.Fatalf("config print shows the webhook URL:\n%s", stdout.String())
	}
}
