package main

import (
	"context"
	"flag"
	"net/url"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/incidents"
	"github.com/hoodcloud/hoodcloud/engine/keys"
	"github.com/hoodcloud/hoodcloud/store/alertmanager"
	"github.com/hoodcloud/hoodcloud/store/webhook"
	"github.com/prometheus/client_golang/prometheus"
)

// IncidentConfig says where incidents are told and how hard to try.
type IncidentConfig struct {
	AlertmanagerURL    string        // "" for none
	AlertmanagerRepost time.Duration // below the Alertmanager's resolve_timeout
	WebhookURL         string        // "" for none; may hold a token: redacted
	WebhookSecretFile  string        // required with WebhookURL
	DispatchInterval   time.Duration
	MaxAttempts        int // failures of one event before it is dead-lettered
	RetryBackoff       time.Duration
	RetryMaxBackoff    time.Duration
	EventsMaxAge       time.Duration // of the EVENTS stream; 0 keeps events
	EventsMaxBytes     int64         // of the EVENTS stream; 0 for no limit
}

func defaultIncidentConfig() IncidentConfig {
	return IncidentConfig{
		AlertmanagerRepost: time.Minute,
		DispatchInterval:   10 * time.Second,
		MaxAttempts:        8,
		RetryBackoff:       10 * time.Second,
		RetryMaxBackoff:    10 * time.Minute,
		EventsMaxAge:       7 * 24 * time.Hour,
		EventsMaxBytes:     1 << 30,
	}
}

func (c *IncidentConfig) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.AlertmanagerURL, "alertmanager-url", c.AlertmanagerURL, "Alertmanager to post incidents to as alerts, e.g. http://127.0.0.1:9093 (empty: none)")
	fs.DurationVar(&c.AlertmanagerRepost, "alertmanager-repost-interval", c.AlertmanagerRepost, "how often an open incident is posted again: keep it below the Alertmanager's resolve_timeout (5m by default)")
	fs.StringVar(&c.WebhookURL, "incident-webhook-url", c.WebhookURL, "URL that receives incident events as signed JSON (secret: it may hold a token)")
	fs.StringVar(&c.WebhookSecretFile, "incident-webhook-secret-file", c.WebhookSecretFile, "file of the incident webhook's HMAC secret (mode 0600, at least 32 bytes)")
	fs.DurationVar(&c.DispatchInterval, "incident-dispatch-interval", c.DispatchInterval, "how often due incident notifications are sent")
	fs.IntVar(&c.MaxAttempts, "incident-max-attempts", c.MaxAttempts, "failed deliveries of an incident event to one notifier before it is given up (dead-lettered)")
	fs.DurationVar(&c.RetryBackoff, "incident-retry-backoff", c.RetryBackoff, "wait after a failed delivery, doubled after each next failure")
	fs.DurationVar(&c.RetryMaxBackoff, "incident-retry-max-backoff", c.RetryMaxBackoff, "longest wait between delivery attempts")
	fs.DurationVar(&c.EventsMaxAge, "events-max-age", c.EventsMaxAge, "how long the EVENTS stream keeps domain events (0: forever)")
	fs.Int64Var(&c.EventsMaxBytes, "events-max-bytes", c.EventsMaxBytes, "size the EVENTS stream keeps, oldest dropped first (0: no limit)")
}

// validate refuses settings the dispatcher could not work with, naming the
// key but never a URL, which may hold credentials.
func (c *IncidentConfig) validate() error {
	for _, kv := range [][2]string{{"alertmanager-url", c.AlertmanagerURL}, {"incident-webhook-url", c.WebhookURL}} {
		if u, err := url.Parse(kv[1]); kv[1] != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
			return configErrorf("%s: want an http:// or https:// URL", kv[0])
		}
	}
	switch {
	case c.WebhookURL != "" && c.WebhookSecretFile == "":
		return configErrorf("incident-webhook-secret-file: required with incident-webhook-url")
	case c.WebhookURL == "" && c.WebhookSecretFile != "":
		return configErrorf("incident-webhook-url: required with incident-webhook-secret-file")
	case c.AlertmanagerRepost <= 0 || c.DispatchInterval <= 0 || c.RetryBackoff <= 0:
		return configErrorf("alertmanager-repost-interval, incident-dispatch-interval and incident-retry-backoff must be positive")
	case c.RetryMaxBackoff < c.RetryBackoff:
		return configErrorf("incident-retry-max-backoff must be at least incident-retry-backoff")
	case c.MaxAttempts < 1:
		return configErrorf("incident-max-attempts must be >= 1")
	case c.EventsMaxAge < 0 || c.EventsMaxBytes < 0:
		return configErrorf("events-max-age and events-max-bytes must not be negative")
	}
	if c.WebhookSecretFile != "" {
		if err := keys.CheckWebhookSecretFile(c.WebhookSecretFile); err != nil {
			return configErrorf("incident-webhook-secret-file: %s", engine.ErrorMessage(err))
		}
	}
	return nil
}

// openIncidents builds the incident dispatcher over every configured
// notifier; the domain events on the bus are always on.
func (m *Main) openIncidents(ctx context.Context) error {
	c := m.Config.Incidents
	stream := incidents.EventStream(c.EventsMaxAge, c.EventsMaxBytes)
	if err := m.Events.EnsureStream(ctx, stream); err != nil {
		// The notifier tries again on each delivery; the appliance serves.
		m.Logger.Warn("the EVENTS stream is unavailable", "err", err)
	}
	channels := []incidents.Channel{{Name: "events", Notifier: incidents.NewBusNotifier(m.Events, stream)}}
	more, err := m.incidentNotifiers()
	if err != nil {
		return err
	}
	notifications := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hoodcloud_incident_notifications_total",
		Help: "Attempts to tell a notifier of an incident event, by outcome (delivered, failed, dead_lettered).",
	}, []string{"notifier", "event", "outcome"})
	if err := m.Registry.Register(notifications); err != nil {
		return err
	}
	m.Incidents = incidents.NewDispatcher(incidents.Config{
		Store: m.Store, Channels: append(channels, more...), Logger: m.Logger,
		MaxAttempts: c.MaxAttempts, Backoff: c.RetryBackoff, MaxBackoff: c.RetryMaxBackoff,
		Observe: func(notifier string, e engine.IncidentEvent, o incidents.Outcome) {
			notifications.WithLabelValues(notifier, string(e), string(o)).Inc()
		},
	})
	m.lead(c.DispatchInterval, m.dispatchIncidents)
	return nil
}

// incidentNotifiers are the Alertmanager and the webhook, when configured.
func (m *Main) incidentNotifiers() ([]incidents.Channel, error) {
	c := m.Config.Incidents
	var out []incidents.Channel
	if c.AlertmanagerURL != "" {
		am, err := alertmanager.New(c.AlertmanagerURL, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, incidents.Channel{Name: "alertmanager", Notifier: am, Repost: c.AlertmanagerRepost,
			Events: []engine.IncidentEvent{engine.IncidentOpened, engine.IncidentResolved}})
	}
	if c.WebhookURL != "" {
		secret, err := keys.OpenWebhookSecretFile(c.WebhookSecretFile, keys.WebhookSecretFileConfig{Logger: m.Logger})
		if err != nil {
			return nil, err
		}
		hook, err := webhook.New(webhook.Config{URL: c.WebhookURL, Secret: secret.Current})
		if err != nil {
			return nil, err
		}
		out = append(out, incidents.Channel{Name: "webhook", Notifier: hook})
	}
	return out, nil
}

// dispatchIncidents is the leader's turn of incident notification.
func (m *Main) dispatchIncidents(ctx context.Context) {
	if err := m.Incidents.Dispatch(ctx); err != nil && ctx.Err() == nil {
		m.Logger.Warn("dispatching incident notifications", "err", err)
	}
}
