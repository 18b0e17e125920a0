package keys

import (
	"crypto/ecdh"

	"github.com/hoodcloud/hoodcloud/engine"
	"golang.org/x/crypto/nacl/box"
)

// The sealed-box format customers seal user-provided secrets in: a NaCl box
// (X25519, XSalsa20-Poly1305) from a fresh ephemeral key to the appliance's
// sealed-box key, sent as the ephemeral public key, the nonce and the box.
// Unlike libsodium's crypto_box_seal (box.SealAnonymous) the nonce travels
// with the message instead of being derived from the two public keys.
const (
	SealedBoxPublicKeySize = 32
	SealedBoxNonceSize     = 24
	SealedBoxOverhead      = SealedBoxPublicKeySize + SealedBoxNonceSize + box.Overhead
	// MaxSealedSecretBytes bounds a sealed secret: key material is small.
	MaxSealedSecretBytes = engine.MaxSealedBoxBytes - SealedBoxOverhead
)

// SealedBoxFormat describes the format for clients, e.g. next to the public key.
const SealedBoxFormat = "NaCl box (X25519, XSalsa20-Poly1305) from an ephemeral X25519 key to this public key, " +
	"sent as base64 (standard, padded) of: ephemeral public key (32 bytes) || nonce (24 bytes) || box (ciphertext with its 16-byte Poly1305 tag)"

// OpenSealedBox opens a sealed box made to key's public key and returns the
// plaintext, which the caller zeroes with Zero when done. Returns EInvalid
// for anything that is malformed, truncated, tampered with, sealed to
// another key, or longer than MaxSealedSecretBytes; the error never shows
// any of the content.
func OpenSealedBox(key *ecdh.PrivateKey, sealed []byte) ([]byte, error) {
	if key == nil || key.Curve() != ecdh.X25519() {
		return nil, engine.Errorf(engine.EInternal, "no X25519 sealed-box key configured")
	}
	if len(sealed) < SealedBoxOverhead || len(sealed) > MaxSealedSecretBytes+SealedBoxOverhead {
		return nil, engine.Errorf(engine.EInvalid, "a sealed box is %d to %d bytes", SealedBoxOverhead, MaxSealedSecretBytes+SealedBoxOverhead)
	}
	shared, err := boxKey(key, sealed[:SealedBoxPublicKeySize])
	if err != nil {
		return nil, err
	}
	defer engine.Zero(shared[:])
	var nonce [SealedBoxNonceSize]byte
	copy(nonce[:], sealed[SealedBoxPublicKeySize:])
	plain, ok := box.OpenAfterPrecomputation(nil, sealed[SealedBoxPublicKeySize+SealedBoxNonceSize:], &nonce, shared)
	if !ok {
		return nil, engine.Errorf(engine.EInvalid, "the sealed box does not open with this appliance's key")
	}
	return plain, nil
}

// boxKey is NaCl's crypto_box_beforenm of the ephemeral key and ours.
// crypto/ecdh checks the ephemeral key first, refusing low-order points,
// whose shared secret would be all zeros and known to anyone.
func boxKey(key *ecdh.PrivateKey, ephemeral []byte) (*[32]byte, error) {
	invalid := engine.Errorf(engine.EInvalid, "the sealed box does not open with this appliance's key")
	pub, err := ecdh.X25519().NewPublicKey(ephemeral)
	if err != nil {
		return nil, invalid
	}
	secret, err := key.ECDH(pub)
	engine.Zero(secret)
	if err != nil {
		return nil, invalid
	}
	var peer, priv [32]byte
	copy(peer[:], ephemeral)
	raw := key.Bytes()
	copy(priv[:], raw)
	engine.Zero(raw)
	defer engine.Zero(priv[:])
	shared := new([32]byte)
	box.Precompute(shared, &peer, &priv)
	return shared, nil
}
