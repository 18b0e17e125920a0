package agent

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"golang.org/x/crypto/nacl/box"
)

// maxKeyFileSize bounds what CAPTURE_KEY reads: key files are small.
const maxKeyFileSize = 1 << 20

// Captured keys are sealed (NaCl sealed box, X25519) to the control plane's
// public key, the same key customers seal their inputs to
// (GET /api/v1/crypto/public-key). The agent holds nothing that can open
// it, no secret travels in a payload, and the control plane opens the box
// and re-encrypts the key under the node's DEK before storing it.

// ValidateKeyPath accepts only a relative path that stays inside the
// chain data dir lexically; os.Root then stops symlinks that escape.
func ValidateKeyPath(p string) error {
	switch {
	case p == "":
		return errors.New("the key path is empty")
	case strings.ContainsRune(p, 0):
		return errors.New("the key path holds a NUL byte")
	case strings.Contains(p, `\`):
		return errors.New("the key path holds a backslash")
	case !filepath.IsLocal(p):
		return errors.New("the key path leaves the chain data directory")
	}
	return nil
}

// readKeyFile reads path inside chainDir through os.Root, so neither `..`
// nor a symlink can reach outside it.
func readKeyFile(chainDir, path string) ([]byte, error) {
	if err := ValidateKeyPath(path); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(chainDir)
	if err != nil {
		return nil, fmt.Errorf("open chain data dir: %w", err)
	}
	defer root.Close()
	f, err := root.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open key file %q: %w", path, errors.Unwrap(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		engine.Zero(b)
		return nil, fmt.Errorf("read key file %q: %w", path, err)
	}
	if len(b) > maxKeyFileSize {
		engine.Zero(b)
		return nil, fmt.Errorf("key file %q is larger than %d bytes", path, maxKeyFileSize)
	}
	return b, nil
}

// CaptureKey reads the key file at keyPath in chainDir, seals it to
// sealKey and zeroes the plaintext. It returns the sealed box.
func CaptureKey(chainDir, keyPath string, sealKey []byte) ([]byte, error) {
	if len(sealKey) != 32 {
		return nil, permanent("no control-plane public key to seal captured keys to")
	}
	var pub [32]byte
	copy(pub[:], sealKey)
	plain, err := readKeyFile(chainDir, keyPath)
	if err != nil {
		return nil, permanent(err.Error())
	}
	defer engine.Zero(plain)
	sealed, err := box.SealAnonymous(nil, plain, &pub, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	return sealed, nil
}

// captureKeyResult runs CAPTURE_KEY and encodes its result.
func captureKeyResult(chainDir string, p *agentv1.CaptureKeyPayload, sealKey []byte) ([]byte, error) {
	sealed, err := CaptureKey(chainDir, p.GetKeyPath(), sealKey)
	if err != nil {
		return nil, err
	}
	return agentv1.MarshalPayload(&agentv1.CaptureKeyResult{KeyName: p.GetKeyName(), EncryptedKey: sealed})
}
