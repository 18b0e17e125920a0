package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/incidents"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"github.com/hoodcloud/hoodcloud/store/webhook"
)

var secret = []byte("incident-webhook-secret-of-at-least-32-bytes")

// receiver is an operator's endpoint: it verifies each signature, refuses
// what refuse says to, and processes each delivery id once.
type receiver struct {
	t      *testing.T
	mu     sync.Mutex
	seen   map[string]int // requests per delivery id, refused ones included
	done   []string       // delivery ids processed, in order
	bodies map[string]incidents.Payload
	// refuse answers instead of processing when it returns a status.
	refuse func(r *http.Request, delivery string, seen int) int
	srv    *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, seen: map[string]int{}, bodies: map[string]incidents.Payload{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	err := engine.VerifyWebhook(secret, r.Header.Get(engine.WebhookTimestampHeader), r.Header.Get(engine.WebhookSignatureHeader), body, time.Now())
	if err != nil {
		rc.t.Errorf("signature refused: %v", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	delivery := r.Header.Get(webhook.DeliveryHeader)
	var p incidents.Payload
	if err := json.Unmarshal(body, &p); err != nil || p.DeliveryID != delivery || r.Header.Get(webhook.EventHeader) != string(p.Event) {
		rc.t.Errorf("delivery %s: body %s, headers %v", delivery, body, r.Header)
	}
	rc.mu.Lock()
	rc.seen[delivery]++
	seen, refuse := rc.seen[delivery], rc.refuse
	rc.mu.Unlock()
	if refuse != nil {
		if status := refuse(r, delivery, seen); status != 0 {
			w.WriteHeader(status)
			return
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if _, dup := rc.bodies[delivery]; !dup {
		rc.done = append(rc.done, delivery)
		rc.bodies[delivery] = p
	}
}

func (rc *receiver) processed() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.done)
}

func (rc *receiver) setRefuse(f func(r *http.Request, delivery string, seen int) int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.refuse = f
}

func (rc *receiver) body(delivery string) incidents.Payload {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.bodies[delivery]
}

func (rc *receiver) requests(delivery string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.seen[delivery]
}

func client(t *testing.T, url string) *webhook.Client {
	t.Helper()
	c, err := webhook.New(webhook.Config{URL: url, Secret: func() []byte { return secret }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func openStore(t *testing.T, path string) *bolt.Store {
	t.Helper()
	s := bolt.New(path)
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func raise(t *testing.T, s engine.IncidentStore, node string, now time.Time) *engine.Incident {
	t.Helper()
	in, _, err := engine.RaiseIncident(context.Background(), s,
		engine.IncidentSpec{NodeID: node, DedupeKey: "policy:stuck", Severity: engine.SeverityCritical, Summary: "node " + node + " is stuck"}, now)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func TestSignedDeliveriesAreRetriedWithBackoffUntilTheReceiverTakesThem(t *testing.T) {
	rc := newReceiver(t)
	rc.setRefuse(func(_ *http.Request, _ string, seen int) int {
		if seen <= 2 {
			return http.StatusServiceUnavailable
		}
		return 0
	})
	s := openStore(t, filepath.Join(t.TempDir(), "hoodcloud.db"))
	defer s.Close()
	now := time.Now().UTC().Truncate(time.Second)
	at := now
	d := incidents.NewDispatcher(incidents.Config{Store: s, Now: func() time.Time { return at }, Backoff: 10 * time.Second,
		Channels: []incidents.Channel{{Name: "webhook", Notifier: client(t, rc.srv.URL+"/hooks/hoodcloud")}}})
	in := raise(t, s, "node_a", now)
	opened := incidents.DeliveryID(in.ID, engine.IncidentOpened)

	for _, step := range []struct {
		after        time.Duration
		wantRequests int
		wantError    string
	}{
		{0, 1, "incident webhook answered 503"},
		{5 * time.Second, 1, "incident webhook answered 503"}, // backing off
		{10 * time.Second, 2, "incident webhook answered 503"},
		{30 * time.Second, 3, ""},
		{time.Hour, 3, ""},
	} {
		at = now.Add(step.after)
		if err := d.Dispatch(context.Background()); err != nil {
			t.Fatal(err)
		}
		got, _ := s.GetIncident(context.Background(), in.ID)
		if rc.requests(opened) != step.wantRequests || got.Delivery("webhook").LastError != step.wantError {
			t.Fatalf("after %v: %d requests, last error %q; want %d, %q", step.after, rc.requests(opened),
				got.Delivery("webhook").LastError, step.wantRequests, step.wantError)
		}
	}
	if got := rc.processed(); !slices.Equal(got, []string{opened}) {
		t.Fatalf("processed %q, want the opening once", got)
	}
	p := rc.body(opened)
	if p.Event != engine.IncidentOpened || p.Incident.ID != in.ID || p.Incident.NodeID != "node_a" || p.Incident.Summary != "node node_a is stuck" ||
		p.Incident.Severity != "critical" || p.Incident.DedupeKey != "policy:stuck" || !p.Incident.OpenedAt.Equal(now) {
		t.Errorf("payload = %+v", p)
	}
}

// TestARestartNeitherLosesNorRepeatsADelivery stops the dispatcher after
// its second delivery was recorded, or during its third request, and
// starts another on the reopened store: the receiver processes every
// event once, and is sent a processed one again never.
func TestARestartNeitherLosesNorRepeatsADelivery(t *testing.T) {
	for _, interrupt := range []bool{false, true} {
		t.Run(fmt.Sprint("interrupt during a request: ", interrupt), func(t *testing.T) {
			rc := newReceiver(t)
			path := filepath.Join(t.TempDir(), "hoodcloud.db")
			s := openStore(t, path)
			now := time.Now().UTC()
			var want []string
			for k := range 5 {
				want = append(want, incidents.DeliveryID(raise(t, s, fmt.Sprint("node_", k), now).ID, engine.IncidentOpened))
			}
			ctx, stop := context.WithCancel(context.Background())
			delivered := 0
			cfg := incidents.Config{Store: s, Channels: []incidents.Channel{{Name: "webhook", Notifier: client(t, rc.srv.URL)}}}
			if interrupt {
				rc.setRefuse(func(r *http.Request, _ string, _ int) int {
					if len(rc.processed()) < 2 {
						return 0
					}
					stop()
					<-r.Context().Done() // the dispatcher gave up on this request
					return http.StatusServiceUnavailable
				})
			} else {
				cfg.Observe = func(_ string, _ engine.IncidentEvent, o incidents.Outcome) {
					if o == incidents.Delivered {
						if delivered++; delivered == 2 {
							stop()
						}
					}
				}
			}
			if err := incidents.NewDispatcher(cfg).Dispatch(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("first dispatcher: %v, want it stopped", err)
			}
			if got := len(rc.processed()); got != 2 {
				t.Fatalf("%d processed before the stop, want 2", got)
			}
			s.Close()

			rc.setRefuse(nil)
			s = openStore(t, path)
			defer s.Close()
			cfg.Store, cfg.Observe = s, nil
			if err := incidents.NewDispatcher(cfg).Dispatch(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := rc.processed()
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("processed %q, want every opening: %q", got, want)
			}
			for _, id := range want {
				sent := rc.requests(id)
				if sent != 1 && !(interrupt && sent == 2) {
					t.Errorf("%s was sent %d times", id, sent)
				}
			}
		})
	}
}

func TestErrorsNameNeitherTheURLNorTheSecret(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/hooks/T0KEN-in-the-path?sig=T0KEN"
	srv.Close() // nothing listens any more
	c := client(t, url)
	in := &engine.Incident{ID: "inc_1", NodeID: "node_a", OpenedAt: time.Now()}
	err := c.Notify(context.Background(), incidents.Notification{DeliveryID: "inc_1:opened", Event: engine.IncidentOpened, Incident: in})
	if err == nil || strings.Contains(err.Error(), "T0KEN") || strings.Contains(err.Error(), string(secret)) {
		t.Fatalf("error = %v, want one without the URL's token or the secret", err)
	}
	if _, err := webhook.New(webhook.Config{URL: "ftp://T0KEN@example.com", Secret: func() []byte { return secret }}); err == nil || strings.Contains(err.Error(), "T0KEN") {
		t.Fatalf("bad url: %v", err)
	}
}
