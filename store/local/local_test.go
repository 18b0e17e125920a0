package local

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"maps"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/internal/testenv"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/enginetest"
)

const (
	testToken        = "enrol-tok-5ecret-4f9a"
	testInstallation = "inst-test"
)

var testCA = selfSignedCA()

// selfSignedCA is a throwaway CA certificate in PEM.
func selfSignedCA() []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test agent ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// fixture is a provisioner over a temp hosts dir whose agents are the fake
// agent, with a log that the tests search for the token.
type fixture struct {
	t       *testing.T
	root    string // the hosts dir
	records string // where fake agents record their runs
	logs    *testenv.LogBuffer
	// binary and agentBinary are the Config's; binary defaults to this
	// test binary, beside which there is no hoodcloud-agent.
	binary, agentBinary string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return &fixture{t: t, root: filepath.Join(t.TempDir(), "hosts"), records: t.TempDir(), logs: &testenv.LogBuffer{}}
}

// open starts a provisioner of installation over the fixture's dir.
func (f *fixture) open(installation string) *Provisioner {
	f.t.Helper()
	p, err := New(Config{
		Dir: f.root, Installation: installation, Binary: cmp.Or(f.binary, os.Args[0]), AgentBinary: f.agentBinary,
		Env:         []string{fakeEnv + "=agent", recordsEnv + "=" + f.records},
		StopTimeout: 500 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		f.t.Fatalf("new: %v", err)
	}
	if err := p.Open(context.Background()); err != nil {
		f.t.Fatalf("open: %v", err)
	}
	f.t.Cleanup(func() { _ = p.Close() })
	return p
}

func spec(nodeID string) engine.HostSpec {
	return engine.HostSpec{
		NodeID: nodeID, Provider: ProviderName,
		Bootstrap: engine.HostBootstrap{GatewayAddr: "127.0.0.1:7443", CACertPEM: testCA, EnrollmentToken: testToken},
		Labels:    map[string]string{"tier": "test", engine.LabelInstallation: "spoofed"},
	}
}

func (f *fixture) mustCreate(p *Provisioner, nodeID string) engine.Host {
	f.t.Helper()
	h, err := p.CreateHost(context.Background(), spec(nodeID))
	if err != nil {
		f.t.Fatalf("create host of %s: %v", nodeID, err)
	}
	return h
}

// runs returns the fake agent runs of nodeID recorded so far.
func (f *fixture) runs(nodeID string) []run {
	f.t.Helper()
	names, _ := filepath.Glob(filepath.Join(f.records, nodeID+"-*.json"))
	var runs []run
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			f.t.Fatalf("read run: %v", err)
		}
		var r run
		if err := json.Unmarshal(b, &r); err != nil {
			f.t.Fatalf("decode run: %v", err)
		}
		runs = append(runs, r)
	}
	return runs
}

// starts counts the agent starts of nodeID the provisioners logged. Each
// start is logged before the agent runs, so once Close returned the count
// is final: no start is left under way.
func (f *fixture) starts(nodeID string) int {
	return strings.Count(f.logs.String(), `msg="local agent started" node_id=`+nodeID+" ")
}

// awaitRuns waits until nodeID's agent started at least n times.
func (f *fixture) awaitRuns(nodeID string, n int) []run {
	f.t.Helper()
	var runs []run
	eventually(f.t, func() bool { runs = f.runs(nodeID); return len(runs) >= n })
	return runs
}

// control creates a control file that changes the fake agent of nodeID.
func (f *fixture) control(nodeID, what, content string) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(f.records, nodeID+"."+what), []byte(content), 0o600); err != nil {
		f.t.Fatal(err)
	}
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testenv.Patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met in %s", testenv.Patience)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid is a process that has not died (a zombie
// waiting for its parent counts as dead).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func awaitDead(t *testing.T, pids ...int) {
	t.Helper()
	eventually(t, func() bool { return !slices.ContainsFunc(pids, alive) })
}

func describe(t *testing.T, p *Provisioner, h engine.Host) engine.HostStatus {
	t.Helper()
	st, err := p.DescribeHost(context.Background(), h)
	if err != nil {
		t.Fatalf("describe %s: %v", h.ProviderID, err)
	}
	return st
}

func TestCreateHostStartsAgentWithTokenInEnvOnly(t *testing.T) {
	f := newFixture(t)
	p := f.open(testInstallation)
	h := f.mustCreate(p, "node_1")

	dir := filepath.Join(f.root, "node_1")
	want := engine.Host{Provider: ProviderName, ProviderID: "node_1", Address: dir}
	if h != want {
		t.Fatalf("host = %+v, want %+v", h, want)
	}
	r := f.awaitRuns("node_1", 1)[0]
	if !r.HasToken || r.Token != testToken {
		t.Errorf("agent env has no token (%v)", r.HasToken)
	}
	wantArgs := []string{"agent", "--gateway", "127.0.0.1:7443", "--node-id", "node_1",
		"--ca-file", filepath.Join(dir, "ca.pem"), "--data-dir", filepath.Join(dir, "agent"), "--runtime", "process",
		"--port-claims-dir", filepath.Join(f.root, ".port-claims")}
	if !slices.Equal(r.Args, wantArgs) {
		t.Errorf("agent args = %q, want %q", r.Args, wantArgs)
	}
	if strings.Contains(strings.Join(r.Args, " "), testToken) {
		t.Error("the token is on the agent's command line")
	}
	fi, err := os.Stat(filepath.Join(dir, "ca.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("ca file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); !bytes.Equal(b, testCA) {
		t.Error("ca file does not hold the bootstrap's ca")
	}
	if st := describe(t, p, h); st.Phase != engine.HostRunning || st.NodeID != "node_1" || st.CreatedAt.IsZero() {
		t.Errorf("status = %+v, want running node_1 with a creation time", st)
	}
	eventually(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
		return bytes.Contains(b, []byte("fake agent running"))
	})
}

func TestAgentEnvironmentDropsApplianceSettings(t *testing.T) {
	t.Setenv("HOODCLOUD_DATABASE_URL", "postgres://secret@db/hc")
	f := newFixture(t)
	p := f.open(testInstallation)
	f.mustCreate(p, "node_env")
	r := f.awaitRuns("node_env", 1)[0]
	for _, kv := range r.Env {
		if strings.HasPrefix(kv, "HOODCLOUD_") && !strings.HasPrefix(kv, TokenEnv+"=") {
			t.Errorf("agent inherited %s", kv)
		}
	}
}

func TestCreateHostTwiceReturnsTheSameHost(t *testing.T) {
	f := newFixture(t)
	p := f.open(testInstallation)
	first := f.mustCreate(p, "node_1")
	f.awaitRuns("node_1", 1)
	second := f.mustCreate(p, "node_1")
	if first != second {
		t.Fatalf("second create = %+v, want %+v", second, first)
	}
	p.Close()
	if n := f.starts("node_1"); n != 1 {
		t.Fatalf("agent started %d times, want once", n)
	}
}

func TestConcurrentCreatesMakeOneHost(t *testing.T) {
	f := newFixture(t)
	p := f.open(testInstallation)
	hosts := make([]engine.Host, 8)
	var wg sync.WaitGroup
	for i := range hosts {
		wg.Go(func() { hosts[i] = f.mustCreate(p, "node_1") })
	}
	wg.Wait()
	for _, h := range hosts[1:] {
		if h != hosts[0] {
			t.Fatalf("hosts differ: %+v and %+v", h, hosts[0])
		}
	}
	f.awaitRuns("node_1", 1)
	p.Close()
	if n := f.starts("node_1"); n != 1 {
		t.Fatalf("agent started %d times, want once", n)
	}
}

func TestCrashedAgentIsRestartedAndItsChainKilled(t *testing.T) {
	f := newFixture(t)
	p := f.open(testInstallation)
	h := f.mustCreate(p, "node_1")
	first := f.awaitRuns("node_1", 1)[0]

	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	runs := f.awaitRuns("node_1", 2)
	awaitDead(t, first.PID, first.ChainPID)
	if !alive(runs[0].PID) && !alive(runs[1].PID) {
		t.Fatal("no agent runs after the restart")
	}
	eventually(t, func() bool { return describe(t, p, h).Phase == engine.HostRunning })
}

func TestAgentExitingWithAnErrorIsRestartedWithBackoff(t *testing.T) {
	f := newFixture(t)
	f.control("node_1", "exit", "3")
	p := f.open(testInstallation)
	h := f.mustCreate(p, "node_1")
	runs := f.awaitRuns("node_1", 3)
	for _, r := range runs[:2] {
		awaitDead(t, r.PID, r.ChainPID)
	}
	if err := os.Remove(filepath.Join(f.records, "node_1.exit")); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return describe(t, p, h).Phase == engine.HostRunning })
	if !strings.Contains(f.logs.String(), "restarting") {
		t.Error("the restarts were not logged")
	}
}

func TestDestroyHostKillsTheProcessGroupAndRemovesTheDir(t *testing.T) {
	tests := []struct {
		name       string
		ignoreTerm bool // the agent must be killed after the stop timeout
	}{
		{"agent stops on SIGTERM", false},
		{"agent ignores SIGTERM", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if tt.ignoreTerm {
				f.control("node_1", "ignoreterm", "")
			}
			p := f.open(testInstallation)
			h := f.mustCreate(p, "node_1")
			r := f.awaitRuns("node_1", 1)[0]

			if err := p.DestroyHost(context.Background(), h); err != nil {
				t.Fatalf("destroy: %v", err)
			}
			awaitDead(t, r.PID, r.ChainPID)
			if _, err := os.Stat(h.Address); !os.IsNotExist(err) {
				t.Errorf("host dir still there: %v", err)
			}
			if err := p.DestroyHost(context.Background(), h); err != nil {
				t.Errorf("second destroy: %v", err)
			}
			if _, err := p.DescribeHost(context.Background(), h); !engine.IsCode(err, engine.ENotFound) {
				t.Errorf("describe after destroy = %v, want not_found", err)
			}
			if n := len(f.runs("node_1")); n != 1 {
				t.Errorf("agent started %d times, want once (no restart after destroy)", n)
			}
		})
	}
}

func TestProvisionerConformance(t *testing.T) {
	enginetest.RunProvisioner(t, func(t *testing.T) enginetest.Provisioner {
		return enginetest.Provisioner{
			Provisioner: newFixture(t).open(testInstallation), Installation: testInstallation, Spec: spec,
			Gone: engine.Host{Provider: ProviderName, ProviderID: "node_never"},
			Labels: func(t *testing.T, h engine.Host) map[string]string {
				rec, err := readRecord(h.Address)
				if err != nil {
					t.Fatalf("read the record of %+v: %v", h, err)
				}
				return rec.Labels
			},
		}
	})
}

func TestListHostsShowsThisInstallationsHosts(t *testing.T) {
	f := newFixture(t)
	other := f.open("inst-other")
	f.mustCreate(other, "node_foreign")
	p := f.open(testInstallation)
	f.mustCreate(p, "node_1")
	f.mustCreate(p, "node_2")
	if err := os.Mkdir(filepath.Join(f.root, "junk"), 0o700); err != nil {
		t.Fatal(err)
	}

	hosts, err := p.ListHosts(context.Background())
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if got := nodeIDs(hosts); !slices.Equal(got, []string{"node_1", "node_2"}) {
		t.Fatalf("listed %v, want node_1 node_2", got)
	}
	rec, err := readRecord(filepath.Join(f.root, "node_1"))
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string]string{"tier": "test", engine.LabelNodeID: "node_1",
		engine.LabelManaged: engine.LabelManagedValue, engine.LabelInstallation: testInstallation}
	if !maps.Equal(rec.Labels, wantLabels) {
		t.Errorf("labels = %v, want %v", rec.Labels, wantLabels)
	}
	if _, err := p.CreateHost(context.Background(), spec("node_foreign")); !engine.IsCode(err, engine.EConflict) {
		t.Errorf("create over another installation's host = %v, want conflict", err)
	}
}

func TestAgentInterruptedWhileEnrollingGetsItsTokenBack(t *testing.T) {
	f := newFixture(t)
	p := f.open(testInstallation)
	h := f.mustCreate(p, "node_1")
	first := f.awaitRuns("node_1", 1)[0]
	if st, err := os.Stat(filepath.Join(h.Address, "enroll.token")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the token of a host not yet enrolled must be kept 0600: %v", err)
	}
	p.Close()
	awaitDead(t, first.PID, first.ChainPID)

	f.open(testInstallation) // the appliance restarts before the agent enrolled
	runs := f.awaitRuns("node_1", 2)
	readopted := runs[slices.IndexFunc(runs, func(r run) bool { return r.PID != first.PID })]
	if !readopted.HasToken {
		t.Fatal("an agent that never enrolled was re-adopted without its token: it can never enrol")
	}
}

func TestRestartKeepsAndReadoptsHosts(t *testing.T) {
	f := newFixture(t)
	p := f.open(testInstallation)
	h := f.mustCreate(p, "node_1")
	first := f.awaitRuns("node_1", 1)[0]

	if err := p.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	awaitDead(t, first.PID, first.ChainPID)
	if _, err := os.Stat(filepath.Join(h.Address, "host.json")); err != nil {
		t.Fatalf("close removed the host: %v", err)
	}
	// The agent enrolled before the restart: it holds its certificate.
	if err := os.WriteFile(filepath.Join(h.Address, "agent", "agent-cert.pem"), []byte("cert"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := p.CreateHost(context.Background(), spec("node_2")); !engine.IsCode(err, engine.EUnavailable) {
		t.Errorf("create after close = %v, want unavailable", err)
	}

	restarted := f.open(testInstallation)
	runs := f.awaitRuns("node_1", 2)
	if err := restarted.Open(context.Background()); err != nil {
		t.Fatalf("second open: %v", err)
	}
	readopted := runs[slices.IndexFunc(runs, func(r run) bool { return r.PID != first.PID })]
	if readopted.HasToken {
		t.Error("a re-adopted agent got a token; it should reuse its enrolled credentials")
	}
	if _, err := os.Stat(filepath.Join(h.Address, "enroll.token")); !os.IsNotExist(err) {
		t.Errorf("the spent enrolment token is still kept: %v", err)
	}
	if !slices.Equal(readopted.Args, first.Args) {
		t.Errorf("re-adopted args = %q, want %q", readopted.Args, first.Args)
	}
	if n := strings.Count(f.logs.String(), "local host adopted"); n != 1 {
		t.Errorf("hosts adopted %d times, want once (a second Open adopts nothing)", n)
	}
	hosts, err := restarted.ListHosts(context.Background())
	if err != nil || !slices.Equal(nodeIDs(hosts), []string{"node_1"}) {
		t.Fatalf("list after restart = %v, %v", nodeIDs(hosts), err)
	}
	if st := describe(t, restarted, h); st.Phase != engine.HostRunning {
		t.Errorf("phase after restart = %s, want running", st.Phase)
	}
}

func TestOpenStopsTheAgentOfACrashedAppliance(t *testing.T) {
	f := newFixture(t)
	p := f.open(testInstallation)
	h := f.mustCreate(p, "node_1")
	first := f.awaitRuns("node_1", 1)[0]
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	awaitDead(t, first.PID)
	// The appliance died without stopping this agent: it runs on, orphaned.
	orphan := exec.Command(os.Args[0], first.Args...)
	orphan.Env = append(os.Environ(), fakeEnv+"=agent", recordsEnv+"="+f.records)
	orphan.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = orphan.Wait() }()
	if err := writePID(h.Address, orphan.Process.Pid); err != nil {
		t.Fatal(err)
	}
	runs := f.awaitRuns("node_1", 2)
	orphanRun := runs[slices.IndexFunc(runs, func(r run) bool { return r.PID == orphan.Process.Pid })]

	f.open(testInstallation)
	awaitDead(t, orphanRun.PID, orphanRun.ChainPID)
	f.awaitRuns("node_1", 3)
}

func TestTokenNeverInLogsOrErrors(t *testing.T) {
	f := newFixture(t)
	p := f.open(testInstallation)
	h := f.mustCreate(p, "node_1")
	r := f.awaitRuns("node_1", 1)[0]
	_ = syscall.Kill(r.PID, syscall.SIGKILL)
	f.awaitRuns("node_1", 2)

	bad := spec("node_2")
	bad.Bootstrap.GatewayAddr = "no port"
	_, err := p.CreateHost(context.Background(), bad)
	conflict := spec("node_1")
	conflict.NodeID = "../node_1"
	_, err2 := p.CreateHost(context.Background(), conflict)
	agentLog, _ := os.ReadFile(filepath.Join(h.Address, "agent.log"))
	if err := p.DestroyHost(context.Background(), h); err != nil {
		t.Fatal(err)
	}

	for what, text := range map[string]string{
		"provisioner log": f.logs.String(), "agent log": string(agentLog),
		"error": err.Error(), "second error": err2.Error(),
	} {
		if strings.Contains(text, testToken) {
			t.Errorf("the token shows in the %s", what)
		}
	}
	if f.logs.Len() == 0 || len(agentLog) == 0 {
		t.Error("nothing was logged; the test proves nothing")
	}
}

func TestCreateHostRefusesBadSpecs(t *testing.T) {
	p := newFixture(t).open(testInstallation)
	tests := []struct {
		name   string
		change func(*engine.HostSpec)
	}{
		{"no node id", func(s *engine.HostSpec) { s.NodeID = "" }},
		{"node id escaping the hosts dir", func(s *engine.HostSpec) { s.NodeID = "../etc" }},
		{"dot node id", func(s *engine.HostSpec) { s.NodeID = ".creating-x" }},
		{"another provider", func(s *engine.HostSpec) { s.Provider = "hetzner" }},
		{"gateway without port", func(s *engine.HostSpec) { s.Bootstrap.GatewayAddr = "gw" }},
		{"no ca", func(s *engine.HostSpec) { s.Bootstrap.CACertPEM = nil }},
		{"ca that is no certificate", func(s *engine.HostSpec) {
			s.Bootstrap.CACertPEM = []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
		}},
		{"no token", func(s *engine.HostSpec) { s.Bootstrap.EnrollmentToken = "" }},
		{"incarnation with a separator", func(s *engine.HostSpec) { s.Incarnation = "m/1" }},
		{"upper-case incarnation", func(s *engine.HostSpec) { s.Incarnation = "M1" }},
		{"incarnation too long", func(s *engine.HostSpec) { s.Incarnation = strings.Repeat("a", 17) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec("node_1")
			tt.change(&s)
			if _, err := p.CreateHost(context.Background(), s); !engine.IsCode(err, engine.EInvalid) {
				t.Fatalf("create = %v, want invalid", err)
			}
		})
	}
	if _, err := p.DescribeHost(context.Background(), engine.Host{Provider: "hetzner", ProviderID: "1"}); !engine.IsCode(err, engine.EInvalid) {
		t.Errorf("describe of a hetzner host = %v, want invalid", err)
	}
	for _, id := range []string{"node_1@", "node_1@M1", "../x@m1"} {
		if _, err := p.DescribeHost(context.Background(), engine.Host{Provider: ProviderName, ProviderID: id}); !engine.IsCode(err, engine.EInvalid) {
			t.Errorf("describe of host id %q = %v, want invalid", id, err)
		}
	}
}

func TestANodeHoldsASecondHostWhileItMigrates(t *testing.T) {
	f := newFixture(t)
	p := f.open(testInstallation)
	first := f.mustCreate(p, "node_1")
	next := spec("node_1")
	next.Incarnation = "m7"
	second, err := p.CreateHost(context.Background(), next)
	if err != nil {
		t.Fatalf("create the second host: %v", err)
	}
	if second.ProviderID == first.ProviderID || second.Address == first.Address {
		t.Fatalf("second host %+v is the first one %+v", second, first)
	}
	f.awaitRuns("node_1", 2) // one agent per host, both for node_1
	if again, err := p.CreateHost(context.Background(), next); err != nil || again != second {
		t.Fatalf("second create of incarnation m7 = %+v, %v; want %+v", again, err, second)
	}
	hosts, err := p.ListHosts(context.Background())
	if err != nil || len(hosts) != 2 || hosts[0].NodeID != "node_1" || hosts[1].NodeID != "node_1" {
		t.Fatalf("list = %+v, %v; want two hosts of node_1", hosts, err)
	}

	if err := p.DestroyHost(context.Background(), first); err != nil {
		t.Fatalf("destroy the first host: %v", err)
	}
	if st := describe(t, p, second); st.NodeID != "node_1" || st.Phase != engine.HostRunning {
		t.Errorf("second host after the first's destruction = %+v, want node_1 running", st)
	}
	if _, err := p.DescribeHost(context.Background(), first); !engine.IsCode(err, engine.ENotFound) {
		t.Errorf("describe the destroyed first host = %v, want not_found", err)
	}
}

// nodeStore is the node store ReapHosts reads: only GetNode is used.
type nodeStore struct {
	engine.NodeStore
	nodes map[string]engine.NodeState
}

func (s nodeStore) GetNode(_ context.Context, id string) (*engine.Node, error) {
	state, ok := s.nodes[id]
	if !ok {
		return nil, engine.Errorf(engine.ENotFound, "node %s not found", id)
	}
	return &engine.Node{ID: id, State: state}, nil
}

func TestReapHostsDestroysLeftoverLocalHosts(t *testing.T) {
	f := newFixture(t)
	p := f.open(testInstallation)
	for _, id := range []string{"node_live", "node_gone", "node_done"} {
		f.mustCreate(p, id)
	}
	gone := f.awaitRuns("node_gone", 1)[0]
	nodes := nodeStore{nodes: map[string]engine.NodeState{"node_live": engine.NodeRunning, "node_done": engine.NodeTerminated}}

	reaped, err := engine.ReapHosts(context.Background(), p, nodes, false)
	if err != nil {
		t.Fatalf("reap: %v", err)
	}
	var got []string
	for _, r := range reaped {
		got = append(got, r.Host.NodeID)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"node_done", "node_gone"}) {
		t.Fatalf("reaped %v, want node_done node_gone", got)
	}
	awaitDead(t, gone.PID, gone.ChainPID)
	hosts, err := p.ListHosts(context.Background())
	if err != nil || !slices.Equal(nodeIDs(hosts), []string{"node_live"}) {
		t.Fatalf("hosts after reaping = %v, %v; want node_live", nodeIDs(hosts), err)
	}
}

func nodeIDs(hosts []engine.ManagedHost) []string {
	ids := make([]string, 0, len(hosts))
	for _, h := range hosts {
		ids = append(ids, h.NodeID)
	}
	slices.Sort(ids)
	return ids
}

// installBeside links this test binary (the fake agent) into a fresh dir as
// hoodcloud and, with agent, as hoodcloud-agent beside it: the layout of an
// installed appliance.
func installBeside(t *testing.T, agent bool) (binary, agentBinary string) {
	t.Helper()
	dir := t.TempDir()
	binary, agentBinary = filepath.Join(dir, "hoodcloud"), filepath.Join(dir, AgentBinaryName)
	if err := os.Symlink(os.Args[0], binary); err != nil {
		t.Fatal(err)
	}
	if agent {
		if err := os.Symlink(os.Args[0], agentBinary); err != nil {
			t.Fatal(err)
		}
	}
	return binary, agentBinary
}

func TestAgentsRunTheOpsAgentBinaryFoundBesideTheAppliance(t *testing.T) {
	f := newFixture(t)
	f.binary, _ = installBeside(t, true)
	h := f.mustCreate(f.open(testInstallation), "node_1")
	r := f.awaitRuns("node_1", 1)[0]
	wantArgs := []string{"--gateway", "127.0.0.1:7443", "--node-id", "node_1",
		"--ca-file", filepath.Join(h.Address, "ca.pem"), "--data-dir", filepath.Join(h.Address, "agent"), "--runtime", "process",
		"--port-claims-dir", filepath.Join(filepath.Dir(h.Address), ".port-claims")}
	if !slices.Equal(r.Args, wantArgs) {
		t.Errorf("agent args = %q, want %q: hoodcloud-agent takes no agent command", r.Args, wantArgs)
	}
	if strings.Contains(f.logs.String(), "no ops-agent binary") {
		t.Errorf("a warning about the agent binary although there is one:\n%s", f.logs.String())
	}
}

func TestAConfiguredAgentBinaryWinsOverTheOneBesideTheAppliance(t *testing.T) {
	f := newFixture(t)
	f.binary, _ = installBeside(t, false)
	_, f.agentBinary = installBeside(t, true)
	f.mustCreate(f.open(testInstallation), "node_1")
	if r := f.awaitRuns("node_1", 1)[0]; r.Args[0] != "--gateway" {
		t.Errorf("agent args = %q, want the configured hoodcloud-agent's flags", r.Args)
	}
}

func TestWithoutAnAgentBinaryAgentsRunAsTheApplianceAliasWithAWarning(t *testing.T) {
	f := newFixture(t)
	var missing string
	f.binary, missing = installBeside(t, false)
	f.mustCreate(f.open(testInstallation), "node_1")
	if r := f.awaitRuns("node_1", 1)[0]; r.Args[0] != "agent" {
		t.Errorf("agent args = %q, want `hoodcloud agent …`", r.Args)
	}
	if logs := f.logs.String(); !strings.Contains(logs, "no ops-agent binary") || !strings.Contains(logs, missing) {
		t.Errorf("no warning naming the missing %s:\n%s", missing, logs)
	}
}
