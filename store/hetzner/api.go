package hetzner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// maxResponseBytes caps what is read of one API response.
const maxResponseBytes = 8 << 20

// maxMessageBytes caps how much of Hetzner's error message reaches our errors.
const maxMessageBytes = 300

// The parts of the Hetzner Cloud API's JSON this adapter reads.

type server struct {
	ID         int64             `json:"id"`
	Name       string            `json:"name"`
	Status     string            `json:"status"`
	Created    time.Time         `json:"created"`
	Labels     map[string]string `json:"labels"`
	PublicNet  publicNet         `json:"public_net"`
	ServerType struct {
		Name string `json:"name"`
	} `json:"server_type"`
	Datacenter struct {
		Location struct {
			Name string `json:"name"`
		} `json:"location"`
	} `json:"datacenter"`
}

type publicNet struct {
	IPv4 *struct {
		IP string `json:"ip"`
	} `json:"ipv4"`
	IPv6 *struct {
		IP string `json:"ip"` // a /64 network, e.g. "2001:db8::/64"
	} `json:"ipv6"`
}

type action struct {
	ID     int64     `json:"id"`
	Status string    `json:"status"` // running, success, error
	Error  *apiError `json:"error"`
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type pagination struct {
	NextPage *int `json:"next_page"`
}

type createServerRequest struct {
	Name             string            `json:"name"`
	ServerType       string            `json:"server_type"`
	Location         string            `json:"location,omitempty"`
	Image            string            `json:"image"`
	Labels           map[string]string `json:"labels"`
	UserData         string            `json:"user_data"`
	SSHKeys          []string          `json:"ssh_keys,omitempty"`
	StartAfterCreate bool              `json:"start_after_create"`
}

type createServerResponse struct {
	Server server `json:"server"`
	Action action `json:"action"`
	// root_password is deliberately not decoded: it is a secret we never need.
}

type serverResponse struct {
	Server server `json:"server"`
}

type serversResponse struct {
	Servers []server `json:"servers"`
	Meta    struct {
		Pagination pagination `json:"pagination"`
	} `json:"meta"`
}

type actionResponse struct {
	Action action `json:"action"`
}

type errorResponse struct {
	Error apiError `json:"error"`
}

// call is one API request.
type call struct {
	method string
	path   string // below the base URL, e.g. "/servers/42"
	query  url.Values
	body   any // JSON-encoded when not nil
	// secrets are removed from anything the API echoes into our errors.
	secrets []string
}

// do sends c with the configured token and request timeout and decodes a
// successful response into out (when not nil). Failures are domain errors
// (see apiErrorCode); nothing in them comes from the token or c.secrets.
func (p *Provisioner) do(ctx context.Context, c call, out any) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	req, err := p.newRequest(ctx, c)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", c.method, c.path,
			engine.Errorf(engine.EUnavailable, "hetzner cloud is unreachable: %s", p.redact(transportCause(ctx, err), c.secrets)))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("%s %s: %w", c.method, c.path,
			engine.Errorf(engine.EUnavailable, "hetzner cloud response unreadable"))
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %w", c.method, c.path, p.responseError(resp, data, c.secrets))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: %w", c.method, c.path,
			engine.Errorf(engine.EInternal, "hetzner cloud answered with unexpected JSON"))
	}
	return nil
}

func (p *Provisioner) newRequest(ctx context.Context, c call) (*http.Request, error) {
	u := p.cfg.BaseURL + c.path
	if len(c.query) > 0 {
		u += "?" + c.query.Encode()
	}
	var body io.Reader
	if c.body != nil {
		b, err := json.Marshal(c.body)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s: %w", c.method, c.path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, u, body)
	if err != nil {
		return nil, engine.Errorf(engine.EInvalid, "bad hetzner request %s %s", c.method, c.path)
	}
	req.Header.Set("Authorization", "Bearer "+p.cfg.Token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "hoodcloud")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// transportCause says why a request got no response, without the URL
// (which an operator may have pointed at a proxy with credentials).
func transportCause(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return ctx.Err().Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// responseError turns an error response into a domain error.
func (p *Provisioner) responseError(resp *http.Response, data []byte, secrets []string) error {
	var e errorResponse
	_ = json.Unmarshal(data, &e) // a proxy's HTML page leaves it empty: the status decides
	code := apiErrorCode(resp.StatusCode, e.Error.Code)
	label := e.Error.Code
	if label == "" {
		label = strconv.Itoa(resp.StatusCode)
	}
	msg := truncate(p.redact(e.Error.Message, secrets), maxMessageBytes) // redact first: a cut must not leave half a secret
	switch {
	case label == "rate_limit_exceeded" || resp.StatusCode == http.StatusTooManyRequests:
		return engine.Errorf(code, "hetzner cloud rate limit exceeded; retry after %s", retryAfter(resp.Header, time.Now()))
	case label == "unauthorized" || resp.StatusCode == http.StatusUnauthorized:
		return engine.Errorf(code, "hetzner cloud rejected the configured api token")
	}
	return engine.Errorf(code, "hetzner cloud: %s: %s", label, msg)
}

// apiErrorCode maps Hetzner's error codes, falling back on the HTTP status.
// A rate limit, a rejected token and a lack of resources are EUnavailable
// rather than ERateLimited/EUnauthorized/EForbidden: those codes tell our own
// API clients that *their* request or credential is at fault, whereas here
// the appliance's dependency refuses and an operator (or a later retry)
// must fix it.
func apiErrorCode(status int, code string) engine.Code {
	switch code {
	case "not_found":
		return engine.ENotFound
	case "invalid_input", "json_error":
		return engine.EInvalid
	case "uniqueness_error", "conflict", "protected":
		return engine.EConflict
	case "rate_limit_exceeded", "unauthorized", "forbidden", "token_readonly", "locked",
		"resource_limit_exceeded", "resource_unavailable", "placement_error",
		"server_error", "service_error", "maintenance", "timeout", "unavailable":
		return engine.EUnavailable
	}
	switch {
	case status == http.StatusNotFound:
		return engine.ENotFound
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		return engine.EInvalid
	case status == http.StatusConflict:
		return engine.EConflict
	case status == http.StatusTooManyRequests || status == http.StatusUnauthorized ||
		status == http.StatusForbidden || status == http.StatusLocked || status >= 500:
		return engine.EUnavailable
	}
	return engine.EInternal
}

// retryAfter reads Hetzner's RateLimit-Reset (a Unix time) as a wait.
func retryAfter(h http.Header, now time.Time) time.Duration {
	reset, err := strconv.ParseInt(h.Get("RateLimit-Reset"), 10, 64)
	if err != nil {
		return time.Second
	}
	wait := time.Unix(reset, 0).Sub(now).Round(time.Second)
	if wait < time.Second {
		return time.Second
	}
	return wait
}

// redact removes the API token and the given secrets from s.
func (p *Provisioner) redact(s string, secrets []string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return strings.ReplaceAll(s, p.cfg.Token, "[redacted]")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
