package keys_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"strings"
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

// seal is what a client of the explicit-nonce format does, with x/crypto's
// reference box: a fresh ephemeral key, then ephemeral public key || nonce
// || box.
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

// sealAnonymous is what a libsodium client does (crypto_box_seal, PyNaCl
// SealedBox): ephemeral public key || box, the nonce derived.
func sealAnonymous(tb testing.TB, to *ecdh.PublicKey, msg []byte) []byte {
	tb.Helper()
	var peer [32]byte
	copy(peer[:], to.Bytes())
	out, err := box.SealAnonymous(nil, msg, &peer, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestOpenStandardSealedBox: a crypto_box_seal box opens; its derived
// nonce is libsodium's, so a box whose ephemeral key or tag was altered,
// or that was sealed to another key, does not.
func TestOpenStandardSealedBox(t *testing.T) {
	key := fixedKey(t)
	other, _ := ecdh.X25519().GenerateKey(rand.Reader)
	msg := []byte("validator key material")
	valid := sealAnonymous(t, key.PublicKey(), msg)
	flip := func(i int) []byte { b := bytes.Clone(valid); b[i] ^= 1; return b }
	tests := []struct {
		name   string
		sealed []byte
		want   []byte // nil: EInvalid
	}{
		{"a box sealed to the key opens", valid, msg},
		{"an empty message opens (48 bytes)", sealAnonymous(t, key.PublicKey(), nil), []byte{}},
		{"a one-byte message opens (49 bytes, shorter than the explicit-nonce overhead)", sealAnonymous(t, key.PublicKey(), []byte{7}), []byte{7}},
		{"the largest secret opens", sealAnonymous(t, key.PublicKey(), make([]byte, keys.MaxSealedSecretBytes)), make([]byte, keys.MaxSealedSecretBytes)},
		{"a flipped ciphertext byte", flip(len(valid) - 1), nil},
		{"a flipped tag byte", flip(40), nil},
		{"a flipped ephemeral key byte (the nonce derives from it)", flip(3), nil},
		{"one byte short of the overhead", valid[:keys.StandardSealedBoxOverhead-1], nil},
		{"sealed to another key", sealAnonymous(t, other.PublicKey(), msg), nil},
		{"longer than a secret may be", sealAnonymous(t, key.PublicKey(), make([]byte, keys.MaxSealedSecretBytes+1)), nil},
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
				t.Fatalf("got %d bytes, %v; want %d bytes", len(got), err, len(tt.want))
			}
		})
	}
}

// TestOpenSealedBoxErrorsNameTheProblemNotTheContent: garbage is refused
// with a message saying what a sealed box must be, holding none of it.
func TestOpenSealedBoxErrorsNameTheProblemNotTheContent(t *testing.T) {
	key := fixedKey(t)
	garbage := bytes.Repeat([]byte("SECRET-GARBAGE!"), 8)
	for name, tt := range map[string]struct {
		sealed []byte
		want   string
	}{
		"too short":  {[]byte("SECRET"), "a sealed box is 48 to"},
		"not a box":  {garbage, "does not open with this appliance's key"},
		"wrong type": {bytes.Repeat([]byte{0xff}, 100), "crypto_box_seal"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := keys.OpenSealedBox(key, tt.sealed)
			if !engine.IsCode(err, engine.EInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want invalid naming %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("the error shows the content: %v", err)
			}
		})
	}
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
// plaintext exactly one format's overhead shorter, never panics, and a box
// sealed to the key around any message, in either format, opens to that
// message.
func FuzzOpenSealedBox(f *testing.F) {
	key := fixedKey(f)
	f.Add(seal(f, key.PublicKey(), []byte("seed")))
	f.Add(sealAnonymous(f, key.PublicKey(), []byte("seed")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, sealed []byte) {
		plain, err := keys.OpenSealedBox(key, sealed)
		switch {
		case err != nil && !engine.IsCode(err, engine.EInvalid):
			t.Fatalf("err = %v, want invalid", err)
		case err == nil && len(plain) != len(sealed)-keys.SealedBoxOverhead && len(plain) != len(sealed)-keys.StandardSealedBoxOverhead:
			t.Fatalf("plaintext of %d bytes from a box of %d", len(plain), len(sealed))
		}
		if len(sealed) > keys.MaxSealedSecretBytes {
			return
		}
		for _, seal := range []func(testing.TB, *ecdh.PublicKey, []byte) []byte{seal, sealAnonymous} {
			got, err := keys.OpenSealedBox(key, seal(t, key.PublicKey(), sealed))
			if err != nil || !bytes.Equal(got, sealed) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}
