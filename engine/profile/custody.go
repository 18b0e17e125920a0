package profile

import (
	"fmt"
	"slices"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// Custody is how a profile's signing keys move between hosts without two
// live signers: the gap between one holder's release and the next one's
// start, and the files that protect a key against signing twice, which go
// with it (CometBFT's priv_validator_state.json).
type Custody struct {
	// Gap is the least time between the release of a key's lease and the
	// start of its next holder; GapBlocks the least number of blocks the
	// chain makes meanwhile, counted by the node's other observers.
	Gap       time.Duration
	GapBlocks int
	// StateFiles are carried encrypted from the stopped signer to the next.
	StateFiles []StateFile
}

// StateFile is a file of the signer's double-sign protection.
type StateFile struct {
	Name string // unique among the profile's keys and state files
	Path string // relative to the chain data dir
}

// Default gap: two blocks and thirty seconds, whichever comes last.
const (
	DefaultCustodyGap       = 30 * time.Second
	DefaultCustodyGapBlocks = 2
)

type rawCustody struct {
	Gap        string         `yaml:"gap"`
	GapBlocks  *int           `yaml:"gap_blocks"`
	StateFiles []rawStateFile `yaml:"state_files"`
}

type rawStateFile struct {
	Name string `yaml:"name"`
	Path string `yaml:"path"`
}

// SigningKeys names the keys the components of a node of nodeType sign
// with, in declared order; none for a node type that takes no such key (a
// full node of a validator's chain).
func (p *ChainProfile) SigningKeys(nodeType string) []string {
	paths := p.KeyPaths(nodeType)
	var out []string
	for _, c := range p.Components {
		for _, k := range c.SignsWith {
			if _, ok := paths[k]; ok && !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}

func buildCustody(ps *problems, raw *rawCustody) Custody {
	c := Custody{Gap: DefaultCustodyGap, GapBlocks: DefaultCustodyGapBlocks}
	if raw == nil {
		return c
	}
	if raw.Gap != "" {
		d, err := time.ParseDuration(raw.Gap)
		if err != nil || d < 0 || d > 24*time.Hour {
			ps.add("custody.gap", "must be a duration between 0s and 24h, e.g. \"30s\"")
		}
		c.Gap = d
	}
	if raw.GapBlocks != nil {
		if *raw.GapBlocks < 0 || *raw.GapBlocks > 10_000 {
			ps.add("custody.gap_blocks", "must be between 0 and 10000")
		}
		c.GapBlocks = *raw.GapBlocks
	}
	seen := map[string]bool{}
	for i, f := range raw.StateFiles {
		field := fmt.Sprintf("custody.state_files[%d]", i)
		if !inputNamePattern.MatchString(f.Name) || !engine.ValidKeyName(f.Name) {
			ps.add(field+".name", "must be a lowercase name such as \"priv_validator_state\"")
		} else if seen[f.Name] {
			ps.add(field+".name", "duplicate state file %q", f.Name)
		}
		seen[f.Name] = true
		checkChainPath(ps, field+".path", f.Path)
		c.StateFiles = append(c.StateFiles, StateFile(f))
	}
	return c
}

// checkSigners refuses a component that signs with something other than a
// secret with a key file, and state files that clash with keys.
func checkSigners(ps *problems, p *ChainProfile) {
	keys := p.KeyPaths("")
	for i, c := range p.Components {
		for j, k := range c.SignsWith {
			if _, ok := keys[k]; !ok {
				ps.add(fmt.Sprintf("components[%d].signs_with[%d]", i, j), "%q is not a secret input with a key_path", k)
			}
		}
	}
	for i, f := range p.Custody.StateFiles {
		field := fmt.Sprintf("custody.state_files[%d]", i)
		if _, ok := keys[f.Name]; ok {
			ps.add(field+".name", "is the name of a key")
		}
		for name, rel := range keys {
			if rel == f.Path {
				ps.add(field+".path", "is the key file of %q", name)
			}
		}
	}
}
