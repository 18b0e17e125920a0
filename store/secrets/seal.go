package secrets

import (
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Both formats below use AES-256-GCM with a random 96-bit nonce and bind
// their header and the name of what they belong to as associated data, so a
// blob moved to another name, or a header edited, fails to authenticate.

const (
	nonceLen = 12
	tagLen   = 16
)

// A record is what the keyring puts in the store, sealed by a master key:
//
//	"hk" | format 1 | master key id (8) | nonce (12) | ciphertext | tag (16)
//
// The id says which master key to open it with, so records sealed by the
// old and the new key can coexist while the master key rotates.
const (
	recordMagic     = "hk"
	recordFormat    = 1
	recordHeaderLen = len(recordMagic) + 1 + 8
)

// sealRecord seals plaintext under m as the record named name.
func sealRecord(m *masterKey, random io.Reader, name string, plaintext []byte) ([]byte, error) {
	out := make([]byte, recordHeaderLen+nonceLen, recordHeaderLen+nonceLen+len(plaintext)+tagLen)
	copy(out, recordMagic)
	out[len(recordMagic)] = recordFormat
	copy(out[len(recordMagic)+1:], m.id[:])
	nonce := out[recordHeaderLen:]
	if _, err := io.ReadFull(random, nonce); err != nil {
		return nil, fmt.Errorf("draw nonce: %w", err)
	}
	return m.aead.Seal(out, nonce, plaintext, recordAAD(name, out[:recordHeaderLen])), nil
}

// recordMasterID returns the id of the master key that sealed blob, and
// false if blob is not a record.
func recordMasterID(blob []byte) (id [8]byte, ok bool) {
	if len(blob) < recordHeaderLen+nonceLen+tagLen || string(blob[:len(recordMagic)]) != recordMagic ||
		blob[len(recordMagic)] != recordFormat {
		return id, false
	}
	copy(id[:], blob[len(recordMagic)+1:recordHeaderLen])
	return id, true
}

// openRecord opens the record named name with m, which the caller chose by
// recordMasterID.
func openRecord(m *masterKey, name string, blob []byte) ([]byte, error) {
	nonce := blob[recordHeaderLen : recordHeaderLen+nonceLen]
	return m.aead.Open(nil, nonce, blob[recordHeaderLen+nonceLen:], recordAAD(name, blob[:recordHeaderLen]))
}

func recordAAD(name string, header []byte) []byte {
	return joinAAD("hoodcloud keyring record", name, header)
}

// A ciphertext is what Encrypt returns for a named key:
//
//	"hc" | format 1 | key version, uint32 big endian | nonce (12) | ciphertext | tag (16)
const (
	ctMagic     = "hc"
	ctFormat    = 1
	ctHeaderLen = len(ctMagic) + 1 + 4
	ctMinLen    = ctHeaderLen + nonceLen + tagLen
)

// sealCiphertext seals plaintext with version v of the key named key.
func sealCiphertext(aead cipher.AEAD, random io.Reader, key string, v int, plaintext []byte) ([]byte, error) {
	out := make([]byte, ctHeaderLen+nonceLen, ctMinLen+len(plaintext))
	copy(out, ctMagic)
	out[len(ctMagic)] = ctFormat
	binary.BigEndian.PutUint32(out[len(ctMagic)+1:], uint32(v))
	nonce := out[ctHeaderLen:]
	if _, err := io.ReadFull(random, nonce); err != nil {
		return nil, fmt.Errorf("draw nonce: %w", err)
	}
	return aead.Seal(out, nonce, plaintext, ctAAD(key, out[:ctHeaderLen])), nil
}

// ciphertextVersion returns the key version a ciphertext names, and false
// if it is not one of ours or too short to hold a nonce and a tag.
func ciphertextVersion(ct []byte) (int, bool) {
	if len(ct) < ctMinLen || string(ct[:len(ctMagic)]) != ctMagic || ct[len(ctMagic)] != ctFormat {
		return 0, false
	}
	v := binary.BigEndian.Uint32(ct[len(ctMagic)+1:])
	if v == 0 || v > math.MaxInt32 {
		return 0, false
	}
	return int(v), true
}

// openCiphertext opens ct, whose version the caller read with
// ciphertextVersion, with that version's cipher.
func openCiphertext(aead cipher.AEAD, key string, ct []byte) ([]byte, error) {
	nonce := ct[ctHeaderLen : ctHeaderLen+nonceLen]
	return aead.Open(nil, nonce, ct[ctHeaderLen+nonceLen:], ctAAD(key, ct[:ctHeaderLen]))
}

func ctAAD(key string, header []byte) []byte {
	return joinAAD("hoodcloud keyring ciphertext", key, header)
}

// joinAAD separates its parts with NUL; names hold no NUL, so two different
// (purpose, name) pairs never give the same bytes.
func joinAAD(purpose, name string, header []byte) []byte {
	aad := make([]byte, 0, len(purpose)+len(name)+len(header)+2)
	aad = append(aad, purpose...)
	aad = append(aad, 0)
	aad = append(aad, name...)
	aad = append(aad, 0)
	return append(aad, header...)
}
