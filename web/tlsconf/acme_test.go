package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"

	"github.com/hoodcloud/hoodcloud/store/bolt"
)

// The test runs Pebble, Let's Encrypt's test CA, in process. Its VA really
// validates: it resolves example.test through a DNS server of the test
// (every name is 127.0.0.1) and connects to the ports of the appliance's
// HTTP listener (HTTP-01, through HTTPChallengeHandler) and HTTPS listener
// (TLS-ALPN-01, through TLSConfig); each challenge type is tested alone.

func TestACMECertificateFromPebbleStoredInBolt(t *testing.T) {
	if testing.Short() {
		t.Skip("issues certificates from an in-process ACME CA")
	}
	for _, challenge := range []string{"http-01", "tls-alpn-01"} {
		t.Run(challenge, func(t *testing.T) { testACMEIssuance(t, challenge) })
	}
}

func testACMEIssuance(t *testing.T, challenge string) {
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")      // validate at once, not after up to 15s
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0") // no deliberately bad nonces

	httpLn, httpsLn := mustListen(t), mustListen(t)
	pebble := mustPebble(t, port(t, httpLn), port(t, httpsLn), mustLoopbackDNS(t))

	store := bolt.New(filepath.Join(t.TempDir(), "hoodcloud.db"))
	if err := store.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	storage := bolt.NewCertStorage(store)

	src, err := New(Config{
		Domains:              []string{"example.test"},
		Email:                "ops@example.test",
		ACMEDirectory:        pebble.directory,
		ACMERoots:            pebble.apiRoots,
		HTTPChallengePort:    port(t, httpLn),
		TLSALPNChallengePort: port(t, httpsLn),
		Storage:              storage,
		Logger:               slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	src.acme.issuer.DisableHTTPChallenge = challenge != "http-01"
	src.acme.issuer.DisableTLSALPNChallenge = challenge != "tls-alpn-01"
	serve(t, httpLn, src.HTTPChallengeHandler(http.NotFoundHandler()))
	serve(t, tls.NewListener(httpsLn, src.TLSConfig()), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "hello")
	}))

	if err := src.ManageSync(t.Context()); err != nil {
		t.Fatalf("obtain a certificate for example.test: %v", err)
	}

	keys, err := storage.List(t.Context(), "certificates", true)
	if err != nil || !hasSuffix(keys, "/example.test/example.test.crt") || !hasSuffix(keys, "/example.test/example.test.key") {
		t.Errorf("bolt storage holds %q, %v; want example.test's certificate and key", keys, err)
	}

	conn, err := tls.Dial("tcp", httpsLn.Addr().String(), &tls.Config{ServerName: "example.test", RootCAs: pebble.issuedRoots})
	if err != nil {
		t.Fatalf("handshake trusting Pebble's root as example.test: %v", err)
	}
	defer conn.Close()
	leaf := conn.ConnectionState().PeerCertificates[0]
	if leaf.Subject.CommonName != "example.test" && !strings.Contains(strings.Join(leaf.DNSNames, ","), "example.test") {
		t.Errorf("served certificate names %v, want example.test", leaf.DNSNames)
	}
	if src.CAPEM() != nil {
		t.Error("ACME mode offers the appliance CA")
	}
}

type pebbleCA struct {
	directory   string
	apiRoots    *x509.CertPool // trust for the ACME API's own HTTPS
	issuedRoots *x509.CertPool // trust for the certificates it issues
}

// mustPebble starts Pebble's CA, VA and web front end in process; the VA
// validates on httpPort and tlsPort of the names resolver resolves.
func mustPebble(t *testing.T, httpPort, tlsPort int, resolver string) pebbleCA {
	t.Helper()
	logger := log.New(testWriter{t}, "pebble ", 0)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, httpPort, tlsPort, false, resolver, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 3, 5)
	srv := httptest.NewTLSServer(front.Handler())
	t.Cleanup(srv.Close)

	apiRoots := x509.NewCertPool()
	apiRoots.AddCert(srv.Certificate())
	issuedRoots := x509.NewCertPool()
	issuedRoots.AddCert(authority.GetRootCert(0).Cert)
	return pebbleCA{directory: srv.URL + wfe.DirectoryPath, apiRoots: apiRoots, issuedRoots: issuedRoots}
}

// mustLoopbackDNS serves DNS over TCP (as Pebble's VA asks) on a free
// port: every A question is answered 127.0.0.1, every other is empty.
func mustLoopbackDNS(t *testing.T) string {
	t.Helper()
	ln := mustListen(t)
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, question := range q.Question {
			if question.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func port(t *testing.T, ln net.Listener) int {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func serve(t *testing.T, ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

func hasSuffix(keys []string, suffix string) bool {
	for _, k := range keys {
		if strings.HasSuffix(k, suffix) {
			return true
		}
	}
	return false
}

// testWriter sends logs to the test's output, shown on failure or -v.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
