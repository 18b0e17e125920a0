// Package tlsconf chooses the appliance's server certificates: from an ACME
// CA through CertMagic when domains are configured (stored in the Store so
// instances share them), otherwise issued by the appliance CA for the
// configured host names, so evaluators get HTTPS with no setup and trust it
// by installing one CA certificate.
package tlsconf

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/caddyserver/certmagic"
	"github.com/hoodcloud/hoodcloud/engine/keys"
)

// Config selects and tunes the certificate source.
type Config struct {
	// Domains are the public names to get ACME certificates for; empty
	// selects certificates from the appliance CA.
	Domains []string
	// Email is the ACME account's contact address.
	Email string
	// ACMEDirectory is the ACME directory URL; empty is Let's Encrypt.
	ACMEDirectory string
	// ACMERoots, when set, are the only roots trusted for the ACME
	// directory (a private or test CA).
	ACMERoots *x509.CertPool
	// HTTPChallengePort is the port the CA validates HTTP-01 challenges on
	// (80 unless a test says otherwise). When nothing listens there,
	// CertMagic binds it itself for the duration of a challenge.
	HTTPChallengePort int
	// TLSALPNChallengePort is the port of the HTTPS listener when the CA's
	// TLS-ALPN-01 connections to 443 are forwarded to another one.
	TLSALPNChallengePort int
	// Storage keeps ACME certificates, keys and the account: the Store's
	// certmagic.Storage, shared by every instance.
	Storage certmagic.Storage

	// HostNames are the DNS names and IP addresses the appliance-CA
	// certificate is valid for; empty means 127.0.0.1, ::1 and localhost.
	HostNames []string
	// CAs issue the certificate when no domain is configured:
	// BootMaterial.CAs, followed as it rotates. Without it, CA and CAKey
	// are one CA that never rotates.
	CAs   *keys.AgentCAs
	CA    *x509.Certificate
	CAKey *ecdsa.PrivateKey

	Logger *slog.Logger
}

// DefaultHostNames are the names of the appliance-CA certificate when none
// are configured: enough for a client on the same machine.
var DefaultHostNames = []string{"127.0.0.1", "::1", "localhost"}

// Source serves the appliance's server certificates.
type Source struct {
	cfg   Config
	acme  *acmeSource // when domains are configured
	local *localIssuer
}

// New checks cfg and builds the source; it does no I/O.
func New(cfg Config) (*Source, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Source{cfg: cfg}
	if len(cfg.Domains) > 0 {
		a, err := newACMESource(cfg)
		if err != nil {
			return nil, err
		}
		s.acme = a
		return s, nil
	}
	cas := cfg.CAs
	if cas == nil && cfg.CA != nil && cfg.CAKey != nil {
		cas = keys.StaticAgentCAs(&keys.AgentCA{Cert: cfg.CA, Key: cfg.CAKey})
	}
	if cas == nil {
		return nil, errors.New("tls: the appliance CA is required when no tls-domains are configured")
	}
	hosts := cfg.HostNames
	if len(hosts) == 0 {
		hosts = DefaultHostNames
	}
	local, err := newLocalIssuer(cas, hosts)
	if err != nil {
		return nil, err
	}
	s.local = local
	return s, nil
}

// Open obtains the first certificate: from the appliance CA at once; for
// ACME, certificates already in storage are loaded and missing or expiring
// ones are obtained in the background, so a slow CA does not hold up start.
func (s *Source) Open(ctx context.Context) error {
	if s.acme != nil {
		return s.acme.manage(ctx)
	}
	_, err := s.local.current()
	return err
}

// ManageSync is Open for ACME, but waits until every domain has a
// certificate: for tests and for a first start that should fail loudly.
func (s *Source) ManageSync(ctx context.Context) error {
	if s.acme == nil {
		return s.Open(ctx)
	}
	return s.acme.magic.ManageSync(ctx, s.acme.domains)
}

// TLSConfig is the server configuration for the HTTPS API (and the agent
// gateway's server certificate). With ACME it also answers TLS-ALPN-01
// challenges, when it listens on port 443.
func (s *Source) TLSConfig() *tls.Config {
	if s.acme != nil {
		c := s.acme.magic.TLSConfig()
		c.NextProtos = append([]string{"h2", "http/1.1"}, c.NextProtos...)
		c.MinVersion = tls.VersionTLS12
		return c
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.local.current() },
	}
}

// HTTPChallengeHandler answers ACME HTTP-01 challenges under
// /.well-known/acme-challenge/ and passes every other request to next: mount
// it on the plain-HTTP listener of port 80. Without ACME it is next.
func (s *Source) HTTPChallengeHandler(next http.Handler) http.Handler {
	if s.acme == nil {
		return next
	}
	return s.acme.issuer.HTTPChallengeHandler(next)
}

// CAPEM is the appliance CA certificates in PEM, for clients to trust (GET
// /ca.pem): the current CA and those still in a rotation's grace period,
// so a client that downloads it during the grace period trusts the
// certificate before and after. Nil with ACME, whose CAs clients already
// trust.
func (s *Source) CAPEM() []byte {
	if s.local == nil {
		return nil
	}
	return s.local.caPEM()
}

// Close stops certificate maintenance.
func (s *Source) Close() {
	if s.acme != nil {
		s.acme.close()
	}
}

// CheckPlainHTTP refuses to serve plain HTTP on addr unless it binds only
// loopback or allowHTTP is set: tokens and sealed secrets must not cross a
// network in clear text by accident. The error names the setting.
func CheckPlainHTTP(addr string, allowHTTP bool) error {
	if allowHTTP {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("http address %q: %w", addr, err)
	}
	if isLoopback(host) {
		return nil
	}
	return fmt.Errorf("refusing plain HTTP on %s, which is reachable from the network: configure tls-domains "+
		"or serve HTTPS from the appliance CA, or set allow-http=true to accept it", addr)
}

// isLoopback reports whether host names only this machine; an empty host
// or an unspecified address binds every interface.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
