package keys_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
	"golang.org/x/crypto/nacl/box"
)

// fixedKey is the sealed-box key of the committed fuzz seeds
// (testdata/fuzz/FuzzOpenSealedBox): 32 bytes of 0x42.
func fixedKey(tb testing.TB) *ecdh.PrivateKey {
	tb.Helper()
	k, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{0x42}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// seal is what a client does, with x/crypto's reference box: a fresh
// ephemeral key, then ephemeral public key || nonce || box.
func seal(tb testing.TB, to *ecdh.PublicKey, msg []byte) []byte {
	tb.Helper()
	ephPub, ephPriv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	var nonce [24]byte
	rand.Read(nonce[:])
	var peer [32]byte
	copy(peer[:], to.Bytes())
	out := append(append([]byte{}, ephPub[:]...), nonce[:]...)
	return box.Seal(out, msg, &nonce, &peer, ephPriv)
}

func TestOpenSealedBox(t *testing.T) {
	key := fixedKey(t)
	other, _ := ecdh.X25519().GenerateKey(rand.Reader)
	msg := []byte("validator key material")
	valid := seal(t, key.PublicKey(), msg)
	flip := func(i int) []byte { b := bytes.Clone(valid); b[i] ^= 1; return b }
	lowOrder := append(make([]byte, 32), valid[32:]...) // the all-zero point
	tests := []struct {
		name   string
		sealed []byte
		want   []byte // nil: EInvalid
	}{
		{"a box sealed to the key opens", valid, msg},
		{"an empty message opens", seal(t, key.PublicKey(), nil), []byte{}},
		{"a flipped ciphertext byte", flip(len(valid) - 1), nil},
		{"a flipped tag byte", flip(56), nil},
		{"a flipped nonce byte", flip(40), nil},
		{"a flipped ephemeral key byte", flip(3), nil},
		{"one byte short of the overhead", valid[:keys.SealedBoxOverhead-1], nil},
		{"empty", nil, nil},
		{"sealed to another key", seal(t, other.PublicKey(), msg), nil},
		{"a low-order ephemeral key", lowOrder, nil},
		{"longer than a secret may be", seal(t, key.PublicKey(), make([]byte, keys.MaxSealedSecretBytes+1)), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keys.OpenSealedBox(key, tt.sealed)
			if tt.want == nil {
				if !engine.IsCode(err, engine.EInvalid) {
					t.Fatalf("err = %v, want invalid", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestOpenSealedBoxNeedsAKey(t *testing.T) {
	if _, err := keys.OpenSealedBox(nil, make([]byte, 100)); !engine.IsCode(err, engine.EInternal) {
		t.Fatalf("err = %v, want internal", err)
	}
}

// FuzzOpenSealedBox: whatever arrives, the opener answers EInvalid or a
// plaintext exactly the overhead shorter, never panics, and a box sealed
// to the key around any message opens to that message.
func FuzzOpenSealedBox(f *testing.F) {
	key := fixedKey(f)
	f.Add(seal(f, key.PublicKey(), []byte("seed")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, sealed []byte) {
		plain, err := keys.OpenSealedBox(key, sealed)
		switch {
		case err != nil && !engine.IsCode(err, engine.EInvalid):
			t.Fatalf("err = %v, want invalid", err)
		case err == nil && len(plain) != len(sealed)-keys.SealedBoxOverhead:
			t.Fatalf("plaintext of %d bytes from a box of %d", len(plain), len(sealed))
		}
		if len(sealed) > keys.MaxSealedSecretBytes {
			return
		}
		got, err := keys.OpenSealedBox(key, seal(t, key.PublicKey(), sealed))
		if err != nil || !bytes.Equal(got, sealed) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
