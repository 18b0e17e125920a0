package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// maxKeyFileSize bounds what CAPTURE_KEY reads: key files are small.
const maxKeyFileSize = 1 << 20

// Captured keys are encrypted on the host under the node's data key (DEK),
// fetched from the gateway for the command (FetchDataKey) and zeroed after
// use: the control plane stores the ciphertext as it stores every node key
// and never sees the plaintext.

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

// CaptureKey reads the key file at keyPath in chainDir, encrypts it under
// dek (AES-256-GCM, nonce ‖ ciphertext) and zeroes the plaintext.
func CaptureKey(chainDir, keyPath string, dek []byte) ([]byte, error) {
	plain, err := readKeyFile(chainDir, keyPath)
	if err != nil {
		return nil, permanent(err.Error())
	}
	defer engine.Zero(plain)
	sealed, err := engine.SealWithDataKey(dek, plain)
	if err != nil {
		return nil, permanent("encrypt the key: " + err.Error())
	}
	return sealed, nil
}

// captureKey runs CAPTURE_KEY command id and encodes its result.
func (a *opsAgent) captureKey(ctx context.Context, id string, p *agentv1.CaptureKeyPayload) ([]byte, error) {
	if err := ValidateKeyPath(p.GetKeyPath()); err != nil {
		return nil, permanent(err.Error()) // refused before asking for the key
	}
	if err := awaitKeyFile(ctx, a.cfg.ChainDir, p.GetKeyPath(), keyFileWait); err != nil {
		return nil, err
	}
	dek, err := a.fetchDataKey(ctx, id)
	if err != nil {
		return nil, err
	}
	defer engine.Zero(dek)
	sealed, err := CaptureKey(a.cfg.ChainDir, p.GetKeyPath(), dek)
	if err != nil {
		return nil, err
	}
	return agentv1.MarshalPayload(&agentv1.CaptureKeyResult{KeyName: p.GetKeyName(), EncryptedKey: sealed})
}

// keyFileWait is how long CAPTURE_KEY waits for a key file the chain has
// not written yet: one it writes when it first runs appears shortly after
// START.
const keyFileWait = time.Minute

// awaitKeyFile waits until path exists inside chainDir, or wait passes.
func awaitKeyFile(ctx context.Context, chainDir, path string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := keyFileExists(chainDir, path)
		if !errors.Is(err, fs.ErrNotExist) || time.Now().After(deadline) {
			if err != nil {
				return permanent(fmt.Sprintf("key file %q: %v", path, err))
			}
			return nil
		}
		if !sleep(ctx, 250*time.Millisecond) {
			return ctx.Err()
		}
	}
}

func keyFileExists(chainDir, path string) error {
	root, err := os.OpenRoot(chainDir)
	if err != nil {
		return err
	}
	defer root.Close()
	_, err = root.Stat(path)
	return err
}
