package simnode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Control is the content of the control file, which changes a running
// node's behaviour, for example {"mode":"behind","peers":2}. A field left out
// keeps the value the node was started with; removing the file restores all
// of them.
type Control struct {
	Mode  Mode `json:"mode,omitempty"`
	Peers *int `json:"peers,omitempty"`
}

// behaviour is what the node does right now.
type behaviour struct {
	mode  Mode
	peers int
}

// over returns b with the control file's fields applied.
func (c Control) over(b behaviour) behaviour {
	if c.Mode != "" {
		b.mode = c.Mode
	}
	if c.Peers != nil {
		b.peers = *c.Peers
	}
	return b
}

// parseControl reads one JSON object, refusing unknown fields (a misspelt
// field would otherwise be silently ignored) and values out of range.
func parseControl(b []byte) (Control, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Control
	if err := dec.Decode(&c); err != nil {
		return Control{}, fmt.Errorf("parse: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Control{}, errors.New("parse: trailing data after the JSON object")
	}
	if c.Mode != "" {
		if _, err := ParseMode(string(c.Mode)); err != nil {
			return Control{}, err
		}
	}
	if c.Peers != nil && *c.Peers < 0 {
		return Control{}, fmt.Errorf("peers %d is negative", *c.Peers)
	}
	return c, nil
}

// controlFile notices changes to the control file. The node's loop owns it.
type controlFile struct {
	path    string
	last    []byte // content last seen; nil when absent
	present bool
	readErr string // the read error last reported
}

// controlChange is what a poll found.
type controlChange struct {
	control Control
	err     error // the new content is unusable; keep the current behaviour
}

// poll reads the file and reports a change, or nil when the content is as
// last seen (so a bad file is reported once, not on every poll).
func (f *controlFile) poll() *controlChange {
	b, err := os.ReadFile(f.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f.readErr = ""
		if !f.present {
			return nil
		}
		f.present, f.last = false, nil
		return &controlChange{}
	case err != nil:
		if err.Error() == f.readErr {
			return nil
		}
		f.readErr = err.Error()
		return &controlChange{err: fmt.Errorf("read: %w", err)}
	}
	f.readErr = ""
	if f.present && bytes.Equal(b, f.last) {
		return nil
	}
	f.present, f.last = true, b
	c, err := parseControl(b)
	return &controlChange{control: c, err: err}
}
