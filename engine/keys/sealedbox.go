package keys

import (
	"crypto/ecdh"

	"github.com/hoodcloud/hoodcloud/engine"
	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/nacl/box"
)

// The sealed-box formats customers seal user-provided secrets in. Both are
// a NaCl box (X25519, XSalsa20-Poly1305) from a fresh ephemeral key to the
// appliance's sealed-box key, and both start with the ephemeral public key:
//
//   - standard: libsodium's crypto_box_seal (PyNaCl SealedBox,
//     tweetnacl-sealedbox-js, x/crypto's box.SealAnonymous): ephemeral
//     public key || box, the nonce being BLAKE2b-192 of the ephemeral
//     public key || the recipient's public key;
//   - explicit nonce, this appliance's first format: ephemeral public key
//     || nonce || box.
//
// Neither carries a version byte, and their lengths overlap, so an opener
// tries the standard format first, then the explicit-nonce one. The box's
// Poly1305 tag decides: a box made in one format fails the tag in the
// other, bar a forgery (2^-106). A box shorter than the explicit-nonce
// overhead can only be standard.
const (
	SealedBoxPublicKeySize = 32
	SealedBoxNonceSize     = 24
	// SealedBoxOverhead is the explicit-nonce format's overhead.
	SealedBoxOverhead = SealedBoxPublicKeySize + SealedBoxNonceSize + box.Overhead
	// StandardSealedBoxOverhead is crypto_box_SEALBYTES: 48.
	StandardSealedBoxOverhead = SealedBoxPublicKeySize + box.Overhead
	// MaxSealedSecretBytes bounds a sealed secret: key material is small.
	MaxSealedSecretBytes = engine.MaxSealedBoxBytes - SealedBoxOverhead
)

// SealedBoxFormat describes the formats for clients, e.g. next to the public key.
const SealedBoxFormat = "libsodium crypto_box_seal (sealed box: X25519, XSalsa20-Poly1305), " +
	"sent as base64 (standard, padded) of: ephemeral public key (32 bytes) || box (ciphertext with its 16-byte Poly1305 tag), " +
	"the nonce being BLAKE2b-192(ephemeral public key || this public key). " +
	"Also accepted: ephemeral public key (32 bytes) || nonce (24 bytes) || box. " +
	"The standard format is tried first, then the explicit-nonce one."

// errDoesNotOpen is every failure to open a well-sized box: it names the
// formats, never the content.
func errDoesNotOpen() error {
	return engine.Errorf(engine.EInvalid, "the sealed box does not open with this appliance's key: "+
		"seal it with crypto_box_seal (ephemeral public key || box) to the key GET /api/v1/crypto/public-key serves")
}

// OpenSealedBox opens a sealed box made to key's public key, in either
// format, and returns the plaintext, which the caller zeroes with Zero when
// done. Returns EInvalid for anything that is malformed, truncated,
// tampered with, sealed to another key, or holds more than
// MaxSealedSecretBytes; the error never shows any of the content.
func OpenSealedBox(key *ecdh.PrivateKey, sealed []byte) ([]byte, error) {
	if key == nil || key.Curve() != ecdh.X25519() {
		return nil, engine.Errorf(engine.EInternal, "no X25519 sealed-box key configured")
	}
	if !wellSized(sealed) {
		return nil, engine.Errorf(engine.EInvalid, "a sealed box is %d to %d bytes (crypto_box_seal: the secret and %d bytes)",
			StandardSealedBoxOverhead, MaxSealedSecretBytes+SealedBoxOverhead, StandardSealedBoxOverhead)
	}
	ephemeral := sealed[:SealedBoxPublicKeySize]
	shared, err := boxKey(key, ephemeral)
	if err != nil {
		return nil, err
	}
	defer engine.Zero(shared[:])
	if plain, ok := openStandard(shared, ephemeral, key.PublicKey().Bytes(), sealed); ok {
		return plain, nil
	}
	if plain, ok := openExplicitNonce(shared, sealed); ok {
		return plain, nil
	}
	return nil, errDoesNotOpen()
}

// wellSized says whether sealed may be a box of either format around a
// secret of at most MaxSealedSecretBytes.
func wellSized(sealed []byte) bool {
	return len(sealed) >= StandardSealedBoxOverhead && len(sealed) <= MaxSealedSecretBytes+SealedBoxOverhead
}

// openStandard opens crypto_box_seal's layout: ephemeral public key || box.
func openStandard(shared *[32]byte, ephemeral, recipient, sealed []byte) ([]byte, bool) {
	if len(sealed)-StandardSealedBoxOverhead > MaxSealedSecretBytes {
		return nil, false
	}
	nonce, err := standardNonce(ephemeral, recipient)
	if err != nil {
		return nil, false
	}
	return box.OpenAfterPrecomputation(nil, sealed[SealedBoxPublicKeySize:], nonce, shared)
}

// standardNonce is libsodium's sealed-box nonce: BLAKE2b with a 24-byte
// digest of the ephemeral public key then the recipient's.
func standardNonce(ephemeral, recipient []byte) (*[SealedBoxNonceSize]byte, error) {
	h, err := blake2b.New(SealedBoxNonceSize, nil)
	if err != nil {
		return nil, err
	}
	h.Write(ephemeral)
	h.Write(recipient)
	var nonce [SealedBoxNonceSize]byte
	h.Sum(nonce[:0])
	return &nonce, nil
}

// openExplicitNonce opens the layout ephemeral public key || nonce || box.
func openExplicitNonce(shared *[32]byte, sealed []byte) ([]byte, bool) {
	if len(sealed) < SealedBoxOverhead {
		return nil, false
	}
	var nonce [SealedBoxNonceSize]byte
	copy(nonce[:], sealed[SealedBoxPublicKeySize:])
	return box.OpenAfterPrecomputation(nil, sealed[SealedBoxPublicKeySize+SealedBoxNonceSize:], &nonce, shared)
}

// boxKey is NaCl's crypto_box_beforenm of the ephemeral key and ours.
// crypto/ecdh checks the ephemeral key first, refusing low-order points,
// whose shared secret would be all zeros and known to anyone.
func boxKey(key *ecdh.PrivateKey, ephemeral []byte) (*[32]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(ephemeral)
	if err != nil {
		return nil, errDoesNotOpen()
	}
	secret, err := key.ECDH(pub)
	engine.Zero(secret)
	if err != nil {
		return nil, errDoesNotOpen()
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
