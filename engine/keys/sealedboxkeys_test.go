package keys_test

import (
	"crypto/ecdh"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
)

func publicOf(t *testing.T, boxKeys *keys.SealedBoxKeys) *ecdh.PublicKey {
	t.Helper()
	pub, err := ecdh.X25519().NewPublicKey(boxKeys.PublicKey())
	mustDo(t, err)
	return pub
}

func opens(t *testing.T, boxKeys *keys.SealedBoxKeys, sealed []byte, want string) {
	t.Helper()
	plain, err := boxKeys.Open(sealed)
	if err != nil || string(plain) != want {
		t.Fatalf("Open = %q, %v; want %q", plain, err, want)
	}
}

func TestSealedBoxRotationOpensOldInputsForTheGracePeriod(t *testing.T) {
	s, _ := keyringOnBolt(t)
	putKeyPEM(t, s, keys.SecretSealedBoxKey, fixedKey(t))
	c := newClock()
	boxKeys, err := mustBoot(t, keys.BootConfig{Secrets: s, Now: c.Now}).LoadSealedBoxKeys(t.Context())
	mustDo(t, err)
	old := seal(t, publicOf(t, boxKeys), []byte("sealed to the old key"))

	_, err = boxKeys.Rotate(t.Context(), time.Hour)
	mustDo(t, err)
	if publicOf(t, boxKeys).Equal(fixedKey(t).PublicKey()) {
		t.Fatal("the served public key is still the old one")
	}
	fresh := seal(t, publicOf(t, boxKeys), []byte("sealed to the new key"))
	opens(t, boxKeys, old, "sealed to the old key")
	opens(t, boxKeys, fresh, "sealed to the new key")

	c.advance(time.Hour)
	if _, err := boxKeys.Open(old); !engine.IsCode(err, engine.EInvalid) {
		t.Fatalf("an input sealed to the old key after the grace period: %v, want invalid", err)
	}
	opens(t, boxKeys, fresh, "sealed to the new key")
}

// TestSealedBoxRotationOpensBothFormatsUnderEveryKeyInGrace: standard and
// explicit-nonce boxes open under the current key and the one a rotation
// replaced, until its grace period ends.
func TestSealedBoxRotationOpensBothFormatsUnderEveryKeyInGrace(t *testing.T) {
	s, _ := keyringOnBolt(t)
	putKeyPEM(t, s, keys.SecretSealedBoxKey, fixedKey(t))
	c := newClock()
	boxKeys, err := mustBoot(t, keys.BootConfig{Secrets: s, Now: c.Now}).LoadSealedBoxKeys(t.Context())
	mustDo(t, err)
	oldStandard := sealAnonymous(t, publicOf(t, boxKeys), []byte("standard, old key"))
	oldExplicit := seal(t, publicOf(t, boxKeys), []byte("explicit nonce, old key"))
	_, err = boxKeys.Rotate(t.Context(), time.Hour)
	mustDo(t, err)
	opens(t, boxKeys, oldStandard, "standard, old key")
	opens(t, boxKeys, oldExplicit, "explicit nonce, old key")
	opens(t, boxKeys, sealAnonymous(t, publicOf(t, boxKeys), []byte("standard, new key")), "standard, new key")
	opens(t, boxKeys, seal(t, publicOf(t, boxKeys), []byte("explicit nonce, new key")), "explicit nonce, new key")

	c.advance(time.Hour)
	for _, old := range [][]byte{oldStandard, oldExplicit} {
		if _, err := boxKeys.Open(old); !engine.IsCode(err, engine.EInvalid) {
			t.Fatalf("a box sealed to the old key after the grace period: %v, want invalid", err)
		}
	}
}

func TestSealedBoxRotationIsNoticedByAnotherInstance(t *testing.T) {
	s, _ := keyringOnBolt(t)
	putKeyPEM(t, s, keys.SecretSealedBoxKey, fixedKey(t))
	a, err := mustBoot(t, keys.BootConfig{Secrets: s}).LoadSealedBoxKeys(t.Context())
	mustDo(t, err)
	b, err := mustBoot(t, keys.BootConfig{Secrets: s}).LoadSealedBoxKeys(t.Context())
	mustDo(t, err)
	_, err = a.Rotate(t.Context(), 0)
	mustDo(t, err)
	// A client got the new public key from instance A and submits to B.
	opens(t, b, seal(t, publicOf(t, a), []byte("from A's key")), "from A's key")
	if !publicOf(t, b).Equal(publicOf(t, a)) {
		t.Fatal("instance B serves another public key than A after learning of the rotation")
	}
}

func TestSealedBoxRotationSurvivesARestart(t *testing.T) {
	s, _ := keyringOnBolt(t)
	putKeyPEM(t, s, keys.SecretSealedBoxKey, fixedKey(t))
	boxKeys, err := mustBoot(t, keys.BootConfig{Secrets: s}).LoadSealedBoxKeys(t.Context())
	mustDo(t, err)
	old := seal(t, publicOf(t, boxKeys), []byte("before"))
	_, err = boxKeys.Rotate(t.Context(), 0)
	mustDo(t, err)

	again, err := mustBoot(t, keys.BootConfig{Secrets: s}).LoadSealedBoxKeys(t.Context())
	mustDo(t, err)
	opens(t, again, old, "before")
	if !publicOf(t, again).Equal(publicOf(t, boxKeys)) {
		t.Fatal("a restart serves another public key than the rotation made")
	}
}
