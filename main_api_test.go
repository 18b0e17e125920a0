package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBootstrapTokenChainsAndAPI(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.DevToken = "test-dev-token"
	m := MustOpenMain(t, cfg)
	base := "http://" + m.HTTP.Addr()

	if code, body := call(t, http.DefaultClient, "GET", base+"/api/v1/me", "test-dev-token"); code != 200 || !strings.Contains(body, "admin") {
		t.Fatalf("/me with the dev token = %d %s, want the bootstrap admin", code, body)
	}
	if code, _ := call(t, http.DefaultClient, "GET", base+"/api/v1/me", "wrong"); code != 401 {
		t.Fatalf("/me with a wrong token = %d, want 401", code)
	}
	code, body := call(t, http.DefaultClient, "GET", base+"/api/v1/chains", "")
	if code != 200 || !strings.Contains(body, "ethereum-holesky") || !strings.Contains(body, "cosmos-demo") {
		t.Fatalf("/chains = %d %s, want both demo profiles without signing in", code, body)
	}
}

func TestChainsDirOverridesAndIsWatched(t *testing.T) {
	dir := t.TempDir()
	raw, err := os.ReadFile("assets/chains/cosmos-demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	renamed := strings.Replace(string(raw), "name: ", "name: Overridden ", 1)
	os.WriteFile(filepath.Join(dir, "cosmos-demo.yaml"), []byte(renamed), 0o600)
	cfg := testConfig(t, t.TempDir())
	cfg.ChainsDir = dir
	m := MustOpenMain(t, cfg)
	p, err := m.Chains.Get("cosmos-demo")
	if err != nil || !strings.HasPrefix(p.Name, "Overridden ") {
		t.Fatalf("cosmos-demo = %+v, %v; want the chains dir's version", p, err)
	}
}

func TestHTTPSWithTheApplianceCA(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.TLSHosts = stringList{"127.0.0.1", "localhost"}
	m := NewMain(cfg, testWriter{t})
	if err := m.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	base := "https://" + m.HTTP.Addr()

	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	code, caPEM := call(t, insecure, "GET", base+"/ca.pem", "")
	if code != 200 || !strings.Contains(caPEM, "BEGIN CERTIFICATE") {
		t.Fatalf("/ca.pem = %d %q", code, caPEM)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(caPEM))
	trusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	if code, body := call(t, trusting, "GET", base+"/readyz", ""); code != 200 || !strings.Contains(body, `"healthy"`) {
		t.Fatalf("/readyz over HTTPS = %d %s", code, body)
	}
	if _, err := http.Get(base + "/readyz"); err == nil {
		t.Fatal("a client without the appliance CA must not trust the certificate")
	}
}

func TestPlainHTTPOffLoopbackNeedsAllowHTTP(t *testing.T) {
	code, _, errOut := runCLI(t, nil, append(serveArgs(t), "--http-addr", "0.0.0.0:0")...)
	if code != 2 || !strings.Contains(errOut, "allow-http") {
		t.Fatalf("exit %d, stderr %q; want 2 naming allow-http", code, errOut)
	}
}

func call(t *testing.T, c *http.Client, method, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
