package local

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/hoodcloud/hoodcloud/engine"
)

// PathArtifacts finds a chain profile's local artifacts ("path:cometbft")
// on the appliance's PATH: the local provisioner's hosts share its machine,
// so their agents install the program from the file itself.
type PathArtifacts struct {
	// LookPath defaults to exec.LookPath; tests give their own PATH.
	LookPath func(name string) (string, error)
}

// Find returns the file URL and SHA-256 of the program called name.
func (a PathArtifacts) Find(name string) (fileURL, sha string, err error) {
	look := a.LookPath
	if look == nil {
		look = exec.LookPath
	}
	p, err := look(name)
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return "", "", engine.Errorf(engine.ENotFound, "no %s on the PATH", name)
	}
	if err != nil {
		return "", "", fmt.Errorf("look for %s: %w", name, err)
	}
	if p, err = filepath.Abs(p); err != nil {
		return "", "", err
	}
	if p, err = filepath.EvalSymlinks(p); err != nil {
		return "", "", err
	}
	sum, err := fileSHA256(p)
	if err != nil {
		return "", "", err
	}
	return (&url.URL{Scheme: "file", Path: p}).String(), sum, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
