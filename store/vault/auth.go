package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// session is a Vault token and its lifetime as last granted.
type session struct {
	token     string
	renewable bool
	ttl       time.Duration // 0: the token never expires
	granted   time.Time     // when ttl started to run
	loginTTL  time.Duration // the ttl of the login, to notice the max TTL cutting renewals short
}

func newSession(token string, ttlSeconds int, renewable bool) *session {
	ttl := time.Duration(ttlSeconds) * time.Second
	return &session{token: token, renewable: renewable, ttl: ttl, granted: time.Now(), loginTTL: ttl}
}

func (s *session) expired(now time.Time) bool {
	return s.ttl > 0 && now.After(s.granted.Add(s.ttl))
}

// renewAt is two thirds into the ttl, leaving a third for retries.
func (s *session) renewAt() time.Time { return s.granted.Add(s.ttl * 2 / 3) }

// loginMethod obtains a token.
type loginMethod interface {
	login(ctx context.Context, s *Secrets) (*session, error)
	// owned reports whether the token is this client's to revoke.
	owned() bool
}

func chooseLogin(opts Options) loginMethod {
	if opts.TokenFile != "" {
		return tokenFile{path: opts.TokenFile}
	}
	return appRole{mount: opts.AppRoleMount, roleIDFile: opts.RoleIDFile, secretIDFile: opts.SecretIDFile}
}

// authReply is the "auth" block of a login or a renewal.
type authReply struct {
	Auth *struct {
		ClientToken   string `json:"client_token"`
		LeaseDuration int    `json:"lease_duration"`
		Renewable     bool   `json:"renewable"`
	} `json:"auth"`
}

type appRole struct{ mount, roleIDFile, secretIDFile string }

func (appRole) owned() bool { return true }

func (a appRole) login(ctx context.Context, s *Secrets) (*session, error) {
	roleID, err := readCredential("role-id-file", a.roleIDFile)
	if err != nil {
		return nil, err
	}
	defer engine.Zero(roleID)
	secretID, err := readCredential("secret-id-file", a.secretIDFile)
	if err != nil {
		return nil, err
	}
	defer engine.Zero(secretID)
	body := newBody(len(roleID)+len(secretID)).text("role_id", roleID).text("secret_id", secretID).bytes()
	defer engine.Zero(body)

	var reply authReply
	err = s.send(ctx, http.MethodPost, "auth/"+a.mount+"/login", body, &reply, nil)
	switch {
	case isStatus(err, http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound):
		return nil, engine.Errorf(engine.EUnauthorized,
			"vault refused the approle login at auth/%s (%s): check role-id-file %s and secret-id-file %s",
			a.mount, reason(err, roleID, secretID), a.roleIDFile, a.secretIDFile)
	case err != nil:
		return nil, describe(err, "vault approle login")
	case reply.Auth == nil || reply.Auth.ClientToken == "":
		return nil, fmt.Errorf("vault: approle login at auth/%s returned no token", a.mount)
	}
	return newSession(reply.Auth.ClientToken, reply.Auth.LeaseDuration, reply.Auth.Renewable), nil
}

// reason is Vault's explanation of a refusal, such as "invalid role or
// secret ID", unless it quotes one of the credentials.
func reason(err error, credentials ...[]byte) string {
	var se *statusError
	if !errors.As(err, &se) || len(se.errors) == 0 {
		return "no reason given"
	}
	text := strings.Join(se.errors, "; ")
	for _, c := range credentials {
		if len(c) > 0 && strings.Contains(text, string(c)) {
			return fmt.Sprintf("status %d", se.status)
		}
	}
	return text
}

type tokenFile struct{ path string }

func (tokenFile) owned() bool { return false }

// login reads the token and looks it up, to learn whether and when it
// must be renewed.
func (f tokenFile) login(ctx context.Context, s *Secrets) (*session, error) {
	token, err := readCredential("token-file", f.path)
	if err != nil {
		return nil, err
	}
	defer engine.Zero(token)
	var reply struct {
		Data struct {
			TTL       int  `json:"ttl"`
			Renewable bool `json:"renewable"`
		} `json:"data"`
	}
	sess := &session{token: string(token)}
	err = s.send(ctx, http.MethodGet, "auth/token/lookup-self", nil, &reply, sess)
	switch {
	case isStatus(err, http.StatusForbidden, http.StatusBadRequest):
		return nil, engine.Errorf(engine.EUnauthorized, "vault refused the token of token-file %s", f.path)
	case err != nil:
		return nil, describe(err, "vault token lookup")
	}
	return newSession(sess.token, reply.Data.TTL, reply.Data.Renewable), nil
}

// readCredential reads a credential file, without its surrounding white
// space; errors name the file, never its content.
func readCredential(what, path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("vault: read %s: %w", what, err)
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("vault: %s %s is empty", what, path)
	}
	credential := bytes.Clone(trimmed)
	engine.Zero(raw)
	return credential, nil
}

// keepTokenAlive renews the token two thirds into its ttl and logs in
// again when renewal fails or the token nears its max TTL, retrying with
// backoff while Vault is down, until ctx ends.
func (s *Secrets) keepTokenAlive(ctx context.Context) {
	defer close(s.stopped)
	backoff := time.Second
	for {
		wait := time.Minute // a token without ttl needs nothing; look again later
		if sess := s.session.Load(); sess.ttl > 0 {
			wait = time.Until(sess.renewAt())
		}
		if !sleep(ctx, wait) {
			return
		}
		if err := s.refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("vault: token renewal and login failed; retrying", "error", err, "retry_in", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// refresh renews the token, or logs in again when that fails or when the
// token's max TTL cuts the renewed ttl short of the login's, as Vault's own
// lifetime watcher does.
func (s *Secrets) refresh(ctx context.Context) error {
	s.relogin.Lock()
	defer s.relogin.Unlock()
	sess := s.session.Load()
	if sess.ttl == 0 {
		return nil
	}
	if sess.renewable {
		renewed, err := s.renew(ctx, sess)
		switch {
		case err == nil && renewed.ttl >= sess.loginTTL:
			s.session.Store(renewed)
			s.log.Debug("vault: token renewed", "ttl", renewed.ttl)
			return nil
		case err == nil:
			s.log.Debug("vault: token nears its max TTL; logging in again", "ttl", renewed.ttl)
		default:
			s.log.Info("vault: token renewal failed; logging in again", "error", err)
		}
	}
	return s.loginAgain(ctx)
}

func (s *Secrets) renew(ctx context.Context, sess *session) (*session, error) {
	var reply authReply
	if err := s.send(ctx, http.MethodPost, "auth/token/renew-self", nil, &reply, sess); err != nil {
		return nil, err
	}
	if reply.Auth == nil {
		return nil, fmt.Errorf("vault: renewal returned no auth block")
	}
	renewed := newSession(sess.token, reply.Auth.LeaseDuration, reply.Auth.Renewable)
	renewed.loginTTL = sess.loginTTL
	return renewed, nil
}

// loginAgain replaces the session; the caller holds s.relogin.
func (s *Secrets) loginAgain(ctx context.Context) error {
	fresh, err := s.login.login(ctx, s)
	if err != nil {
		return err
	}
	s.session.Store(fresh)
	s.log.Info("vault: logged in again", "ttl", fresh.ttl)
	return nil
}

// reauthenticate answers a 403 to a request made with used: it returns a
// session to retry with, or used itself when the token is alive and the
// refusal is the policy's. Concurrent callers log in once.
func (s *Secrets) reauthenticate(ctx context.Context, used *session) (*session, error) {
	s.relogin.Lock()
	defer s.relogin.Unlock()
	if err := s.open(); err != nil {
		return nil, err // no login after Close
	}
	if current := s.session.Load(); current != used {
		return current, nil // another caller or the renewal already replaced it
	}
	if s.tokenAlive(ctx, used) {
		return used, nil
	}
	if err := s.loginAgain(ctx); err != nil {
		s.log.Warn("vault: login after a refused token failed", "error", err)
		return nil, err
	}
	return s.session.Load(), nil
}

// tokenAlive asks Vault about the token itself; lookup-self is allowed by
// Vault's default policy.
func (s *Secrets) tokenAlive(ctx context.Context, sess *session) bool {
	return s.send(ctx, http.MethodGet, "auth/token/lookup-self", nil, nil, sess) == nil
}
