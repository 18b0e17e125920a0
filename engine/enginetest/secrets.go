package enginetest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
)

// RunSecrets is the conformance suite of engine.Secrets. Every test gets
// its own Secrets from open, which must hold no secret and no key and is
// closed by the opener's cleanup; the tests run in parallel.
//
// Besides the contract written on each method, every adapter must hold to:
//   - Encrypting the same plaintext twice gives different ciphertexts.
//   - Any change to a ciphertext, flipping a bit of any of its bytes,
//     cutting it short or extending it, makes Decrypt return EInvalid: never
//     a plaintext. (An adapter whose backend decodes text leniently must
//     refuse non-canonical encodings itself.)
//   - Close may be called twice; every other method returns EUnavailable
//     after it.
func RunSecrets(t *testing.T, open func(t *testing.T) engine.Secrets) {
	for _, tc := range secretsTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, open)
		})
	}
}

var secretsTests = []struct {
	name string
	run  func(t *testing.T, open func(t *testing.T) engine.Secrets)
}{
	{"KVRoundTrip", withSecrets(testKVRoundTrip)},
	{"KVValuesAreCopies", withSecrets(testKVCopies)},
	{"KVCreateOnce", withSecrets(testKVCreate)},
	{"KVCreateConcurrent", withSecrets(testKVCreateConcurrent)},
	{"InvalidNames", withSecrets(testSecretNames)},
	{"EncryptRoundTrip", withSecrets(testEncryptRoundTrip)},
	{"TamperedCiphertext", withSecrets(testTampered)},
	{"TruncatedOrExtendedCiphertext", withSecrets(testTruncated)},
	{"WrongOrMissingKey", withSecrets(testWrongKey)},
	{"UnknownKeyVersion", testUnknownVersion},
	{"RotationKeepsOldVersions", withSecrets(testRotation)},
	{"MinDecryptionVersion", withSecrets(testMinDecryption)},
	{"RewrapMovesToLatest", withSecrets(testRewrap)},
	{"DataKeys", withSecrets(testDataKeys)},
	{"MissingKeys", withSecrets(testMissingKeys)},
	{"ConcurrentUseDuringRotation", withSecrets(testSecretsConcurrent)},
	{"Ping", withSecrets(func(t *testing.T, s engine.Secrets) { secOK(t, s.Ping(t.Context())) })},
	{"UnavailableAfterClose", withSecrets(testAfterClose)},
}

func withSecrets(run func(t *testing.T, s engine.Secrets)) func(*testing.T, func(*testing.T) engine.Secrets) {
	return func(t *testing.T, open func(*testing.T) engine.Secrets) { run(t, open(t)) }
}

func testKVRoundTrip(t *testing.T, s engine.Secrets) {
	ctx := t.Context()
	_, err := s.Get(ctx, "jwt/key")
	secCode(t, err, engine.ENotFound)

	secOK(t, s.Put(ctx, "jwt/key", []byte("first")))
	secGet(t, s, "jwt/key", "first")
	secOK(t, s.Put(ctx, "jwt/key", []byte("second"))) // overwrite
	secGet(t, s, "jwt/key", "second")
	secOK(t, s.Put(ctx, "jwt/other", []byte{})) // empty values are values
	secGet(t, s, "jwt/other", "")
	secGet(t, s, "jwt/key", "second")

	secOK(t, s.Delete(ctx, "jwt/key"))
	_, err = s.Get(ctx, "jwt/key")
	secCode(t, err, engine.ENotFound)
	secOK(t, s.Delete(ctx, "jwt/key")) // twice
	secOK(t, s.Delete(ctx, "never-stored"))
	secGet(t, s, "jwt/other", "")
}

func testKVCopies(t *testing.T, s engine.Secrets) {
	ctx := t.Context()
	value := []byte("hunter2")
	secOK(t, s.Put(ctx, "a", value))
	engine.Zero(value) // the caller zeroes its copy after the call
	got, err := s.Get(ctx, "a")
	secOK(t, err)
	engine.Zero(got)
	secGet(t, s, "a", "hunter2")
}

func testKVCreate(t *testing.T, s engine.Secrets) {
	ctx := t.Context()
	secOK(t, s.Create(ctx, "boot/token", []byte("one")))
	secCode(t, s.Create(ctx, "boot/token", []byte("two")), engine.EConflict)
	secGet(t, s, "boot/token", "one")
	secOK(t, s.Delete(ctx, "boot/token"))
	secOK(t, s.Create(ctx, "boot/token", []byte("three")))
	secGet(t, s, "boot/token", "three")
}

func testKVCreateConcurrent(t *testing.T, s engine.Secrets) {
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = s.Create(t.Context(), "race", fmt.Appendf(nil, "v%d", i)) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch engine.ErrorCode(err) {
		case "":
			if winner >= 0 {
				t.Fatalf("creators %d and %d both succeeded", winner, i)
			}
			winner = i
		case engine.EConflict:
		default:
			t.Fatalf("creator %d: %v, want success or EConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no creator succeeded")
	}
	secGet(t, s, "race", fmt.Sprintf("v%d", winner))
}

func testSecretNames(t *testing.T, s engine.Secrets) {
	ctx := t.Context()
	for _, name := range []string{"", "/a", "a/", "a//b", "../etc/passwd", "a/./b", "white space", "nul\x00"} {
		secCode(t, s.Put(ctx, name, []byte("x")), engine.EInvalid)
		_, err := s.Get(ctx, name)
		secCode(t, err, engine.EInvalid)
	}
	for _, key := range []string{"", "a/b", "-lead", strings.Repeat("k", 129)} {
		_, err := s.Encrypt(ctx, key, []byte("x"))
		secCode(t, err, engine.EInvalid)
	}
}

func testEncryptRoundTrip(t *testing.T, s engine.Secrets) {
	ctx := t.Context()
	for _, size := range []int{0, 1, 31, 32, 1000, 64 << 10} {
		plain := bytes.Repeat([]byte{'p'}, size)
		ct := secEncrypt(t, s, "round", plain)
		again := secEncrypt(t, s, "round", plain)
		if bytes.Equal(ct, again) {
			t.Fatalf("two encryptions of %d bytes gave the same ciphertext", size)
		}
		if size >= 16 && bytes.Contains(ct, plain[:16]) {
			t.Fatalf("the ciphertext of %d bytes shows the plaintext", size)
		}
		secDecrypts(t, s, "round", ct, plain)
		secDecrypts(t, s, "round", again, plain)
	}
	_, err := s.Encrypt(ctx, "round", nil)
	secOK(t, err)
}

func testTampered(t *testing.T, s engine.Secrets) {
	plain := []byte("validator key: do not leak")
	ct := secEncrypt(t, s, "tamper", plain)
	for i := range ct {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(ct)
			bad[i] ^= mask
			secRefused(t, s, "tamper", bad, plain, fmt.Sprintf("byte %d of %d flipped by %#x", i, len(ct), mask))
		}
	}
	secDecrypts(t, s, "tamper", ct, plain) // the original still opens
}

func testTruncated(t *testing.T, s engine.Secrets) {
	plain := []byte("validator key: do not leak")
	ct := secEncrypt(t, s, "trunc", plain)
	for n := range len(ct) {
		secRefused(t, s, "trunc", ct[:n:n], plain, fmt.Sprintf("cut to %d of %d bytes", n, len(ct)))
	}
	for _, extra := range []string{"\x00", "A", "=="} {
		secRefused(t, s, "trunc", append(bytes.Clone(ct), extra...), plain, fmt.Sprintf("extended by %q", extra))
	}
}

func testWrongKey(t *testing.T, s engine.Secrets) {
	plain := []byte("secret")
	ct := secEncrypt(t, s, "key-a", plain)
	secEncrypt(t, s, "key-b", plain)
	secRefused(t, s, "key-b", ct, plain, "made by another key")
	secRefused(t, s, "never-created", ct, plain, "for a key that does not exist")
}

// testUnknownVersion makes a version-2 ciphertext in a second, independent
// backend, so that no knowledge of the ciphertext format is needed.
func testUnknownVersion(t *testing.T, open func(*testing.T) engine.Secrets) {
	s, other := open(t), open(t)
	plain := []byte("secret")
	secEncrypt(t, s, "versioned", plain)
	secEncrypt(t, other, "versioned", plain)
	if _, err := other.RotateKey(t.Context(), "versioned"); err != nil {
		t.Fatal(err)
	}
	ct := secEncrypt(t, other, "versioned", plain)
	secRefused(t, s, "versioned", ct, plain, "of version 2 where the key has version 1 only")
}

func testRotation(t *testing.T, s engine.Secrets) {
	ctx := t.Context()
	v1 := secEncrypt(t, s, "rot", []byte("one"))
	secKeyInfo(t, s, "rot", 1, 1)
	for want := 2; want <= 3; want++ {
		got, err := s.RotateKey(ctx, "rot")
		secOK(t, err)
		if got != want {
			t.Fatalf("RotateKey returned version %d, want %d", got, want)
		}
	}
	secKeyInfo(t, s, "rot", 3, 1)
	v3 := secEncrypt(t, s, "rot", []byte("three"))
	secDecrypts(t, s, "rot", v1, []byte("one"))
	secDecrypts(t, s, "rot", v3, []byte("three"))

	// Only a version-3 ciphertext survives a minimum of 3: new encryptions use it.
	secOK(t, s.SetMinDecryptionVersion(ctx, "rot", 3))
	secDecrypts(t, s, "rot", v3, []byte("three"))
	secRefused(t, s, "rot", v1, []byte("one"), "of version 1 below the minimum 3")
}

func testMinDecryption(t *testing.T, s engine.Secrets) {
	ctx := t.Context()
	v1 := secEncrypt(t, s, "min", []byte("one"))
	_, err := s.RotateKey(ctx, "min")
	secOK(t, err)
	v2 := secEncrypt(t, s, "min", []byte("two"))

	secOK(t, s.SetMinDecryptionVersion(ctx, "min", 2))
	secKeyInfo(t, s, "min", 2, 2)
	secRefused(t, s, "min", v1, []byte("one"), "of version 1 below the minimum 2")
	_, err = s.Rewrap(ctx, "min", v1)
	secCode(t, err, engine.EInvalid)
	secDecrypts(t, s, "min", v2, []byte("two"))

	secOK(t, s.SetMinDecryptionVersion(ctx, "min", 1)) // lowering re-enables
	secDecrypts(t, s, "min", v1, []byte("one"))
	for _, bad := range []int{0, -1, 3} {
		secCode(t, s.SetMinDecryptionVersion(ctx, "min", bad), engine.EInvalid)
	}
	secKeyInfo(t, s, "min", 2, 1)
}

func testRewrap(t *testing.T, s engine.Secrets) {
	ctx := t.Context()
	plain := []byte("node DEK")
	old := secEncrypt(t, s, "wrap", plain)
	for range 2 {
		_, err := s.RotateKey(ctx, "wrap")
		secOK(t, err)
	}
	rewrapped, err := s.Rewrap(ctx, "wrap", old)
	secOK(t, err)
	if bytes.Contains(rewrapped, plain) {
		t.Fatal("the rewrapped ciphertext shows the plaintext")
	}
	secOK(t, s.SetMinDecryptionVersion(ctx, "wrap", 3))
	secDecrypts(t, s, "wrap", rewrapped, plain)
	secRefused(t, s, "wrap", old, plain, "the version-1 original below the minimum 3")

	bad := bytes.Clone(rewrapped)
	bad[len(bad)/2] ^= 1
	_, err = s.Rewrap(ctx, "wrap", bad)
	secCode(t, err, engine.EInvalid)
}

func testDataKeys(t *testing.T, s engine.Secrets) {
	ctx := t.Context()
	seen := map[string]bool{}
	for range 3 {
		plain, wrapped, err := s.GenerateDataKey(ctx, engine.KeyMaster)
		secOK(t, err)
		if len(plain) != engine.DataKeySize || bytes.Equal(plain, make([]byte, engine.DataKeySize)) {
			t.Fatalf("data key of %d bytes, all zero: %v; want %d random bytes", len(plain), bytes.Equal(plain, make([]byte, len(plain))), engine.DataKeySize)
		}
		if bytes.Contains(wrapped, plain) {
			t.Fatal("the wrapped data key shows the key")
		}
		if seen[string(plain)] {
			t.Fatal("GenerateDataKey repeated a key")
		}
		seen[string(plain)] = true
		secDecrypts(t, s, engine.KeyMaster, wrapped, plain)
		engine.Zero(plain)
	}
}

func testMissingKeys(t *testing.T, s engine.Secrets) {
	ctx := t.Context()
	_, err := s.RotateKey(ctx, "absent")
	secCode(t, err, engine.ENotFound)
	_, err = s.KeyInfo(ctx, "absent")
	secCode(t, err, engine.ENotFound)
	secCode(t, s.SetMinDecryptionVersion(ctx, "absent", 1), engine.ENotFound)
	_, err = s.KeyInfo(ctx, "absent") // none of the above created it
	secCode(t, err, engine.ENotFound)
}

func testSecretsConcurrent(t *testing.T, s engine.Secrets) {
	secEncrypt(t, s, "busy", nil)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				plain := fmt.Appendf(nil, "worker %d message %d", w, i)
				ct, err := s.Encrypt(t.Context(), "busy", plain)
				if err != nil {
					t.Errorf("encrypt: %v", err)
					return
				}
				got, err := s.Decrypt(t.Context(), "busy", ct)
				if err != nil || !bytes.Equal(got, plain) {
					t.Errorf("decrypt: %q, %v", got, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 3 {
			if _, err := s.RotateKey(t.Context(), "busy"); err != nil {
				t.Errorf("rotate: %v", err)
			}
		}
	})
	wg.Wait()
	secKeyInfo(t, s, "busy", 4, 1)
}

func testAfterClose(t *testing.T, s engine.Secrets) {
	ctx := context.Background()
	ct := secEncrypt(t, s, "closing", []byte("x"))
	secOK(t, s.Put(ctx, "kept", []byte("x")))
	secOK(t, s.Close())
	secOK(t, s.Close())
	_, err := s.Get(ctx, "kept")
	secCode(t, err, engine.EUnavailable)
	_, err = s.Encrypt(ctx, "closing", []byte("x"))
	secCode(t, err, engine.EUnavailable)
	_, err = s.Decrypt(ctx, "closing", ct)
	secCode(t, err, engine.EUnavailable)
	secCode(t, s.Ping(ctx), engine.EUnavailable)
}

func secOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func secCode(t testing.TB, err error, want engine.Code) {
	t.Helper()
	if got := engine.ErrorCode(err); got != want {
		t.Fatalf("error = %v (code %q), want code %q", err, got, want)
	}
}

func secGet(t testing.TB, s engine.Secrets, name, want string) {
	t.Helper()
	got, err := s.Get(context.Background(), name)
	secOK(t, err)
	if string(got) != want {
		t.Fatalf("secret %s = %q, want %q", name, got, want)
	}
}

func secEncrypt(t testing.TB, s engine.Secrets, key string, plain []byte) []byte {
	t.Helper()
	ct, err := s.Encrypt(context.Background(), key, plain)
	secOK(t, err)
	return ct
}

func secDecrypts(t testing.TB, s engine.Secrets, key string, ct, want []byte) {
	t.Helper()
	got, err := s.Decrypt(context.Background(), key, ct)
	secOK(t, err)
	if !bytes.Equal(got, want) {
		t.Fatalf("decrypt = %q, want %q", got, want)
	}
}

// secRefused checks that ct does not decrypt and that the error shows
// neither the plaintext nor the ciphertext.
func secRefused(t testing.TB, s engine.Secrets, key string, ct, plain []byte, what string) {
	t.Helper()
	got, err := s.Decrypt(context.Background(), key, ct)
	if engine.ErrorCode(err) != engine.EInvalid {
		t.Fatalf("decrypt of a ciphertext %s = %q, %v; want EInvalid", what, got, err)
	}
	if got != nil {
		t.Fatalf("decrypt of a ciphertext %s returned %q beside its error", what, got)
	}
	secNoLeak(t, err, plain, ct)
}

// secNoLeak fails if err's text holds any of secrets, raw, hex or base64.
func secNoLeak(t testing.TB, err error, secrets ...[]byte) {
	t.Helper()
	msg := err.Error()
	for _, b := range secrets {
		if len(b) < 4 {
			continue
		}
		for _, form := range []string{string(b), hex.EncodeToString(b), base64.StdEncoding.EncodeToString(b)[:4*(len(b)/3)]} {
			if len(form) >= 6 && strings.Contains(msg, form) {
				t.Fatalf("error %q shows secret bytes", msg)
			}
		}
	}
}

func secKeyInfo(t testing.TB, s engine.Secrets, key string, latest, minDecryption int) {
	t.Helper()
	info, err := s.KeyInfo(context.Background(), key)
	secOK(t, err)
	want := engine.KeyInfo{Name: key, Latest: latest, MinDecryption: minDecryption}
	if *info != want {
		t.Fatalf("key info = %+v, want %+v", *info, want)
	}
}
