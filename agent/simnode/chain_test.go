package simnode

import (
	"path/filepath"
	"testing"
	"time"
)

func TestChainAdvance(t *testing.T) {
	tests := []struct {
		name          string
		start         chain
		mode          Mode
		blocks        int
		height, highs uint64
		syncing       bool
	}{
		{"normal follows the network", chain{}, ModeNormal, 10, 10, 10, false},
		{"normal catches up at least 5 a block", chain{Network: 20, highest: 20}, ModeNormal, 2, 10, 22, true},
		{"normal catches up a tenth of a long gap", chain{Network: 10_000, highest: 10_000}, ModeNormal, 1, 1000, 10_001, true},
		{"normal never overshoots", chain{Height: 8, Network: 10, highest: 10}, ModeNormal, 1, 11, 11, false},
		{"behind imports every other block", chain{Height: 10, Network: 10, highest: 10}, ModeBehind, 10, 15, 20, true},
		{"stall freezes the node's view", chain{Height: 10, Network: 10, highest: 10}, ModeStall, 10, 10, 10, false},
		{"crashloop runs normally until it crashes", chain{}, ModeCrashLoop, 3, 3, 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.start
			for range tt.blocks {
				c.advance(tt.mode)
			}
			if c.Height != tt.height || c.highest != tt.highs || c.syncing() != tt.syncing {
				t.Errorf("after %d blocks: height %d highest %d syncing %v, want %d %d %v",
					tt.blocks, c.Height, c.highest, c.syncing(), tt.height, tt.highs, tt.syncing)
			}
		})
	}
}

func TestStalledNodeResumesBehindTheNetwork(t *testing.T) {
	c := chain{}
	for range 5 {
		c.advance(ModeStall)
	}
	c.advance(ModeNormal)
	if c.Height != 5 || c.highest != 6 || !c.syncing() {
		t.Errorf("after a stall: height %d highest %d syncing %v, want 5 6 true", c.Height, c.highest, c.syncing())
	}
}

func TestLoadChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	fresh, err := loadChain(path, 42, time.Second, time.Now())
	if err != nil || fresh.Height != 0 || fresh.highest != 42 {
		t.Fatalf("fresh chain = %+v, %v; want height 0 on a network at 42", fresh, err)
	}

	saved := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := saveChain(path, chain{Height: 100, Network: 100, highest: 100}, saved); err != nil {
		t.Fatal(err)
	}
	got, err := loadChain(path, 0, time.Second, saved.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got.Height != 100 || got.highest != 130 {
		t.Errorf("after 30 s down: height %d highest %d, want 100 130", got.Height, got.highest)
	}
}
