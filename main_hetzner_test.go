package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/web"
	"gopkg.in/yaml.v3"
)

// fakeHetzner answers the Hetzner Cloud API calls of a server's creation
// (an empty lookup, then a creation that succeeds at once) and records the
// user data of each creation.
type fakeHetzner struct {
	ts *httptest.Server

	mu       sync.Mutex
	userData []string
}

func newFakeHetzner(t *testing.T) *fakeHetzner {
	t.Helper()
	f := &fakeHetzner{}
	f.ts = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.ts.Close)
	return f
}

func (f *fakeHetzner) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/servers":
		io.WriteString(w, `{"servers":[],"meta":{"pagination":{"next_page":null}}}`)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/servers":
		var req struct {
			UserData string `json:"user_data"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		f.userData = append(f.userData, req.UserData)
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"server":{"id":1,"name":"n","status":"running","public_net":{"ipv4":{"ip":"203.0.113.9"}}},"action":{"id":1,"status":"success"}}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"code":"not_found","message":"no such thing"}}`)
	}
}

func (f *fakeHetzner) created() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.userData
}

// hetznerConfig is an appliance whose hosts come from the fake Hetzner,
// set up only as an operator would: no agent download URL anywhere.
func hetznerConfig(t *testing.T, api *fakeHetzner) Config {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	cfg.Provisioner, cfg.HetznerToken = "hetzner", "hetzner-test-token"
	cfg.AgentPublicAddr = "gw.example.com:8443"
	cfg.PublicURL = "https://cp.example.com/"
	cfg.hetznerURL = api.ts.URL + "/v1"
	if err := cfg.validate(); err != nil {
		t.Fatalf("the configuration of a hetzner appliance is refused: %v", err)
	}
	return cfg
}

// cloudInit is the part of a host's user data the test reads.
type cloudInit struct {
	WriteFiles []struct{ Path, Content string } `yaml:"write_files"`
}

func (c cloudInit) file(t *testing.T, path string) string {
	t.Helper()
	for _, f := range c.WriteFiles {
		if f.Path == path {
			return f.Content
		}
	}
	t.Fatalf("the user data writes no %s", path)
	return ""
}

// TestServeWithHetznerGivesHostsACompleteBootstrap: with the Hetzner
// provisioner and nothing but the public addresses set, a paid node's
// server boots into an agent downloaded from this appliance, checked
// against the digest of what it serves, dialling a gateway whose
// certificate covers the address it dials.
func TestServeWithHetznerGivesHostsACompleteBootstrap(t *testing.T) {
	api := newFakeHetzner(t)
	cfg := hetznerConfig(t, api)
	cfg.DevToken = "hetzner-admin"
	m := MustOpenMain(t, cfg)
	buyEthereumNode(t, m)
	waitFor(t, 30*time.Second, "a server to be created", func() bool { return len(api.created()) > 0 })
	var ci cloudInit
	if err := yaml.Unmarshal([]byte(api.created()[0]), &ci); err != nil {
		t.Fatalf("user data is not YAML: %v", err)
	}

	served := download(t, "http://"+m.HTTP.Addr()+web.AgentBinaryPath)
	built, err := os.ReadFile(testAgentBinary(t))
	if err != nil || string(served) != string(built) {
		t.Fatalf("the appliance does not serve the hoodcloud-agent beside it (%v)", err)
	}
	sum := sha256.Sum256(served)
	script := ci.file(t, "/usr/local/lib/hoodcloud/install-agent.sh")
	for _, want := range []string{
		"--output \"$tmp\" 'https://cp.example.com/agent/hoodcloud-agent-linux-amd64'\n",
		`echo "` + hex.EncodeToString(sum[:]) + `  $tmp" | sha256sum --check --strict -`,
	} {
		if !strings.Contains(script, want) {
			t.Errorf("the install script lacks %q:\n%s", want, script)
		}
	}
	if unit := ci.file(t, "/etc/systemd/system/hoodcloud-agent.service"); !strings.Contains(unit, "ExecStart=/usr/local/bin/hoodcloud-agent --gateway gw.example.com:8443 --node-id node_") {
		t.Errorf("the agent's unit does not dial the public gateway address:\n%s", unit)
	}
	if ca := ci.file(t, "/etc/hoodcloud/agent-ca.pem"); ca != string(m.Boot.CAs().TrustPEM()) {
		t.Error("the host does not get the agent CAs")
	}
	if env := ci.file(t, "/etc/hoodcloud/agent.env"); !strings.HasPrefix(env, "HOODCLOUD_AGENT_TOKEN=hcenroll_") {
		t.Error("the host gets no enrolment token")
	}
	assertGatewayCertificateCovers(t, m, "gw.example.com")
}

// buyEthereumNode pays for an Ethereum full node through the API.
func buyEthereumNode(t *testing.T, m *Main) {
	t.Helper()
	api := signUp(t, m, "hetzner@example.com", 1)
	var sub struct{ ID string }
	api.do("POST", "/subscriptions", `{"chain_profile_id":"ethereum-holesky","node_type":"full","duration":"1m"}`, 201, &sub)
	api.do("POST", "/subscriptions/"+sub.ID+"/inputs", `{"inputs":[{"name":"fee_recipient","value":"0x52908400098527886E0F7030069857D2E4169EE7"}]}`, 200, nil)
	var pay struct{ ID string }
	api.do("POST", "/payments", `{"external_id":"inv-h","amount_cents":4900,"currency":"EUR","subscription_ids":["`+sub.ID+`"]}`, 201, &pay)
	api.webhook([]byte(`{"event_id":"evt-h","payment_id":"`+pay.ID+`"}`), m.Boot.WebhookSecret, 202)
}

func download(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d, %v", url, resp.StatusCode, err)
	}
	return b
}

// assertGatewayCertificateCovers: a host dialling the gateway as name
// verifies its certificate against the CAs it was given.
func assertGatewayCertificateCovers(t *testing.T, m *Main, name string) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(m.Boot.CAs().TrustPEM())
	conn, err := tls.Dial("tcp", m.Gateway.Addr(), &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		t.Fatalf("a host dialling the gateway as %s refuses its certificate: %v", name, err)
	}
	conn.Close()
}

func TestAMissingAgentBinaryIsReportedByTheReadiness(t *testing.T) {
	for _, tt := range []struct {
		provisioner string
		status      int
		overall     string
	}{
		{"local", http.StatusOK, "degraded"},                    // local hosts fall back to `hoodcloud agent`
		{"hetzner", http.StatusServiceUnavailable, "unhealthy"}, // hosts could not boot
	} {
		t.Run(tt.provisioner, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			if tt.provisioner == "hetzner" {
				cfg = hetznerConfig(t, newFakeHetzner(t))
			}
			cfg.AgentBinary = t.TempDir() + "/hoodcloud-agent"
			m := NewMain(cfg, testWriter{t})
			if err := m.Open(context.Background()); err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { m.Close() })
			base := "http://" + m.HTTP.Addr()

			status, body := getJSON(t, base+"/readyz")
			var r struct {
				Status     string
				Components []struct {
					Name, Status string
					ErrorCode    string `json:"error_code"`
				}
			}
			json.Unmarshal(body, &r)
			found := false
			for _, c := range r.Components {
				found = found || (c.Name == "agent_binary" && c.ErrorCode == "agent_binary_missing")
			}
			if status != tt.status || r.Status != tt.overall || !found {
				t.Errorf("/readyz = %d %s; want %d, %s and agent_binary: agent_binary_missing", status, body, tt.status, tt.overall)
			}
			if status, body := getJSON(t, base+web.AgentBinaryPath); status != http.StatusServiceUnavailable || !strings.Contains(string(body), `"code":"agent_binary_missing"`) {
				t.Errorf("download = %d %s; want 503 agent_binary_missing", status, body)
			}
		})
	}
}

func getJSON(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
