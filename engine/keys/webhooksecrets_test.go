package keys_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
)

const (
	secretA = "payment-service-secret-A-0123456789abcdef"
	secretB = "payment-service-secret-B-0123456789abcdef"
)

// writeSecretFile replaces path as an operator should: a new file renamed
// over the old one, written at the given time.
func writeSecretFile(t *testing.T, path, content string, mode os.FileMode, at time.Time) {
	t.Helper()
	tmp := path + ".new"
	mustDo(t, os.WriteFile(tmp, []byte(content), 0o600))
	mustDo(t, os.Chmod(tmp, mode))
	mustDo(t, os.Chtimes(tmp, at, at))
	mustDo(t, os.Rename(tmp, path))
}

func verifying(f engine.WebhookSecrets) []string {
	var out []string
	for _, s := range f.Verifying() {
		out = append(out, string(s))
	}
	return out
}

func wantVerifying(t *testing.T, f engine.WebhookSecrets, want ...string) {
	t.Helper()
	if got := verifying(f); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("verifying %q, want %q", got, want)
	}
}

func TestWebhookSecretFileIsRefusedWithTheFileAndTheProblem(t *testing.T) {
	dir := t.TempDir()
	short := "too-short-SECRET"
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
	}{
		{"empty", "", 0o600, "is empty"},
		{"white space only", " \n\t\n", 0o600, "is empty"},
		{"a secret under 32 bytes", short + "\n", 0o600, "line 1 (the current one) is 16 bytes, want at least 32"},
		{"a previous secret under 32 bytes", secretA + "\n" + short, 0o600, "line 2 (the previous one) is 16 bytes"},
		{"three secrets", secretA + "\n" + secretB + "\n" + secretA + "x\n", 0o600, "holds 3 lines"},
		{"readable by others", secretA, 0o644, "accessible by group or others (mode 0644): make it 0600"},
		{"readable by group", secretA, 0o640, "accessible by group or others (mode 0640)"},
		{"larger than a secret file", strings.Repeat("x", 5000), 0o600, "larger than 4096 bytes"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "secret-"+string(rune('a'+i)))
			writeSecretFile(t, path, tt.content, tt.mode, time.Now())
			_, err := keys.OpenWebhookSecretFile(path, keys.WebhookSecretFileConfig{})
			if !engine.IsCode(err, engine.EInvalid) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want invalid naming %s and %q", err, path, tt.want)
			}
			if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "payment-service") {
				t.Fatalf("the error shows the secret: %v", err)
			}
			if err := keys.CheckWebhookSecretFile(path); !engine.IsCode(err, engine.EInvalid) {
				t.Fatalf("CheckWebhookSecretFile accepts what OpenWebhookSecretFile refuses")
			}
		})
	}
	for name, path := range map[string]string{"missing": filepath.Join(dir, "nope"), "a directory": dir} {
		t.Run(name, func(t *testing.T) {
			_, err := keys.OpenWebhookSecretFile(path, keys.WebhookSecretFileConfig{})
			if !engine.IsCode(err, engine.EInvalid) || !strings.Contains(err.Error(), path) {
				t.Fatalf("err = %v, want invalid naming %s", err, path)
			}
		})
	}
}

func TestWebhookSecretFileIsTrimmed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "webhook-secret")
	writeSecretFile(t, path, "\n  "+secretA+" \r\n\n", 0o600, time.Now())
	f, err := keys.OpenWebhookSecretFile(path, keys.WebhookSecretFileConfig{})
	mustDo(t, err)
	wantVerifying(t, f, secretA)
	if string(f.Current()) != secretA {
		t.Fatalf("current = %q", f.Current())
	}
}

// TestWebhookSecretFileRotation: the operator replaces the file with the
// new secret and the old one; both verify until the grace period since the
// file was written ends, and only the new one after.
func TestWebhookSecretFileRotation(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "webhook-secret")
	writeSecretFile(t, path, secretA+"\n", 0o600, c.Now().Add(-48*time.Hour))
	f, err := keys.OpenWebhookSecretFile(path, keys.WebhookSecretFileConfig{Grace: time.Hour, Now: c.Now})
	mustDo(t, err)
	wantVerifying(t, f, secretA)

	writeSecretFile(t, path, secretB+"\n"+secretA+"\n", 0o600, c.Now())
	wantVerifying(t, f, secretB, secretA)
	c.advance(59 * time.Minute)
	wantVerifying(t, f, secretB, secretA)
	c.advance(time.Minute)
	wantVerifying(t, f, secretB)

	// The same file read after a restart past the grace period.
	again, err := keys.OpenWebhookSecretFile(path, keys.WebhookSecretFileConfig{Grace: time.Hour, Now: c.Now})
	mustDo(t, err)
	wantVerifying(t, again, secretB)
}

// TestWebhookSecretFileKeepsItsSecretsWhenAReplacementIsRefused: a bad
// replacement is logged once, without the secret, and the secrets in
// force stay; fixing the file takes effect.
func TestWebhookSecretFileKeepsItsSecretsWhenAReplacementIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "webhook-secret")
	writeSecretFile(t, path, secretA, 0o600, time.Now().Add(-time.Minute))
	var logs syncBuffer
	f, err := keys.OpenWebhookSecretFile(path, keys.WebhookSecretFileConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	mustDo(t, err)

	writeSecretFile(t, path, secretB, 0o644, time.Now())
	wantVerifying(t, f, secretA)
	wantVerifying(t, f, secretA)
	if n := strings.Count(logs.String(), "refused"); n != 1 {
		t.Fatalf("the refused file was logged %d times, want once:\n%s", n, logs.String())
	}
	mustDo(t, os.Chmod(path, 0o600))
	wantVerifying(t, f, secretB)

	mustDo(t, os.Remove(path))
	wantVerifying(t, f, secretB)
	if strings.Contains(logs.String(), secretA) || strings.Contains(logs.String(), secretB) {
		t.Fatalf("a secret was logged:\n%s", logs.String())
	}
}

func TestGeneratedWebhookSecretsRotateWithAGracePeriod(t *testing.T) {
	s, _ := keyringOnBolt(t)
	c := newClock()
	boot, err := mustBoot(t, keys.BootConfig{Secrets: s, Now: c.Now}).Ensure(t.Context())
	mustDo(t, err)
	first := string(boot.WebhookSecret)
	if !strings.HasPrefix(first, "hcwhsec_") || len(first) < keys.MinWebhookSecretBytes {
		t.Fatalf("generated secret of %d bytes, want hcwhsec_ and 256 bits in text", len(first))
	}
	wantVerifying(t, boot.WebhookSecrets, first)

	id, err := boot.WebhookSecrets.Rotate(t.Context(), time.Hour)
	mustDo(t, err)
	second := string(boot.WebhookSecrets.Current())
	if second == first || strings.Contains(id, second) {
		t.Fatalf("rotation made %q (id %s)", second, id)
	}
	wantVerifying(t, boot.WebhookSecrets, second, first)

	// Another instance, or a restart, sees the same.
	again, err := mustBoot(t, keys.BootConfig{Secrets: s, Now: c.Now}).Ensure(t.Context())
	mustDo(t, err)
	wantVerifying(t, again.WebhookSecrets, second, first)

	c.advance(time.Hour)
	wantVerifying(t, boot.WebhookSecrets, second)
}

func TestRotatingAWebhookSecretReadFromAFileIsRefused(t *testing.T) {
	s, _ := keyringOnBolt(t)
	boot, err := mustBoot(t, keys.BootConfig{Secrets: s}).Ensure(t.Context())
	mustDo(t, err)
	r, err := keys.NewRotations(keys.RotationsConfig{Secrets: s, Boot: boot, WebhookSecretFromFile: true})
	mustDo(t, err)
	defer r.Close()
	_, err = r.Rotate(t.Context(), keys.KindPaymentWebhook, 0)
	if !engine.IsCode(err, engine.EUnsupported) || !strings.Contains(err.Error(), "second") {
		t.Fatalf("err = %v, want unsupported, saying how to rotate the file", err)
	}
}

// syncBuffer is a log sink safe for the logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
