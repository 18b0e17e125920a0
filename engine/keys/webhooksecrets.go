package keys

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// DefaultWebhookGrace is how long the payment webhook secret a rotation
// replaced keeps verifying: long enough to reconfigure the payment service
// and for its retries of notifications signed before.
const DefaultWebhookGrace = 24 * time.Hour

// MinWebhookSecretBytes is the shortest payment webhook secret accepted:
// 256 bits if it is random.
const MinWebhookSecretBytes = 32

// webhookSecretPrefix marks a generated secret, so a secret scanner or a
// reader of a shell history knows what it is.
const webhookSecretPrefix = "hcwhsec_"

// WebhookSecrets are the payment webhook secrets kept in Secrets: the
// current one signs, and the ones it replaced keep verifying until their
// grace period ends. Safe for concurrent use.
type WebhookSecrets struct {
	v *versionedKeys[[]byte]
}

var _ engine.WebhookSecrets = (*WebhookSecrets)(nil)

var webhookSecretCodec = keyCodec[[]byte]{
	name: SecretWebhookSecret,
	decode: func(b []byte) ([]byte, error) {
		if len(b) == 0 {
			return nil, engine.Errorf(engine.EInternal, "%s is empty", SecretWebhookSecret)
		}
		return bytes.Clone(b), nil
	},
	id: webhookSecretID,
}

// LoadWebhookSecrets reads the secret Ensure made and any a rotation
// replaced. Returns ENotFound if there is no current secret.
func (b *Boot) LoadWebhookSecrets(ctx context.Context) (*WebhookSecrets, error) {
	v, err := loadVersionedKeys(ctx, b.cfg.Secrets, webhookSecretCodec, b.setOptions())
	if err != nil {
		return nil, err
	}
	return &WebhookSecrets{v}, nil
}

// Current is the secret a payment service signs with now.
func (w *WebhookSecrets) Current() []byte { return w.v.snapshot().current.key }

// Verifying returns the current secret, then those in their grace period.
func (w *WebhookSecrets) Verifying() [][]byte {
	h := w.v.snapshot()
	out := [][]byte{h.current.key}
	for _, p := range h.inGrace(w.v.now()) {
		out = append(out, p.key)
	}
	return out
}

// Rotate makes a new current secret; the old one keeps verifying for
// grace (DefaultWebhookGrace when zero). Returns the new secret's id, never
// the secret; EInvalid for a grace out of range.
func (w *WebhookSecrets) Rotate(ctx context.Context, grace time.Duration) (string, error) {
	grace, err := checkGrace(grace, DefaultWebhookGrace)
	if err != nil {
		return "", err
	}
	return w.v.rotate(ctx, grace, func([]byte) ([]byte, error) { return newWebhookSecret() })
}

// newWebhookSecret is 256 random bits as printable text, so it can be
// shown (hoodcloud dev) and pasted into a payment service's settings: the
// HMAC key is the text's bytes.
func newWebhookSecret() ([]byte, error) {
	b, err := randomBytes(32)()
	if err != nil {
		return nil, err
	}
	defer engine.Zero(b)
	return []byte(webhookSecretPrefix + base64.RawURLEncoding.EncodeToString(b)), nil
}

// webhookSecretID fingerprints a secret for logs and rotation answers.
// It is a hash of the secret under a label of its own, which says nothing
// of a secret of MinWebhookSecretBytes random bytes.
func webhookSecretID(secret []byte) string {
	h := sha256.New()
	h.Write([]byte("hoodcloud payment webhook secret id\x00"))
	h.Write(secret)
	return hex.EncodeToString(h.Sum(nil)[:8])
}
