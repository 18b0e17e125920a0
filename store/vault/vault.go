// Package vault is the engine.Secrets adapter for HashiCorp Vault and
// OpenBao: secrets live in a KV version 2 mount and named keys in a Transit
// mount, so key material never leaves Vault.
//
// It speaks Vault's HTTP API with net/http and encoding/json rather than
// Vault's client library: a dozen endpoints do not justify that library's
// dependencies, and its map-of-strings responses would leave plaintext in
// immutable strings that cannot be zeroed. Here plaintext travels as base64
// in buffers this package owns and zeroes once used. Go cannot promise
// more: net/http and crypto/tls keep their own buffers.
//
// The adapter fails closed: when Vault is down, sealed or refuses the
// token, every method returns an error and nothing is ever stored or
// returned unencrypted in its place.
//
// The token needs this policy, for mount "secret", prefix "hoodcloud" and
// Transit at "transit" (narrow keys/* to the key names in use if wished):
//
//	path "secret/data/hoodcloud/*"     { capabilities = ["create", "read", "update"] }
//	path "secret/metadata/hoodcloud/*" { capabilities = ["delete"] }
//	path "transit/encrypt/*"           { capabilities = ["create", "update"] }
//	path "transit/decrypt/*"           { capabilities = ["update"] }
//	path "transit/rewrap/*"            { capabilities = ["update"] }
//	path "transit/datakey/plaintext/*" { capabilities = ["update"] }
//	path "transit/keys/*"              { capabilities = ["create", "read", "update"] }
//
// Put keeps the mount's max_versions earlier versions of a secret readable
// in Vault until Delete; set max_versions=1 on the mount to keep none.
package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// Options configure a connection to Vault. Address and one way to log in
// (RoleIDFile with SecretIDFile, or TokenFile) are required.
type Options struct {
	// Address is Vault's base URL, such as "https://vault.internal:8200".
	Address string
	// CAFile is a PEM bundle of the authorities that sign Vault's
	// certificate; empty means the system roots.
	CAFile string
	// Namespace is the Vault Enterprise or OpenBao namespace, if any.
	Namespace string

	// KVMount is the path of the KV version 2 mount; default "secret".
	KVMount string
	// KVPrefix is prepended to every secret name, so that secret "jwt/key"
	// with prefix "hoodcloud" lives at <KVMount>/data/hoodcloud/jwt/key.
	// Empty means the mount's root.
	KVPrefix string
	// TransitMount is the path of the Transit mount; default "transit".
	TransitMount string

	// AppRoleMount is the path of the AppRole auth method; default "approle".
	AppRoleMount string
	// RoleIDFile and SecretIDFile hold the AppRole credentials. Both files
	// are read again at every login, so whatever delivers them may replace
	// the secret ID; it must allow more than one use.
	RoleIDFile   string
	SecretIDFile string
	// TokenFile holds a Vault token instead (development, or a Vault Agent
	// sink). It is read again whenever the token stops working.
	TokenFile string

	// RequestTimeout bounds each request to Vault; default 30s.
	RequestTimeout time.Duration
	// Logger receives token renewals and failures, never a secret; default
	// discards.
	Logger *slog.Logger
}

// Secrets is an engine.Secrets over Vault's KV v2 and Transit engines.
type Secrets struct {
	base      string // Address + "/v1/"
	namespace string
	kvData    string // KV paths up to the secret name
	kvMeta    string
	transit   string // Transit mount followed by '/'
	client    *http.Client
	log       *slog.Logger
	login     loginMethod

	session atomic.Pointer[session]
	relogin sync.Mutex // one login at a time
	closed  atomic.Bool
	stop    context.CancelFunc
	stopped chan struct{}
}

var _ engine.Secrets = (*Secrets)(nil)

// Open logs in to Vault, checks that the KV mount is version 2 and starts
// renewing the token in the background. ctx bounds Open only.
func Open(ctx context.Context, opts Options) (*Secrets, error) {
	opts = withDefaults(opts)
	s, err := newSecrets(opts)
	if err != nil {
		return nil, err
	}
	sess, err := s.login.login(ctx, s)
	if err != nil {
		return nil, err
	}
	s.session.Store(sess)
	if err := s.checkKVMount(ctx, opts.KVMount); err != nil {
		s.revoke()
		return nil, err
	}
	if strings.HasPrefix(s.base, "http:") && !isLoopback(s.base) {
		s.log.Warn("vault: talking to a remote Vault without TLS: secrets cross the network in clear")
	}
	loopCtx, stop := context.WithCancel(context.Background())
	s.stop, s.stopped = stop, make(chan struct{})
	go s.keepTokenAlive(loopCtx)
	return s, nil
}

func newSecrets(opts Options) (*Secrets, error) {
	opts = withDefaults(opts)
	if err := validate(opts); err != nil {
		return nil, err
	}
	client, err := httpClient(opts)
	if err != nil {
		return nil, err
	}
	kv := opts.KVMount + "/%s/"
	if opts.KVPrefix != "" {
		kv += opts.KVPrefix + "/"
	}
	return &Secrets{
		base:      strings.TrimSuffix(opts.Address, "/") + "/v1/",
		namespace: opts.Namespace,
		kvData:    fmt.Sprintf(kv, "data"),
		kvMeta:    fmt.Sprintf(kv, "metadata"),
		transit:   opts.TransitMount + "/",
		client:    client,
		log:       opts.Logger,
		login:     chooseLogin(opts),
	}, nil
}

func withDefaults(opts Options) Options {
	if opts.KVMount == "" {
		opts.KVMount = "secret"
	}
	if opts.TransitMount == "" {
		opts.TransitMount = "transit"
	}
	if opts.AppRoleMount == "" {
		opts.AppRoleMount = "approle"
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.KVMount = strings.Trim(opts.KVMount, "/")
	opts.KVPrefix = strings.Trim(opts.KVPrefix, "/")
	opts.TransitMount = strings.Trim(opts.TransitMount, "/")
	opts.AppRoleMount = strings.Trim(opts.AppRoleMount, "/")
	return opts
}

// validate refuses options that cannot work; mount paths must be plain
// names because they are joined into request paths unescaped.
func validate(opts Options) error {
	u, err := url.Parse(opts.Address)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return errors.New("vault: address must be http(s)://host[:port] without credentials")
	}
	for _, m := range []struct{ what, path string }{
		{"kv mount", opts.KVMount}, {"transit mount", opts.TransitMount}, {"approle mount", opts.AppRoleMount},
	} {
		if !engine.ValidSecretName(m.path) {
			return fmt.Errorf("vault: %s %q is not a valid path", m.what, m.path)
		}
	}
	if opts.KVPrefix != "" && !engine.ValidSecretName(opts.KVPrefix) {
		return fmt.Errorf("vault: kv prefix %q is not a valid path", opts.KVPrefix)
	}
	approle := opts.RoleIDFile != "" || opts.SecretIDFile != ""
	switch {
	case approle && opts.TokenFile != "":
		return errors.New("vault: give either role-id-file and secret-id-file or token-file, not both")
	case approle && (opts.RoleIDFile == "" || opts.SecretIDFile == ""):
		return errors.New("vault: approle login needs both role-id-file and secret-id-file")
	case !approle && opts.TokenFile == "":
		return errors.New("vault: no credentials: give role-id-file and secret-id-file, or token-file")
	}
	return nil
}

func httpClient(opts Options) (*http.Client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// Responses arrive whole so their plaintext lands in one buffer that
	// is zeroed, not in a decompressor's window.
	transport.DisableCompression = true
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("vault: read ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("vault: ca-file %s holds no PEM certificate", opts.CAFile)
		}
		transport.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: transport, Timeout: opts.RequestTimeout, CheckRedirect: checkRedirect}, nil
}

// checkRedirect follows a standby's redirect to the active node, which
// gets the token too, but never from https down to http.
func checkRedirect(req *http.Request, via []*http.Request) error {
	switch {
	case len(via) >= 3:
		return errors.New("vault: too many redirects")
	case req.URL.Scheme != via[0].URL.Scheme:
		return errors.New("vault: refusing a redirect to another scheme")
	}
	return nil
}

func isLoopback(base string) bool {
	u, err := url.Parse(base)
	if err != nil {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}

// checkKVMount refuses a KV version 1 mount: there a write to "data/x"
// silently stores a secret named "data/x" and Create's check-and-set is
// ignored, so two appliances could both generate first-boot material.
func (s *Secrets) checkKVMount(ctx context.Context, mount string) error {
	var mnt struct {
		Data struct {
			Type    string `json:"type"`
			Options struct {
				Version string `json:"version"`
			} `json:"options"`
		} `json:"data"`
	}
	err := s.call(ctx, http.MethodGet, "sys/internal/ui/mounts/"+mount, nil, &mnt)
	switch {
	case isStatus(err, http.StatusForbidden, http.StatusNotFound):
		return fmt.Errorf("vault: kv mount %q does not exist or the token may not use it", mount)
	case err != nil:
		return fmt.Errorf("vault: check kv mount %q: %w", mount, err)
	case mnt.Data.Type != "kv" || mnt.Data.Options.Version != "2":
		return fmt.Errorf("vault: mount %q is not a kv version 2 mount", mount)
	}
	return nil
}

// Ping checks that Vault answers, is initialized and unsealed (a standby
// counts: it forwards requests), and that this client still holds a live
// token.
func (s *Secrets) Ping(ctx context.Context) error {
	if err := s.open(); err != nil {
		return err
	}
	status, err := s.health(ctx)
	switch {
	case err != nil:
		return err
	case status == http.StatusServiceUnavailable:
		return engine.Errorf(engine.EUnavailable, "vault is sealed")
	case status == http.StatusNotImplemented:
		return engine.Errorf(engine.EUnavailable, "vault is not initialized")
	case status != http.StatusOK:
		return engine.Errorf(engine.EUnavailable, "vault health check answered status %d", status)
	}
	return s.liveToken(ctx)
}

// liveToken logs in again when the token outlived its ttl, as it does
// when Vault was down for longer: a ready probe then recovers at once.
func (s *Secrets) liveToken(ctx context.Context) error {
	sess := s.session.Load()
	if !sess.expired(time.Now()) {
		return nil
	}
	if _, err := s.reauthenticate(ctx, sess); err != nil {
		return engine.Errorf(engine.EUnavailable, "vault token expired and logging in again failed")
	}
	return nil
}

// Close stops the token renewal, revokes a token that Open obtained by
// logging in (a token from a file belongs to whoever wrote the file) and
// forgets it.
func (s *Secrets) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.stop()
	<-s.stopped
	s.revoke()
	s.session.Store(&session{}) // forget the token
	s.client.CloseIdleConnections()
	return nil
}

func (s *Secrets) revoke() {
	if !s.login.owned() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.send(ctx, http.MethodPost, "auth/token/revoke-self", nil, nil, s.session.Load()); err != nil {
		s.log.Info("vault: could not revoke the token at close; it expires by itself", "error", err)
	}
}

// open returns EUnavailable once Close was called.
func (s *Secrets) open() error {
	if s.closed.Load() {
		return engine.Errorf(engine.EUnavailable, "vault client is closed")
	}
	return nil
}
