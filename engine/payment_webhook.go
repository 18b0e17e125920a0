package engine

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Headers of a signed payment webhook.
const (
	WebhookTimestampHeader = "X-HoodCloud-Timestamp" // unix seconds
	WebhookSignatureHeader = "X-HoodCloud-Signature" // sha256=<hex HMAC>
)

// WebhookReplayWindow is how far a webhook's timestamp may be from now, in
// either direction: older ones may be replays, and the same tolerance
// forward absorbs clock skew with the payment service.
const WebhookReplayWindow = 5 * time.Minute

const webhookSignaturePrefix = "sha256="

// SignWebhook returns the signature header value of body sent at ts:
// HMAC-SHA256 over "<unix seconds>.<body>" with secret.
func SignWebhook(secret []byte, ts time.Time, body []byte) string {
	return webhookSignaturePrefix + hex.EncodeToString(webhookMAC(secret, strconv.FormatInt(ts.Unix(), 10), body))
}

func webhookMAC(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifyWebhook checks the timestamp and signature headers of body against
// secret at now. Every failure is EUnauthorized with a message that names
// the rule broken but never the expected value.
func VerifyWebhook(secret []byte, timestamp, signature string, body []byte, now time.Time) error {
	if len(secret) == 0 {
		return VerifyWebhookAny(nil, timestamp, signature, body, now)
	}
	return VerifyWebhookAny([][]byte{secret}, timestamp, signature, body, now)
}

// VerifyWebhookAny is VerifyWebhook accepting a signature made with any of
// secrets: during a rotation's grace period the payment service may still
// sign with the previous one.
func VerifyWebhookAny(secrets [][]byte, timestamp, signature string, body []byte, now time.Time) error {
	if len(secrets) == 0 {
		return Errorf(EUnauthorized, "webhooks are not configured")
	}
	if timestamp == "" || signature == "" {
		return Errorf(EUnauthorized, "the %s and %s headers are required", WebhookTimestampHeader, WebhookSignatureHeader)
	}
	sent, err := parseWebhookTimestamp(timestamp)
	if err != nil {
		return err
	}
	if d := now.Sub(sent); d > WebhookReplayWindow || d < -WebhookReplayWindow {
		return Errorf(EUnauthorized, "the webhook timestamp is outside the %s window", WebhookReplayWindow)
	}
	got, ok := strings.CutPrefix(signature, webhookSignaturePrefix)
	mac, err := hex.DecodeString(got)
	if !ok || err != nil || len(mac) != sha256.Size {
		return Errorf(EUnauthorized, "the webhook signature must be sha256=<64 hex digits>")
	}
	for _, secret := range secrets {
		if len(secret) > 0 && hmac.Equal(mac, webhookMAC(secret, timestamp, body)) {
			return nil
		}
	}
	return Errorf(EUnauthorized, "the webhook signature does not match")
}

// parseWebhookTimestamp accepts decimal unix seconds only: no sign, no
// spaces, so the signed text is exactly what was parsed.
func parseWebhookTimestamp(s string) (time.Time, error) {
	if len(s) > 12 || strings.TrimLeft(s, "0123456789") != "" {
		return time.Time{}, Errorf(EUnauthorized, "the webhook timestamp must be unix seconds")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, Errorf(EUnauthorized, "the webhook timestamp must be unix seconds")
	}
	return time.Unix(n, 0), nil
}

// WebhookSecrets are the HMAC secrets payment webhooks are signed with
// (keys.WebhookSecrets, kept in Secrets and rotated by an operator, or
// keys.WebhookSecretFile, read from a file the operator replaces). Safe
// for concurrent use.
type WebhookSecrets interface {
	// Verifying returns the secrets a signature may be made with now: the
	// current one first, then any a rotation replaced whose grace period
	// has not ended. Callers do not modify them.
	Verifying() [][]byte
}

// PaymentWebhookConfig configures a PaymentWebhook.
type PaymentWebhookConfig struct {
	// Secrets verify signatures, following rotations; without them,
	// Secret alone does.
	Secrets WebhookSecrets
	Secret  []byte
	Events  Events
	Stream  StreamSpec       // zero: PaymentStream()
	Now     func() time.Time // zero: time.Now
}

// PaymentWebhook turns a signed notification from a payment service into a
// payment.completed message, so payments arrive without a separate payment
// service in front of the bus.
type PaymentWebhook struct {
	cfg    PaymentWebhookConfig
	mu     sync.Mutex
	stream bool // the stream is known to exist
}

// NewPaymentWebhook returns the webhook use-case; it does no I/O.
func NewPaymentWebhook(cfg PaymentWebhookConfig) *PaymentWebhook {
	if cfg.Stream.Name == "" {
		cfg.Stream = PaymentStream()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &PaymentWebhook{cfg: cfg}
}

// Receive verifies and publishes one notification and returns its event.
// Returns EUnauthorized for a bad or stale signature (checked before the
// body is read), EInvalid for a body that is not a payment.completed, and
// EUnavailable when the bus is down.
func (w *PaymentWebhook) Receive(ctx context.Context, timestamp, signature string, body []byte) (*PaymentCompletedEvent, error) {
	if err := VerifyWebhookAny(w.secrets(), timestamp, signature, body, w.cfg.Now()); err != nil {
		return nil, err
	}
	e, err := DecodePaymentCompleted(body)
	if err != nil {
		return nil, err
	}
	if e.CompletedAt.IsZero() {
		e.CompletedAt = w.cfg.Now().UTC()
	}
	if err := w.ensureStream(ctx); err != nil {
		return nil, err
	}
	if err := PublishPaymentCompleted(ctx, w.cfg.Events, w.cfg.Stream.Subjects[0], e); err != nil {
		return nil, err
	}
	return e, nil
}

func (w *PaymentWebhook) secrets() [][]byte {
	if w.cfg.Secrets != nil {
		return w.cfg.Secrets.Verifying()
	}
	if len(w.cfg.Secret) == 0 {
		return nil
	}
	return [][]byte{w.cfg.Secret}
}

// ensureStream creates the stream once, so a webhook arriving before the
// consumer's first start is not lost.
func (w *PaymentWebhook) ensureStream(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stream {
		return nil
	}
	if err := w.cfg.Events.EnsureStream(ctx, w.cfg.Stream); err != nil {
		return Errorf(EUnavailable, "the payment stream is unavailable")
	}
	w.stream = true
	return nil
}
