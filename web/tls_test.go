package web_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/web"
	"github.com/hoodcloud/hoodcloud/web/tlsconf"
)

func TestOpenServesHTTPSWhenConfigured(t *testing.T) {
	certs := mustApplianceCA(t)
	s := web.New(web.Config{Addr: "127.0.0.1:0", TLS: certs.TLSConfig()})
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(t.Context()) })

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certs.CAPEM())
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := client.Get("https://" + s.Addr() + "/livez")
	if err != nil {
		t.Fatalf("HTTPS with the appliance CA trusted: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Errorf("GET /livez over HTTPS = %d (TLS %v), want 200 over TLS", resp.StatusCode, resp.TLS != nil)
	}

	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + s.Addr() + "/livez"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the HTTPS listener = %d, want 400", resp.StatusCode)
		}
	}
}

// mustApplianceCA returns certificates from a fresh CA for 127.0.0.1.
func mustApplianceCA(t *testing.T) *tlsconf.Source {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	src, err := tlsconf.New(tlsconf.Config{CA: ca, CAKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	return src
}
