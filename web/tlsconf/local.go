package tlsconf

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hoodcloud/hoodcloud/engine/keys"
)

// localValidity is the lifetime of a server certificate from the appliance
// CA; it is renewed in memory once two thirds of it have passed.
const localValidity = 90 * 24 * time.Hour

// localIssuer holds the server certificate issued by the appliance CA and
// reissues it, at the next handshake, once it is within the last third of
// its lifetime or the CA to issue it has changed (AgentCAs.ServerIssuer:
// after a rotation, clients trusting the old CA still verify it).
// Certificates live in memory only: the CA is durable, so a restart just
// issues a fresh one that clients already trust.
type localIssuer struct {
	cas      *keys.AgentCAs
	dnsNames []string
	ips      []net.IP
	validity time.Duration
	now      func() time.Time

	mu            sync.Mutex
	cert          *tls.Certificate
	issuer        *x509.Certificate // the CA of cert
	intermediates [][]byte          // sent between cert and its CA
}

func newLocalIssuer(cas *keys.AgentCAs, hosts []string) (*localIssuer, error) {
	l := &localIssuer{cas: cas, validity: localValidity, now: time.Now}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			l.ips = append(l.ips, ip)
			continue
		}
		if !validDNSName(h) {
			return nil, fmt.Errorf("tls-hosts: %q is neither a DNS name nor an IP address", h)
		}
		l.dnsNames = append(l.dnsNames, h)
	}
	return l, nil
}

// current returns the certificate, issuing a new one when there is none,
// the one held is due for renewal, or another CA is to issue it.
func (l *localIssuer) current() (*tls.Certificate, error) {
	issuer, intermediates := l.cas.ServerIssuer()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cert != nil && !l.due(l.cert.Leaf) && l.issuer.Equal(issuer.Cert) &&
		slices.EqualFunc(l.intermediates, intermediates, bytes.Equal) {
		return l.cert, nil
	}
	cert, err := l.issue(issuer, intermediates)
	if err != nil {
		return nil, fmt.Errorf("issue the server certificate from the appliance CA: %w", err)
	}
	l.cert, l.issuer, l.intermediates = cert, issuer.Cert, intermediates
	return cert, nil
}

// due reports whether leaf is within the last third of its lifetime.
func (l *localIssuer) due(leaf *x509.Certificate) bool {
	lifetime := leaf.NotAfter.Sub(leaf.NotBefore)
	return l.now().After(leaf.NotAfter.Add(-lifetime / 3))
}

func (l *localIssuer) issue(issuer *keys.AgentCA, intermediates [][]byte) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := l.now()
	notAfter := now.Add(l.validity)
	if notAfter.After(issuer.Cert.NotAfter) {
		notAfter = issuer.Cert.NotAfter // a certificate cannot outlive its issuer
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: l.commonName(), Organization: []string{"HoodCloud"}},
		NotBefore:    now.Add(-time.Hour), // tolerate client clocks slightly behind
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     l.dnsNames,
		IPAddresses:  l.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer.Cert, &key.PublicKey, issuer.Key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	chain := append(append([][]byte{der}, intermediates...), issuer.Cert.Raw)
	return &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

func (l *localIssuer) commonName() string {
	if len(l.dnsNames) > 0 {
		return l.dnsNames[0]
	}
	return l.ips[0].String()
}

func (l *localIssuer) caPEM() []byte { return l.cas.TrustPEM() }

// validDNSName accepts host names and wildcard names: labels of letters,
// digits and hyphens.
func validDNSName(name string) bool {
	if len(name) > 253 {
		return false
	}
	for i, label := range strings.Split(name, ".") {
		if label == "*" && i == 0 {
			continue
		}
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
