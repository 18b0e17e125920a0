package engine

import (
	"context"
	"strings"
)

// KeyMaster is the named key that wraps every node's data-encryption key
// (the Vault Transit key of the same name, aes256-gcm96).
const KeyMaster = "hoodcloud-master"

// DataKeySize is the length of a data key from GenerateDataKey: AES-256.
const DataKeySize = 32

// KeyInfo describes a named key. Versions start at 1; only the latest
// encrypts, and every version from MinDecryption to Latest decrypts.
type KeyInfo struct {
	Name          string
	Latest        int
	MinDecryption int
}

// Secrets keeps named secrets and encrypts with named keys that never leave
// it, with the semantics of Vault's KV and Transit engines. Adapters: the
// local keyring (default) and Vault. Safe for concurrent use.
//
// Nothing secret ever appears in an error: no value, key, plaintext or
// ciphertext content, only names and version numbers. Every method returns
// EUnavailable when the backend cannot be reached (Vault down or sealed, the
// keyring closed), and EInvalid for a name that ValidSecretName or
// ValidKeyName refuses.
//
// Byte slices handed in may be reused by the caller after the call; slices
// returned belong to the caller, who zeroes plaintext with Zero when done.
type Secrets interface {
	// Get returns the value stored under name. Returns ENotFound if missing.
	Get(ctx context.Context, name string) ([]byte, error)
	// Put creates or replaces the value stored under name.
	Put(ctx context.Context, name string, value []byte) error
	// Create stores value under name unless something is stored there
	// already, in which case it returns EConflict and leaves it untouched.
	// Of two concurrent creators at most one succeeds, so first-boot
	// material is generated once.
	Create(ctx context.Context, name string, value []byte) error
	// Delete removes the value; a missing one is not an error.
	Delete(ctx context.Context, name string) error

	// Encrypt seals plaintext with the latest version of the named key,
	// creating the key at version 1 if it does not exist. The ciphertext is
	// opaque but records the key version that made it.
	Encrypt(ctx context.Context, key string, plaintext []byte) ([]byte, error)
	// Decrypt opens a ciphertext made by Encrypt, Rewrap or GenerateDataKey
	// with the same key. Returns EInvalid if the ciphertext is malformed,
	// truncated or tampered with, was made with another key or a version the
	// key does not have, its version is below the key's minimum decryption
	// version, or the key does not exist.
	Decrypt(ctx context.Context, key string, ciphertext []byte) ([]byte, error)
	// Rewrap re-encrypts a ciphertext with the key's latest version without
	// showing the plaintext to the caller. Errors as Decrypt.
	Rewrap(ctx context.Context, key string, ciphertext []byte) ([]byte, error)
	// GenerateDataKey returns a fresh random DataKeySize-byte key and the same
	// key encrypted with the named key (creating it as Encrypt does). The
	// caller keeps only the wrapped form and zeroes the plaintext after use.
	GenerateDataKey(ctx context.Context, key string) (plaintext, wrapped []byte, err error)
	// RotateKey adds a version to the named key and returns it: new
	// encryptions use it, older versions still decrypt. Returns ENotFound if
	// the key does not exist.
	RotateKey(ctx context.Context, key string) (int, error)
	// SetMinDecryptionVersion makes Decrypt and Rewrap refuse ciphertext of
	// versions below version; lowering it again re-enables them. Returns
	// ENotFound if the key does not exist, EInvalid unless
	// 1 <= version <= latest.
	SetMinDecryptionVersion(ctx context.Context, key string, version int) error
	// KeyInfo returns the key's versions. Returns ENotFound if it does not exist.
	KeyInfo(ctx context.Context, key string) (*KeyInfo, error)

	// Ping checks the backend answers and is unsealed, for /readyz.
	Ping(ctx context.Context) error
	// Close releases the backend and forgets cached key material; the
	// Secrets is unusable afterwards.
	Close() error
}

// Zero overwrites b with zeros. Call it on plaintext keys and secrets once
// they are no longer needed. It cannot reach copies made elsewhere: the
// garbage collector moves nothing, but strings, encoders and crypto
// libraries (an AES key schedule, say) keep their own copies.
func Zero(b []byte) { clear(b) }

// ValidKeyName reports whether name can name a key: 1 to 128 letters,
// digits, '.', '_' or '-', starting with a letter or a digit.
func ValidKeyName(name string) bool {
	if name == "" || len(name) > 128 || !isAlnum(name[0]) {
		return false
	}
	for i := range len(name) {
		if c := name[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// ValidSecretName reports whether name can name a secret: 1 to 256
// characters, segments separated by '/' each of which is a valid key name
// (so no empty, "." or ".." segment).
func ValidSecretName(name string) bool {
	if name == "" || len(name) > 256 {
		return false
	}
	for seg := range strings.SplitSeq(name, "/") {
		if !ValidKeyName(seg) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
