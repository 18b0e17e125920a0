package agent

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// releaseScript is a chain client release: it writes its version and
// arguments to "running" in its working directory (the chain data dir),
// then runs until SIGTERM.
func releaseScript(version string) []byte {
	return fmt.Appendf(nil, "#!/bin/sh\nprintf '%%s\\n' \"%s $*\" > running.tmp && mv running.tmp running\nexec sleep 600\n", version)
}

// brokenScript is a release that exits at once, as one that cannot start.
var brokenScript = []byte("#!/bin/sh\necho 'this release does not start' >&2\nexit 3\n")

// publish writes body where a file:// artifact can fetch it.
func publish(t *testing.T, dir, name string, body []byte) *agentv1.Artifact {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	return &agentv1.Artifact{Url: "file://" + path, Sha256: sha256Hex(body)}
}

// tarGz is an archive holding one executable file at name.
func tarGz(t *testing.T, name string, body []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	tw.Write(body)
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// releaseHost is a process runtime running release 1.0 of "node", from a
// file:// artifact, with a port and a config file; artifacts is where
// releases are published.
type releaseHost struct {
	r         *ProcessRuntime
	dir       string
	artifacts string
	rpc       uint32
}

func newReleaseHost(t *testing.T) *releaseHost {
	t.Helper()
	h := &releaseHost{dir: t.TempDir(), artifacts: t.TempDir()}
	h.r = NewProcessRuntime(ProcessConfig{Dir: h.dir, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		StopTimeout: 5 * time.Second, UpgradeCheck: 500 * time.Millisecond})
	res, err := h.r.Configure(t.Context(), h.configuration(publish(t, h.artifacts, "node-1.0", releaseScript("1.0"))), noProgress)
	if err != nil {
		t.Fatal(err)
	}
	h.rpc = res.GetPorts()["rpc"]
	if err := h.r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.r.Stop(context.Background()) })
	h.waitRunning(t, "1.0 "+h.args())
	return h
}

func (h *releaseHost) configuration(a *agentv1.Artifact) *agentv1.ConfigurePayload {
	return &agentv1.ConfigurePayload{
		NodeId: "node_a", Ports: []string{"rpc"}, Inputs: map[string]string{"moniker": "alpha"},
		Components: []*agentv1.Component{{Name: "node", Version: "1.0", Artifact: a,
			Args: []string{"--rpc=127.0.0.1:{{.Ports.rpc}}", "--home={{.DataDir}}"}}},
		Files: []*agentv1.ConfigFile{{Path: "config/app.toml", Content: []byte("moniker = \"alpha\"\n")}},
	}
}

// args is the configured command line as the release sees it.
func (h *releaseHost) args() string {
	return fmt.Sprintf("--rpc=127.0.0.1:%d --home=%s", h.rpc, h.r.cfg.Dir)
}

// waitRunning waits for the release running to report want.
func (h *releaseHost) waitRunning(t *testing.T, want string) {
	t.Helper()
	var got []byte
	waitFor(t, 5*time.Second, "the release to report "+want, func() bool {
		got, _ = os.ReadFile(filepath.Join(h.dir, "running"))
		return strings.TrimSpace(string(got)) == want
	})
}

// restartMarker forgets what the running release reported, so the next
// report is seen.
func (h *releaseHost) restartMarker(t *testing.T) {
	t.Helper()
	if err := os.Remove(filepath.Join(h.dir, "running")); err != nil {
		t.Fatal(err)
	}
}

func (h *releaseHost) pid() int { return h.r.firstPid() }

func TestAnUpgradeInstallsTheNewArtifactAndARollbackDownloadsNothing(t *testing.T) {
	for _, tt := range []struct {
		name     string
		artifact func(t *testing.T, h *releaseHost) (*agentv1.Artifact, string)
	}{
		{"the artifact is the program", func(t *testing.T, h *releaseHost) (*agentv1.Artifact, string) {
			return publish(t, h.artifacts, "node-2.0", releaseScript("2.0")), ""
		}},
		{"the program is in an archive", func(t *testing.T, h *releaseHost) (*agentv1.Artifact, string) {
			return publish(t, h.artifacts, "node-2.0.tar.gz", tarGz(t, "node-2.0/bin/node", releaseScript("2.0"))), "node-2.0/bin/node"
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newReleaseHost(t)
			v1 := publish(t, h.artifacts, "node-1.0", releaseScript("1.0"))
			v2, binary := tt.artifact(t, h)
			o, err := h.r.Upgrade(t.Context(), &agentv1.UpgradePayload{Component: "node", Version: "2.0", PreviousVersion: "1.0",
				Artifact: v2, Binary: binary}, nil, noProgress)
			if err != nil || o.GetInstalledVersion() != "2.0" || !slices.Equal(o.GetCompleted(), allUpgradeActions) || o.GetSwitchHeight() != 0 {
				t.Fatalf("Upgrade = %v, %v", o, err)
			}
			h.waitRunning(t, "2.0 "+h.args())
			if _, err := os.Stat(filepath.Join(h.dir, ".hoodcloud/bin/node/2.0/node")); err != nil {
				t.Errorf("the new release is not installed in a directory of its own: %v", err)
			}

			// Both artifacts are gone from where they came: going back to
			// 1.0 must use the installed copy.
			os.RemoveAll(h.artifacts)
			o, err = h.r.Upgrade(t.Context(), &agentv1.UpgradePayload{Component: "node", Version: "1.0", PreviousVersion: "2.0", Artifact: v1}, nil, noProgress)
			if err != nil || o.GetInstalledVersion() != "1.0" {
				t.Fatalf("rollback to 1.0 = %v, %v", o, err)
			}
			h.waitRunning(t, "1.0 "+h.args())
		})
	}
}

func TestANewReleaseThatExitsAtOnceIsRolledBack(t *testing.T) {
	h := newReleaseHost(t)
	before := h.pid()
	h.restartMarker(t)
	o, err := h.r.Upgrade(t.Context(), &agentv1.UpgradePayload{Component: "node", Version: "2.0",
		Artifact:        publish(t, h.artifacts, "node-2.0", brokenScript),
		ConfigTemplates: []*agentv1.TemplateFile{{Path: "config/app.toml", Template: "moniker = \"{{.Inputs.moniker}}-2\"\n"}},
	}, nil, noProgress)
	wantPermanent(t, "an upgrade to a release that does not start", err, "start_node", "did not stay up", "rolled back")
	if o.GetFailed() != agentv1.UpgradeAction_UPGRADE_ACTION_START_NODE || !o.GetRolledBack() || o.GetRollbackFailed() || o.GetInstalledVersion() != "" {
		t.Errorf("outcome = %v", o)
	}
	h.waitRunning(t, "1.0 "+h.args())
	if h.pid() == before {
		t.Error("the old release was never stopped")
	}
	if got := readChainFile(t, h.dir, "config/app.toml"); got != "moniker = \"alpha\"\n" {
		t.Errorf("config after the rollback = %q", got)
	}
	st, _ := h.r.Status(t.Context())
	if v := st.Components[0].GetVersion(); v != "1.0" {
		t.Errorf("status version after the rollback = %q", v)
	}
	// The host is back at 1.0 for the next upgrade too.
	o, err = h.r.Upgrade(t.Context(), &agentv1.UpgradePayload{Component: "node", Version: "2.1", PreviousVersion: "1.0",
		Artifact: publish(t, h.artifacts, "node-2.1", releaseScript("2.1"))}, nil, noProgress)
	if err != nil || o.GetInstalledVersion() != "2.1" {
		t.Fatalf("the next upgrade = %v, %v", o, err)
	}
	h.waitRunning(t, "2.1 "+h.args())
}

func TestAnUpgradeRendersItsArgsAndConfigTemplatesOverTheRecipeData(t *testing.T) {
	h := newReleaseHost(t)
	if err := os.WriteFile(filepath.Join(h.dir, "config/state.json"), []byte("signed up to 7"), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := h.r.Upgrade(t.Context(), &agentv1.UpgradePayload{Component: "node", Version: "2.0",
		Artifact: publish(t, h.artifacts, "node-2.0", releaseScript("2.0")),
		Args:     []string{"--rpc=127.0.0.1:{{.Ports.rpc}}", "--moniker={{.Inputs.moniker}}"},
		ConfigTemplates: []*agentv1.TemplateFile{
			{Path: "config/app.toml", Template: "rpc = {{.Ports.rpc}}\nhome = \"{{.DataDir}}\"\nnode = \"{{.NodeID}}\"\n"},
			{Path: "config/state.json", Template: "fresh", Keep: true},
			{Path: "config/peers.txt", Template: "none", Keep: true, Mode: 0o600},
		},
	}, nil, noProgress)
	if err != nil {
		t.Fatalf("Upgrade = %v, %v", o, err)
	}
	h.waitRunning(t, fmt.Sprintf("2.0 --rpc=127.0.0.1:%d --moniker=alpha", h.rpc))
	for path, want := range map[string]string{
		"config/app.toml":   fmt.Sprintf("rpc = %d\nhome = %q\nnode = \"node_a\"\n", h.rpc, h.r.cfg.Dir),
		"config/state.json": "signed up to 7", // kept: it exists
		"config/peers.txt":  "none",           // kept, but new
	} {
		if got := readChainFile(t, h.dir, path); got != want {
			t.Errorf("%s = %q; want %q", path, got, want)
		}
	}
	if fi, _ := os.Stat(filepath.Join(h.dir, "config/app.toml")); fi.Mode().Perm() != 0o644 {
		t.Errorf("config/app.toml mode %v; want the templates' default 0644", fi.Mode().Perm())
	}
}

func TestUpgradesRefusePayloadsTheHostCannotInstall(t *testing.T) {
	h := newReleaseHost(t)
	v2 := publish(t, h.artifacts, "node-2.0", releaseScript("2.0"))
	for _, tt := range []struct {
		name    string
		p       *agentv1.UpgradePayload
		mention string
	}{
		{"no artifact for an installed program", &agentv1.UpgradePayload{Component: "node", Version: "2.0", Args: []string{"/usr/bin/node"}}, "needs the new version's artifact"},
		{"a binary without an archive", &agentv1.UpgradePayload{Component: "node", Version: "2.0", Artifact: v2, Binary: "bin/node"}, "not a .tar.gz"},
		{"an archive without a binary", &agentv1.UpgradePayload{Component: "node", Version: "2.0", Artifact: &agentv1.Artifact{Url: "file:///x.tgz", Sha256: v2.Sha256}}, "no binary in it"},
		{"no digest", &agentv1.UpgradePayload{Component: "node", Version: "2.0", Artifact: &agentv1.Artifact{Url: v2.Url}}, "sha256"},
		{"a version that cannot name a directory", &agentv1.UpgradePayload{Component: "node", Version: "../2", Artifact: v2}, "cannot name a directory"},
		{"a template in the agent's own directory", &agentv1.UpgradePayload{Component: "node", Version: "2.0", Artifact: v2,
			ConfigTemplates: []*agentv1.TemplateFile{{Path: ".hoodcloud/ports.json", Template: "{}"}}}, "agent's own directory"},
		{"a template that does not render", &agentv1.UpgradePayload{Component: "node", Version: "2.0", Artifact: v2,
			ConfigTemplates: []*agentv1.TemplateFile{{Path: "config/app.toml", Template: "{{.Ports.nope}}"}}}, "config/app.toml"},
		{"an unknown component", &agentv1.UpgradePayload{Component: "geth", Version: "2.0", Artifact: v2}, `no component "geth"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, err := h.r.Upgrade(t.Context(), tt.p, nil, noProgress)
			wantPermanent(t, "Upgrade", err, tt.mention)
			if o != nil {
				t.Errorf("outcome %v: a refused payload takes no step", o)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(h.dir, ".hoodcloud/bin/node/2.0")); err == nil {
		t.Error("a refused upgrade installed its artifact")
	}
}

// fakeChain is a chain height for upgrades: a block every interval from
// start, or fixed at start when interval is 0; err is returned instead
// when set. Each read records what the old release reported then.
type fakeChain struct {
	start    uint64
	interval time.Duration
	err      error
	begun    time.Time
	host     *releaseHost

	mu    sync.Mutex
	reads []string // "height: what runs"
}

func (c *fakeChain) height(context.Context) (uint64, error) {
	if c.err != nil {
		return 0, c.err
	}
	h := c.start
	if c.interval > 0 {
		h += uint64(time.Since(c.begun) / c.interval)
	}
	running, _ := os.ReadFile(filepath.Join(c.host.dir, "running"))
	c.mu.Lock()
	c.reads = append(c.reads, fmt.Sprintf("%d: %s", h, strings.Fields(string(running) + " none")[0]))
	c.mu.Unlock()
	return h, nil
}

// progressLog keeps every progress report.
type progressLog struct {
	mu  sync.Mutex
	all []Progress
}

func (l *progressLog) report(p Progress) {
	l.mu.Lock()
	l.all = append(l.all, p)
	l.mu.Unlock()
}

// waiting are the reports made while waiting for the chain.
func (l *progressLog) waiting() []Progress {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Progress
	for _, p := range l.all {
		if strings.Contains(p.Message, "chain at") && strings.Contains(p.Message, " of ") {
			out = append(out, p)
		}
	}
	return out
}

// said reports whether a report had message m.
func (l *progressLog) said(m string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.all, func(p Progress) bool { return p.Message == m })
}

func TestAnUpgradeAtAHeightSwitchesWhenTheChainGetsThere(t *testing.T) {
	h := newReleaseHost(t)
	// A block every 500 ms, from 100: the target is 1.5 s away.
	chain := &fakeChain{start: 100, interval: 500 * time.Millisecond, begun: time.Now(), host: h}
	log := &progressLog{}
	o, err := h.r.Upgrade(t.Context(), &agentv1.UpgradePayload{Component: "node", Version: "2.0", TargetHeight: 103,
		Artifact: publish(t, h.artifacts, "node-2.0", releaseScript("2.0"))}, chain.height, log.report)
	if err != nil || o.GetInstalledVersion() != "2.0" {
		t.Fatalf("Upgrade = %v, %v", o, err)
	}
	if s := o.GetSwitchHeight(); s < 103 || s > 104 {
		t.Errorf("switched at height %d; want within a block of 103", s)
	}
	h.waitRunning(t, "2.0 "+h.args())

	chain.mu.Lock()
	reads := chain.reads
	chain.mu.Unlock()
	for _, r := range reads[:len(reads)-1] {
		if !strings.HasSuffix(r, ": 1.0") {
			t.Errorf("reads %q: the old release must run until the target", reads)
			break
		}
	}
	waiting := log.waiting()
	if len(waiting) < 2 || waiting[0].Message != "staged 2.0; chain at 100 of 103" {
		t.Fatalf("progress while waiting = %v", waiting)
	}
	for i := 1; i < len(waiting); i++ {
		if waiting[i].Percent < waiting[i-1].Percent {
			t.Errorf("progress went back: %v", waiting)
		}
	}
	if first, last := waiting[0], waiting[len(waiting)-1]; first.Percent == last.Percent || first.Message == last.Message {
		t.Errorf("progress did not move with the chain: %v then %v", first, last)
	}
}

func TestAnUpgradeWithATargetHeight(t *testing.T) {
	for _, tt := range []struct {
		name       string
		chain      func(*releaseHost) ChainHeight
		wantErr    string // permanent, before any step
		wantSwitch uint64
	}{
		{"past the height switches at once", func(h *releaseHost) ChainHeight {
			return (&fakeChain{start: 130, host: h}).height
		}, "", 130},
		{"at the height switches at once", func(h *releaseHost) ChainHeight {
			return (&fakeChain{start: 120, host: h}).height
		}, "", 120},
		{"no height source is refused", func(*releaseHost) ChainHeight { return nil }, "reads no chain height", 0},
		{"a chain without metrics is refused", func(h *releaseHost) ChainHeight {
			return (&fakeChain{err: permanent("the chain reports no block height: no component has metrics"), host: h}).height
		}, "no component has metrics", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newReleaseHost(t)
			before := h.pid()
			log := &progressLog{}
			o, err := h.r.Upgrade(t.Context(), &agentv1.UpgradePayload{Component: "node", Version: "2.0", TargetHeight: 120,
				Artifact: publish(t, h.artifacts, "node-2.0", releaseScript("2.0"))}, tt.chain(h), log.report)
			if tt.wantErr != "" {
				wantPermanent(t, "Upgrade", err, "chain height 120", tt.wantErr)
				if o != nil || h.pid() != before {
					t.Errorf("outcome %v, pid %d → %d: nothing may happen", o, before, h.pid())
				}
				return
			}
			if err != nil || o.GetSwitchHeight() != tt.wantSwitch || len(log.waiting()) != 0 {
				t.Fatalf("Upgrade = %v, %v, waiting %v; want a switch at %d at once", o, err, log.waiting(), tt.wantSwitch)
			}
			if m := fmt.Sprintf("chain at %d: switching to 2.0", tt.wantSwitch); !log.said(m) {
				t.Errorf("no progress %q", m)
			}
			h.waitRunning(t, "2.0 "+h.args())
		})
	}
}

func TestAnUpgradeCancelledWhileWaitingForItsHeightSwitchesNothing(t *testing.T) {
	h := newReleaseHost(t)
	before := h.pid()
	chain := &fakeChain{start: 95, host: h}
	ctx, cancel := context.WithCancel(t.Context())
	waiting := make(chan struct{})
	var once sync.Once
	progress := func(p Progress) {
		if strings.Contains(p.Message, "chain at 95 of 120") {
			once.Do(func() { close(waiting) })
		}
	}
	type result struct {
		o   *agentv1.UpgradeOutcome
		err error
	}
	done := make(chan result, 1)
	v2 := publish(t, h.artifacts, "node-2.0", releaseScript("2.0"))
	go func() {
		o, err := h.r.Upgrade(ctx, &agentv1.UpgradePayload{Component: "node", Version: "2.0", TargetHeight: 120, Artifact: v2}, chain.height, progress)
		done <- result{o, err}
	}()
	<-waiting
	cancel()
	res := <-done
	if res.err == nil || !strings.Contains(res.err.Error(), "waiting for chain height 120") || !strings.Contains(res.err.Error(), "rolled back") {
		t.Errorf("err = %v", res.err)
	}
	o := res.o
	if o.GetFailed() != agentv1.UpgradeAction_UPGRADE_ACTION_STOP_NODE || !o.GetRolledBack() || o.GetSwitchHeight() != 0 ||
		!slices.Equal(o.GetCompleted(), allUpgradeActions[:3]) {
		t.Errorf("outcome = %v; want stopped before stop_node, rolled back", o)
	}
	if h.pid() != before {
		t.Error("the old release was stopped")
	}
	st, _ := h.r.Status(context.Background())
	if v := st.Components[0].GetVersion(); v != "1.0" || !st.Running {
		t.Errorf("after the cancel: version %q, running %v", v, st.Running)
	}
}

func TestSystemdUpgradePointsTheUnitAtTheInstalledArtifact(t *testing.T) {
	dir, units, artifacts := t.TempDir(), t.TempDir(), t.TempDir()
	fake := &fakeCommander{outputs: map[string]string{"systemctl is-active hoodcloud-node.service": "active\n"}}
	r := NewSystemdRuntime(SystemdConfig{Dir: dir, UnitDir: units, Commander: fake, UpgradeCheck: time.Millisecond})
	p := &agentv1.ConfigurePayload{Ports: []string{"rpc"}, Components: []*agentv1.Component{{Name: "node", Version: "1.0",
		Artifact: publish(t, artifacts, "node-1.0", releaseScript("1.0")), Args: []string{"--home={{.DataDir}}"}}}}
	if _, err := r.Configure(t.Context(), p, noProgress); err != nil {
		t.Fatal(err)
	}
	unitPath := filepath.Join(units, "hoodcloud-node.service")
	before := readChainFile(t, units, "hoodcloud-node.service")

	o, err := r.Upgrade(t.Context(), &agentv1.UpgradePayload{Component: "node", Version: "2.0",
		Artifact:        publish(t, artifacts, "node-2.0", releaseScript("2.0")),
		ConfigTemplates: []*agentv1.TemplateFile{{Path: "config/node.toml", Template: "home = \"{{.DataDir}}\"\n"}}}, nil, noProgress)
	if err != nil || o.GetInstalledVersion() != "2.0" {
		t.Fatalf("Upgrade = %v, %v", o, err)
	}
	want := fmt.Sprintf("ExecStart=%s --home=%s\n", filepath.Join(r.cfg.Dir, ".hoodcloud/bin/node/2.0/node"), r.cfg.Dir)
	if b, _ := os.ReadFile(unitPath); !strings.Contains(string(b), want) {
		t.Errorf("unit after the upgrade:\n%s\nwant %q", b, want)
	}
	if got := readChainFile(t, dir, "config/node.toml"); got != fmt.Sprintf("home = %q\n", r.cfg.Dir) {
		t.Errorf("config/node.toml = %q", got)
	}

	// Back to 1.0, whose unit does not come up this time: 2.0's unit is put back.
	at2 := readChainFile(t, units, "hoodcloud-node.service")
	r.cfg.Commander = &flakyCommander{fakeCommander: fake, after: "systemctl start hoodcloud-node.service", then: "failed\n"}
	o, err = r.Upgrade(t.Context(), &agentv1.UpgradePayload{Component: "node", Version: "1.0", PreviousVersion: "2.0",
		Artifact: p.Components[0].Artifact}, nil, noProgress)
	if err == nil || !o.GetRolledBack() {
		t.Fatalf("Upgrade = %v, %v; want a rolled back failure", o, err)
	}
	if got := readChainFile(t, units, "hoodcloud-node.service"); got != at2 || got == before {
		t.Errorf("unit after the rollback:\n%s\nwant 2.0's:\n%s", got, at2)
	}
}
