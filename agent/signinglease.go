package agent

import (
	"fmt"
	"sync"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// signingEpochsFile keeps the highest fencing epoch the agent was given for
// each key, across restarts: a START carrying an older lease comes from a
// holder that was superseded, and a signer started under it could sign
// beside the newer holder's.
const signingEpochsFile = "signing-epochs.json"

// signingEpochs is the highest epoch seen per key name.
type signingEpochs struct {
	mu      sync.Mutex
	path    string
	highest map[string]uint64
}

func loadSigningEpochs(path string) (*signingEpochs, error) {
	s := &signingEpochs{path: path, highest: map[string]uint64{}}
	if err := readJSON(path, &s.highest); err != nil {
		return nil, fmt.Errorf("read signing epochs: %w", err)
	}
	if s.highest == nil { // the file held null
		s.highest = map[string]uint64{}
	}
	return s, nil
}

// admit checks that leases cover every key in keys at an epoch no older
// than any seen (see check) and records their epochs durably, so they are
// on disk before the chain may start. A refusal records nothing.
func (s *signingEpochs) admit(keys []string, leases map[string]uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(keys, leases); err != nil {
		return err
	}
	next := make(map[string]uint64, len(s.highest)+len(leases))
	changed := false
	for k, e := range s.highest {
		next[k] = e
	}
	for k, e := range leases {
		if e > next[k] {
			next[k], changed = e, true
		}
	}
	if !changed {
		return nil
	}
	if err := writeJSON(s.path, next); err != nil {
		return fmt.Errorf("save signing epochs: %w", err)
	}
	s.highest = next
	return nil
}

// check refuses, for good, leases that lack a key of keys or hold one at
// an epoch older than the highest seen for it. The error names the key and
// the epochs; the agent never reads a key to decide.
func (s *signingEpochs) check(keys []string, leases map[string]uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkLocked(keys, leases)
}

func (s *signingEpochs) checkLocked(keys []string, leases map[string]uint64) error {
	for _, k := range keys {
		e, ok := leases[k]
		switch {
		case !ok:
			return permanent(fmt.Sprintf("no signing lease for key %q: a signer starts only under a current lease", k))
		case e < s.highest[k]:
			return permanent(fmt.Sprintf("the signing lease for key %q is stale: epoch %d, and this host was given epoch %d", k, e, s.highest[k]))
		}
	}
	return nil
}

// leaseEpochs is a START's leases by key name. Leases without a name or an
// epoch (epochs start at 1), and two leases for one key, are refused.
func leaseEpochs(leases []*agentv1.SigningLease) (map[string]uint64, error) {
	m := make(map[string]uint64, len(leases))
	for _, l := range leases {
		k := l.GetKeyName()
		switch _, dup := m[k]; {
		case k == "":
			return nil, permanent("a signing lease names no key")
		case l.GetEpoch() == 0:
			return nil, permanent(fmt.Sprintf("the signing lease for key %q has no epoch", k))
		case dup:
			return nil, permanent(fmt.Sprintf("two signing leases for key %q", k))
		}
		m[k] = l.GetEpoch()
	}
	return m, nil
}

// signingKeys are the keys the configuration's components sign with, each
// once; none for a missing configuration.
func signingKeys(p *agentv1.ConfigurePayload) []string {
	var keys []string
	seen := map[string]bool{}
	for _, c := range p.GetComponents() {
		for _, k := range c.GetSignsWith() {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	return keys
}
