package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Files of the ops-agent's data dir, all 0600 in a 0700 directory.
const (
	keyFile    = "agent-key.pem"
	certFile   = "agent-cert.pem"
	caFile     = "ca.pem"
	outboxFile = "outbox.json"
	seenFile   = "seen-commands.json"
	// finishedFile holds the ids of the commands whose outcome the agent
	// recorded: a taken command not in it was cut short by a restart.
	finishedFile = "finished-commands.json"
	maxSeen      = 10_000 // the oldest ids are forgotten beyond this
)

// writeFileAtomic replaces path with data (0600) so a crash leaves the old
// or the new content, never half of it.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// readJSON decodes path into v; a missing file leaves v as it is.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b)
}

// seenCommands remembers every command id the agent took, across
// restarts, so no command runs twice.
type seenCommands struct {
	mu   sync.Mutex
	path string
	ids  []string
	set  map[string]bool
}

func loadSeenCommands(path string) (*seenCommands, error) {
	s := &seenCommands{path: path, set: map[string]bool{}}
	if err := readJSON(path, &s.ids); err != nil {
		return nil, fmt.Errorf("read seen commands: %w", err)
	}
	for _, id := range s.ids {
		s.set[id] = true
	}
	return s, nil
}

// add records id durably and reports whether it was new.
func (s *seenCommands) add(id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set[id] {
		return false, nil
	}
	s.ids = append(s.ids, id)
	s.set[id] = true
	if len(s.ids) > maxSeen {
		delete(s.set, s.ids[0])
		s.ids = s.ids[1:]
	}
	if err := writeJSON(s.path, s.ids); err != nil {
		return false, fmt.Errorf("record seen command: %w", err)
	}
	return true, nil
}

// event is one report about a command waiting to reach the gateway.
type event struct {
	Seq       int64  `json:"seq"`
	Kind      string `json:"kind"` // acknowledged, completed, failed
	CommandID string `json:"command_id"`
	Result    []byte `json:"result,omitempty"`
	Error     string `json:"error,omitempty"`
	Retryable bool   `json:"retryable,omitempty"`
}

// outbox keeps unreported events in a file until the gateway has them, so
// a result survives a gateway outage and an agent restart.
type outbox struct {
	mu     sync.Mutex
	path   string
	events []event
	next   int64
	notify chan struct{}
}

func loadOutbox(path string) (*outbox, error) {
	o := &outbox{path: path, notify: make(chan struct{}, 1)}
	if err := readJSON(path, &o.events); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	for _, e := range o.events {
		o.next = max(o.next, e.Seq+1)
	}
	return o, nil
}

func (o *outbox) add(e event) error {
	o.mu.Lock()
	e.Seq, o.next = o.next, o.next+1
	o.events = append(o.events, e)
	err := writeJSON(o.path, o.events)
	o.mu.Unlock()
	select {
	case o.notify <- struct{}{}:
	default:
	}
	if err != nil {
		return fmt.Errorf("write outbox: %w", err)
	}
	return nil
}

// peek returns the oldest event.
func (o *outbox) peek() (event, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.events) == 0 {
		return event{}, false
	}
	return o.events[0], true
}

// done drops the event seq once the gateway has it.
func (o *outbox) done(seq int64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, e := range o.events {
		if e.Seq == seq {
			o.events = append(o.events[:i:i], o.events[i+1:]...)
			return writeJSON(o.path, o.events)
		}
	}
	return nil
}

// hasOutcome reports whether the outbox holds the outcome of command id,
// not yet delivered.
func (o *outbox) hasOutcome(id string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range o.events {
		if e.CommandID == id && e.Kind != "acknowledged" {
			return true
		}
	}
	return false
}

func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.events)
}

func (s *seenCommands) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set[id]
}
