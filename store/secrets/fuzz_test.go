package secrets_test

import (
	"context"
	"encoding/base64"
	"math/rand/v2"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/store/secrets"
)

// fuzzKeyring is a keyring whose master key and random source are fixed, so
// the ciphertexts it makes, and those committed in testdata/fuzz, are the
// same on every run. It returns the valid ciphertexts of key "fuzz" (two of
// version 1, one of version 2) with their plaintexts.
func fuzzKeyring(tb testing.TB) (*secrets.Keyring, map[string]string) {
	master := base64.StdEncoding.EncodeToString([]byte("fuzzing master key, not a secret"))
	a := mustStart(tb, tb.TempDir(), secrets.Options{MasterKey: master}, func(k *secrets.Keyring) {
		secrets.SetRandom(k, rand.NewChaCha8([32]byte{'f', 'u', 'z', 'z'}))
	})
	ctx := context.Background()
	valid := map[string]string{}
	encrypt := func(plain string) {
		ct, err := a.keys.Encrypt(ctx, "fuzz", []byte(plain))
		must(tb, err)
		valid[string(ct)] = plain
	}
	encrypt("validator key 1")
	encrypt("")
	_, err := a.keys.RotateKey(ctx, "fuzz")
	must(tb, err)
	encrypt("validator key 2")
	return a.keys, valid
}

// FuzzDecrypt feeds the ciphertext decoder arbitrary bytes: it must never
// panic, must refuse everything but the ciphertexts it made with EInvalid,
// and must open those to their plaintext.
func FuzzDecrypt(f *testing.F) {
	keys, valid := fuzzKeyring(f)
	for ct := range valid {
		f.Add([]byte(ct))
	}
	f.Fuzz(func(t *testing.T, ct []byte) {
		plain, err := keys.Decrypt(context.Background(), "fuzz", ct)
		want, isValid := valid[string(ct)]
		switch {
		case isValid:
			if err != nil || string(plain) != want {
				t.Fatalf("a valid ciphertext gave %q, %v; want %q", plain, err, want)
			}
		case err == nil:
			t.Fatalf("a ciphertext it never made decrypted to %q", plain)
		case engine.ErrorCode(err) != engine.EInvalid || plain != nil:
			t.Fatalf("refused with %v (code %q) and %q; want EInvalid and nothing", err, engine.ErrorCode(err), plain)
		}
	})
}
