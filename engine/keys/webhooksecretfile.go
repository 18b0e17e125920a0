package keys

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// WebhookSecretFile is the payment webhook secret of a file the operator
// keeps (hoodcloud serve --payment-webhook-secret-file), for a secret the
// payment service chose or was given. The file holds the current secret on
// its first line and, during a rotation, the previous one on its second;
// surrounding white space is trimmed and blank lines are ignored. Each
// secret is at least MinWebhookSecretBytes; the HMAC key is the line's
// bytes. The file is readable by its owner only.
//
// To rotate, the operator replaces the file (write a new one, rename it
// over) with the new secret then the old one: both verify until the grace
// period has passed since the file was written (its modification time),
// then the old line is ignored and may be removed. The file is checked
// for a change whenever a webhook arrives; a replacement that does not
// pass the checks is logged and the secrets read before stay in force.
// Safe for concurrent use.
type WebhookSecretFile struct {
	path   string
	grace  time.Duration
	now    func() time.Time
	logger *slog.Logger

	mu         sync.Mutex
	info       os.FileInfo // of the version in force
	secrets    webhookFileSecrets
	refused    os.FileInfo // of the last version refused, logged once
	unreadable bool        // the file could not be read, logged once
}

var _ engine.WebhookSecrets = (*WebhookSecretFile)(nil)

// maxWebhookSecretFileBytes bounds the file: two secrets are small.
const maxWebhookSecretFileBytes = 4 << 10

// webhookFileSecrets are what one version of the file says.
type webhookFileSecrets struct {
	current, previous []byte
	written           time.Time
}

// WebhookSecretFileConfig tunes a WebhookSecretFile; zero fields take
// defaults.
type WebhookSecretFileConfig struct {
	Grace  time.Duration    // DefaultWebhookGrace when zero
	Now    func() time.Time // time.Now when nil
	Logger *slog.Logger     // receives refused replacements; never a secret
}

// OpenWebhookSecretFile reads and checks the file. Returns EInvalid naming
// the file and the problem (unreadable, empty, a secret too short, more
// than two secrets, readable by group or others), never a secret.
func OpenWebhookSecretFile(path string, cfg WebhookSecretFileConfig) (*WebhookSecretFile, error) {
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultWebhookGrace
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f := &WebhookSecretFile{path: path, grace: cfg.Grace, now: cfg.Now, logger: cfg.Logger}
	info, secrets, err := readWebhookSecretFile(path)
	if err != nil {
		return nil, err
	}
	f.info, f.secrets = info, secrets
	return f, nil
}

// CheckWebhookSecretFile checks the file as OpenWebhookSecretFile does,
// keeping nothing of it.
func CheckWebhookSecretFile(path string) error {
	_, s, err := readWebhookSecretFile(path)
	s.zero()
	return err
}

// Current is the secret on the file's first line.
func (f *WebhookSecretFile) Current() []byte { return f.read().current }

// Verifying returns the current secret, then the previous one while the
// grace period since the file was written lasts.
func (f *WebhookSecretFile) Verifying() [][]byte {
	s := f.read()
	out := [][]byte{s.current}
	if s.previous != nil && f.now().Before(s.written.Add(f.grace)) {
		out = append(out, s.previous)
	}
	return out
}

// read returns the secrets of the file, reading it again when it changed.
// Secrets read before are not zeroed when replaced: a verification may be
// using them.
func (f *WebhookSecretFile) read() webhookFileSecrets {
	f.mu.Lock()
	defer f.mu.Unlock()
	info, err := os.Stat(f.path)
	if err != nil {
		f.refuse(nil, unreadable(f.path, err))
		return f.secrets
	}
	if sameVersion(info, f.info) || sameVersion(info, f.refused) {
		return f.secrets
	}
	info, secrets, err := readWebhookSecretFile(f.path)
	if err != nil {
		f.refuse(info, err)
		return f.secrets
	}
	f.info, f.secrets, f.refused, f.unreadable = info, secrets, nil, false
	f.logger.Info("payment webhook secret file read again", "file", f.path, "key_id", webhookSecretID(secrets.current),
		"previous_honoured_until", secrets.written.Add(f.grace))
	return f.secrets
}

// refuse logs, once per version of the file (info, or nil when it cannot
// be read), why it was refused.
func (f *WebhookSecretFile) refuse(info os.FileInfo, err error) {
	if info == nil && f.unreadable || info != nil && sameVersion(info, f.refused) {
		return
	}
	f.refused, f.unreadable = info, info == nil
	f.logger.Error("payment webhook secret file refused; the secrets read before stay in force", "err", err)
}

// sameVersion says whether two looks at the file saw the same version: the
// same file (a rename over it makes another), size, modification time and
// mode (a chmod may cure a refused one).
func sameVersion(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && a.Mode() == b.Mode()
}

// readWebhookSecretFile reads and checks one version of the file; the
// FileInfo is returned even when the content is refused.
func readWebhookSecretFile(path string) (os.FileInfo, webhookFileSecrets, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, webhookFileSecrets{}, unreadable(path, err)
	}
	defer fh.Close()
	info, err := fh.Stat()
	if err != nil || !info.Mode().IsRegular() {
		return nil, webhookFileSecrets{}, engine.Errorf(engine.EInvalid, "payment webhook secret file %s is not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return info, webhookFileSecrets{}, engine.Errorf(engine.EInvalid,
			"payment webhook secret file %s is accessible by group or others (mode %04o): make it 0600", path, perm)
	}
	if info.Size() > maxWebhookSecretFileBytes { // checked again on the bytes read: it may be growing
		return info, webhookFileSecrets{}, engine.Errorf(engine.EInvalid,
			"payment webhook secret file %s is larger than %d bytes: want one or two secrets", path, maxWebhookSecretFileBytes)
	}
	raw := make([]byte, maxWebhookSecretFileBytes+1) // one read, no copies left behind by growing
	defer engine.Zero(raw)
	n, err := io.ReadFull(fh, raw)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return info, webhookFileSecrets{}, unreadable(path, err)
	}
	if n > maxWebhookSecretFileBytes {
		return info, webhookFileSecrets{}, engine.Errorf(engine.EInvalid,
			"payment webhook secret file %s is larger than %d bytes: want one or two secrets", path, maxWebhookSecretFileBytes)
	}
	s, err := parseWebhookSecrets(path, raw[:n])
	s.written = info.ModTime()
	return info, s, err
}

// unreadable says why the file cannot be read: the system's reason
// (missing, permission denied), which shows nothing of the content.
func unreadable(path string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return engine.Errorf(engine.EInvalid, "payment webhook secret file %s cannot be read: %v", path, err)
}

// parseWebhookSecrets reads the current secret and the optional previous
// one; errors name the line, never its content.
func parseWebhookSecrets(path string, raw []byte) (webhookFileSecrets, error) {
	var lines [][]byte
	for line := range bytes.Lines(raw) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			lines = append(lines, line)
		}
	}
	switch {
	case len(lines) == 0:
		return webhookFileSecrets{}, engine.Errorf(engine.EInvalid, "payment webhook secret file %s is empty", path)
	case len(lines) > 2:
		return webhookFileSecrets{}, engine.Errorf(engine.EInvalid,
			"payment webhook secret file %s holds %d lines: want the current secret, and the previous one during a rotation", path, len(lines))
	}
	for i, line := range lines {
		if len(line) < MinWebhookSecretBytes {
			return webhookFileSecrets{}, engine.Errorf(engine.EInvalid,
				"payment webhook secret file %s: the secret on %s is %d bytes, want at least %d", path, lineName(i), len(line), MinWebhookSecretBytes)
		}
	}
	s := webhookFileSecrets{current: bytes.Clone(lines[0])}
	if len(lines) == 2 {
		s.previous = bytes.Clone(lines[1])
	}
	return s, nil
}

func lineName(i int) string {
	if i == 0 {
		return "line 1 (the current one)"
	}
	return fmt.Sprintf("line %d (the previous one)", i+1)
}

// zero wipes secrets no verification can be using.
func (s webhookFileSecrets) zero() {
	engine.Zero(s.current)
	engine.Zero(s.previous)
}
