package engine_test

import (
	"crypto/ecdh"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

func publicOf(t *testing.T, keys *engine.SealedBoxKeys) *ecdh.PublicKey {
	t.Helper()
	pub, err := ecdh.X25519().NewPublicKey(keys.PublicKey())
	mustDo(t, err)
	return pub
}

func opens(t *testing.T, keys *engine.SealedBoxKeys, sealed []byte, want string) {
	t.Helper()
	plain, err := keys.Open(sealed)
	if err != nil || string(plain) != want {
		t.Fatalf("Open = %q, %v; want %q", plain, err, want)
	}
}

func TestSealedBoxRotationOpensOldInputsForTheGracePeriod(t *testing.T) {
	s, _ := keyringOnBolt(t)
	putKeyPEM(t, s, engine.SecretSealedBoxKey, fixedKey(t))
	c := newClock()
	keys, err := engine.LoadSealedBoxKeys(t.Context(), s, engine.KeySetOptions{Now: c.Now})
	mustDo(t, err)
	old := seal(t, publicOf(t, keys), []byte("sealed to the old key"))

	_, err = keys.Rotate(t.Context(), time.Hour)
	mustDo(t, err)
	if publicOf(t, keys).Equal(fixedKey(t).PublicKey()) {
		t.Fatal("the served public key is still the old one")
	}
	fresh := seal(t, publicOf(t, keys), []byte("sealed to the new key"))
	opens(t, keys, old, "sealed to the old key")
	opens(t, keys, fresh, "sealed to the new key")

	c.advance(time.Hour)
	if _, err := keys.Open(old); !engine.IsCode(err, engine.EInvalid) {
		t.Fatalf("an input sealed to the old key after the grace period: %v, want invalid", err)
	}
	opens(t, keys, fresh, "sealed to the new key")
}

func TestSealedBoxRotationIsNoticedByAnotherInstance(t *testing.T) {
	s, _ := keyringOnBolt(t)
	putKeyPEM(t, s, engine.SecretSealedBoxKey, fixedKey(t))
	a, err := engine.LoadSealedBoxKeys(t.Context(), s, engine.KeySetOptions{})
	mustDo(t, err)
	b, err := engine.LoadSealedBoxKeys(t.Context(), s, engine.KeySetOptions{})
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
	putKeyPEM(t, s, engine.SecretSealedBoxKey, fixedKey(t))
	keys, err := engine.LoadSealedBoxKeys(t.Context(), s, engine.KeySetOptions{})
	mustDo(t, err)
	old := seal(t, publicOf(t, keys), []byte("before"))
	_, err = keys.Rotate(t.Context(), 0)
	mustDo(t, err)

	again, err := engine.LoadSealedBoxKeys(t.Context(), s, engine.KeySetOptions{})
	mustDo(t, err)
	opens(t, again, old, "before")
	if !publicOf(t, again).Equal(publicOf(t, keys)) {
		t.Fatal("a restart serves another public key than the rotation made")
	}
}
