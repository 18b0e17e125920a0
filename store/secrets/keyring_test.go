package secrets_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/enginetest"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"github.com/hoodcloud/hoodcloud/store/secrets"
)

// appliance is a keyring over a bbolt store in a data dir, opened as the
// appliance opens them.
type appliance struct {
	store *bolt.Store
	keys  *secrets.Keyring
}

// start opens the store in dir and a keyring with opts over it; tune, when
// given, adjusts the keyring before Open. On error nothing stays open.
func start(t testing.TB, dir string, opts secrets.Options, tune ...func(*secrets.Keyring)) (*appliance, error) {
	t.Helper()
	store := bolt.New(filepath.Join(dir, "hoodcloud.db"))
	if err := store.Open(t.Context()); err != nil {
		t.Fatalf("open store: %v", err)
	}
	keys := secrets.New(store, opts)
	for _, f := range tune {
		f(keys)
	}
	if err := keys.Open(t.Context()); err != nil {
		store.Close()
		return nil, err
	}
	a := &appliance{store: store, keys: keys}
	t.Cleanup(a.stop)
	return a, nil
}

func mustStart(t testing.TB, dir string, opts secrets.Options, tune ...func(*secrets.Keyring)) *appliance {
	t.Helper()
	a, err := start(t, dir, opts, tune...)
	if err != nil {
		t.Fatalf("open keyring: %v", err)
	}
	return a
}

// stop closes the keyring, then the store; twice is harmless.
func (a *appliance) stop() {
	a.keys.Close()
	a.store.Close()
}

func inDataDir(dir string) secrets.Options { return secrets.Options{DataDir: dir} }

func TestKeyringConformance(t *testing.T) {
	enginetest.RunSecrets(t, func(t *testing.T) engine.Secrets {
		return mustStart(t, t.TempDir(), inDataDir(t.TempDir())).keys
	})
}

func TestFirstStartCreatesThePrivateMasterKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a := mustStart(t, dir, inDataDir(dir))
	info, err := os.Stat(filepath.Join(dir, secrets.MasterKeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 || info.Size() != 32 {
		t.Fatalf("master.key has mode %v and %d bytes, want 0600 and 32", info.Mode().Perm(), info.Size())
	}
	if id := a.keys.MasterKeyID(); len(id) != 16 {
		t.Fatalf("master key id %q, want 16 hex digits", id)
	}
}

// everything is what a keyring is asked to keep; check proves it was kept.
type everything struct {
	v1, v2, dek []byte
	dekPlain    []byte
}

func storeEverything(t *testing.T, s engine.Secrets) everything {
	t.Helper()
	ctx := t.Context()
	must(t, s.Put(ctx, "jwt/key", []byte("rsa key")))
	must(t, s.Put(ctx, "webhook", []byte("hmac")))
	var e everything
	var err error
	e.v1, err = s.Encrypt(ctx, "node-keys", []byte("version one"))
	must(t, err)
	_, err = s.RotateKey(ctx, "node-keys")
	must(t, err)
	e.v2, err = s.Encrypt(ctx, "node-keys", []byte("version two"))
	must(t, err)
	e.dekPlain, e.dek, err = s.GenerateDataKey(ctx, engine.KeyMaster)
	must(t, err)
	return e
}

func (e everything) check(t *testing.T, s engine.Secrets) {
	t.Helper()
	ctx := t.Context()
	wantSecret(t, s, "jwt/key", "rsa key")
	wantSecret(t, s, "webhook", "hmac")
	wantPlain(t, s, "node-keys", e.v1, "version one")
	wantPlain(t, s, "node-keys", e.v2, "version two")
	wantPlain(t, s, engine.KeyMaster, e.dek, string(e.dekPlain))
	info, err := s.KeyInfo(ctx, "node-keys")
	must(t, err)
	if info.Latest != 2 || info.MinDecryption != 1 {
		t.Fatalf("key info %+v, want latest 2, minimum 1", info)
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	first := mustStart(t, dir, inDataDir(dir))
	stored := storeEverything(t, first.keys)
	id := first.keys.MasterKeyID()
	first.stop()

	again := mustStart(t, dir, inDataDir(dir))
	stored.check(t, again.keys)
	if again.keys.MasterKeyID() != id {
		t.Fatal("the master key changed across a restart")
	}
	// Encryption continues on the latest version after a restart.
	ct, err := again.keys.Encrypt(t.Context(), "node-keys", []byte("after"))
	must(t, err)
	if v := secrets.CiphertextVersion(ct); v != 2 {
		t.Fatalf("encrypted with version %d after restart, want 2", v)
	}
}

func TestMissingMasterKeyWithDataIsRefused(t *testing.T) {
	dir := t.TempDir()
	first := mustStart(t, dir, inDataDir(dir))
	must(t, first.keys.Put(t.Context(), "jwt/key", []byte("rsa key")))
	first.stop()
	keyFile := filepath.Join(dir, secrets.MasterKeyFileName)
	must(t, os.Remove(keyFile))

	_, err := start(t, dir, inDataDir(dir))
	if !errors.Is(err, secrets.ErrMasterKeyMissing) {
		t.Fatalf("open without the master key = %v, want ErrMasterKeyMissing", err)
	}
	if !strings.Contains(err.Error(), keyFile) || !strings.Contains(err.Error(), "restore") {
		t.Fatalf("error %q should name the file and say to restore it", err)
	}
	if _, err := os.Stat(keyFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused start must not create a new master key")
	}
	t.Logf("operator sees: %v", err)
}

func TestMasterKeyFromOptions(t *testing.T) {
	raw := make([]byte, 32)
	rand.Read(raw)
	writeKey := func(t *testing.T, content []byte) string {
		path := filepath.Join(t.TempDir(), "hoodcloud-master.key")
		must(t, os.WriteFile(path, content, 0o600))
		return path
	}
	tests := []struct {
		name string
		opts func(t *testing.T) secrets.Options
	}{
		{"environment, standard base64", func(*testing.T) secrets.Options {
			return secrets.Options{MasterKey: base64.StdEncoding.EncodeToString(raw)}
		}},
		{"environment, unpadded URL base64 with a newline", func(*testing.T) secrets.Options {
			return secrets.Options{MasterKey: base64.RawURLEncoding.EncodeToString(raw) + "\n"}
		}},
		{"file of raw bytes", func(t *testing.T) secrets.Options {
			return secrets.Options{MasterKeyFile: writeKey(t, raw)}
		}},
		{"file of base64", func(t *testing.T) secrets.Options {
			return secrets.Options{MasterKeyFile: writeKey(t, []byte(base64.StdEncoding.EncodeToString(raw)+"\n"))}
		}},
	}
	var ids []string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := tc.opts(t)
			opts.DataDir = dir // the explicit key wins over the data dir's file
			first := mustStart(t, dir, opts)
			stored := storeEverything(t, first.keys)
			ids = append(ids, first.keys.MasterKeyID())
			first.stop()
			stored.check(t, mustStart(t, dir, opts).keys)
			if _, err := os.Stat(filepath.Join(dir, secrets.MasterKeyFileName)); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("a keyring given its master key wrote master.key into the data dir")
			}
		})
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("the same key in four encodings has ids %q", ids)
		}
	}
}

func TestMalformedMasterKeyIsRefused(t *testing.T) {
	for name, key := range map[string]string{
		"not base64":  "not a key!",
		"16 bytes":    base64.StdEncoding.EncodeToString(make([]byte, 16)),
		"33 bytes":    base64.StdEncoding.EncodeToString(make([]byte, 33)),
		"raw 32 text": strings.Repeat("k", 32), // 32 characters are not base64 of 32 bytes
	} {
		t.Run(name, func(t *testing.T) {
			_, err := start(t, t.TempDir(), secrets.Options{MasterKey: key})
			if err == nil || !strings.Contains(err.Error(), "base64") {
				t.Fatalf("open = %v, want a refusal that explains the encoding", err)
			}
			if strings.Contains(err.Error(), key) {
				t.Fatalf("error %q shows the supplied key", err)
			}
		})
	}
}

func TestWrongMasterKeyIsRefusedClearly(t *testing.T) {
	dir := t.TempDir()
	first := mustStart(t, dir, inDataDir(dir))
	must(t, first.keys.Put(t.Context(), "jwt/key", []byte("rsa key")))
	rightID := first.keys.MasterKeyID()
	first.stop()

	other := make([]byte, 32)
	rand.Read(other)
	_, err := start(t, dir, secrets.Options{MasterKey: base64.StdEncoding.EncodeToString(other)})
	if !errors.Is(err, secrets.ErrMasterKeyMismatch) {
		t.Fatalf("open with another master key = %v, want ErrMasterKeyMismatch", err)
	}
	if !strings.Contains(err.Error(), rightID) {
		t.Fatalf("error %q should name the key the data needs (%s)", err, rightID)
	}
	t.Logf("operator sees: %v", err)
}

func TestStoredBlobsAreBoundToTheirNames(t *testing.T) {
	dir := t.TempDir()
	a := mustStart(t, dir, inDataDir(dir))
	ctx := t.Context()
	must(t, a.keys.Put(ctx, "alice", []byte("alice's secret")))
	must(t, a.keys.Put(ctx, "bob", []byte("bob's secret")))
	alice, err := a.store.GetSecret(ctx, "keyring/kv/alice")
	must(t, err)
	if bytes.Contains(alice, []byte("alice's secret")) {
		t.Fatal("the store holds the secret in clear")
	}
	must(t, a.store.PutSecret(ctx, "keyring/kv/bob", alice)) // an attacker swaps blobs

	got, err := a.keys.Get(ctx, "bob")
	if err == nil || got != nil {
		t.Fatalf("Get of a swapped blob = %q, %v; want an integrity error", got, err)
	}
	if engine.ErrorCode(err) != engine.EInternal || strings.Contains(err.Error(), "alice's secret") {
		t.Fatalf("error %v: want EInternal without contents", err)
	}
}

// TestEncryptionLimitRotatesTheKey uses a limit of 10 encryptions per
// version: 25 encryptions take versions 1, 2 and 3.
func TestEncryptionLimitRotatesTheKey(t *testing.T) {
	dir := t.TempDir()
	a := mustStart(t, dir, secrets.Options{DataDir: dir, EncryptionLimit: 10})
	perVersion := map[int]int{}
	var cts [][]byte
	for range 25 {
		ct, err := a.keys.Encrypt(t.Context(), "busy", []byte("x"))
		must(t, err)
		perVersion[secrets.CiphertextVersion(ct)]++
		cts = append(cts, ct)
	}
	if perVersion[1] != 10 || perVersion[2] != 10 || perVersion[3] != 5 {
		t.Fatalf("encryptions per version %v, want 10, 10, 5", perVersion)
	}
	for _, ct := range cts {
		wantPlain(t, a.keys, "busy", ct, "x")
	}
}

// TestEncryptionCountSurvivesRestart: with a limit of 32 the keyring
// reserves counts two at a time. Three encryptions reserve four; after a
// restart the unused one counts as spent, so only 28 more use version 1.
func TestEncryptionCountSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	opts := secrets.Options{DataDir: dir, EncryptionLimit: 32}
	first := mustStart(t, dir, opts)
	for range 3 {
		_, err := first.keys.Encrypt(t.Context(), "counted", []byte("x"))
		must(t, err)
	}
	first.stop()

	again := mustStart(t, dir, opts)
	onV1 := 0
	for {
		ct, err := again.keys.Encrypt(t.Context(), "counted", []byte("x"))
		must(t, err)
		if secrets.CiphertextVersion(ct) != 1 {
			break
		}
		onV1++
	}
	if onV1 != 28 {
		t.Fatalf("%d encryptions used version 1 after the restart, want 28 (32 - 3 done - 1 reserved)", onV1)
	}
}

// TestNoRepeatedNonce draws a million nonces from one key version.
func TestNoRepeatedNonce(t *testing.T) {
	if testing.Short() {
		t.Skip("a million encryptions")
	}
	dir := t.TempDir()
	a := mustStart(t, dir, inDataDir(dir))
	const n = 1_000_000
	seen := make(map[[12]byte]struct{}, n)
	plain := []byte("sixteen bytes..!")
	began := time.Now()
	for i := range n {
		ct, err := a.keys.Encrypt(t.Context(), "nonces", plain)
		if err != nil {
			t.Fatal(err)
		}
		nonce := secrets.CiphertextNonce(ct)
		if _, dup := seen[nonce]; dup {
			t.Fatalf("encryption %d repeated a nonce", i)
		}
		seen[nonce] = struct{}{}
	}
	t.Logf("%d encryptions, %d distinct nonces, in %v", n, len(seen), time.Since(began))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantSecret(t testing.TB, s engine.Secrets, name, want string) {
	t.Helper()
	got, err := s.Get(t.Context(), name)
	must(t, err)
	if string(got) != want {
		t.Fatalf("secret %s = %q, want %q", name, got, want)
	}
}

func wantPlain(t testing.TB, s engine.Secrets, key string, ct []byte, want string) {
	t.Helper()
	got, err := s.Decrypt(t.Context(), key, ct)
	must(t, err)
	if string(got) != want {
		t.Fatalf("decrypt with %s = %q, want %q", key, got, want)
	}
}
