package agent

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// recipeProgramSource is a tiny chain client: "init FILE" records its run
// and makes FILE, "fail" fails noisily, "crash" exits at once, "serve"
// writes its arguments and environment to started.json and runs until
// SIGTERM. It works in its working directory, the chain data dir.
const recipeProgramSource = `package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	switch os.Args[1] {
	case "init":
		f, _ := os.OpenFile("init-runs", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		f.WriteString("run\n")
		f.Close()
		os.MkdirAll(filepath.Dir(os.Args[2]), 0o700)
		os.WriteFile(os.Args[2], []byte("made by init"), 0o600)
	case "fail":
		fmt.Println("loading the configuration")
		fmt.Fprintln(os.Stderr, "error: the moniker is missing")
		os.Exit(2)
	case "crash":
		fmt.Fprintln(os.Stderr, "boom")
		os.Exit(1)
	case "serve":
		b, _ := json.Marshal(map[string]any{"args": os.Args[1:], "greeting": os.Getenv("RECIPE_GREETING")})
		os.WriteFile("started.json.tmp", b, 0o600)
		os.Rename("started.json.tmp", "started.json")
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, os.Interrupt)
		<-c
	}
}
`

var recipeProgram struct {
	once sync.Once
	path string
	err  error
}

// recipeProgramBinary builds recipeProgramSource once per test run.
func recipeProgramBinary(t *testing.T) []byte {
	t.Helper()
	recipeProgram.once.Do(func() {
		dir, err := os.MkdirTemp("", "recipe-program-")
		if err != nil {
			recipeProgram.err = err
			return
		}
		src := filepath.Join(dir, "main.go")
		if recipeProgram.err = os.WriteFile(src, []byte(recipeProgramSource), 0o600); recipeProgram.err != nil {
			return
		}
		recipeProgram.path = filepath.Join(dir, "recipe")
		cmd := exec.Command("go", "build", "-o", recipeProgram.path, src)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			recipeProgram.err = errors.New(string(out))
		}
	})
	if recipeProgram.err != nil {
		t.Fatalf("build the recipe program: %v", recipeProgram.err)
	}
	b, err := os.ReadFile(recipeProgram.path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recipeArchive is a .tar.gz holding the program at recipe-1.0/bin/recipe,
// beside an entry that would leave the install dir if it were written.
func recipeArchive(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	add := func(name string, typ byte, body []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: typ, Mode: 0o755, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	add("recipe-1.0/", tar.TypeDir, nil)
	add("../../../escaped", tar.TypeReg, []byte("x"))
	add("recipe-1.0/bin/recipe", tar.TypeReg, recipeProgramBinary(t))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// artifactServer serves body at /recipe-1.0.tar.gz and counts the GETs.
func artifactServer(t *testing.T, body []byte) (string, *atomic.Int32) {
	t.Helper()
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/recipe-1.0.tar.gz", &gets
}

// recipePayload is a node's configuration of the recipe program from url.
func recipePayload(url, digest string) *agentv1.ConfigurePayload {
	return &agentv1.ConfigurePayload{
		ChainProfileId: "recipe", NodeId: "node_a",
		Ports:    []string{"p2p", "rpc"},
		Inputs:   map[string]string{"moniker": "alpha"},
		KeyPaths: map[string]string{"node_key": "config/node_key.json"},
		Genesis:  &agentv1.Genesis{Path: "config/genesis.json", Content: []byte(`{"chain_id":"test"}`)},
		Components: []*agentv1.Component{{
			Name: "recipe", Version: "1.0", Binary: "recipe-1.0/bin/recipe",
			Artifact: &agentv1.Artifact{Url: url, Sha256: digest},
			Args: []string{"serve", "--p2p=127.0.0.1:{{.Ports.p2p}}", "--home", "{{.DataDir}}",
				"--key={{.Keys.node_key}}", "--moniker={{.Inputs.moniker}}"},
			Env:       map[string]string{"RECIPE_GREETING": "hello {{.NodeID}}"},
			Init:      []*agentv1.InitStep{{Args: []string{"init", "config/made.txt"}, Creates: "config/made.txt"}},
			Templates: []*agentv1.TemplateFile{{Path: "config/app.toml", Template: "rpc = {{.Ports.rpc}}\nnode = \"{{.NodeID}}\"\n"}},
		}},
	}
}

func recipeRuntime(dir string) *ProcessRuntime {
	return NewProcessRuntime(ProcessConfig{Dir: dir, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		StableAfter: 2 * time.Second, StopTimeout: 5 * time.Second})
}

func readChainFile(t *testing.T, dir, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func wantPermanent(t *testing.T, what string, err error, mentions ...string) {
	t.Helper()
	var ce *commandError
	if !errors.As(err, &ce) || ce.retryable {
		t.Fatalf("%s = %v; want a permanent failure", what, err)
	}
	for _, m := range mentions {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("%s: %q does not mention %q", what, err, m)
		}
	}
}

func TestAnArtifactWhoseDigestDiffersIsNeverInstalledOrRun(t *testing.T) {
	archive := recipeArchive(t)
	url, _ := artifactServer(t, archive)
	dir := t.TempDir()
	p := recipePayload(url, sha256Hex(append(archive, 0)))
	_, err := recipeRuntime(dir).Configure(t.Context(), p, noProgress)
	wantPermanent(t, "a tampered artifact", err, `component "recipe"`, "SHA-256")
	for _, rel := range []string{"init-runs", "config/made.txt", filepath.Join(hostDir, "bin", "recipe", "1.0", "recipe")} {
		if _, err := os.Stat(filepath.Join(dir, rel)); err == nil {
			t.Errorf("%s exists after a refused artifact", rel)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(dir, downloadDir)); len(left) != 0 {
		t.Errorf("downloads left behind: %v", left)
	}
}

func TestARecipeIsInstalledRenderedAndInitialisedOnceAndRuns(t *testing.T) {
	archive := recipeArchive(t)
	url, gets := artifactServer(t, archive)
	dir := t.TempDir()
	ctx := t.Context()
	r := recipeRuntime(dir)
	p := recipePayload(url, sha256Hex(archive))
	res, err := r.Configure(ctx, p, noProgress)
	if err != nil {
		t.Fatal(err)
	}
	p2p, rpc := res.GetPorts()["p2p"], res.GetPorts()["rpc"]
	if p2p == 0 || rpc == 0 || p2p == rpc || res.GetArtifactSha256()["recipe"] != sha256Hex(archive) {
		t.Fatalf("result = %v", res)
	}
	bin := filepath.Join(dir, ".hoodcloud", "bin", "recipe", "1.0", "recipe")
	if fi, err := os.Stat(bin); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Fatalf("installed binary: %v, %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escaped")); err == nil {
		t.Error("an archive entry outside the binary was written")
	}
	wantApp := "rpc = " + strconv.Itoa(int(rpc)) + "\nnode = \"node_a\"\n"
	if got := readChainFile(t, dir, "config/app.toml"); got != wantApp {
		t.Errorf("app.toml = %q, want %q", got, wantApp)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "config/app.toml")); fi.Mode().Perm() != 0o644 {
		t.Errorf("app.toml mode %v, want 0644", fi.Mode().Perm())
	}
	if got := readChainFile(t, dir, "config/genesis.json"); got != `{"chain_id":"test"}` {
		t.Errorf("genesis = %q", got)
	}

	again, err := recipeRuntime(dir).Configure(ctx, p, noProgress)
	if err != nil {
		t.Fatal(err)
	}
	if again.GetPorts()["p2p"] != p2p || again.GetPorts()["rpc"] != rpc {
		t.Errorf("a re-sent CONFIGURE moved the ports: %v, was %v", again.GetPorts(), res.GetPorts())
	}
	if runs := readChainFile(t, dir, "init-runs"); runs != "run\n" || gets.Load() != 1 {
		t.Errorf("after two CONFIGUREs: init ran %q, %d downloads; want once each", runs, gets.Load())
	}

	restarted := recipeRuntime(dir) // the agent restarted
	if err := restarted.Restore(p); err != nil {
		t.Fatal(err)
	}
	if err := restarted.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restarted.Stop(context.Background()) })
	var started struct {
		Args     []string
		Greeting string
	}
	waitFor(t, 5*time.Second, "the program to start", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "started.json"))
		return err == nil && json.Unmarshal(b, &started) == nil
	})
	wantArgs := []string{"serve", "--p2p=127.0.0.1:" + strconv.Itoa(int(p2p)), "--home", dir,
		"--key=" + filepath.Join(dir, "config/node_key.json"), "--moniker=alpha"}
	if !slices.Equal(started.Args, wantArgs) || started.Greeting != "hello node_a" {
		t.Errorf("started with %q and greeting %q; want %q and %q", started.Args, started.Greeting, wantArgs, "hello node_a")
	}
	st, _ := restarted.Status(ctx)
	if len(st.Components) != 1 || st.Components[0].GetName() != "recipe" || st.Components[0].GetVersion() != "1.0" {
		t.Errorf("components = %v", st.Components)
	}
}

func TestAnArtifactThatIsTheBinaryComesOverFileURLs(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "recipe")
	prog := recipeProgramBinary(t)
	if err := os.WriteFile(bin, prog, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := NewProcessRuntime(ProcessConfig{Dir: dir, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		StableAfter: 5 * time.Second, CrashLoopExits: 3})
	p := &agentv1.ConfigurePayload{Components: []*agentv1.Component{{Name: "recipe", Version: "2.0",
		Artifact: &agentv1.Artifact{Url: "file://" + bin, Sha256: sha256Hex(prog)}, Args: []string{"crash"}}}}
	if _, err := r.Configure(t.Context(), p, noProgress); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, ".hoodcloud/bin/recipe/2.0/recipe")); !bytes.Equal(got, prog) {
		t.Fatal("the file artifact is not installed as the binary")
	}
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop(context.Background()) })
	var st RuntimeStatus
	waitFor(t, 5*time.Second, "a crash loop", func() bool {
		st, _ = r.Status(t.Context())
		return st.CrashLoop
	})
	c := st.Components[0]
	if !c.GetCrashLoop() || c.GetRestarts() < 2 || !strings.Contains(c.GetLastExit(), "exit status 1") {
		t.Errorf("component status = %v", c)
	}
	if st.appHealth() != agentv1.AppHealth_APP_HEALTH_CRITICAL || !strings.Contains(st.Message, "recipe") {
		t.Errorf("health %v, %q; want critical naming the component", st.appHealth(), st.Message)
	}
}

func TestAFailingInitStepIsPermanentAndShowsItsLastOutput(t *testing.T) {
	archive := recipeArchive(t)
	url, _ := artifactServer(t, archive)
	p := recipePayload(url, sha256Hex(archive))
	p.Components[0].Init = []*agentv1.InitStep{{Args: []string{"fail"}, Creates: "config/never"}}
	_, err := recipeRuntime(t.TempDir()).Configure(t.Context(), p, noProgress)
	wantPermanent(t, "a failing init step", err, `component "recipe" init[0]`, "the moniker is missing", "exit status 2")
}

func TestRecipesRefuseBadTemplatesAndPaths(t *testing.T) {
	comp := func() *agentv1.Component { return &agentv1.Component{Name: "c", Args: []string{"/bin/true"}} }
	tests := []struct {
		name     string
		edit     func(*agentv1.ConfigurePayload)
		mentions []string
	}{
		{"unknown port", func(p *agentv1.ConfigurePayload) { p.Components[0].Args = []string{"/bin/true", "{{.Ports.nope}}"} },
			[]string{`component "c"`, "args[1]"}},
		{"unknown input in env", func(p *agentv1.ConfigurePayload) { p.Components[0].Env = map[string]string{"X": "{{.Inputs.nope}}"} },
			[]string{`component "c"`, "env X"}},
		{"bad template file", func(p *agentv1.ConfigurePayload) {
			p.Components[0].Templates = []*agentv1.TemplateFile{{Path: "a.toml", Template: "{{.Keys.nope}}"}}
		}, []string{`component "c"`, "templates[a.toml]"}},
		{"config file in the agent's dir", func(p *agentv1.ConfigurePayload) {
			p.Files = []*agentv1.ConfigFile{{Path: ".hoodcloud/bin/c/x", Content: []byte("x")}}
		}, []string{".hoodcloud"}},
		{"key path outside", func(p *agentv1.ConfigurePayload) { p.KeyPaths = map[string]string{"k": "../k"} }, []string{`key "k" at "../k"`}},
		{"archive without a binary", func(p *agentv1.ConfigurePayload) {
			p.Components[0].Artifact = &agentv1.Artifact{Url: "file:///x.tar.gz", Sha256: strings.Repeat("0", 64)}
		}, []string{"archive"}},
		{"artifact without digest", func(p *agentv1.ConfigurePayload) {
			p.Components[0].Artifact = &agentv1.Artifact{Url: "file:///x"}
		}, []string{"sha256"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &agentv1.ConfigurePayload{Components: []*agentv1.Component{comp()}}
			tt.edit(p)
			_, err := recipeRuntime(t.TempDir()).Configure(t.Context(), p, noProgress)
			wantPermanent(t, tt.name, err, tt.mentions...)
		})
	}
}

func TestNodesSharingAHostGetPortsOfTheirOwn(t *testing.T) {
	p := &agentv1.ConfigurePayload{Ports: []string{"p2p", "rpc"}, Components: []*agentv1.Component{{Name: "c", Args: []string{"/bin/true"}}}}
	seen := map[uint32]bool{}
	for range 3 {
		res, err := recipeRuntime(t.TempDir()).Configure(t.Context(), p, noProgress)
		if err != nil {
			t.Fatal(err)
		}
		for _, port := range res.GetPorts() {
			if seen[port] {
				t.Fatalf("port %d given to two nodes", port)
			}
			seen[port] = true
		}
	}
}
