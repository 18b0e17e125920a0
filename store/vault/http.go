package vault

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/hoodcloud/hoodcloud/engine"
)

// maxResponse bounds what is read from Vault: far above any answer of the
// endpoints used here.
const maxResponse = 16 << 20

// statusError is a non-2xx answer. Its text holds the status only: Vault's
// own error strings are kept for classification, never shown, since a
// message about a ciphertext or a secret could quote it.
type statusError struct {
	status int
	errors []string
}

func (e *statusError) Error() string { return fmt.Sprintf("vault answered status %d", e.status) }

// says reports whether one of Vault's error strings contains text.
func (e *statusError) says(text string) bool {
	return slices.ContainsFunc(e.errors, func(s string) bool { return strings.Contains(s, text) })
}

func isStatus(err error, statuses ...int) bool {
	var se *statusError
	return errors.As(err, &se) && slices.Contains(statuses, se.status)
}

func vaultSays(err error, text string) bool {
	var se *statusError
	return errors.As(err, &se) && se.says(text)
}

// call sends an authenticated request and decodes a 2xx answer into out
// (when not nil). If Vault refuses a token that may have lapsed, it logs in
// again and retries once. body is the caller's, who zeroes it.
func (s *Secrets) call(ctx context.Context, method, path string, body []byte, out any) error {
	if err := s.open(); err != nil {
		return err
	}
	sess := s.session.Load()
	err := s.send(ctx, method, path, body, out, sess)
	if !isStatus(err, http.StatusForbidden) {
		return err
	}
	fresh, lerr := s.reauthenticate(ctx, sess)
	if lerr != nil || fresh == sess {
		return err
	}
	return s.send(ctx, method, path, body, out, fresh)
}

// send performs one request with sess's token (none when sess is nil).
// Transport failures are EUnavailable; the response body is zeroed after
// decoding, as it may hold plaintext.
func (s *Secrets) send(ctx context.Context, method, path string, body []byte, out any, sess *session) error {
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("vault: build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if sess != nil {
		req.Header.Set("X-Vault-Token", sess.token)
	}
	if s.namespace != "" {
		req.Header.Set("X-Vault-Namespace", s.namespace)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return unreachable(ctx, err)
	}
	defer resp.Body.Close()
	raw, err := readBody(resp)
	defer engine.Zero(raw)
	if err != nil {
		return engine.Errorf(engine.EUnavailable, "reading vault's answer failed")
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return failure(resp.StatusCode, raw)
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	if json.Unmarshal(raw, out) != nil { // its message could quote the body
		return errors.New("vault: answer is not the expected JSON")
	}
	return nil
}

// unreachable keeps the caller's own cancellation recognizable and makes
// every other transport failure EUnavailable. The underlying error names
// only the address and the network fault.
func unreachable(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%w: %w", engine.Errorf(engine.EUnavailable, "vault cannot be reached"), err)
}

func failure(status int, raw []byte) error {
	var body struct {
		Errors []string `json:"errors"`
	}
	_ = json.Unmarshal(raw, &body) // a proxy's HTML page has none
	return &statusError{status: status, errors: body.Errors}
}

// readBody reads the whole answer into one buffer, clearing each smaller
// buffer it outgrows so that no copy of the plaintext is left behind.
func readBody(resp *http.Response) ([]byte, error) {
	size := 4 << 10
	if resp.ContentLength > 0 && resp.ContentLength <= maxResponse {
		size = int(resp.ContentLength)
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= maxResponse {
				return buf, errors.New("vault: answer too large")
			}
			grown := make([]byte, len(buf), 2*cap(buf)+1)
			copy(grown, buf)
			engine.Zero(buf)
			buf = grown
		}
		n, err := resp.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// health asks sys/health, which needs no token and answers with a status
// code; standbys answer 200 as they forward requests to the active node.
func (s *Secrets) health(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"sys/health?standbyok=true&perfstandbyok=true", nil)
	if err != nil {
		return 0, fmt.Errorf("vault: build request: %w", err)
	}
	if s.namespace != "" {
		req.Header.Set("X-Vault-Namespace", s.namespace)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, unreachable(ctx, err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// jsonBody builds a JSON object in a buffer the caller owns and zeroes:
// encoding/json would leave the plaintext in its pooled buffers. Growing
// clears the outgrown buffer for the same reason.
type jsonBody struct{ buf []byte }

// newBody starts an object; hint is the expected size of its values.
func newBody(hint int) *jsonBody { return &jsonBody{buf: append(make([]byte, 0, hint+128), '{')} }

func (b *jsonBody) write(p ...byte) {
	if len(b.buf)+len(p) > cap(b.buf) {
		grown := make([]byte, len(b.buf), 2*(len(b.buf)+len(p)))
		copy(grown, b.buf)
		engine.Zero(b.buf)
		b.buf = grown
	}
	b.buf = append(b.buf, p...)
}

func (b *jsonBody) key(name string) *jsonBody {
	if b.buf[len(b.buf)-1] != '{' {
		b.write(',')
	}
	b.write('"')
	b.write([]byte(name)...)
	b.write('"', ':')
	return b
}

// base64 writes value as a standard base64 string, as Vault expects
// binary values.
func (b *jsonBody) base64(name string, value []byte) *jsonBody {
	b.key(name).write('"')
	n := base64.StdEncoding.EncodedLen(len(value))
	b.write(make([]byte, n)...)
	base64.StdEncoding.Encode(b.buf[len(b.buf)-n:], value)
	b.write('"')
	return b
}

// text writes value as a JSON string, escaping what JSON requires.
func (b *jsonBody) text(name string, value []byte) *jsonBody {
	b.key(name).write('"')
	const hex = "0123456789abcdef"
	for _, c := range value {
		switch {
		case c == '"' || c == '\\':
			b.write('\\', c)
		case c < 0x20:
			b.write('\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b.write(c)
		}
	}
	b.write('"')
	return b
}

// raw writes already encoded JSON, such as a number.
func (b *jsonBody) raw(name, value string) *jsonBody {
	b.key(name).write([]byte(value)...)
	return b
}

// object starts a nested object, closed by end.
func (b *jsonBody) object(name string) *jsonBody {
	b.key(name).write('{')
	return b
}

func (b *jsonBody) end() *jsonBody {
	b.write('}')
	return b
}

// bytes closes the object and returns it.
func (b *jsonBody) bytes() []byte { return b.end().buf }
