package vault_test

import (
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// BenchmarkVault measures the named-key operations against a dev server
// over loopback HTTP, under the names of BenchmarkKeyring for comparison:
//
//	go test -run '^$' -bench BenchmarkVault -benchmem ./store/vault/
func BenchmarkVault(b *testing.B) {
	v := sharedVault(b)
	keys := mustOpen(b, v.newTenant(b, tokenLife{ttl: 10 * time.Minute}).opts)
	ctx := b.Context()
	plain := make([]byte, 64) // a chain key or a small secret
	ct := mustEncrypt(b, keys, "bench", plain)
	if _, _, err := keys.GenerateDataKey(ctx, engine.KeyMaster); err != nil {
		b.Fatal(err)
	}

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
