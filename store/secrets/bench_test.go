package secrets_test

import (
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
)

// BenchmarkKeyring measures the named-key operations over a bbolt store:
//
//	go test -run '^$' -bench BenchmarkKeyring -benchmem ./store/secrets/
func BenchmarkKeyring(b *testing.B) {
	dir := b.TempDir()
	keys := mustStart(b, dir, inDataDir(dir)).keys
	ctx := b.Context()
	plain := make([]byte, 64) // a chain key or a small secret
	ct, err := keys.Encrypt(ctx, "bench", plain)
	must(b, err)

	b.Run("Encrypt", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		for b.Loop() {
			if _, err := keys.Encrypt(ctx, "bench", plain); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Decrypt", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		for b.Loop() {
			if _, err := keys.Decrypt(ctx, "bench", ct); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GenerateDataKey", func(b *testing.B) {
		for b.Loop() {
			dek, _, err := keys.GenerateDataKey(ctx, engine.KeyMaster)
			if err != nil {
				b.Fatal(err)
			}
			engine.Zero(dek)
		}
	})
}
