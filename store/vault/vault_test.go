package vault_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/enginetest"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/hoodcloud/hoodcloud/store/vault"
)

func TestVaultConformance(t *testing.T) {
	v := sharedVault(t)
	enginetest.RunSecrets(t, func(t *testing.T) engine.Secrets {
		return mustOpen(t, v.newTenant(t, renewedOften).opts)
	})
}

func TestTokenRenewalOutlivesTheTTL(t *testing.T) {
	v := sharedVault(t)
	tn := v.newTenant(t, tokenLife{ttl: 2 * time.Second, maxTTL: 5 * time.Second})
	logs := &testenv.LogBuffer{}
	tn.opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := mustOpen(t, tn.opts)
	ctx := t.Context()

	ct := mustEncrypt(t, s, "renewal", []byte("still here"))
	// Requests go on, every one answered, until the log shows the token
	// renewed, then replaced by a new login at its max TTL.
	events := []string{"token renewed", "token nears its max TTL", "logged in again"}
	allLogged := func() bool {
		for _, want := range events {
			if !strings.Contains(logs.String(), want) {
				return false
			}
		}
		return true
	}
	began := time.Now()
	for !allLogged() {
		if time.Since(began) > testenv.Patience {
			t.Fatalf("after %s the log lacks one of %q:\n%s", testenv.Patience, events, logs.String())
		}
		mustDecrypt(t, s, "renewal", ct, []byte("still here"))
		if err := s.Put(ctx, "renewal", []byte("x")); err != nil {
			t.Fatalf("put %s after the first: %v", time.Since(began), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	assertNoCredentials(t, logs.String(), tn)
}

func TestRevokedTokenIsReplacedOnTheNextRequest(t *testing.T) {
	v := sharedVault(t)
	tn := v.newTenant(t, renewedOften)
	logs := &testenv.LogBuffer{}
	tn.opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	s := mustOpen(t, tn.opts)
	ctx := t.Context()
	if err := s.Put(ctx, "before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	v.admin(t, http.MethodPost, "auth/token/revoke", map[string]any{"token": vault.Token(s)})
	if err := s.Put(ctx, "after", []byte("2")); err != nil {
		t.Fatalf("put after the token was revoked: %v", err)
	}
	if !strings.Contains(logs.String(), "logged in again") {
		t.Errorf("the request succeeded without a new login:\n%s", logs.String())
	}
}

func TestPolicyDenialIsForbidden(t *testing.T) {
	v := sharedVault(t)
	tn := v.newTenant(t, renewedOften)
	logs := &testenv.LogBuffer{}
	tn.opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	tn.opts.KVPrefix = "elsewhere" // outside the policy
	s := mustOpen(t, tn.opts)
	err := s.Put(t.Context(), "jwt/key", []byte("x"))
	if !engine.IsCode(err, engine.EForbidden) {
		t.Fatalf("put outside the policy = %v, want EForbidden", err)
	}
	if strings.Contains(logs.String(), "logged in again") {
		t.Errorf("a refusal by policy made the client log in again:\n%s", logs.String())
	}
}

func TestSealedVaultFailsClosed(t *testing.T) {
	v := startVault(t)
	s := mustOpen(t, v.newTenant(t, tokenLife{ttl: time.Minute}).opts)
	ctx := t.Context()
	plain := []byte("validator key: do not leak")
	ct := mustEncrypt(t, s, engine.KeyMaster, plain)
	if err := s.Put(ctx, "jwt/key", plain); err != nil {
		t.Fatal(err)
	}

	v.seal(t)
	assertAllUnavailable(t, s, ct, plain)

	v.unseal(t)
	mustDecrypt(t, s, engine.KeyMaster, ct, plain)
	if got, err := s.Get(ctx, "jwt/key"); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("get after unseal = %q, %v", got, err)
	}

	v.stop()
	assertAllUnavailable(t, s, ct, plain)
}

// assertAllUnavailable checks that every method fails with EUnavailable
// and that no error shows the secret.
func assertAllUnavailable(t *testing.T, s *vault.Secrets, ct, plain []byte) {
	t.Helper()
	ctx := t.Context()
	calls := map[string]func() error{
		"Get":             func() error { _, err := s.Get(ctx, "jwt/key"); return err },
		"Put":             func() error { return s.Put(ctx, "jwt/key", plain) },
		"Create":          func() error { return s.Create(ctx, "jwt/new", plain) },
		"Delete":          func() error { return s.Delete(ctx, "jwt/key") },
		"Encrypt":         func() error { _, err := s.Encrypt(ctx, engine.KeyMaster, plain); return err },
		"Decrypt":         func() error { _, err := s.Decrypt(ctx, engine.KeyMaster, ct); return err },
		"Rewrap":          func() error { _, err := s.Rewrap(ctx, engine.KeyMaster, ct); return err },
		"GenerateDataKey": func() error { _, _, err := s.GenerateDataKey(ctx, engine.KeyMaster); return err },
		"RotateKey":       func() error { _, err := s.RotateKey(ctx, engine.KeyMaster); return err },
		"SetMinDecryptionVersion": func() error {
			return s.SetMinDecryptionVersion(ctx, engine.KeyMaster, 1)
		},
		"KeyInfo": func() error { _, err := s.KeyInfo(ctx, engine.KeyMaster); return err },
		"Ping":    func() error { return s.Ping(ctx) },
	}
	for name, call := range calls {
		err := call()
		if !engine.IsCode(err, engine.EUnavailable) {
			t.Errorf("%s = %v, want EUnavailable", name, err)
			continue
		}
		for _, secret := range [][]byte{plain, ct} {
			if strings.Contains(err.Error(), string(secret)) {
				t.Errorf("%s error %q shows a secret", name, err)
			}
		}
	}
}

func TestWrongSecretIDIsRefusedAtOpen(t *testing.T) {
	v := sharedVault(t)
	tn := v.newTenant(t, renewedOften)
	const wrong = "5e1f0c1e-not-the-secret-id-0000"
	writeFile(t, tn.opts.SecretIDFile, wrong)

	_, err := vault.Open(t.Context(), tn.opts)
	if !engine.IsCode(err, engine.EUnauthorized) {
		t.Fatalf("open with a wrong secret ID = %v, want EUnauthorized", err)
	}
	msg := err.Error()
	t.Logf("the refusal reads: %s", msg)
	if !strings.Contains(msg, "approle login") || !strings.Contains(msg, tn.opts.SecretIDFile) {
		t.Errorf("error %q does not say that the approle login failed and which files to check", msg)
	}
	if strings.Contains(msg, wrong) {
		t.Errorf("error %q shows the secret ID", msg)
	}
	assertNoCredentials(t, msg, tn)
}

func TestMissingCredentialFileIsNamed(t *testing.T) {
	v := sharedVault(t)
	tn := v.newTenant(t, renewedOften)
	tn.opts.SecretIDFile = filepath.Join(t.TempDir(), "absent")
	_, err := vault.Open(t.Context(), tn.opts)
	if err == nil || !strings.Contains(err.Error(), "secret-id-file") || !strings.Contains(err.Error(), "absent") {
		t.Fatalf("open with a missing secret ID file = %v, want an error naming it", err)
	}
}

func TestTokenFileLogsInWithoutRevokingAtClose(t *testing.T) {
	v := sharedVault(t)
	tn := v.newTenant(t, renewedOften)
	opts := tn.opts
	opts.RoleIDFile, opts.SecretIDFile = "", ""
	opts.TokenFile = writeFile(t, filepath.Join(t.TempDir(), "token"), v.root)

	s := mustOpen(t, opts)
	if err := s.Put(t.Context(), "via-token", []byte("x")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	v.admin(t, http.MethodGet, "auth/token/lookup-self", nil) // the root token still works
}

func TestKVVersion1MountIsRefused(t *testing.T) {
	v := sharedVault(t)
	mount := "kv1-" + randomID(4)
	v.admin(t, http.MethodPost, "sys/mounts/"+mount, map[string]any{"type": "kv", "options": map[string]string{"version": "1"}})
	opts := vault.Options{Address: v.addr, KVMount: mount, TokenFile: writeFile(t, filepath.Join(t.TempDir(), "token"), v.root)}
	_, err := vault.Open(t.Context(), opts)
	if err == nil || !strings.Contains(err.Error(), "not a kv version 2 mount") {
		t.Fatalf("open over a kv version 1 mount = %v, want a refusal", err)
	}
}

func TestOpenFromAURLUsesTheDefaultMounts(t *testing.T) {
	v := sharedVault(t)
	tokenFile := writeFile(t, filepath.Join(t.TempDir(), "token"), v.root)
	// The dev server has KV version 2 at secret/; transit/ is the default
	// Transit mount, which the shared server enables for the test run.
	v.admin(t, http.MethodGet, "sys/mounts/secret/tune", nil)
	opts, err := vault.ParseURL("vault://" + strings.TrimPrefix(v.addr, "http://") + "?tls=false&token-file=" + tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	s, err := vault.Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("open with the default mounts: %v", err)
	}
	defer s.Close()
	name := "defaults/" + randomID(4)
	if err := s.Put(t.Context(), name, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(t.Context(), name); err != nil {
		t.Fatal(err)
	}
}

func TestUnreachableVaultIsUnavailableAtOpen(t *testing.T) {
	opts := vault.Options{Address: "http://127.0.0.1:1", TokenFile: writeFile(t, filepath.Join(t.TempDir(), "token"), "s.unused")}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := vault.Open(ctx, opts)
	if !engine.IsCode(err, engine.EUnavailable) {
		t.Fatalf("open of an unreachable vault = %v, want EUnavailable", err)
	}
}

// assertNoCredentials fails if text holds the tenant's role or secret ID.
func assertNoCredentials(t *testing.T, text string, tn *tenant) {
	t.Helper()
	for _, file := range []string{tn.opts.RoleIDFile, tn.opts.SecretIDFile} {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if credential := strings.TrimSpace(string(raw)); strings.Contains(text, credential) {
			t.Errorf("%q shows the content of %s", text, filepath.Base(file))
		}
	}
}

func mustEncrypt(t testing.TB, s engine.Secrets, key string, plain []byte) []byte {
	t.Helper()
	ct, err := s.Encrypt(context.Background(), key, plain)
	if err != nil {
		t.Fatalf("encrypt: %v", err)
	}
	return ct
}

func mustDecrypt(t testing.TB, s engine.Secrets, key string, ct, want []byte) {
	t.Helper()
	got, err := s.Decrypt(context.Background(), key, ct)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("decrypt = %q, %v; want %q", got, err, want)
	}
}
