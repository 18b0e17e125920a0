package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
)

// testConfig is an appliance on a temp dir with every listener on a free
// port. The Temporal ports are fixed for the life of the test, so a
// restart finds them again, as in production.
func testConfig(t testing.TB, dir string) Config {
	t.Helper()
	cfg := defaultConfig()
	cfg.DataDir = dir
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.AgentAddr = "127.0.0.1:0"
	cfg.LogLevel = 8                                   // errors only: keep test output readable
	cfg.agentEnv = []string{"HOODCLOUD_TEST_AS_CLI=1"} // their chains run this test binary as hoodcloud simnode
	cfg.AgentBinary = testAgentBinary(t)
	if err := cfg.pickFreeTemporalPorts(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// MustOpenMain starts the appliance and waits for /readyz healthy.
func MustOpenMain(t testing.TB, cfg Config) *Main {
	t.Helper()
	m := NewMain(cfg, testWriter{t})
	if err := m.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	waitHealthy(t, "http://"+m.HTTP.Addr())
	return m
}

func waitHealthy(t testing.TB, base string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			var body struct{ Status string }
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if body.Status == "healthy" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not healthy within 15s (last error %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestApplianceRoundTripSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	ctx := context.Background()

	m := MustOpenMain(t, cfg)
	if !m.Boot.AdminTokenNew {
		t.Fatal("the first start must create the admin bootstrap token")
	}
	firstCA := m.Boot.AgentCA.Raw
	if out, err := m.Temporal.RoundTrip(ctx, "before-restart"); err != nil || out != "pong" {
		t.Fatalf("workflow = %q, %v; want pong", out, err)
	}
	publishAndConsume(t, m.Events, "RESTART", "first")
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	m = MustOpenMain(t, cfg)
	if m.Boot.AdminTokenNew || !bytes.Equal(m.Boot.AgentCA.Raw, firstCA) {
		t.Fatal("a restart must reuse the first-boot material, not make new")
	}
	if _, err := m.Temporal.SDK().WorkflowService().DescribeWorkflowExecution(ctx, describe(cfg.TemporalNamespace, "before-restart")); err != nil {
		t.Fatalf("workflow history lost across restart: %v", err)
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if out, err := m.Temporal.RoundTrip(wctx, "after-restart"); err != nil || out != "pong" {
		t.Fatalf("workflow after restart = %q, %v; want pong within 15s", out, err)
	}
	t.Logf("workflow after restart completed in %s", time.Since(start).Round(time.Millisecond))
	// The stream kept the first message; the durable consumer resumes after it.
	publishAndConsume(t, m.Events, "RESTART", "second")
}

func TestApplianceWithExternalNATS(t *testing.T) {
	url := testenv.NATSURL(t)
	cfg := testConfig(t, t.TempDir())
	cfg.Events = url
	m := MustOpenMain(t, cfg)
	stream := "HCTEST_" + strings.ToUpper(engine.NewID("")[1:9])
	publishAndConsume(t, m.Events, stream, "external")
	if m.NATS != nil {
		t.Fatal("an embedded NATS was started although an external one is configured")
	}
	deleteStream(t, url, stream)
}

// publishAndConsume stores want on the stream and reads the next message
// of a durable consumer, which must be want.
func publishAndConsume(t *testing.T, bus engine.Events, stream, want string) {
	t.Helper()
	ctx := context.Background()
	subject := strings.ToLower(stream) + ".msg"
	if err := bus.EnsureStream(ctx, engine.StreamSpec{Name: stream, Subjects: []string{subject}}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(ctx, subject, want, []byte(want)); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	stop, err := bus.Consume(ctx, engine.ConsumerSpec{Stream: stream, Durable: "e2e"}, func(_ context.Context, m *engine.Message) engine.Ack {
		got <- string(m.Data)
		return engine.AckDone
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	select {
	case g := <-got:
		if g != want {
			t.Fatalf("consumed %q, want %q", g, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no message within 10s")
	}
}

func TestSecondApplianceOnSameDataDirFailsFast(t *testing.T) {
	dir := t.TempDir()
	MustOpenMain(t, testConfig(t, dir))
	second := NewMain(testConfig(t, dir), testWriter{t})
	start := time.Now()
	err := second.Open(context.Background())
	if err == nil || !strings.Contains(err.Error(), "in use by another hoodcloud process") {
		t.Fatalf("second Open = %v, want the data dir in use", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %s to refuse, want fast", d)
	}
}

func TestBadInputExitsTwoWithAClearMessage(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	notADir := writeFile(t, "a file where the data dir should be")
	busyPort := fmt.Sprint(busy.Addr().(*net.TCPAddr).Port)
	badYAML := writeFile(t, "nope: 1\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no command", nil, nil, "Usage"},
		{"unknown command", []string{"launch"}, nil, `unknown command "launch"`},
		{"unknown flag", []string{"serve", "--colour"}, nil, "flag provided but not defined: -colour"},
		{"non-numeric port", []string{"serve", "--temporal-frontend-port", "abc"}, nil, "temporal-frontend-port"},
		{"port out of range", []string{"serve", "--temporal-history-port", "70000"}, nil, "temporal history port 70000: must be 1-65535"},
		{"same port twice", []string{"serve", "--temporal-history-port", "7833"}, nil, "temporal history port 7833: already used by frontend"},
		{"address without port", []string{"serve", "--http-addr", "localhost"}, nil, `http-addr: want host:port, got "localhost"`},
		{"unknown log format", []string{"serve", "--log-format", "xml"}, nil, `log-format: want one of text, json, got "xml"`},
		{"unknown log level", []string{"serve", "--log-level", "loud"}, nil, "log-level"},
		{"unsupported events scheme", []string{"serve", "--events", "kafka://x"}, nil, `events: unsupported scheme "kafka"`},
		{"secrets neither embedded nor vault", []string{"serve", "--secrets", "aws-kms://x"}, nil, `secrets: want "embedded" or a vault:// URL`},
		{"vault URL carrying a token", []string{"serve", "--secrets", "vault://s3cr3t@vault:8200"}, nil, "must not carry credentials"},
		{"bad temporal address", []string{"serve", "--temporal", "nowhere"}, nil, `temporal: want "embedded" or host:port`},
		{"bad environment value", []string{"serve"}, map[string]string{"HOODCLOUD_SHUTDOWN_TIMEOUT": "soon"}, "HOODCLOUD_SHUTDOWN_TIMEOUT"},
		{"unknown key in the file", []string{"serve", "--config", badYAML}, nil, `unknown key "nope"`},
		{"missing config file", []string{"serve", "--config", "/nonexistent.yaml"}, nil, "config file"},
		{"unwritable data dir", serveArgs(t, "--data-dir", filepath.Join(notADir, "sub")), nil, "not a directory"},
		{"http port in use", serveArgs(t, "--http-addr", busy.Addr().String()), nil, "http listen " + busy.Addr().String() + ": listen tcp " + busy.Addr().String() + ": bind: address already in use"},
		{"temporal port in use", serveArgs(t, "--temporal-history-port", busyPort), nil, "temporal history port " + busyPort + " is in use"},
		{"bad dev output", []string{"dev", "--output", "yaml"}, nil, `output: want one of text, env, json`},
		{"config without print", []string{"config"}, nil, "usage: hoodcloud config print"},
		{"payment max deliver zero", []string{"serve", "--payment-max-deliver", "0"}, nil, "payment-max-deliver must be >= 1"},
		{"unknown provisioner", []string{"serve", "--provisioner", "aws"}, nil, `provisioner: want one of local, hetzner, got "aws"`},
		{"hetzner without token", []string{"serve", "--provisioner", "hetzner"}, nil, "hetzner-token: required with provisioner hetzner"},
		{"hetzner hosts dialling a wildcard", []string{"serve", "--provisioner", "hetzner", "--hetzner-token", "t", "--agent-addr", "0.0.0.0:8443"}, nil, "agent-public-addr: required with provisioner hetzner"},
		{"hetzner hosts dialling loopback", []string{"serve", "--provisioner", "hetzner", "--hetzner-token", "t"}, nil, "hetzner hosts cannot dial the loopback address 127.0.0.1:8443"},
		{"hetzner hosts without a public url", []string{"serve", "--provisioner", "hetzner", "--hetzner-token", "t", "--agent-public-addr", "gw.example.com:8443", "--http-addr", "0.0.0.0:8080", "--allow-http"}, nil, "public-url: required with provisioner hetzner"},
		{"public url not http", []string{"serve", "--public-url", "ftp://cp.example.com"}, nil, "public-url: want an http(s) URL"},
		{"agent public address without port", []string{"serve", "--agent-public-addr", "gw.example.com"}, nil, `agent-public-addr: want host:port, got "gw.example.com"`},
		{"agent without gateway", []string{"agent", "--node-id", "n1", "--data-dir", t.TempDir()}, nil, "agent: gateway is required"},
		{"agent with an unknown runtime", []string{"agent", "--gateway", "127.0.0.1:1", "--node-id", "n1", "--data-dir", t.TempDir(), "--runtime", "lxc"}, nil, "agent: runtime:"},
		{"simnode without data dir", []string{"simnode"}, nil, "simnode: data-dir is required"},
		{"simnode unknown mode", []string{"simnode", "--data-dir", t.TempDir(), "--mode", "explode"}, nil, "simnode: mode:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := func(k string) string { return tt.env[k] }
			// Bounded, in case a broken check lets the appliance start.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			code := run(ctx, tt.args, env, strings.NewReader(""), &stdout, &stderr)
			if code != 2 {
				t.Fatalf("exit code = %d, want 2 (stderr %s)", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("stderr = %q, want it to mention %q", stderr.String(), tt.want)
			}
		})
	}
}

func TestConfigPrecedenceIsFlagsThenEnvThenFile(t *testing.T) {
	file := writeFile(t, "http_addr: 127.0.0.1:1111\nagent_addr: 127.0.0.1:2222\nlog_format: json\ndev_token: from-file\n")
	env := map[string]string{"HOODCLOUD_CONFIG": file, "HOODCLOUD_AGENT_ADDR": "127.0.0.1:3333", "HOODCLOUD_HTTP_ADDR": "127.0.0.1:4444"}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"config", "print", "--http-addr", "127.0.0.1:5555"}, func(k string) string { return env[k] }, strings.NewReader(""), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		`http_addr: "127.0.0.1:5555"`,  // flag beats env and file
		`agent_addr: "127.0.0.1:3333"`, // env beats file
		`log_format: "json"`,           // file beats default
		`temporal: "embedded"`,         // default
		`dev_token: "<redacted>"`,      // secrets never printed
	} {
		if !strings.Contains(out, want) {
			t.Errorf("config print lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "from-file") {
		t.Error("config print shows the secret")
	}
}

func TestConfigPrintRedactsURLPasswords(t *testing.T) {
	var stdout bytes.Buffer
	code := run(context.Background(), []string{"config", "print", "--events", "nats://hc:hunter2@10.0.0.1:4222"}, func(string) string { return "" }, strings.NewReader(""), &stdout, &bytes.Buffer{})
	if code != 0 || strings.Contains(stdout.String(), "hunter2") || !strings.Contains(stdout.String(), "nats://hc:redacted@10.0.0.1:4222") {
		t.Fatalf("exit %d, output:\n%s", code, stdout.String())
	}
}

func TestVersion(t *testing.T) {
	var stdout bytes.Buffer
	if code := run(context.Background(), []string{"version"}, os.Getenv, strings.NewReader(""), &stdout, &bytes.Buffer{}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(stdout.String(), "hoodcloud dev (commit none, built unknown)") {
		t.Fatalf("version = %q", stdout.String())
	}
}

// serveArgs runs serve on a temp dir and free ports, overridden by extra.
func serveArgs(t *testing.T, extra ...string) []string {
	cfg := testConfig(t, t.TempDir())
	p := cfg.TemporalPorts
	args := []string{"serve", "--data-dir", cfg.DataDir, "--http-addr", "127.0.0.1:0", "--agent-addr", "127.0.0.1:0", "--log-level", "error",
		"--temporal-frontend-port", fmt.Sprint(p.Frontend), "--temporal-http-port", fmt.Sprint(p.FrontendHTTP),
		"--temporal-history-port", fmt.Sprint(p.History), "--temporal-matching-port", fmt.Sprint(p.Matching),
		"--temporal-worker-port", fmt.Sprint(p.Worker)}
	return append(args, extra...)
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hoodcloud.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func describe(ns, id string) *workflowservice.DescribeWorkflowExecutionRequest {
	return &workflowservice.DescribeWorkflowExecutionRequest{Namespace: ns, Execution: &commonpb.WorkflowExecution{WorkflowId: id}}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func deleteStream(t *testing.T, url, name string) {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := js.DeleteStream(context.Background(), name); err != nil {
		t.Errorf("delete stream %s: %v", name, err)
	}
}
