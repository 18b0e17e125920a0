// Package alertmanager tells a Prometheus Alertmanager of incidents. Each
// incident is an alert, posted to its v2 API while the incident is open
// (again and again: Alertmanager resolves an alert nobody re-posts within
// its resolve_timeout) and once more with its end when it is resolved.
// Alertmanager knows an alert by its labels, so a repeated post is
// harmless.
package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/incidents"
	"github.com/hoodcloud/hoodcloud/store/internal/post"
)

// AlertName is the alertname label of every incident.
const AlertName = "HoodCloudIncident"

// Labels of an incident's alert besides alertname.
const (
	LabelIncident = "incident_id"
	LabelNode     = "node_id"
	LabelSeverity = "severity"
	LabelDedupe   = "dedupe_key"
	LabelPolicy   = "policy"        // for dedupe keys policy:<name>
	LabelChain    = "chain_profile" // when the node's profile is known
)

// Client posts alerts to one Alertmanager. Safe for concurrent use.
type Client struct {
	endpoint string // {url}/api/v2/alerts; may hold credentials: never in errors
	http     *http.Client
}

var _ incidents.Notifier = (*Client)(nil)

// requestTimeout bounds one post.
const requestTimeout = 10 * time.Second

// New returns a client of the Alertmanager at baseURL (http or https,
// optionally with user:password for basic auth); no I/O. hc nil uses a
// client with a 10 s timeout.
func New(baseURL string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, engine.Errorf(engine.EInvalid, "alertmanager url must be http(s)://host[:port][/path]")
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v2/alerts"
	if hc == nil {
		hc = &http.Client{Timeout: requestTimeout}
	}
	noRedirects := *hc
	noRedirects.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{endpoint: u.String(), http: &noRedirects}, nil
}

// Alert is an alert as the v2 API takes it.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt,omitzero"` // absent while open
}

// AlertOf is the incident of n as an alert.
func AlertOf(n incidents.Notification) Alert {
	in := n.Incident
	a := Alert{
		Labels: map[string]string{
			"alertname": AlertName, LabelIncident: in.ID, LabelNode: in.NodeID,
			LabelSeverity: string(in.Severity), LabelDedupe: in.DedupeKey,
		},
		Annotations: map[string]string{"summary": in.Summary},
		StartsAt:    in.OpenedAt,
		EndsAt:      in.ResolvedAt,
	}
	if policy, ok := strings.CutPrefix(in.DedupeKey, "policy:"); ok {
		a.Labels[LabelPolicy] = policy
	}
	if n.ChainProfileID != "" {
		a.Labels[LabelChain] = n.ChainProfileID
	}
	if in.AcknowledgedBy != "" {
		a.Annotations["acknowledged_by"] = in.AcknowledgedBy
	}
	return a
}

// Notify posts the incident as it stands: open, or resolved with its end.
func (c *Client) Notify(ctx context.Context, n incidents.Notification) error {
	body, err := json.Marshal([]Alert{AlertOf(n)})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return engine.Errorf(engine.EInvalid, "alertmanager request: %v", post.WithoutURL(err))
	}
	req.Header.Set("Content-Type", "application/json")
	return post.Do(c.http, req, "alertmanager", 512)
}
