// Package webhook posts incident events to an operator's HTTP endpoint, as
// JSON signed like the payment webhook: HMAC-SHA256 over the timestamp
// and the body, with a secret the two share.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/incidents"
	"github.com/hoodcloud/hoodcloud/store/internal/post"
)

// Headers of a delivery, besides engine.WebhookTimestampHeader and
// engine.WebhookSignatureHeader.
const (
	EventHeader    = "X-HoodCloud-Event"    // opened, acknowledged or resolved
	DeliveryHeader = "X-HoodCloud-Delivery" // "<incident id>:<event>", the same on every attempt
)

// Config configures a Client.
type Config struct {
	// URL receives the POSTs. It may hold a token: it never appears in
	// errors or logs.
	URL string
	// Secret returns the current signing secret (keys.WebhookSecretFile).
	Secret func() []byte
	Client *http.Client     // nil: a client with a 10 s timeout
	Now    func() time.Time // nil: time.Now
}

// Client delivers incident events to one endpoint. Safe for concurrent use.
type Client struct {
	cfg Config
}

var _ incidents.Notifier = (*Client)(nil)

// requestTimeout bounds one delivery.
const requestTimeout = 10 * time.Second

// New checks cfg; no I/O.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, engine.Errorf(engine.EInvalid, "incident webhook url must be http(s)://host[:port][/path]")
	}
	if cfg.Secret == nil {
		return nil, engine.Errorf(engine.EInvalid, "incident webhook needs a secret")
	}
	hc := &http.Client{Timeout: requestTimeout}
	if cfg.Client != nil {
		c := *cfg.Client
		hc = &c
	}
	// A redirect would turn the POST into a GET: the receiver must answer.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cfg.Client = hc
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Client{cfg: cfg}, nil
}

// Notify posts incidents.Payload JSON. Any 2xx answer is a delivery.
func (c *Client) Notify(ctx context.Context, n incidents.Notification) error {
	secret := c.cfg.Secret()
	if len(secret) == 0 {
		return engine.Errorf(engine.EUnavailable, "the incident webhook secret is not available")
	}
	body, err := json.Marshal(incidents.NewPayload(n))
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return engine.Errorf(engine.EInvalid, "incident webhook request: %v", post.WithoutURL(err))
	}
	now := c.cfg.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hoodcloud")
	req.Header.Set(EventHeader, string(n.Event))
	req.Header.Set(DeliveryHeader, n.DeliveryID)
	req.Header.Set(engine.WebhookTimestampHeader, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(engine.WebhookSignatureHeader, engine.SignWebhook(secret, now, body))
	return post.Do(c.cfg.Client, req, "incident webhook", 256)
}
