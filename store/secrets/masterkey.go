package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hoodcloud/hoodcloud/engine"
)

// MasterKeyFileName is the master key file in the data dir.
const MasterKeyFileName = "master.key"

// masterKeySize is AES-256.
const masterKeySize = 32

var (
	// ErrMasterKeyMissing is returned by Open when no master key can be found
	// but the store holds data sealed by one: a new key could not read it.
	ErrMasterKeyMissing = errors.New("the master key is missing")
	// ErrMasterKeyMismatch is returned by Open when the store's data was
	// sealed by another master key than the one supplied.
	ErrMasterKeyMismatch = errors.New("the master key does not match the stored data")
)

// masterKey seals every record the keyring puts in the store. Its raw bytes
// are zeroed once the cipher is built; the AES key schedule inside aead
// cannot be.
type masterKey struct {
	id   [8]byte // a fingerprint that names the key in records and errors
	aead cipher.AEAD
}

// newMasterKey builds the master key from raw, which the caller zeroes.
func newMasterKey(raw []byte) (*masterKey, error) {
	if len(raw) != masterKeySize {
		return nil, fmt.Errorf("a master key is %d bytes, not %d", masterKeySize, len(raw))
	}
	aead, err := newGCM(raw)
	if err != nil {
		return nil, err
	}
	// Publishing a hash of a 256-bit random key reveals nothing usable; the
	// label keeps it distinct from any other hash of the key.
	h := sha256.New()
	h.Write([]byte("hoodcloud keyring master key id\x00"))
	h.Write(raw)
	m := &masterKey{aead: aead}
	copy(m.id[:], h.Sum(nil))
	return m, nil
}

// ID names the key for operators: safe to log and show.
func (m *masterKey) ID() string { return hex.EncodeToString(m.id[:]) }

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("build cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

// parseMasterKeyFile accepts the key as 32 raw bytes or as their base64.
// The result is a new slice; the caller zeroes both.
func parseMasterKeyFile(b []byte) ([]byte, error) {
	if len(b) == masterKeySize {
		return bytes.Clone(b), nil
	}
	return decodeMasterKey(b)
}

// decodeMasterKey decodes the base64 of a key (standard or URL alphabet,
// padding optional, surrounding space ignored) into a new slice.
func decodeMasterKey(b []byte) ([]byte, error) {
	text := bytes.TrimSpace(b)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		raw := make([]byte, enc.DecodedLen(len(text)))
		n, err := enc.Strict().Decode(raw, text)
		if err == nil && n == masterKeySize {
			return raw[:n], nil
		}
		engine.Zero(raw)
	}
	return nil, fmt.Errorf("a master key must be the base64 encoding of %d bytes", masterKeySize)
}

// readMasterKeyFile reads and parses the key file at path; a missing file
// is reported with fs.ErrNotExist in the chain.
func readMasterKeyFile(path string) (*masterKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read master key file: %w", err)
	}
	defer engine.Zero(b)
	raw, err := parseMasterKeyFile(b)
	if err != nil {
		return nil, fmt.Errorf("master key file %s holds neither %d bytes nor their base64", path, masterKeySize)
	}
	defer engine.Zero(raw)
	return newMasterKey(raw)
}

// createMasterKeyFile writes a new random key to path and returns it.
func createMasterKeyFile(path string, random io.Reader) (*masterKey, error) {
	raw := make([]byte, masterKeySize)
	defer engine.Zero(raw)
	if _, err := io.ReadFull(random, raw); err != nil {
		return nil, fmt.Errorf("generate master key: %w", err)
	}
	if err := writeFileAtomic(path, raw); err != nil {
		return nil, fmt.Errorf("write master key file: %w", err)
	}
	return newMasterKey(raw)
}

// writeFileAtomic makes path hold data, mode 0600, or leaves it as it was:
// the bytes go to a temporary file in the same directory, are synced, then
// renamed over path, and the directory is synced so the rename survives a
// power cut. A crash leaves at worst a stray temporary file.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// renameDurably renames from to to and syncs their directory.
func renameDurably(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	return syncDir(filepath.Dir(to))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
