package hetzner_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/internal/testenv"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/enginetest"
	"github.com/hoodcloud/hoodcloud/store/hetzner"
	"gopkg.in/yaml.v3"
)

const (
	enrollToken = "hcenroll_SECRET-token-value-42"
	agentSum    = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)

type fixture struct {
	api  *fakeAPI
	prov *hetzner.Provisioner
	logs *testenv.LogBuffer
}

func newFixture(t *testing.T, tweak ...func(*hetzner.Config)) *fixture {
	t.Helper()
	f := &fixture{api: newFakeAPI(t), logs: &testenv.LogBuffer{}}
	cfg := hetzner.Config{
		Token: apiToken, Installation: "inst-1", BaseURL: f.api.ts.URL + "/v1",
		PollInterval: time.Millisecond, ActionTimeout: 2 * time.Second, RequestTimeout: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, fn := range tweak {
		fn(&cfg)
	}
	var err error
	if f.prov, err = hetzner.New(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.prov.Close()
		assertNoSecrets(t, "logs", f.logs.String())
	})
	return f
}

func assertNoSecrets(t *testing.T, where, text string) {
	t.Helper()
	for _, secret := range []string{apiToken, enrollToken} {
		if strings.Contains(text, secret) {
			t.Errorf("%s contain a secret: %s", where, text)
		}
	}
}

var (
	caOnce sync.Once
	caPEM  []byte
)

// testCAPEM is a real self-signed CA certificate.
func testCAPEM(t *testing.T) []byte {
	t.Helper()
	caOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
			NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	})
	return caPEM
}

func hostSpec(t *testing.T, nodeID string) engine.HostSpec {
	return engine.HostSpec{
		NodeID: nodeID, Provider: "hetzner", Region: "fsn1", InstanceType: "cx22",
		Labels: map[string]string{"team": "chains", engine.LabelNodeID: "forged"},
		Bootstrap: engine.HostBootstrap{
			AgentURL: "https://cp.example.com/agent/hoodcloud-agent-linux-amd64", AgentSHA256: agentSum,
			GatewayAddr: "gateway.example.com:7443", CACertPEM: testCAPEM(t), EnrollmentToken: enrollToken,
		},
	}
}

func TestCreateHostCreatesOnceAndWaitsForTheAction(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	host, err := f.prov.CreateHost(ctx, hostSpec(t, "node_1"))
	if err != nil {
		t.Fatal(err)
	}
	want := engine.Host{Provider: "hetzner", ProviderID: "1", Address: "203.0.113.1", Region: "fsn1", InstanceType: "cx22"}
	if host != want {
		t.Errorf("host %+v, want %+v", host, want)
	}
	lookup := f.api.calls("")[0]
	if lookup.Method != "GET" || lookup.Path != "/v1/servers" ||
		lookup.Query.Get("label_selector") != "hoodcloud-node-id==node_1,hoodcloud-installation==inst-1,!hoodcloud-incarnation" {
		t.Errorf("first request %s, want the lookup of the node's server by label", lookup)
	}
	posts := f.api.calls("POST")
	if len(posts) != 1 {
		t.Fatalf("%d POSTs, want 1", len(posts))
	}
	assertCreateRequest(t, posts[0])
	if polls := len(f.api.calls("GET")) - 1; polls != 2 {
		t.Errorf("polled the action %d times, want 2 (running, then success)", polls)
	}

	again, err := f.prov.CreateHost(ctx, hostSpec(t, "node_1"))
	if err != nil {
		t.Fatal(err)
	}
	if again != host {
		t.Errorf("second CreateHost = %+v, want the same host %+v", again, host)
	}
	if n := len(f.api.calls("POST")); n != 1 || f.api.serverCount() != 1 {
		t.Errorf("after a second CreateHost: %d POSTs, %d servers; want 1 and 1", n, f.api.serverCount())
	}
}

func TestProvisionerConformance(t *testing.T) {
	enginetest.RunProvisioner(t, func(t *testing.T) enginetest.Provisioner {
		f := newFixture(t)
		return enginetest.Provisioner{
			Provisioner: f.prov, Installation: "inst-1",
			Spec: func(nodeID string) engine.HostSpec {
				s := hostSpec(t, nodeID)
				s.Labels = map[string]string{"tier": "test"}
				return s
			},
			Gone:   engine.Host{Provider: "hetzner", ProviderID: "999"},
			Labels: func(_ *testing.T, h engine.Host) map[string]string { return f.api.labels(h.ProviderID) },
		}
	})
}

func assertCreateRequest(t *testing.T, r recorded) {
	t.Helper()
	if got := r.Header.Get("Authorization"); got != "Bearer "+apiToken {
		t.Errorf("Authorization %q, want the Bearer token", got)
	}
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
	var body struct {
		Name             string            `json:"name"`
		ServerType       string            `json:"server_type"`
		Location         string            `json:"location"`
		Image            string            `json:"image"`
		Labels           map[string]string `json:"labels"`
		StartAfterCreate bool              `json:"start_after_create"`
		UserData         string            `json:"user_data"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Name != "hc-node-1" || body.ServerType != "cx22" || body.Location != "fsn1" || body.Image != "ubuntu-24.04" || !body.StartAfterCreate {
		t.Errorf("create request %+v", body)
	}
	wantLabels := map[string]string{"team": "chains", "hoodcloud-node-id": "node_1", "hoodcloud-managed": "true", "hoodcloud-installation": "inst-1"}
	if fmt.Sprint(body.Labels) != fmt.Sprint(wantLabels) {
		t.Errorf("labels %v, want %v (HoodCloud's own over the spec's)", body.Labels, wantLabels)
	}
	if !strings.HasPrefix(body.UserData, "#cloud-config\n") {
		t.Errorf("user_data does not start with #cloud-config")
	}
}

// userDataOf returns the user_data of the recorded creation.
func userDataOf(t *testing.T, r recorded) string {
	t.Helper()
	var body struct {
		UserData string `json:"user_data"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatal(err)
	}
	return body.UserData
}

type cloudFile struct {
	Path, Owner, Permissions, Content string
}

func TestCreateHostCloudInit(t *testing.T) {
	f := newFixture(t)
	if _, err := f.prov.CreateHost(context.Background(), hostSpec(t, "node_1")); err != nil {
		t.Fatal(err)
	}
	userData := userDataOf(t, f.api.calls("POST")[0])
	var cfg struct {
		WriteFiles []cloudFile `yaml:"write_files"`
		RunCmd     [][]string  `yaml:"runcmd"`
	}
	if err := yaml.Unmarshal([]byte(userData), &cfg); err != nil {
		t.Fatalf("user_data is not YAML: %v", err)
	}
	files := map[string]cloudFile{}
	for _, wf := range cfg.WriteFiles {
		files[wf.Path] = wf
	}

	t.Run("CA certificate", func(t *testing.T) {
		ca := files["/etc/hoodcloud/agent-ca.pem"]
		if ca.Content != string(testCAPEM(t)) || ca.Permissions != "0644" {
			t.Errorf("CA file %+v, want the PEM, 0644", ca)
		}
	})
	t.Run("token only in the 0600 env file", func(t *testing.T) {
		env := files["/etc/hoodcloud/agent.env"]
		if env.Content != "HOODCLOUD_AGENT_TOKEN="+enrollToken+"\n" || env.Permissions != "0600" || env.Owner != "root:root" {
			t.Errorf("env file %+v, want the token alone, root, 0600", env)
		}
		if n := strings.Count(userData, enrollToken); n != 1 {
			t.Errorf("token appears %d times in user_data, want once", n)
		}
		for path, wf := range files {
			if path != "/etc/hoodcloud/agent.env" && strings.Contains(wf.Content, enrollToken) {
				t.Errorf("%s holds the token", path)
			}
		}
	})
	t.Run("binary checked by sha256 before install", func(t *testing.T) {
		script := files["/usr/local/lib/hoodcloud/install-agent.sh"]
		for _, want := range []string{
			"set -eu",
			`tmp="$(mktemp /usr/local/bin/hoodcloud-agent.XXXXXX)"`,
			"--output \"$tmp\" 'https://cp.example.com/agent/hoodcloud-agent-linux-amd64'\n",
			`echo "` + agentSum + `  $tmp" | sha256sum --check --strict -`,
			`mv -f "$tmp" /usr/local/bin/hoodcloud-agent`,
		} {
			if !strings.Contains(script.Content, want) {
				t.Errorf("install script lacks %q:\n%s", want, script.Content)
			}
		}
		check, install := strings.Index(script.Content, "sha256sum"), strings.Index(script.Content, "mv -f")
		start := strings.Index(script.Content, "systemctl enable")
		if check < 0 || check > install || install > start {
			t.Errorf("script must check, then install, then start:\n%s", script.Content)
		}
		if len(cfg.RunCmd) != 1 || strings.Join(cfg.RunCmd[0], " ") != "/bin/sh /usr/local/lib/hoodcloud/install-agent.sh" {
			t.Errorf("runcmd %v, want the install script", cfg.RunCmd)
		}
	})
	t.Run("systemd unit", func(t *testing.T) {
		unit := files["/etc/systemd/system/hoodcloud-agent.service"].Content
		want := "EnvironmentFile=/etc/hoodcloud/agent.env\nExecStart=/usr/local/bin/hoodcloud-agent --gateway gateway.example.com:7443 --node-id node_1" +
			" --ca-file /etc/hoodcloud/agent-ca.pem --data-dir /var/lib/hoodcloud-agent\n"
		if !strings.Contains(unit, want) || !strings.Contains(unit, "WantedBy=multi-user.target") {
			t.Errorf("unit:\n%s\nwant %s", unit, want)
		}
	})
}

func TestCreateHostRefusesWhatCouldEscapeItsPlace(t *testing.T) {
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("k")})
	tests := []struct {
		name string
		edit func(*engine.HostSpec)
	}{
		{"another provider", func(s *engine.HostSpec) { s.Provider = "local" }},
		{"node id not a label value", func(s *engine.HostSpec) { s.NodeID = "node 1\n" }},
		{"no instance type", func(s *engine.HostSpec) { s.InstanceType = "" }},
		{"url with a quote", func(s *engine.HostSpec) { s.Bootstrap.AgentURL = "https://x.example/a'b" }},
		{"url not http", func(s *engine.HostSpec) { s.Bootstrap.AgentURL = "file:///etc/passwd" }},
		{"short sha256", func(s *engine.HostSpec) { s.Bootstrap.AgentSHA256 = "abc" }},
		{"gateway without port", func(s *engine.HostSpec) { s.Bootstrap.GatewayAddr = "gateway.example.com" }},
		{"gateway with a space", func(s *engine.HostSpec) { s.Bootstrap.GatewayAddr = "a b:1" }},
		{"token with a newline", func(s *engine.HostSpec) { s.Bootstrap.EnrollmentToken = enrollToken + "\nX=1" }},
		{"CA with a private key", func(s *engine.HostSpec) { s.Bootstrap.CACertPEM = append(testCAPEM(t), keyPEM...) }},
		{"CA not PEM", func(s *engine.HostSpec) { s.Bootstrap.CACertPEM = []byte("hello") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			spec := hostSpec(t, "node_1")
			tt.edit(&spec)
			_, err := f.prov.CreateHost(context.Background(), spec)
			if !engine.IsCode(err, engine.EInvalid) {
				t.Errorf("err = %v, want EInvalid", err)
			}
			if err != nil {
				assertNoSecrets(t, "the error", err.Error())
			}
			if n := len(f.api.calls("POST")); n != 0 {
				t.Errorf("%d POSTs for a refused spec", n)
			}
		})
	}
}

func TestCreateHostWaitsForAServerAnEarlierAttemptLeftInitializing(t *testing.T) {
	f := newFixture(t)
	f.api.addServer(fakeServer{Name: "hc-node-1", Status: "initializing", initPolls: 2, Type: "cx22", Location: "nbg1",
		Labels: map[string]string{"hoodcloud-node-id": "node_1", "hoodcloud-installation": "inst-1", "hoodcloud-managed": "true"}})

	host, err := f.prov.CreateHost(context.Background(), hostSpec(t, "node_1"))
	if err != nil {
		t.Fatal(err)
	}
	if host.ProviderID != "1" || host.Region != "nbg1" {
		t.Errorf("host %+v, want the existing server 1", host)
	}
	if n := len(f.api.calls("POST")); n != 0 {
		t.Errorf("%d POSTs, want none: the server exists", n)
	}
	if polls := len(f.api.calls("GET")) - 1; polls != 3 {
		t.Errorf("%d polls of the server, want 3 (initializing twice, then running)", polls)
	}
}

func TestCreateHostAfterARacingAttemptTookTheName(t *testing.T) {
	f := newFixture(t)
	f.api.beforeCreate = func(api *fakeAPI) {
		api.beforeCreate = nil
		api.addServerLocked(fakeServer{Name: "hc-node-1", Type: "cx22", Location: "fsn1",
			Labels: map[string]string{"hoodcloud-node-id": "node_1", "hoodcloud-installation": "inst-1", "hoodcloud-managed": "true"}})
	}

	host, err := f.prov.CreateHost(context.Background(), hostSpec(t, "node_1"))
	if err != nil || host.ProviderID != "1" {
		t.Errorf("CreateHost = %+v, %v; want the racer's server 1", host, err)
	}
	if f.api.serverCount() != 1 {
		t.Errorf("%d servers, want 1", f.api.serverCount())
	}
}

func TestCreateHostNameTakenByAForeignServer(t *testing.T) {
	f := newFixture(t)
	f.api.addServer(fakeServer{Name: "hc-node-1", Type: "cx22", Location: "fsn1"})

	_, err := f.prov.CreateHost(context.Background(), hostSpec(t, "node_1"))
	if !engine.IsCode(err, engine.EConflict) {
		t.Errorf("err = %v, want EConflict", err)
	}
}

func TestCreateHostFailedActionDiscardsTheServer(t *testing.T) {
	f := newFixture(t)
	f.api.actionSteps = []string{"running", "error"}
	f.api.actionError = map[string]string{"code": "action_failed", "message": "image broken near " + enrollToken}

	_, err := f.prov.CreateHost(context.Background(), hostSpec(t, "node_1"))
	if !engine.IsCode(err, engine.EUnavailable) || !strings.Contains(err.Error(), "action_failed") {
		t.Errorf("err = %v, want EUnavailable naming the action error", err)
	}
	if err != nil {
		assertNoSecrets(t, "the error", err.Error())
	}
	if dels := f.api.calls("DELETE"); len(dels) != 1 || dels[0].Path != "/v1/servers/1" || f.api.serverCount() != 0 {
		t.Errorf("deletes %v, %d servers left; want server 1 deleted", dels, f.api.serverCount())
	}
}

func TestCreateHostGivesUpWaitingButKeepsTheServer(t *testing.T) {
	f := newFixture(t, func(c *hetzner.Config) { c.ActionTimeout = 30 * time.Millisecond })
	f.api.actionSteps = []string{"running"}

	_, err := f.prov.CreateHost(context.Background(), hostSpec(t, "node_1"))
	if !engine.IsCode(err, engine.EUnavailable) {
		t.Errorf("err = %v, want EUnavailable", err)
	}
	if n := len(f.api.calls("DELETE")); n != 0 || f.api.serverCount() != 1 {
		t.Errorf("%d deletes, %d servers; want the server kept for the retry to find", n, f.api.serverCount())
	}
}

func TestDestroyHostIsIdempotent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := f.api.addServer(fakeServer{Name: "hc-node-1", Type: "cx22", Location: "fsn1"})
	h := engine.Host{Provider: "hetzner", ProviderID: strconv.FormatInt(s.ID, 10)}

	for i := range 2 {
		if err := f.prov.DestroyHost(ctx, h); err != nil {
			t.Fatalf("destroy #%d: %v", i+1, err)
		}
	}
	dels := f.api.calls("DELETE")
	if len(dels) != 2 || dels[0].Path != "/v1/servers/1" || f.api.serverCount() != 0 {
		t.Errorf("deletes %v with %d servers left, want two DELETE /v1/servers/1 and none left", dels, f.api.serverCount())
	}
	if n := len(f.api.calls("")); n != 2 {
		t.Errorf("%d requests, want only the 2 deletes", n)
	}
}

func TestDescribeHost(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := f.api.addServer(fakeServer{Name: "hc-node-1", Status: "off", Type: "cpx31", Location: "hel1",
		Labels: map[string]string{"hoodcloud-node-id": "node_1"}})

	st, err := f.prov.DescribeHost(ctx, engine.Host{Provider: "hetzner", ProviderID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	want := engine.HostStatus{
		Host:  engine.Host{Provider: "hetzner", ProviderID: "1", Address: "203.0.113.1", Region: "hel1", InstanceType: "cpx31"},
		Phase: engine.HostStopped, NodeID: "node_1", CreatedAt: s.Created,
	}
	if st.Host != want.Host || st.Phase != want.Phase || st.NodeID != want.NodeID || !st.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("status %+v, want %+v", st, want)
	}

	_, err = f.prov.DescribeHost(ctx, engine.Host{Provider: "hetzner", ProviderID: "77"})
	if !engine.IsCode(err, engine.ENotFound) {
		t.Errorf("describing a gone host: %v, want ENotFound", err)
	}
}

func TestListHostsFollowsEveryPage(t *testing.T) {
	f := newFixture(t)
	f.api.pageSize = 2
	mine := map[string]string{"hoodcloud-managed": "true", "hoodcloud-installation": "inst-1"}
	for i := range 5 {
		labels := map[string]string{"hoodcloud-node-id": "node_" + strconv.Itoa(i+1)}
		for k, v := range mine {
			labels[k] = v
		}
		f.api.addServer(fakeServer{Name: fmt.Sprintf("hc-node-%d", i+1), Type: "cx22", Location: "fsn1", Labels: labels})
	}
	f.api.addServer(fakeServer{Name: "other-appliance", Labels: map[string]string{"hoodcloud-managed": "true", "hoodcloud-installation": "inst-2"}})
	f.api.addServer(fakeServer{Name: "someone-elses"})

	hosts, err := f.prov.ListHosts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hosts {
		got = append(got, h.Host.ProviderID+"="+h.NodeID)
	}
	if want := "1=node_1 2=node_2 3=node_3 4=node_4 5=node_5"; strings.Join(got, " ") != want {
		t.Errorf("listed %v, want %s", got, want)
	}
	var pages []string
	for _, r := range f.api.calls("GET") {
		if sel := r.Query.Get("label_selector"); sel != "hoodcloud-managed==true,hoodcloud-installation==inst-1" {
			t.Errorf("label_selector %q", sel)
		}
		pages = append(pages, r.Query.Get("page"))
	}
	if strings.Join(pages, ",") != "1,2,3" {
		t.Errorf("pages asked %v, want 1,2,3", pages)
	}
}

func TestAPIErrorsBecomeEngineCodes(t *testing.T) {
	// 42 minutes on: "retry after 4…" however long the cases before take.
	reset := strconv.FormatInt(time.Now().Add(42*time.Minute).Unix(), 10)
	tests := []struct {
		name    string
		fail    failure
		code    engine.Code
		message string
	}{
		{"not found", failure{status: 404, code: "not_found", msg: "gone"}, engine.ENotFound, "not_found"},
		{"invalid input", failure{status: 400, code: "invalid_input", msg: "bad server_type"}, engine.EInvalid, "bad server_type"},
		{"json error", failure{status: 400, code: "json_error", msg: "bad json"}, engine.EInvalid, "bad json"},
		{"uniqueness", failure{status: 409, code: "uniqueness_error", msg: "name taken"}, engine.EConflict, "name taken"},
		{"conflict", failure{status: 409, code: "conflict", msg: "changed"}, engine.EConflict, "changed"},
		{"rate limit", failure{status: 429, code: "rate_limit_exceeded", msg: "slow down",
			header: http.Header{"Ratelimit-Reset": {reset}}}, engine.EUnavailable, "retry after 4"},
		{"unauthorized", failure{status: 401, code: "unauthorized", msg: "bad token"}, engine.EUnavailable, "rejected the configured api token"},
		{"forbidden", failure{status: 403, code: "forbidden", msg: "read-only"}, engine.EUnavailable, "forbidden"},
		{"locked", failure{status: 423, code: "locked", msg: "busy"}, engine.EUnavailable, "busy"},
		{"out of capacity", failure{status: 412, code: "resource_unavailable", msg: "no cx22 in fsn1"}, engine.EUnavailable, "no cx22"},
		{"server error", failure{status: 500, code: "server_error", msg: "oops"}, engine.EUnavailable, "oops"},
		{"proxy page", failure{status: 502}, engine.EUnavailable, "502"},
		{"unknown 4xx", failure{status: 418, code: "teapot", msg: "short and stout"}, engine.EInternal, "teapot"},
		{"echoed api token", failure{status: 400, code: "invalid_input", msg: "token " + apiToken + " invalid"}, engine.EInvalid, "[redacted]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.api.failOnce("GET /v1/servers/1", tt.fail)
			_, err := f.prov.DescribeHost(context.Background(), engine.Host{Provider: "hetzner", ProviderID: "1"})
			if !engine.IsCode(err, tt.code) || !strings.Contains(err.Error(), tt.message) {
				t.Errorf("err = %v, want %s mentioning %q", err, tt.code, tt.message)
			}
			if err != nil {
				assertNoSecrets(t, "the error", err.Error())
			}
		})
	}
}

func TestCreateErrorEchoingTheUserDataHidesTheToken(t *testing.T) {
	f := newFixture(t)
	f.api.failOnce("POST /v1/servers", failure{status: 400, code: "invalid_input", msg: "user_data invalid near HOODCLOUD_AGENT_TOKEN=" + enrollToken})

	_, err := f.prov.CreateHost(context.Background(), hostSpec(t, "node_1"))
	if !engine.IsCode(err, engine.EInvalid) {
		t.Fatalf("err = %v, want EInvalid", err)
	}
	assertNoSecrets(t, "the error", err.Error())
	assertNoSecrets(t, "the message shown", engine.ErrorMessage(err))
}

func TestRequestTimeout(t *testing.T) {
	f := newFixture(t, func(c *hetzner.Config) { c.RequestTimeout = 20 * time.Millisecond })
	f.api.delay = time.Hour // never in time, however slow the client is

	_, err := f.prov.DescribeHost(context.Background(), engine.Host{Provider: "hetzner", ProviderID: "1"})
	if !engine.IsCode(err, engine.EUnavailable) || !strings.Contains(err.Error(), "deadline") {
		t.Errorf("err = %v, want EUnavailable after the deadline", err)
	}
}

func TestOpenChecksTheToken(t *testing.T) {
	f := newFixture(t)
	if err := f.prov.Open(context.Background()); err != nil {
		t.Errorf("Open with a good token: %v", err)
	}
	bad := newFixture(t, func(c *hetzner.Config) { c.Token = "wrong-token" })
	if err := bad.prov.Open(context.Background()); !engine.IsCode(err, engine.EUnavailable) {
		t.Errorf("Open with a rejected token: %v, want EUnavailable", err)
	}
}

func TestNewNeedsTokenAndInstallation(t *testing.T) {
	for _, cfg := range []hetzner.Config{
		{Installation: "inst-1"},
		{Token: apiToken},
		{Token: apiToken, Installation: "has space"},
		{Token: apiToken, Installation: "inst-1", BaseURL: "ftp://x"},
	} {
		_, err := hetzner.New(cfg)
		if !engine.IsCode(err, engine.EInvalid) {
			t.Errorf("New(%+v) = %v, want EInvalid", cfg.Installation, err)
		}
		if err != nil {
			assertNoSecrets(t, "the error", err.Error())
		}
	}
}

func TestCreateHostWillNotReuseAServerBeingDeleted(t *testing.T) {
	f := newFixture(t)
	f.api.addServer(fakeServer{Name: "hc-node-1", Status: "deleting",
		Labels: map[string]string{"hoodcloud-node-id": "node_1", "hoodcloud-installation": "inst-1", "hoodcloud-managed": "true"}})

	_, err := f.prov.CreateHost(context.Background(), hostSpec(t, "node_1"))
	if !engine.IsCode(err, engine.EUnavailable) || !strings.Contains(err.Error(), "being deleted") {
		t.Errorf("err = %v, want EUnavailable: retry once it is gone", err)
	}
	if n := len(f.api.calls("POST")); n != 0 {
		t.Errorf("%d POSTs, want none while the old server is deleted", n)
	}
}
