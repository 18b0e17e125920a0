package agent

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// reportedVersion is the version the simulated node in chainDir reports
// in its metrics, once it answers.
func reportedVersion(t *testing.T, chainDir string) string {
	t.Helper()
	resp, err := http.Get("http://" + waitHealthy(t, chainDir) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_, rest, ok := strings.Cut(string(b), `chain_version_info{version="`)
	if !ok {
		t.Fatalf("no chain_version_info in the metrics:\n%s", b)
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

func upgradePayload(t *testing.T, p *agentv1.UpgradePayload) []byte {
	t.Helper()
	b, err := agentv1.MarshalPayload(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func outcomeOf(t *testing.T, b []byte) *agentv1.UpgradeOutcome {
	t.Helper()
	var o agentv1.UpgradeOutcome
	if err := agentv1.UnmarshalPayload(b, &o); err != nil {
		t.Fatal(err)
	}
	return &o
}

var allUpgradeActions = []agentv1.UpgradeAction{
	agentv1.UpgradeAction_UPGRADE_ACTION_BACKUP_CURRENT_STATE, agentv1.UpgradeAction_UPGRADE_ACTION_ACQUIRE_ARTIFACT,
	agentv1.UpgradeAction_UPGRADE_ACTION_VERIFY_ARTIFACT, agentv1.UpgradeAction_UPGRADE_ACTION_STOP_NODE,
	agentv1.UpgradeAction_UPGRADE_ACTION_INSTALL_ARTIFACT, agentv1.UpgradeAction_UPGRADE_ACTION_WRITE_CONFIGS,
	agentv1.UpgradeAction_UPGRADE_ACTION_RELOAD_DAEMON, agentv1.UpgradeAction_UPGRADE_ACTION_START_NODE,
}

func TestUpgradeRunsTheNewVersionAndRollsBackOneThatDoesNotStart(t *testing.T) {
	e := newTestEnv(t)
	cfg := processAgentConfig(e.agentConfig(t, "node_a", nil))
	ra := startAgent(t, cfg)
	e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandConfigure, simnodeConfigure(t, cfg.ChainDir, "v1")), engine.CommandCompleted, 10*time.Second)
	e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandStart, nil), engine.CommandCompleted, 10*time.Second)
	if v := reportedVersion(t, cfg.ChainDir); v != "v1" {
		t.Fatalf("before the upgrade the node reports %q", v)
	}

	os.Remove(filepath.Join(cfg.ChainDir, "addr"))
	started := time.Now()
	up := e.enqueue(t, "node_a", engine.CommandUpgrade, upgradePayload(t, &agentv1.UpgradePayload{
		Component: "simnode", Version: "v2", PreviousVersion: "v1",
		ConfigChanges: []*agentv1.ConfigFile{{Path: "config/app.toml", Content: []byte("moniker = \"b\"\n")}},
	}))
	done := e.waitStatus(t, up, engine.CommandCompleted, 20*time.Second)
	t.Logf("UPGRADE v1 → v2: enqueued to completed %s, acknowledged to finished %s (with the 5s start check)",
		time.Since(started).Round(time.Millisecond), done.FinishedAt.Sub(done.AckedAt).Round(time.Millisecond))
	if o := outcomeOf(t, done.Result); o.InstalledVersion != "v2" || !slices.Equal(o.Completed, allUpgradeActions) || o.RolledBack {
		t.Errorf("outcome = %v", o)
	}
	if v := reportedVersion(t, cfg.ChainDir); v != "v2" {
		t.Errorf("after the upgrade the node reports %q; want v2", v)
	}

	// The new version outlives an agent restart.
	ra.stop(t)
	os.Remove(filepath.Join(cfg.ChainDir, "addr"))
	startAgent(t, restarted(cfg))
	if v := reportedVersion(t, cfg.ChainDir); v != "v2" {
		t.Errorf("after an agent restart the node reports %q; want v2", v)
	}

	// A release that does not start is rolled back, its config file too.
	os.Remove(filepath.Join(cfg.ChainDir, "addr"))
	bad := e.enqueue(t, "node_a", engine.CommandUpgrade, upgradePayload(t, &agentv1.UpgradePayload{
		Component: "simnode", Version: "broken-v3",
		ConfigChanges: []*agentv1.ConfigFile{{Path: "config/app.toml", Content: []byte("moniker = \"c\"\n")}},
	}))
	failed := e.waitStatus(t, bad, engine.CommandFailed, 20*time.Second)
	t.Logf("UPGRADE to a broken release: acknowledged to failed and rolled back %s", failed.FinishedAt.Sub(failed.AckedAt).Round(time.Millisecond))
	o := outcomeOf(t, failed.Result)
	if o.Failed != agentv1.UpgradeAction_UPGRADE_ACTION_START_NODE || !o.RolledBack || o.RollbackFailed || o.InstalledVersion != "" {
		t.Errorf("outcome of the failed upgrade = %v", o)
	}
	if !strings.Contains(failed.Error, "start_node") || !strings.Contains(failed.Error, "rolled back") {
		t.Errorf("error = %q", failed.Error)
	}
	if v := reportedVersion(t, cfg.ChainDir); v != "v2" {
		t.Errorf("after the rollback the node reports %q; want v2", v)
	}
	if b, _ := os.ReadFile(filepath.Join(cfg.ChainDir, "config/app.toml")); string(b) != "moniker = \"b\"\n" {
		t.Errorf("config after the rollback = %q", b)
	}
}

func TestUpgradedComponent(t *testing.T) {
	c := &agentv1.Component{Name: "geth", Version: "v1", Args: []string{"/opt/geth/v1/geth", "--version", "v1", "--tag=v1", "--datadir", "v1x"}}
	tests := []struct {
		name     string
		p        *agentv1.UpgradePayload
		wantArgs []string
		wantErr  string
	}{
		{"version replaced in args", &agentv1.UpgradePayload{Version: "v2"},
			[]string{"/opt/geth/v2/geth", "--version", "v2", "--tag=v2", "--datadir", "v1x"}, ""},
		{"explicit args", &agentv1.UpgradePayload{Version: "v2", Args: []string{"/usr/bin/geth2"}}, []string{"/usr/bin/geth2"}, ""},
		{"an artifact gained replaces the program", &agentv1.UpgradePayload{Version: "v2", Artifact: &agentv1.Artifact{Url: "file:///geth", Sha256: strings.Repeat("ab", 32)}},
			[]string{"--version", "v2", "--tag=v2", "--datadir", "v1x"}, ""},
		{"same version does nothing", &agentv1.UpgradePayload{Version: "v1"}, nil, ""},
		{"previous version differs", &agentv1.UpgradePayload{Version: "v2", PreviousVersion: "v0"}, nil, `runs "v1", not "v0"`},
		{"no version", &agentv1.UpgradePayload{}, nil, "names no version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := upgradedComponent(c, tt.p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantArgs == nil {
				if got != nil {
					t.Fatalf("got %v; want nothing to do", got)
				}
				return
			}
			if !reflect.DeepEqual(got.Args, tt.wantArgs) || got.Version != tt.p.Version || c.Args[0] != "/opt/geth/v1/geth" {
				t.Errorf("got %v (component now %v)", got, c)
			}
		})
	}
	unnamed := &agentv1.Component{Name: "x", Version: "v1", Args: []string{"/bin/x"}}
	if _, err := upgradedComponent(unnamed, &agentv1.UpgradePayload{Version: "v2"}); err == nil {
		t.Error("an upgrade that changes nothing was accepted")
	}
}

func TestSystemdUpgradeRewritesTheUnitAndRestoresItOnFailure(t *testing.T) {
	dir, units := t.TempDir(), t.TempDir()
	fake := &fakeCommander{outputs: map[string]string{"systemctl is-active hoodcloud-geth.service": "active\n"}}
	r := NewSystemdRuntime(SystemdConfig{Dir: dir, UnitDir: units, Commander: fake, UpgradeCheck: time.Millisecond})
	ctx := context.Background()
	p := binariesInPlace()
	p.Components[0].Args[0], p.Components[0].Version = "/opt/chain/1.14.0/geth", "1.14.0"
	if _, err := r.Configure(ctx, p, noProgress); err != nil {
		t.Fatal(err)
	}
	fake.take()
	unitPath := filepath.Join(units, "hoodcloud-geth.service")

	o, err := r.Upgrade(ctx, &agentv1.UpgradePayload{Component: "geth", Version: "1.15.0"}, nil, noProgress)
	if err != nil || o.InstalledVersion != "1.15.0" {
		t.Fatalf("Upgrade = %v, %v", o, err)
	}
	wantCalls(t, fake, [][]string{
		{"systemctl", "is-active", "hoodcloud-geth.service"},
		{"systemctl", "stop", "hoodcloud-geth.service"},
		{"systemctl", "daemon-reload"},
		{"systemctl", "start", "hoodcloud-geth.service"},
		{"systemctl", "is-active", "hoodcloud-geth.service"},
	})
	if b, _ := os.ReadFile(unitPath); !strings.Contains(string(b), "ExecStart=/opt/chain/1.15.0/geth ") {
		t.Errorf("unit after the upgrade:\n%s", b)
	}

	// The next release does not come up: the unit is put back and started.
	before, _ := os.ReadFile(unitPath)
	fake.outputs["systemctl is-active hoodcloud-geth.service"] = "active\n"
	failing := &flakyCommander{fakeCommander: fake, after: "systemctl start hoodcloud-geth.service", then: "failed\n"}
	r.cfg.Commander = failing
	o, err = r.Upgrade(ctx, &agentv1.UpgradePayload{Component: "geth", Version: "1.16.0"}, nil, noProgress)
	if err == nil || !o.RolledBack || o.Failed != agentv1.UpgradeAction_UPGRADE_ACTION_START_NODE {
		t.Fatalf("Upgrade = %v, %v; want a rolled back failure at start_node", o, err)
	}
	if after, _ := os.ReadFile(unitPath); string(after) != string(before) {
		t.Errorf("unit after the rollback:\n%s\nwant\n%s", after, before)
	}
	calls := fake.take()
	if got := calls[len(calls)-3:]; !reflect.DeepEqual(got, [][]string{
		{"systemctl", "stop", "hoodcloud-geth.service"},
		{"systemctl", "daemon-reload"},
		{"systemctl", "start", "hoodcloud-geth.service"},
	}) {
		t.Errorf("rollback commands = %q", got)
	}
}

// flakyCommander answers is-active with then once the command line after
// has run.
type flakyCommander struct {
	*fakeCommander
	after, then string
	seen        bool
}

func (f *flakyCommander) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	line := strings.Join(append([]string{name}, args...), " ")
	out, err := f.fakeCommander.Run(ctx, name, args...)
	if line == f.after {
		f.seen = true
	}
	if f.seen && strings.HasPrefix(line, "systemctl is-active") {
		f.seen = false
		return []byte(f.then), nil
	}
	return out, err
}

func TestDockerUpgradePullsAndReplacesTheContainer(t *testing.T) {
	dir := t.TempDir()
	fake := &fakeCommander{outputs: map[string]string{"docker inspect --format {{.State.Running}} hoodcloud-geth": "true\n"}}
	r := NewDockerRuntime(DockerConfig{Dir: dir, Commander: fake, UpgradeCheck: time.Millisecond})
	ctx := context.Background()
	p := chainComponents()
	p.Components = p.Components[:1]
	if _, err := r.Configure(ctx, p, noProgress); err != nil {
		t.Fatal(err)
	}
	fake.take()
	o, err := r.Upgrade(ctx, &agentv1.UpgradePayload{Component: "geth", Version: "1.15.0",
		Artifact: &agentv1.Artifact{Url: "ethereum/client-go:v1.15.0"}}, nil, noProgress)
	if err != nil || o.InstalledVersion != "1.15.0" {
		t.Fatalf("Upgrade = %v, %v", o, err)
	}
	calls := fake.take()
	want := [][]string{
		{"docker", "inspect", "--format", "{{.State.Running}}", "hoodcloud-geth"},
		{"docker", "pull", "ethereum/client-go:v1.15.0"},
		{"docker", "stop", "--time", "120", "hoodcloud-geth"},
		{"docker", "rm", "-f", "hoodcloud-geth"},
	}
	if !reflect.DeepEqual(calls[:4], want) || !slices.Contains(calls[4], "ethereum/client-go:v1.15.0") {
		t.Errorf("commands = %q", calls)
	}
}
