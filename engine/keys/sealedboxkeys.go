package keys

import (
	"context"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// SealedBoxKeys are the X25519 keys customers seal secrets to: the current
// key's public half is served, and keys it replaced still open what was
// sealed to them until their grace period ends. Safe for concurrent use.
type SealedBoxKeys struct {
	v *versionedKeys[*ecdh.PrivateKey]
}

var sealedBoxCodec = keyCodec[*ecdh.PrivateKey]{
	name:   SecretSealedBoxKey,
	decode: func(b []byte) (*ecdh.PrivateKey, error) { return decodeKeyPEM[*ecdh.PrivateKey](SecretSealedBoxKey, b) },
	id:     func(k *ecdh.PrivateKey) string { return publicKeyID(k.PublicKey().Bytes()) },
}

var _ engine.SealedBoxKeys = (*SealedBoxKeys)(nil)

// LoadSealedBoxKeys reads the sealed-box keys Ensure made and any a
// rotation replaced. Returns ENotFound if there is no current key.
func (b *Boot) LoadSealedBoxKeys(ctx context.Context) (*SealedBoxKeys, error) {
	v, err := loadVersionedKeys(ctx, b.cfg.Secrets, sealedBoxCodec, b.setOptions())
	if err != nil {
		return nil, err
	}
	return &SealedBoxKeys{v}, nil
}

// StaticSealedBoxKeys is a set of one key, outside Secrets: it never rotates.
func StaticSealedBoxKeys(key *ecdh.PrivateKey) *SealedBoxKeys {
	return &SealedBoxKeys{staticKeys(key, sealedBoxCodec)}
}

// PublicKey is the current key's public half (32 bytes), which clients
// seal to.
func (k *SealedBoxKeys) PublicKey() []byte {
	return k.v.snapshot().current.key.PublicKey().Bytes()
}

// Open opens a sealed box made to the current key or to one still in its
// grace period. When none opens it, the set is reloaded once (another
// instance may have rotated and served its new key) and tried again.
// Errors as OpenSealedBox.
func (k *SealedBoxKeys) Open(sealed []byte) ([]byte, error) {
	plain, err := openWithAny(k.v.snapshot(), k.v.now(), sealed)
	if !engine.IsCode(err, engine.EInvalid) || !wellSized(sealed) || !k.v.reloadAfterMiss() {
		return plain, err
	}
	return openWithAny(k.v.history.Load(), k.v.now(), sealed)
}

func openWithAny(h *keyHistory[*ecdh.PrivateKey], now time.Time, sealed []byte) ([]byte, error) {
	plain, err := OpenSealedBox(h.current.key, sealed)
	for _, p := range h.inGrace(now) {
		if !engine.IsCode(err, engine.EInvalid) {
			break
		}
		plain, err = OpenSealedBox(p.key, sealed)
	}
	return plain, err
}

// Rotate makes a new current key; the old one keeps opening what was
// sealed to it for grace (DefaultSealedBoxGrace when zero). Returns the new
// key's id; EInvalid for a grace out of range, EUnsupported for a static set.
func (k *SealedBoxKeys) Rotate(ctx context.Context, grace time.Duration) (string, error) {
	grace, err := checkGrace(grace, DefaultSealedBoxGrace)
	if err != nil {
		return "", err
	}
	return k.v.rotate(ctx, grace, func(*ecdh.PrivateKey) ([]byte, error) {
		key, err := newX25519Key()
		if err != nil {
			return nil, err
		}
		return marshalKeyPEM(key)
	})
}

// publicKeyID fingerprints public key bytes, safe to show and log.
func publicKeyID(pub []byte) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}
