package tlsconf

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// mustCA makes a CA shaped like the appliance's (keys.BootMaterial.AgentCA).
func mustCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "HoodCloud Agent CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

func mustLocalSource(t *testing.T, hosts ...string) *Source {
	t.Helper()
	ca, key := mustCA(t)
	src, err := New(Config{CA: ca, CAKey: key, HostNames: hosts})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := src.Open(t.Context()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(src.Close)
	return src
}

// mustServeHTTPS serves "hello" over TLS with cfg on a free loopback port
// and returns the port.
func mustServeHTTPS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") }),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          nil,
	}
	go srv.Serve(tls.NewListener(ln, cfg))
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// get fetches https://name:port/ with roots as the only trust (nil: the
// system's), dialling loopback whatever the name.
func get(t *testing.T, roots *x509.CertPool, name, port string) (string, error) {
	t.Helper()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
		},
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + net.JoinHostPort(name, port) + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

func TestApplianceCACertificateEndToEnd(t *testing.T) {
	src := mustLocalSource(t) // default names: 127.0.0.1, ::1, localhost
	port := mustServeHTTPS(t, src.TLSConfig())
	trusted := x509.NewCertPool()
	if !trusted.AppendCertsFromPEM(src.CAPEM()) {
		t.Fatal("CAPEM holds no certificate")
	}

	for _, name := range []string{"127.0.0.1", "localhost", "::1"} {
		body, err := get(t, trusted, name, port)
		if err != nil || body != "hello" {
			t.Errorf("client trusting the CA PEM, as %s: %q, %v; want hello", name, body, err)
		}
	}

	var unknown x509.UnknownAuthorityError
	if _, err := get(t, nil, "localhost", port); !errors.As(err, &unknown) {
		t.Errorf("client without the CA: %v, want an unknown authority error", err)
	}
	var wrongName x509.HostnameError
	if _, err := get(t, trusted, "hood.example.com", port); !errors.As(err, &wrongName) {
		t.Errorf("client asking for a name not configured: %v, want a hostname error", err)
	}
}

func TestCertificateHoldsTheConfiguredNames(t *testing.T) {
	src := mustLocalSource(t, "hood.internal", "10.1.2.3", "fd00::7")
	leaf := mustLeaf(t, src)
	if !slices.Equal(leaf.DNSNames, []string{"hood.internal"}) {
		t.Errorf("DNS names = %v, want [hood.internal]", leaf.DNSNames)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if !slices.Equal(ips, []string{"10.1.2.3", "fd00::7"}) {
		t.Errorf("IP addresses = %v, want [10.1.2.3 fd00::7]", ips)
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || leaf.IsCA {
		t.Errorf("leaf usage %v, CA %v; want a server certificate only", leaf.ExtKeyUsage, leaf.IsCA)
	}
}

func mustLeaf(t *testing.T, src *Source) *x509.Certificate {
	t.Helper()
	cert, err := src.TLSConfig().GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	return cert.Leaf
}

func TestCertificateIsRenewedInTheLastThirdOfItsLife(t *testing.T) {
	src := mustLocalSource(t)
	now := time.Now()
	src.local.now = func() time.Time { return now }
	src.local.cert = nil
	first := mustLeaf(t, src)
	life := first.NotAfter.Sub(first.NotBefore)

	tests := []struct {
		at      time.Duration // after NotBefore
		renewed bool
	}{
		{life / 2, false},
		{life*2/3 - time.Minute, false},
		{life*2/3 + time.Minute, true},
	}
	for _, tc := range tests {
		now = first.NotBefore.Add(tc.at)
		got := mustLeaf(t, src)
		if renewed := got.SerialNumber.Cmp(first.SerialNumber) != 0; renewed != tc.renewed {
			t.Errorf("at %.0f%% of the lifetime renewed = %v, want %v", 100*tc.at.Seconds()/life.Seconds(), renewed, tc.renewed)
		}
		if tc.renewed && !got.NotBefore.After(first.NotBefore) {
			t.Errorf("the renewed certificate starts %s, not after the first's %s", got.NotBefore, first.NotBefore)
		}
	}
}

func TestPlainHTTPOnlyOnLoopbackUnlessAllowed(t *testing.T) {
	tests := []struct {
		addr    string
		allow   bool
		refused bool
	}{
		{"127.0.0.1:8080", false, false},
		{"127.9.9.9:80", false, false},
		{"[::1]:8080", false, false},
		{"localhost:8080", false, false},
		{"0.0.0.0:8080", false, true},
		{":8080", false, true},
		{"[::]:80", false, true},
		{"192.168.1.5:80", false, true},
		{"hood.example.com:80", false, true},
		{"0.0.0.0:8080", true, false},
		{":80", true, false},
	}
	for _, tc := range tests {
		err := CheckPlainHTTP(tc.addr, tc.allow)
		if (err != nil) != tc.refused {
			t.Errorf("CheckPlainHTTP(%q, allow=%v) = %v, want refused %v", tc.addr, tc.allow, err, tc.refused)
		}
		if err != nil && !strings.Contains(err.Error(), "allow-http") {
			t.Errorf("CheckPlainHTTP(%q) = %q, which does not name allow-http", tc.addr, err)
		}
	}
	if err := CheckPlainHTTP("no-port", false); err == nil {
		t.Error("CheckPlainHTTP accepted an address without a port")
	}
}

func TestNewRefusesIncompleteConfiguration(t *testing.T) {
	ca, key := mustCA(t)
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no domain and no CA", Config{}, "appliance CA"},
		{"a bad host name", Config{CA: ca, CAKey: key, HostNames: []string{"bad host"}}, "tls-hosts"},
		{"domains without storage", Config{Domains: []string{"hood.example.com"}}, "storage"},
		{"a bad domain", Config{Domains: []string{"-x.example.com"}, Storage: storage}, "tls-domains"},
		{"a bad email", Config{Domains: []string{"hood.example.com"}, Email: "nope", Storage: storage}, "tls-email"},
	}
	for _, tc := range tests {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error about %s", tc.name, err, tc.want)
		}
	}
}

func TestACMEModeHasNoCAPEMAndMountsTheChallengeHandler(t *testing.T) {
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	src, err := New(Config{Domains: []string{"hood.example.com"}, Storage: storage})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.CAPEM() != nil {
		t.Error("ACME mode offers a CA PEM")
	}
	if !slices.Contains(src.TLSConfig().NextProtos, "acme-tls/1") {
		t.Error("the TLS config does not answer TLS-ALPN-01 challenges")
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	rec := httptestRecorder(src.HTTPChallengeHandler(next), "/api")
	if rec != http.StatusTeapot {
		t.Errorf("a non-challenge request got %d, want it passed through (418)", rec)
	}
}

func httptestRecorder(h http.Handler, path string) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code
}
