package secrets

import (
	"context"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/hoodcloud/hoodcloud/engine"
)

// A named key has versions, each a random 256-bit AES-GCM key sealed by the
// master key in its own record, and a config record:
//
//	keyring/key/{name}/config          latest (4) | min decryption (4) | reserved (8)
//	keyring/key/{name}/v/{version}     the version's 32 bytes
//
// Random 96-bit nonces make a repeated nonce likely enough to matter after
// about 2^32 encryptions under one key, and a repeat under GCM leaks the
// authentication key. So each version counts its encryptions against
// Options.EncryptionLimit and the keyring rotates the key when it is
// reached. Counting every encryption in the store would cost a write each;
// instead the keyring reserves counts in blocks ("reserved" above, written
// before the block is used) and counts in memory within a block. A crash
// loses the unused rest of a block, so the stored count is never below the
// true one: it can only rotate early.

// namedKey is the cached state of one named key. Guarded by Keyring.mu.
type namedKey struct {
	cfg      keyConfig
	used     uint64 // encryptions of cfg.latest counted so far, <= cfg.reserved
	versions map[int]cipher.AEAD
}

// keyConfig is the content of a key's config record.
type keyConfig struct {
	latest, minDecryption int
	reserved              uint64 // encryptions of latest handed out, a bound on those done
}

const keyConfigLen = 16

func (c keyConfig) marshal() []byte {
	b := make([]byte, keyConfigLen)
	binary.BigEndian.PutUint32(b, uint32(c.latest))
	binary.BigEndian.PutUint32(b[4:], uint32(c.minDecryption))
	binary.BigEndian.PutUint64(b[8:], c.reserved)
	return b
}

func unmarshalKeyConfig(b []byte) (keyConfig, bool) {
	if len(b) != keyConfigLen {
		return keyConfig{}, false
	}
	c := keyConfig{
		latest:        int(binary.BigEndian.Uint32(b)),
		minDecryption: int(binary.BigEndian.Uint32(b[4:])),
		reserved:      binary.BigEndian.Uint64(b[8:]),
	}
	return c, c.latest >= 1 && c.minDecryption >= 1 && c.minDecryption <= c.latest
}

func keyConfigName(key string) string { return keyPrefix + key + "/config" }

func keyVersionName(key string, v int) string { return fmt.Sprintf("%s%s/v/%010d", keyPrefix, key, v) }

// reserveBlock is how many encryptions one store write reserves: at most
// 1/16 of the limit, so a crash costs little of a version's life.
func (k *Keyring) reserveBlock() uint64 {
	return min(max(k.opts.EncryptionLimit/16, 1), 1<<16)
}

// Encrypt seals plaintext with the key's latest version.
func (k *Keyring) Encrypt(ctx context.Context, key string, plaintext []byte) ([]byte, error) {
	v, aead, err := k.takeEncryption(ctx, key)
	if err != nil {
		return nil, err
	}
	return sealCiphertext(aead, k.random, key, v, plaintext)
}

// Decrypt opens a ciphertext of the key.
func (k *Keyring) Decrypt(ctx context.Context, key string, ciphertext []byte) ([]byte, error) {
	if !engine.ValidKeyName(key) {
		return nil, errInvalidName("key", key)
	}
	v, ok := ciphertextVersion(ciphertext)
	if !ok {
		return nil, engine.Errorf(engine.EInvalid, "malformed ciphertext for key %q", key)
	}
	aead, err := k.decrypter(ctx, key, v)
	if err != nil {
		return nil, err
	}
	plain, err := openCiphertext(aead, key, ciphertext)
	if err != nil {
		return nil, engine.Errorf(engine.EInvalid, "ciphertext does not authenticate under key %q version %d", key, v)
	}
	return plain, nil
}

// Rewrap re-encrypts a ciphertext with the key's latest version.
func (k *Keyring) Rewrap(ctx context.Context, key string, ciphertext []byte) ([]byte, error) {
	plain, err := k.Decrypt(ctx, key, ciphertext)
	if err != nil {
		return nil, err
	}
	defer engine.Zero(plain)
	return k.Encrypt(ctx, key, plain)
}

// GenerateDataKey returns a fresh data key and its wrapped form.
func (k *Keyring) GenerateDataKey(ctx context.Context, key string) (plaintext, wrapped []byte, err error) {
	plaintext = make([]byte, engine.DataKeySize)
	if _, err := io.ReadFull(k.random, plaintext); err != nil {
		return nil, nil, fmt.Errorf("generate data key: %w", err)
	}
	wrapped, err = k.Encrypt(ctx, key, plaintext)
	if err != nil {
		engine.Zero(plaintext)
		return nil, nil, err
	}
	return plaintext, wrapped, nil
}

// RotateKey adds a version to the key.
func (k *Keyring) RotateKey(ctx context.Context, key string) (int, error) {
	nk, err := k.lockKey(ctx, key)
	if err != nil {
		return 0, err
	}
	defer k.mu.Unlock()
	if err := k.rotate(ctx, key, nk); err != nil {
		return 0, err
	}
	return nk.cfg.latest, nil
}

// SetMinDecryptionVersion refuses ciphertext of versions below version.
func (k *Keyring) SetMinDecryptionVersion(ctx context.Context, key string, version int) error {
	nk, err := k.lockKey(ctx, key)
	if err != nil {
		return err
	}
	defer k.mu.Unlock()
	if version < 1 || version > nk.cfg.latest {
		return engine.Errorf(engine.EInvalid, "key %q has versions 1 to %d, not %d", key, nk.cfg.latest, version)
	}
	cfg := nk.cfg
	cfg.minDecryption = version
	if err := k.putRecord(ctx, keyConfigName(key), cfg.marshal()); err != nil {
		return err
	}
	nk.cfg = cfg
	return nil
}

// KeyInfo returns the key's versions.
func (k *Keyring) KeyInfo(ctx context.Context, key string) (*engine.KeyInfo, error) {
	nk, err := k.lockKey(ctx, key)
	if err != nil {
		return nil, err
	}
	defer k.mu.Unlock()
	return &engine.KeyInfo{Name: key, Latest: nk.cfg.latest, MinDecryption: nk.cfg.minDecryption}, nil
}

// lockKey locks mu and returns the key's state read afresh from the store,
// or unlocks and returns ENotFound if the key does not exist.
func (k *Keyring) lockKey(ctx context.Context, key string) (*namedKey, error) {
	if !engine.ValidKeyName(key) {
		return nil, errInvalidName("key", key)
	}
	k.mu.Lock()
	err := k.ready(ctx)
	var nk *namedKey
	if err == nil {
		nk, err = k.refreshKey(ctx, key)
	}
	if err != nil {
		k.mu.Unlock()
		return nil, err
	}
	return nk, nil
}

// takeEncryption counts one encryption against the key's latest version,
// creating the key or rotating it as needed, and returns that version and
// its cipher.
func (k *Keyring) takeEncryption(ctx context.Context, key string) (int, cipher.AEAD, error) {
	if !engine.ValidKeyName(key) {
		return 0, nil, errInvalidName("key", key)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.ready(ctx); err != nil {
		return 0, nil, err
	}
	nk, err := k.loadKey(ctx, key)
	if engine.IsCode(err, engine.ENotFound) {
		nk, err = k.createKey(ctx, key)
	}
	if err != nil {
		return 0, nil, err
	}
	if nk.used >= nk.cfg.reserved {
		if err := k.reserveEncryptions(ctx, key, nk); err != nil {
			return 0, nil, err
		}
	}
	aead, err := k.versionCipher(ctx, key, nk, nk.cfg.latest)
	if err != nil {
		return 0, nil, err
	}
	nk.used++
	return nk.cfg.latest, aead, nil
}

// reserveEncryptions writes a new block of counts for the latest version,
// rotating first when the version has reached its limit. It rereads the
// config so that a rotation made elsewhere is seen. Caller holds mu.
func (k *Keyring) reserveEncryptions(ctx context.Context, key string, nk *namedKey) error {
	cfg, err := k.readKeyConfig(ctx, key)
	if err != nil {
		return err
	}
	nk.cfg = cfg
	if cfg.reserved >= k.opts.EncryptionLimit {
		if err := k.rotate(ctx, key, nk); err != nil {
			return fmt.Errorf("rotate key %q at its encryption limit: %w", key, err)
		}
		cfg = nk.cfg
	}
	start := cfg.reserved
	cfg.reserved = min(start+k.reserveBlock(), k.opts.EncryptionLimit)
	if err := k.putRecord(ctx, keyConfigName(key), cfg.marshal()); err != nil {
		return err
	}
	nk.cfg, nk.used = cfg, start
	return nil
}

// decrypter returns the cipher of version v of key, refusing versions the
// key does not have or no longer decrypts.
func (k *Keyring) decrypter(ctx context.Context, key string, v int) (cipher.AEAD, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.ready(ctx); err != nil {
		return nil, err
	}
	nk, err := k.loadKey(ctx, key)
	if engine.IsCode(err, engine.ENotFound) {
		return nil, engine.Errorf(engine.EInvalid, "key %q does not exist", key)
	}
	if err != nil {
		return nil, err
	}
	if v > nk.cfg.latest { // perhaps rotated by another process since
		if nk, err = k.refreshKey(ctx, key); err != nil {
			return nil, err
		}
	}
	switch {
	case v > nk.cfg.latest:
		return nil, engine.Errorf(engine.EInvalid, "key %q has no version %d", key, v)
	case v < nk.cfg.minDecryption:
		return nil, engine.Errorf(engine.EInvalid, "key %q version %d is below its minimum decryption version %d", key, v, nk.cfg.minDecryption)
	}
	return k.versionCipher(ctx, key, nk, v)
}

// loadKey returns the cached state of key, reading it on first use.
// Returns ENotFound if the key does not exist. Caller holds mu.
func (k *Keyring) loadKey(ctx context.Context, key string) (*namedKey, error) {
	if nk, ok := k.keys[key]; ok {
		return nk, nil
	}
	return k.refreshKey(ctx, key)
}

// refreshKey rereads the key's config into the cache; what was reserved
// before counts as used. Caller holds mu.
func (k *Keyring) refreshKey(ctx context.Context, key string) (*namedKey, error) {
	cfg, err := k.readKeyConfig(ctx, key)
	if err != nil {
		return nil, err
	}
	nk, ok := k.keys[key]
	if !ok {
		nk = &namedKey{versions: map[int]cipher.AEAD{}}
		k.keys[key] = nk
	}
	if cfg != nk.cfg {
		nk.cfg, nk.used = cfg, cfg.reserved
	}
	return nk, nil
}

// createKey creates version 1 of key. Caller holds mu.
func (k *Keyring) createKey(ctx context.Context, key string) (*namedKey, error) {
	nk := &namedKey{versions: map[int]cipher.AEAD{}}
	if err := k.addVersion(ctx, key, nk, keyConfig{latest: 1, minDecryption: 1}); err != nil {
		return nil, fmt.Errorf("create key %q: %w", key, err)
	}
	k.keys[key] = nk
	return nk, nil
}

// rotate adds a version to key after the latest the store knows. Caller holds mu.
func (k *Keyring) rotate(ctx context.Context, key string, nk *namedKey) error {
	cfg, err := k.readKeyConfig(ctx, key)
	if err != nil {
		return err
	}
	cfg.latest++
	cfg.reserved = 0
	return k.addVersion(ctx, key, nk, cfg)
}

// addVersion generates version cfg.latest, stores it, then the config that
// makes it the latest: a crash in between leaves an unused version record,
// which the next rotation overwrites. Caller holds mu.
func (k *Keyring) addVersion(ctx context.Context, key string, nk *namedKey, cfg keyConfig) error {
	raw := make([]byte, 32)
	defer engine.Zero(raw)
	if _, err := io.ReadFull(k.random, raw); err != nil {
		return fmt.Errorf("generate key version: %w", err)
	}
	aead, err := newGCM(raw)
	if err != nil {
		return err
	}
	if err := k.putRecord(ctx, keyVersionName(key, cfg.latest), raw); err != nil {
		return err
	}
	if err := k.putRecord(ctx, keyConfigName(key), cfg.marshal()); err != nil {
		return err
	}
	nk.cfg, nk.used = cfg, cfg.reserved
	nk.versions[cfg.latest] = aead
	return nil
}

// versionCipher returns the cipher of version v, reading it on first use.
// Caller holds mu.
func (k *Keyring) versionCipher(ctx context.Context, key string, nk *namedKey, v int) (cipher.AEAD, error) {
	if aead, ok := nk.versions[v]; ok {
		return aead, nil
	}
	raw, err := k.getRecord(ctx, keyVersionName(key, v))
	if engine.IsCode(err, engine.ENotFound) {
		return nil, engine.Errorf(engine.EInvalid, "key %q has no version %d", key, v)
	}
	if err != nil {
		return nil, err
	}
	defer engine.Zero(raw)
	if len(raw) != 32 {
		return nil, engine.Errorf(engine.EInternal, "key %q version %d is damaged", key, v)
	}
	aead, err := newGCM(raw)
	if err != nil {
		return nil, err
	}
	nk.versions[v] = aead
	return aead, nil
}

// readKeyConfig reads key's config record; ENotFound if the key does not
// exist. Caller holds mu.
func (k *Keyring) readKeyConfig(ctx context.Context, key string) (keyConfig, error) {
	b, err := k.getRecord(ctx, keyConfigName(key))
	if engine.IsCode(err, engine.ENotFound) {
		return keyConfig{}, engine.Errorf(engine.ENotFound, "key %q not found", key)
	}
	if err != nil {
		return keyConfig{}, err
	}
	cfg, ok := unmarshalKeyConfig(b)
	if !ok {
		return keyConfig{}, engine.Errorf(engine.EInternal, "the config of key %q is damaged", key)
	}
	return cfg, nil
}
