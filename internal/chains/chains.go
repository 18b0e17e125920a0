// Package chains installs the real chain clients the end-to-end tests run
// (CometBFT and geth), with `go install` of a pinned version into a
// directory under the Go build cache, so a machine builds each once.
package chains

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Client is a chain client built from its Go module.
type Client struct {
	Name    string // the program, e.g. "cometbft"
	Package string // what `go install` builds
	Version string
}

// The clients the tests run, at versions that build with our Go.
var (
	CometBFT = Client{Name: "cometbft", Package: "github.com/cometbft/cometbft/cmd/cometbft", Version: "v0.38.19"}
	Geth     = Client{Name: "geth", Package: "github.com/ethereum/go-ethereum/cmd/geth", Version: "v1.17.10"}
	// CometBFTNext is the release the upgrade rollouts move CometBFT to.
	CometBFTNext = Client{Name: "cometbft", Package: "github.com/cometbft/cometbft/cmd/cometbft", Version: "v0.38.20"}
	All          = []Client{CometBFT, Geth, CometBFTNext}
)

// RequireEnv, set to 1, makes a test fail instead of skipping when a
// client cannot be installed (CI sets it).
const RequireEnv = "HOODCLOUD_TEST_REQUIRE_CHAINS"

// Dir is where c is installed: <GOCACHE>/hoodcloud-chains/<name>@<version>.
func (c Client) Dir() (string, error) {
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOCACHE: %w", err)
	}
	cache := strings.TrimSpace(string(out))
	if cache == "" || cache == "off" {
		return "", errors.New("the Go build cache is off")
	}
	return filepath.Join(cache, "hoodcloud-chains", c.Name+"@"+c.Version), nil
}

// Install returns the path of c's program, building it first if this
// machine has not. Concurrent installs (test packages run in parallel)
// wait for one another.
func (c Client) Install(ctx context.Context) (string, error) {
	dir, err := c.Dir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, c.Name)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lock(filepath.Join(dir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // installed while we waited
	}
	cmd := exec.CommandContext(ctx, "go", "install", c.Package+"@"+c.Version)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-trimpath")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %w\n%s", c.Package, c.Version, err, tail(out))
	}
	return bin, nil
}

func lock(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// tail keeps the end of a long build log.
func tail(out []byte) []byte {
	const max = 4 << 10
	if len(out) > max {
		return out[len(out)-max:]
	}
	return out
}
