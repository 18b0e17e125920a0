package agent

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// fakeCommander records every command line and answers from outputs.
type fakeCommander struct {
	mu      sync.Mutex
	calls   [][]string
	outputs map[string]string // joined command line → output
}

func (f *fakeCommander) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	line := append([]string{name}, args...)
	f.calls = append(f.calls, line)
	return []byte(f.outputs[strings.Join(line, " ")]), nil
}

func (f *fakeCommander) take() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func chainComponents() *agentv1.ConfigurePayload {
	return &agentv1.ConfigurePayload{
		Components: []*agentv1.Component{
			{Name: "geth", Version: "1.14.0", Args: []string{"/opt/chain/geth", "--datadir", "/var/lib/chain/data dir"}, Env: map[string]string{"GOMAXPROCS": "4"},
				Artifact: &agentv1.Artifact{Url: "ethereum/client-go:v1.14.0", Sha256: strings.Repeat("ab", 32)}},
			{Name: "lighthouse", Version: "5.0.0", Args: []string{"/opt/chain/lighthouse", "bn", "--graffiti=100%$HOME"},
				Artifact: &agentv1.Artifact{Url: "sigp/lighthouse:v5.0.0"}},
		},
		Files: []*agentv1.ConfigFile{{Path: "config/jwt.hex", Content: []byte("00")}},
	}
}

func TestSystemdUnitIsHardened(t *testing.T) {
	unit := SystemdUnit(chainComponents().Components[0], "/var/lib/chain", "hoodcloud-chain")
	for _, line := range []string{
		"User=hoodcloud-chain",
		"WorkingDirectory=/var/lib/chain",
		`ExecStart=/opt/chain/geth --datadir "/var/lib/chain/data dir"`,
		`Environment=GOMAXPROCS=4`,
		"NoNewPrivileges=yes",
		"ProtectSystem=strict",
		"ProtectHome=yes",
		"PrivateTmp=yes",
		"CapabilityBoundingSet=",
		"SystemCallFilter=@system-service",
		"ReadWritePaths=/var/lib/chain",
		"Restart=on-failure",
		"WantedBy=multi-user.target",
	} {
		if !strings.Contains(unit, "\n"+line+"\n") {
			t.Errorf("unit lacks %q:\n%s", line, unit)
		}
	}
	second := SystemdUnit(chainComponents().Components[1], "/var/lib/chain", "u")
	if !strings.Contains(second, "ExecStart=/opt/chain/lighthouse bn --graffiti=100%%$$HOME\n") {
		t.Errorf("specifiers and variables are not escaped:\n%s", second)
	}
}

func TestSystemdUnitsThatKeepRestartingAreACrashLoop(t *testing.T) {
	tests := []struct {
		name, show      string
		running, looped bool
		restarts        uint32
	}{
		{"running after restarts", "ActiveState=active\nSubState=running\nNRestarts=4\nResult=success", true, false, 4},
		{"waiting for its first restart", "ActiveState=activating\nSubState=auto-restart\nNRestarts=1\nResult=exit-code", false, false, 1},
		{"restarted again and again", "ActiveState=activating\nSubState=auto-restart\nNRestarts=3\nResult=exit-code", false, true, 3},
		{"given up by systemd", "ActiveState=failed\nSubState=failed\nNRestarts=5\nResult=start-limit-hit", false, true, 5},
		{"stopped", "ActiveState=inactive\nSubState=dead\nNRestarts=0\nResult=success", false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := unitStatus("chain.service", parseUnitProperties([]byte(tt.show)))
			if cs.Running != tt.running || cs.CrashLoop != tt.looped || cs.Restarts != tt.restarts {
				t.Errorf("status = %+v, want running %v, crash loop %v, %d restarts", cs, tt.running, tt.looped, tt.restarts)
			}
		})
	}
}

func TestContainersThatKeepRestartingAreACrashLoop(t *testing.T) {
	tests := []struct {
		name, inspect   string
		running, looped bool
	}{
		{"running after restarts", "running 4 0", true, false},
		{"restarting once", "restarting 1 1", false, false},
		{"restarting again and again", "restarting 3 1", false, true},
		{"exited", "exited 0 137", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := containerStatus("chain", tt.inspect, nil)
			if cs.Running != tt.running || cs.CrashLoop != tt.looped {
				t.Errorf("status = %+v, want running %v, crash loop %v", cs, tt.running, tt.looped)
			}
		})
	}
}

func TestSystemdRuntimeDrivesSystemctl(t *testing.T) {
	dir, units := t.TempDir(), t.TempDir()
	fake := &fakeCommander{outputs: map[string]string{
		"systemctl show hoodcloud-geth.service --property=ActiveState,SubState,NRestarts,Result":       "ActiveState=active\nSubState=running\nNRestarts=0\nResult=success\n",
		"systemctl show hoodcloud-lighthouse.service --property=ActiveState,SubState,NRestarts,Result": "ActiveState=failed\nSubState=failed\nNRestarts=1\nResult=exit-code\n",
	}}
	r := NewSystemdRuntime(SystemdConfig{Dir: dir, UnitDir: units, Commander: fake})
	ctx := context.Background()
	if _, err := r.Configure(ctx, binariesInPlace(), noProgress); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(units, "hoodcloud-geth.service")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "config/jwt.hex")); err != nil {
		t.Error(err)
	}
	// Enabled only while told to run: a host that reboots starts no chain
	// (no signer) on its own.
	wantCalls(t, fake, [][]string{{"systemctl", "daemon-reload"}})
	_ = r.Start(ctx)
	wantCalls(t, fake, [][]string{
		{"systemctl", "enable", "hoodcloud-geth.service"}, {"systemctl", "enable", "hoodcloud-lighthouse.service"},
		{"systemctl", "start", "hoodcloud-geth.service"}, {"systemctl", "start", "hoodcloud-lighthouse.service"},
	})
	_ = r.Stop(ctx)
	wantCalls(t, fake, [][]string{
		{"systemctl", "stop", "hoodcloud-lighthouse.service"}, {"systemctl", "stop", "hoodcloud-geth.service"},
		{"systemctl", "disable", "hoodcloud-lighthouse.service"}, {"systemctl", "disable", "hoodcloud-geth.service"},
	})
	st, _ := r.Status(ctx)
	if st.Running || !strings.Contains(st.Message, "lighthouse") {
		t.Errorf("status = %+v", st)
	}
	relative := binariesInPlace()
	relative.Components[0].Args[0] = "geth"
	if _, err := r.Configure(ctx, relative, noProgress); err == nil {
		t.Error("a relative program path was accepted")
	}
	bad := binariesInPlace()
	bad.Components[0].Name = "../../etc/x"
	if _, err := r.Configure(ctx, bad, noProgress); err == nil {
		t.Error("a component name with slashes was accepted")
	}
}

// binariesInPlace is chainComponents with the binaries already on the
// host, at the absolute paths their args name.
func binariesInPlace() *agentv1.ConfigurePayload {
	p := chainComponents()
	for _, c := range p.Components {
		c.Artifact = nil
	}
	return p
}

func wantCalls(t *testing.T, f *fakeCommander, want [][]string) {
	t.Helper()
	if got := f.take(); !reflect.DeepEqual(got, want) {
		t.Errorf("commands =\n%q\nwant\n%q", got, want)
	}
}

func TestDockerRuntimeBuildsRunArguments(t *testing.T) {
	dir := t.TempDir()
	fake := &fakeCommander{outputs: map[string]string{
		"docker inspect --format {{.State.Running}} hoodcloud-geth":                                      "true\n",
		"docker inspect --format {{.State.Status}} {{.RestartCount}} {{.State.ExitCode}} hoodcloud-geth": "running 0 0\n",
	}}
	r := NewDockerRuntime(DockerConfig{Dir: dir, User: "10001:10001", Commander: fake})
	ctx := context.Background()
	p := chainComponents()
	p.Components = p.Components[:1]
	if _, err := r.Configure(ctx, p, noProgress); err != nil {
		t.Fatal(err)
	}
	digest := strings.Repeat("ab", 32)
	wantCalls(t, fake, [][]string{{"docker", "pull", "ethereum/client-go:v1.14.0@sha256:" + digest}})
	_ = r.Start(ctx)
	wantCalls(t, fake, [][]string{
		{"docker", "rm", "-f", "hoodcloud-geth"},
		{"docker", "run", "--detach", "--name", "hoodcloud-geth", "--restart", "unless-stopped", "--network", "host",
			"--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
			"--volume", dir + ":/data", "--workdir", "/data", "--log-opt", "max-size=50m", "--log-opt", "max-file=3",
			"--user", "10001:10001", "--env", "GOMAXPROCS=4",
			"ethereum/client-go:v1.14.0@sha256:" + digest, "/opt/chain/geth", "--datadir", "/var/lib/chain/data dir"},
	})
	_ = r.Stop(ctx)
	wantCalls(t, fake, [][]string{{"docker", "stop", "--time", "120", "hoodcloud-geth"}})
	if st, _ := r.Status(ctx); !st.Running {
		t.Errorf("status = %+v", st)
	}
	for name, url := range map[string]string{"no image": "", "option as image": "--privileged"} {
		bad := chainComponents()
		bad.Components[0].Artifact.Url = url
		if _, err := r.Configure(ctx, bad, noProgress); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestNewRuntimeByName(t *testing.T) {
	for kind, want := range map[string]Runtime{"": &ProcessRuntime{}, "process": &ProcessRuntime{}, "systemd": &SystemdRuntime{}, "docker": &DockerRuntime{}} {
		got, err := NewRuntime(kind, t.TempDir(), nil)
		if err != nil || reflect.TypeOf(got) != reflect.TypeOf(want) {
			t.Errorf("NewRuntime(%q) = %T, %v", kind, got, err)
		}
	}
	if _, err := NewRuntime("kubernetes", t.TempDir(), nil); err == nil {
		t.Error("an unknown runtime was accepted")
	}
}

// shellArtifact is a tiny program that appends its arguments to
// init.log in its working directory, served as a file:// artifact.
func shellArtifact(t *testing.T) *agentv1.Artifact {
	t.Helper()
	script := []byte("#!/bin/sh\necho \"$@\" >> init.log\n")
	path := filepath.Join(t.TempDir(), "node")
	if err := os.WriteFile(path, script, 0o600); err != nil {
		t.Fatal(err)
	}
	return &agentv1.Artifact{Url: "file://" + path, Sha256: sha256Hex(script)}
}

func TestSystemdUnitsRunTheInstalledBinaryWithTheRenderedRecipe(t *testing.T) {
	dir, units := t.TempDir(), t.TempDir()
	fake := &fakeCommander{}
	r := NewSystemdRuntime(SystemdConfig{Dir: dir, UnitDir: units, Commander: fake})
	p := &agentv1.ConfigurePayload{NodeId: "node_a", Ports: []string{"p2p"}, KeyPaths: map[string]string{"node_key": "config/node_key.json"},
		Components: []*agentv1.Component{{Name: "node", Version: "1.0", Artifact: shellArtifact(t),
			Args: []string{"start", "--home", "{{.DataDir}}", "--p2p.laddr=tcp://0.0.0.0:{{.Ports.p2p}}"},
			Env:  map[string]string{"NODE_KEY": "{{.Keys.node_key}}"},
			Init: []*agentv1.InitStep{{Args: []string{"init", "--home", "{{.DataDir}}"}, Creates: "init.log"}}}}}
	res, err := r.Configure(t.Context(), p, noProgress)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Configure(t.Context(), p, noProgress); err != nil {
		t.Fatal(err)
	}
	if got := readChainFile(t, dir, "init.log"); got != "init --home "+dir+"\n" {
		t.Errorf("init steps ran the binary as %q; want once with the rendered args", got)
	}
	unit, err := os.ReadFile(filepath.Join(units, "hoodcloud-node.service"))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, ".hoodcloud/bin/node/1.0/node")
	port := strconv.Itoa(int(res.GetPorts()["p2p"]))
	for _, line := range []string{
		"ExecStart=" + bin + " start --home " + dir + " --p2p.laddr=tcp://0.0.0.0:" + port,
		"Environment=NODE_KEY=" + filepath.Join(dir, "config/node_key.json"),
		"Restart=on-failure",
		"WorkingDirectory=" + dir,
	} {
		if !strings.Contains(string(unit), "\n"+line+"\n") {
			t.Errorf("unit lacks %q:\n%s", line, unit)
		}
	}
}

func TestDockerRunsTheRenderedRecipeInContainersWithPortsOnLoopback(t *testing.T) {
	dir := t.TempDir()
	fake := &fakeCommander{}
	r := NewDockerRuntime(DockerConfig{Dir: dir, Network: "bridge", Commander: fake})
	p := &agentv1.ConfigurePayload{NodeId: "node_a", Ports: []string{"p2p", "rpc"}, KeyPaths: map[string]string{"node_key": "config/node_key.json"},
		Components: []*agentv1.Component{{Name: "node", Version: "1.0", Artifact: &agentv1.Artifact{Url: "example/node:1.0"},
			Args: []string{"start", "--home", "{{.DataDir}}", "--p2p={{.Ports.p2p}}"},
			Env:  map[string]string{"NODE_KEY": "{{.Keys.node_key}}"},
			Init: []*agentv1.InitStep{{Args: []string{"init", "--home", "{{.DataDir}}"}, Env: map[string]string{"MONIKER": "{{.NodeID}}"}, Creates: "config/done"}}}}}
	res, err := r.Configure(t.Context(), p, noProgress)
	if err != nil {
		t.Fatal(err)
	}
	sandbox := []string{"--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		"--volume", dir + ":/data", "--workdir", "/data"}
	wantCalls(t, fake, [][]string{
		{"docker", "pull", "example/node:1.0"},
		slices.Concat([]string{"docker", "run", "--rm", "--network", "bridge"}, sandbox,
			[]string{"--env", "MONIKER=node_a", "example/node:1.0", "init", "--home", "/data"}),
	})
	_ = r.Start(t.Context())
	p2p, rpc := strconv.Itoa(int(res.GetPorts()["p2p"])), strconv.Itoa(int(res.GetPorts()["rpc"]))
	wantCalls(t, fake, [][]string{
		{"docker", "rm", "-f", "hoodcloud-node"},
		slices.Concat([]string{"docker", "run", "--detach", "--name", "hoodcloud-node", "--restart", "unless-stopped", "--network", "bridge"},
			sandbox, []string{"--log-opt", "max-size=50m", "--log-opt", "max-file=3",
				"--publish", "127.0.0.1:" + p2p + ":" + p2p, "--publish", "127.0.0.1:" + rpc + ":" + rpc,
				"--env", "NODE_KEY=/data/config/node_key.json", "example/node:1.0", "start", "--home", "/data", "--p2p=" + p2p}),
	})
}
