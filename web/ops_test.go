package web_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/web"
	"github.com/prometheus/client_golang/prometheus"
)

func newServer(status engine.HealthStatus) *web.Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "hoodcloud_test_gauge"}))
	return web.New(web.Config{
		Version:  "v1.2.3",
		Gatherer: reg,
		Health: func(context.Context) engine.HealthReport {
			r := engine.HealthReport{Status: status, Components: []engine.ComponentHealth{
				{Name: "store", Status: engine.Healthy, Latency: 1500 * time.Microsecond},
			}}
			if status != engine.Healthy {
				r.Components = append(r.Components, engine.ComponentHealth{Name: "cache", Status: engine.Unhealthy, ErrorCode: engine.EUnavailable})
			}
			return r
		},
	})
}

func get(t *testing.T, s *web.Server, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestOperationalEndpoints(t *testing.T) {
	tests := []struct {
		name       string
		status     engine.HealthStatus
		method     string
		path       string
		wantStatus int
		wantBody   []string
	}{
		{"health is the top-level status only", engine.Healthy, "GET", "/health", 200, []string{`{"status":"healthy"}`}},
		{"health of an unhealthy appliance is 503", engine.Unhealthy, "GET", "/health", 503, []string{`"unhealthy"`}},
		{"readyz lists components with latency", engine.Healthy, "GET", "/readyz", 200, []string{`"version":"v1.2.3"`, `"name":"store"`, `"latency_ms":1.5`, `"uptime_seconds"`}},
		{"readyz of a degraded appliance stays 200 with the error code", engine.Degraded, "GET", "/readyz", 200, []string{`"status":"degraded"`, `"error_code":"unavailable"`}},
		{"readyz of an unhealthy appliance is 503", engine.Unhealthy, "GET", "/readyz", 503, []string{`"status":"unhealthy"`}},
		{"livez ignores dependencies", engine.Unhealthy, "GET", "/livez", 200, []string{`"alive"`}},
		{"metrics come from the registry passed in", engine.Healthy, "GET", "/metrics", 200, []string{"hoodcloud_test_gauge 0"}},
		{"unknown path is a JSON 404", engine.Healthy, "GET", "/nope", 404, []string{`"code":"not_found"`}},
		{"wrong method is a JSON 405", engine.Healthy, "POST", "/health", 405, []string{`"code":"method_not_allowed"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(t, newServer(tt.status), tt.method, tt.path)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			for _, w := range tt.wantBody {
				if !strings.Contains(rec.Body.String(), w) {
					t.Errorf("body %s lacks %s", rec.Body, w)
				}
			}
		})
	}
}

func TestReadyzShape(t *testing.T) {
	rec := get(t, newServer(engine.Degraded), "GET", "/readyz")
	var body struct {
		Status     string
		Components []struct {
			Name, Status string
			ErrorCode    string `json:"error_code"`
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Components) != 2 || body.Components[1].ErrorCode != "unavailable" || body.Components[0].ErrorCode != "" {
		t.Fatalf("components = %+v, want an error code only on the failing one", body.Components)
	}
	if rec.Header().Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("content type = %q", rec.Header().Get("Content-Type"))
	}
}
