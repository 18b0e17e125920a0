package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// postSignedWebhook signs as the webhook route's documentation says, with
// a plain HMAC: HMAC-SHA256(secret, timestamp "." body), sent as
// "sha256=" and hex; it returns the status.
func postSignedWebhook(t *testing.T, base string, secret, body string) int {
	t.Helper()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + body))
	req, _ := http.NewRequest("POST", base+"/api/v1/payments/webhook", strings.NewReader(body))
	req.Header.Set("X-HoodCloud-Timestamp", ts)
	req.Header.Set("X-HoodCloud-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// writeWebhookSecretFile replaces path as the README tells operators to:
// a new file, 0600, renamed over the old one.
func writeWebhookSecretFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path+".new", []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

func TestPaymentWebhookSecretFileIsRefusedWithAClearMessage(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	long := "a-secret-long-enough-for-the-rule-0123456789"
	tests := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "missing"), "cannot be read: no such file or directory"},
		{"empty", file("empty", "\n", 0o600), "is empty"},
		{"too short", file("short", "short-secret-XYZ\n", 0o600), "is 16 bytes, want at least 32"},
		{"readable by others", file("shared", long, 0o644), "accessible by group or others (mode 0644): make it 0600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			code := run(ctx, []string{"serve", "--payment-webhook-secret-file", tt.path}, func(string) string { return "" },
				strings.NewReader(""), &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), "payment-webhook-secret-file: ") ||
				!strings.Contains(stderr.String(), tt.path) || !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 naming the setting, %s and %q", code, stderr.String(), tt.path, tt.want)
			}
			if strings.Contains(stderr.String()+stdout.String(), "XYZ") || strings.Contains(stderr.String()+stdout.String(), long) {
				t.Fatalf("the secret was printed: %s", stderr.String())
			}
		})
	}
}

// TestPaymentWebhookWithASecretFile: the operator's file holds the secret
// the payment service signs with; rotating it by rewriting the file keeps
// both secrets verifying, and the online rotation says to use the file.
func TestPaymentWebhookWithASecretFile(t *testing.T) {
	secretA := "provider-secret-A-" + strings.Repeat("a", 32)
	secretB := "provider-secret-B-" + strings.Repeat("b", 32)
	path := filepath.Join(t.TempDir(), "webhook-secret")
	writeWebhookSecretFile(t, path, secretA+"\n")
	cfg := testConfig(t, t.TempDir())
	cfg.DevToken = "e2e-admin"
	cfg.PaymentWebhookSecretFile = path
	m := MustOpenMain(t, cfg)
	base := "http://" + m.HTTP.Addr()
	event := func(id string) string { return `{"event_id":"` + id + `","external_id":"inv-` + id + `"}` }

	if got := postSignedWebhook(t, base, secretA, event("e1")); got != 202 {
		t.Fatalf("signed with the file's secret: %d, want 202", got)
	}
	if got := postSignedWebhook(t, base, string(m.Boot.WebhookSecret), event("e2")); got != 401 {
		t.Fatalf("signed with the generated secret while a file is configured: %d, want 401", got)
	}
	if d := m.devDetails(); d.PaymentWebhookSecret != "" {
		t.Fatal("dev details show the secret of the operator's file")
	}

	writeWebhookSecretFile(t, path, secretB+"\n"+secretA+"\n")
	for _, s := range []string{secretB, secretA} {
		if got := postSignedWebhook(t, base, s, event("e3-"+s[16:17])); got != 202 {
			t.Fatalf("during the rotation, signed with secret %s: %d, want 202", s[:17], got)
		}
	}
	code, _, errOut := runAdmin(t, "", map[string]string{"HOODCLOUD_ADMIN_TOKEN": "e2e-admin"},
		"rotate", "payment-webhook", "--api-url", base)
	if code != 1 || !strings.Contains(errOut, "payment-webhook-secret-file") {
		t.Fatalf("admin rotate payment-webhook with a file = %d %q; want exit 1 pointing at the file", code, errOut)
	}
}

// TestGeneratedPaymentWebhookSecretIsShownByDevAndRotates: without a file
// the secret generated at first start signs, dev shows it, and an online
// rotation keeps the old one verifying for the grace period.
func TestGeneratedPaymentWebhookSecretIsShownByDevAndRotates(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.DevToken = "e2e-admin"
	m := MustOpenMain(t, cfg)
	base := "http://" + m.HTTP.Addr()
	first := m.devDetails().PaymentWebhookSecret
	if first == "" || first != string(m.Boot.WebhookSecret) {
		t.Fatalf("dev shows %q, want the generated secret", first)
	}
	var out bytes.Buffer
	printDevDetails(&out, "text", m.devDetails())
	if !strings.Contains(out.String(), "Payment webhook secret: "+first) {
		t.Fatalf("dev output lacks the webhook secret:\n%s", out.String())
	}
	if got := postSignedWebhook(t, base, first, `{"event_id":"g1","external_id":"inv-g1"}`); got != 202 {
		t.Fatalf("signed with the secret dev shows: %d, want 202", got)
	}

	code, stdout, errOut := runAdmin(t, "", map[string]string{"HOODCLOUD_ADMIN_TOKEN": "e2e-admin"},
		"rotate", "payment-webhook", "--api-url", base, "--grace", "2h")
	if code != 0 || !strings.Contains(stdout, "payment-webhook key rotated") || strings.Contains(stdout, first) {
		t.Fatalf("admin rotate payment-webhook = %d %q %q", code, stdout, errOut)
	}
	second := string(m.WebhookSecrets.Current())
	if second == first {
		t.Fatal("the rotation kept the secret")
	}
	for _, s := range []string{second, first} {
		if got := postSignedWebhook(t, base, s, `{"event_id":"g2","external_id":"inv-g2"}`); got != 202 {
			t.Fatalf("after the rotation: %d, want 202 for the new and the old secret", got)
		}
	}
}
