package alertmanager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/incidents"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/hoodcloud/hoodcloud/store/alertmanager"
	"github.com/hoodcloud/hoodcloud/store/bolt"
)

// RequireEnv, set to 1, fails the round trip instead of skipping it when
// no Alertmanager binary is installed.
const RequireEnv = "HOODCLOUD_TEST_REQUIRE_ALERTMANAGER"

func TestAnIncidentIsPostedAsAnAlert(t *testing.T) {
	var got []alertmanager.Alert
	var path, auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, auth = r.URL.Path, r.Header.Get("Authorization")
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()
	c, err := alertmanager.New(strings.Replace(srv.URL, "http://", "http://ops:pw@", 1)+"/am/", nil)
	if err != nil {
		t.Fatal(err)
	}
	opened := time.Date(2031, 5, 4, 10, 0, 0, 0, time.UTC)
	in := &engine.Incident{ID: "inc_1", NodeID: "node_a", DedupeKey: "policy:stuck", Severity: engine.SeverityCritical,
		Summary: "node is stuck", OpenedAt: opened, AcknowledgedBy: "user_ops"}
	n := incidents.Notification{DeliveryID: "inc_1:opened", Event: engine.IncidentOpened, Incident: in, ChainProfileID: "geth-dev"}
	if err := c.Notify(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if path != "/am/api/v2/alerts" || !strings.HasPrefix(auth, "Basic ") || len(got) != 1 {
		t.Fatalf("posted %d alerts to %s (auth %q)", len(got), path, auth)
	}
	want := map[string]string{"alertname": "HoodCloudIncident", "incident_id": "inc_1", "node_id": "node_a", "severity": "critical",
		"dedupe_key": "policy:stuck", "policy": "stuck", "chain_profile": "geth-dev"}
	if fmt.Sprint(got[0].Labels) != fmt.Sprint(want) || got[0].Annotations["summary"] != "node is stuck" ||
		got[0].Annotations["acknowledged_by"] != "user_ops" || !got[0].StartsAt.Equal(opened) || !got[0].EndsAt.IsZero() {
		t.Fatalf("open alert = %+v", got[0])
	}
	in.ResolvedAt = opened.Add(time.Hour)
	n.Event = engine.IncidentResolved
	if err := c.Notify(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if !got[0].EndsAt.Equal(in.ResolvedAt) {
		t.Fatalf("resolved alert ends at %v, want %v", got[0].EndsAt, in.ResolvedAt)
	}
}

func TestAnAlertmanagerThatRefusesIsAFailureWithoutTheCredentials(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "bad alert", http.StatusBadRequest)
	}))
	defer srv.Close()
	c, _ := alertmanager.New(strings.Replace(srv.URL, "http://", "http://ops:S3CRET@", 1), nil)
	n := incidents.Notification{Event: engine.IncidentOpened, Incident: &engine.Incident{ID: "inc_1", OpenedAt: time.Now()}}
	err := c.Notify(context.Background(), n)
	if engine.ErrorMessage(err) != "alertmanager answered 400: bad alert" {
		t.Fatalf("error = %v", err)
	}
	srv.Close()
	if err := c.Notify(context.Background(), n); err == nil || strings.Contains(err.Error(), "S3CRET") {
		t.Fatalf("error = %v, want one without the password", err)
	}
}

// TestTheAlertIsActiveWhileOpenAndResolvedAfter runs the dispatcher
// against a real Alertmanager and reads its alerts back.
func TestTheAlertIsActiveWhileOpenAndResolvedAfter(t *testing.T) {
	am := startAlertmanager(t)
	c, err := alertmanager.New(am, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := bolt.New(filepath.Join(t.TempDir(), "hoodcloud.db"))
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC().Truncate(time.Millisecond)
	clock := func() time.Time { return now }
	d := incidents.NewDispatcher(incidents.Config{Store: s, Now: clock, Channels: []incidents.Channel{{
		Name: "alertmanager", Notifier: c, Repost: time.Minute,
		Events: []engine.IncidentEvent{engine.IncidentOpened, engine.IncidentResolved},
	}}})
	ctx := context.Background()
	in, _, err := engine.RaiseIncident(ctx, s, engine.IncidentSpec{NodeID: "node_a", DedupeKey: "policy:stuck",
		Severity: engine.SeverityCritical, Summary: "node is stuck"}, now)
	if err != nil {
		t.Fatal(err)
	}
	dispatch := func() {
		t.Helper()
		if err := d.Dispatch(ctx); err != nil {
			t.Fatal(err)
		}
	}
	dispatch()
	var first amAlert
	testenv.WaitFor(t, "the incident's alert to be active", func() bool {
		a, ok := alertOf(t, am, in.ID)
		first = a
		return ok && a.Status.State == "active"
	})
	if first.Labels["node_id"] != "node_a" || first.Labels["severity"] != "critical" || first.Labels["policy"] != "stuck" ||
		first.Annotations["summary"] != "node is stuck" || !first.StartsAt.Equal(now) {
		t.Fatalf("alert = %+v", first)
	}

	now = now.Add(time.Minute) // a re-post keeps it fresh
	dispatch()
	testenv.WaitFor(t, "the re-post", func() bool {
		a, ok := alertOf(t, am, in.ID)
		return ok && a.UpdatedAt.After(first.UpdatedAt) && a.Status.State == "active"
	})

	now = time.Now().UTC()
	if _, err := engine.ResolveIncident(ctx, s, "node_a", "policy:stuck", now); err != nil {
		t.Fatal(err)
	}
	dispatch()
	testenv.WaitFor(t, "the alert to be resolved", func() bool {
		a, ok := alertOf(t, am, in.ID)
		return !ok || (!a.EndsAt.IsZero() && !a.EndsAt.After(time.Now()))
	})
	got, _ := s.GetIncident(ctx, in.ID)
	if dl := got.Delivery("alertmanager"); len(dl.Delivered) != 2 || !got.NotifyAt.IsZero() {
		t.Fatalf("delivery = %+v, due at %v; want both events delivered and nothing left", dl, got.NotifyAt)
	}
}

// amAlert is an alert as Alertmanager's GET /api/v2/alerts shows it.
type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	UpdatedAt   time.Time         `json:"updatedAt"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

// alertOf reads the alert of an incident; Alertmanager lists no
// resolved alert.
func alertOf(t *testing.T, am, incidentID string) (amAlert, bool) {
	t.Helper()
	resp, err := http.Get(am + "/api/v2/alerts?filter=" + `incident_id="` + incidentID + `"`)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var alerts []amAlert
	if err := json.NewDecoder(resp.Body).Decode(&alerts); err != nil {
		t.Fatal(err)
	}
	if len(alerts) == 0 {
		return amAlert{}, false
	}
	return alerts[0], true
}

// startAlertmanager runs Debian's prometheus-alertmanager (or an
// alertmanager on the PATH) on a free port, without clustering, and
// returns its URL once it is ready.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	bin := alertmanagerBinary()
	if bin == "" {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("no Alertmanager binary (apt-get install prometheus-alertmanager) but %s=1", RequireEnv)
		}
		t.Skipf("SKIPPED: no Alertmanager binary (apt-get install prometheus-alertmanager); set %s=1 to make this a failure", RequireEnv)
	}
	dir := t.TempDir()
	config := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(config, []byte("route:\n  receiver: nowhere\nreceivers:\n  - name: nowhere\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--config.file="+config, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	var logs testenv.LogBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("alertmanager logs:\n%s", logs.String())
		}
	})
	url := "http://" + addr
	testenv.WaitFor(t, "alertmanager to be ready", func() bool {
		resp, err := http.Get(url + "/-/ready")
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return url
}

func alertmanagerBinary() string {
	for _, name := range []string{"/usr/bin/prometheus-alertmanager", "prometheus-alertmanager", "alertmanager"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
