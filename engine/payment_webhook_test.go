package engine_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

var webhookSecret = []byte("0123456789abcdef0123456789abcdef")

func TestVerifyWebhook(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"event_id":"ev-1","payment_id":"pay_1"}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := engine.SignWebhook(webhookSecret, now, body)
	at := func(d time.Duration) (string, string) {
		t := now.Add(d)
		return strconv.FormatInt(t.Unix(), 10), engine.SignWebhook(webhookSecret, t, body)
	}
	oldTS, oldSig := at(-6 * time.Minute)
	futTS, futSig := at(6 * time.Minute)
	skewTS, skewSig := at(4 * time.Minute)
	tests := []struct {
		name           string
		secret         []byte
		timestamp, sig string
		body           []byte
		ok             bool
	}{
		{"a valid signature", webhookSecret, ts, sig, body, true},
		{"clock skew inside the window", webhookSecret, skewTS, skewSig, body, true},
		{"a tampered body", webhookSecret, ts, sig, []byte(`{"event_id":"ev-1","payment_id":"pay_2"}`), false},
		{"another secret", []byte("another secret of the same length!"), ts, sig, body, false},
		{"no secret configured", nil, ts, sig, body, false},
		{"no timestamp", webhookSecret, "", sig, body, false},
		{"no signature", webhookSecret, ts, "", body, false},
		{"a stale timestamp, correctly signed", webhookSecret, oldTS, oldSig, body, false},
		{"a future timestamp, correctly signed", webhookSecret, futTS, futSig, body, false},
		{"a timestamp moved without re-signing", webhookSecret, skewTS, sig, body, false},
		{"a signed timestamp with a sign", webhookSecret, "+" + ts, sig, body, false},
		{"a timestamp in milliseconds", webhookSecret, ts + "000", sig, body, false},
		{"no sha256= prefix", webhookSecret, ts, strings.TrimPrefix(sig, "sha256="), body, false},
		{"a truncated signature", webhookSecret, ts, sig[:len(sig)-2], body, false},
		{"upper-case hex of the right MAC is accepted", webhookSecret, ts, "sha256=" + strings.ToUpper(strings.TrimPrefix(sig, "sha256=")), body, true},
		{"not hex", webhookSecret, ts, "sha256=" + strings.Repeat("z", 64), body, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := engine.VerifyWebhook(tt.secret, tt.timestamp, tt.sig, tt.body, now)
			if tt.ok && err != nil {
				t.Fatalf("VerifyWebhook: %v, want success", err)
			}
			if !tt.ok && !engine.IsCode(err, engine.EUnauthorized) {
				t.Fatalf("VerifyWebhook = %v, want EUnauthorized", err)
			}
		})
	}
}

// FuzzVerifyWebhook checks that nothing panics and that only the signature
// SignWebhook makes for the exact timestamp and body is accepted.
func FuzzVerifyWebhook(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	body := `{"event_id":"ev-1","payment_id":"pay_1"}`
	f.Add("1800000000", engine.SignWebhook(webhookSecret, now, []byte(body)), body)
	f.Add("1800000000", "sha256=", body)
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, timestamp, sig, body string) {
		err := engine.VerifyWebhook(webhookSecret, timestamp, sig, []byte(body), now)
		if err == nil {
			sent, perr := strconv.ParseInt(timestamp, 10, 64)
			want := engine.SignWebhook(webhookSecret, time.Unix(sent, 0), []byte(body))
			if perr != nil || strconv.FormatInt(sent, 10) != timestamp || !strings.EqualFold(sig, want) {
				t.Fatalf("accepted timestamp %q signature %q for body %q", timestamp, sig, body)
			}
			return
		}
		if !engine.IsCode(err, engine.EUnauthorized) {
			t.Fatalf("error %v, want EUnauthorized", err)
		}
	})
}

// TestVerifyWebhookAnyAcceptsEverySecretInForce: during a rotation a
// signature by the new or the previous secret verifies, one by neither
// does not.
func TestVerifyWebhookAnyAcceptsEverySecretInForce(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := []byte(`{"event_id":"ev-1","payment_id":"pay_1"}`)
	current, previous := []byte("the new secret, 32 bytes or more!"), webhookSecret
	inForce := [][]byte{current, previous}
	for name, tt := range map[string]struct {
		secret []byte
		ok     bool
	}{
		"signed with the new secret":      {current, true},
		"signed with the previous secret": {previous, true},
		"signed with another secret":      {[]byte("somebody else's secret, 32 bytes+"), false},
	} {
		t.Run(name, func(t *testing.T) {
			err := engine.VerifyWebhookAny(inForce, ts, engine.SignWebhook(tt.secret, now, body), body, now)
			if tt.ok != (err == nil) {
				t.Fatalf("VerifyWebhookAny = %v, want ok %v", err, tt.ok)
			}
		})
	}
	if err := engine.VerifyWebhookAny(nil, ts, engine.SignWebhook(current, now, body), body, now); !engine.IsCode(err, engine.EUnauthorized) {
		t.Fatalf("without secrets: %v, want unauthorized", err)
	}
}
