package tlsconf

import (
	"context"
	"errors"
	"fmt"
	"net/mail"

	"github.com/caddyserver/certmagic"
)

// acmeSource gets and renews certificates for the configured domains from
// an ACME CA, answering HTTP-01 (through HTTPChallengeHandler) and
// TLS-ALPN-01 (through TLSConfig) challenges.
type acmeSource struct {
	domains []string
	cache   *certmagic.Cache
	magic   *certmagic.Config
	issuer  *certmagic.ACMEIssuer
}

func newACMESource(cfg Config) (*acmeSource, error) {
	if cfg.Storage == nil {
		return nil, errors.New("tls: tls-domains need the Store's certificate storage")
	}
	for _, d := range cfg.Domains {
		if !validDNSName(d) {
			return nil, fmt.Errorf("tls-domains: %q is not a DNS name", d)
		}
	}
	if cfg.Email != "" {
		if _, err := mail.ParseAddress(cfg.Email); err != nil {
			return nil, fmt.Errorf("tls-email: %q is not an email address", cfg.Email)
		}
	}
	logger := zapOnSlog(cfg.Logger)
	a := &acmeSource{domains: cfg.Domains}
	a.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return a.magic, nil },
		Logger:           logger,
	})
	a.magic = certmagic.New(a.cache, certmagic.Config{Storage: cfg.Storage, Logger: logger})
	a.issuer = certmagic.NewACMEIssuer(a.magic, certmagic.ACMEIssuer{
		CA:             cfg.ACMEDirectory,
		TestCA:         cfg.ACMEDirectory, // never fall back to another CA than the one configured
		Email:          cfg.Email,
		Agreed:         true,
		TrustedRoots:   cfg.ACMERoots,
		AltHTTPPort:    cfg.HTTPChallengePort,
		AltTLSALPNPort: cfg.TLSALPNChallengePort,
		Logger:         logger,
	})
	if cfg.ACMEDirectory == "" {
		a.issuer.TestCA = certmagic.LetsEncryptStagingCA
	}
	a.magic.Issuers = []certmagic.Issuer{a.issuer}
	return a, nil
}

// manage loads or obtains the domains' certificates in the background and
// keeps them renewed.
func (a *acmeSource) manage(ctx context.Context) error {
	if err := a.magic.ManageAsync(ctx, a.domains); err != nil {
		return fmt.Errorf("manage certificates of %v: %w", a.domains, err)
	}
	return nil
}

func (a *acmeSource) close() { a.cache.Stop() }
