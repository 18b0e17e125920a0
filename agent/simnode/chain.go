package simnode

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Mode is how the simulated node behaves.
type Mode string

const (
	// ModeNormal follows the network head, catching up quickly when behind.
	ModeNormal Mode = "normal"
	// ModeStall is a hung node: it still answers, but nothing it reports
	// moves (height, highest block, syncing flag).
	ModeStall Mode = "stall"
	// ModeCrashLoop exits with ErrCrashLoop shortly after start (or after
	// switching to it), every time it is started.
	ModeCrashLoop Mode = "crashloop"
	// ModeBehind imports blocks at half the network's pace: the highest
	// block keeps moving, the height lags further and further, syncing is 1.
	ModeBehind Mode = "behind"
)

// ParseMode returns the mode named s; "" is ModeNormal.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return ModeNormal, nil
	case ModeNormal, ModeStall, ModeCrashLoop, ModeBehind:
		return m, nil
	}
	return "", fmt.Errorf("unknown mode %q (want normal, stall, crashloop or behind)", s)
}

// minCatchUp is the fewest blocks a lagging node imports per block interval;
// it also imports a tenth of the gap, so a long outage is made up in
// dozens of intervals rather than thousands.
const minCatchUp = 5

// chain is the node's view of its chain. The node's loop owns it.
type chain struct {
	Height  uint64 `json:"height"`  // the node's head
	Network uint64 `json:"network"` // the network's head, which moves whatever the node does
	highest uint64 // the network head as the node last saw it
	skipped bool   // in ModeBehind: whether the last block was skipped
}

// advance moves the chain on by one block interval.
func (c *chain) advance(mode Mode) {
	c.Network++
	switch mode {
	case ModeStall:
		return
	case ModeBehind:
		c.highest = c.Network
		c.skipped = !c.skipped
		if !c.skipped {
			c.Height++
		}
	default:
		c.highest = c.Network
		c.Height += catchUpStep(c.highest - c.Height)
	}
}

func catchUpStep(gap uint64) uint64 {
	return min(gap, max(minCatchUp, gap/10))
}

func (c *chain) syncing() bool { return c.Height < c.highest }

// savedChain is the chain's state file.
type savedChain struct {
	chain
	SavedAt time.Time `json:"saved_at"`
}

// loadChain reads the state file at path. A missing file is a fresh node at
// height 0 on a network at networkHead. The network moved on while the node
// was down: one block per interval since the save.
func loadChain(path string, networkHead uint64, interval time.Duration, now time.Time) (chain, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return chain{Network: networkHead, highest: networkHead}, nil
	}
	if err != nil {
		return chain{}, fmt.Errorf("read chain state: %w", err)
	}
	var s savedChain
	if err := json.Unmarshal(b, &s); err != nil {
		return chain{}, fmt.Errorf("chain state %s: %w", path, err)
	}
	c := s.chain
	if down := now.Sub(s.SavedAt); down > 0 {
		c.Network += uint64(down / interval)
	}
	c.Network = max(c.Network, c.Height)
	c.highest = c.Network
	return c, nil
}

func saveChain(path string, c chain, now time.Time) error {
	b, err := json.Marshal(savedChain{chain: c, SavedAt: now})
	if err != nil {
		return fmt.Errorf("encode chain state: %w", err)
	}
	return writeFileAtomic(path, b)
}

// writeFileAtomic replaces path with data, mode 0600, so a crash leaves the
// old content or the new, never a torn file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}
