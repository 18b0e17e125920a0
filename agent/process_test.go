package agent

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

func noProgress(Progress) {}

// simnodeRuntime is a process runtime configured to run the test binary as
// a simulated node in its chain dir.
func simnodeRuntime(t *testing.T) (*ProcessRuntime, string) {
	t.Helper()
	dir := t.TempDir()
	r := NewProcessRuntime(ProcessConfig{Dir: dir, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, StopTimeout: 5 * time.Second})
	_, err := r.Configure(context.Background(), &agentv1.ConfigurePayload{Components: []*agentv1.Component{
		{Name: "simnode", Args: []string{os.Args[0]}, Env: map[string]string{simnodeEnv: dir}},
	}}, noProgress)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	return r, dir
}

func (r *ProcessRuntime) firstPid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.running) == 0 {
		return 0
	}
	r.running[0].mu.Lock()
	defer r.running[0].mu.Unlock()
	return r.running[0].pid
}

func TestProcessRuntimeRestartsACrashedComponent(t *testing.T) {
	r, dir := simnodeRuntime(t)
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, dir)
	first := r.firstPid()
	os.Remove(filepath.Join(dir, "addr"))
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, dir) // a new child wrote a new address
	st, _ := r.Status(ctx)
	if !st.Running || st.Restarts < 1 || r.firstPid() == first {
		t.Fatalf("after a crash: %+v, pid %d (was %d)", st, r.firstPid(), first)
	}

	second := r.firstPid()
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(second, 0); err == nil {
		t.Error("the child still runs after Stop")
	}
	if st, _ := r.Status(ctx); st.Running || !st.Configured {
		t.Errorf("after Stop: %+v", st)
	}
}

func TestProcessRuntimeRefusesWhatItCannotDoSafely(t *testing.T) {
	dir := t.TempDir()
	r := NewProcessRuntime(ProcessConfig{Dir: filepath.Join(dir, "chain")})
	ctx := context.Background()
	if err := r.Start(ctx); err == nil {
		t.Error("Start before Configure succeeded")
	}
	comp := []*agentv1.Component{{Name: "c", Args: []string{"/bin/true"}}}
	for name, p := range map[string]*agentv1.ConfigurePayload{
		"file outside":        {Components: comp, Files: []*agentv1.ConfigFile{{Path: "../escape", Content: []byte("x")}}},
		"absolute file":       {Components: comp, Files: []*agentv1.ConfigFile{{Path: filepath.Join(dir, "escape"), Content: []byte("x")}}},
		"no component":        {},
		"no command":          {Components: []*agentv1.Component{{Name: "c"}}},
		"unverified artifact": {Components: []*agentv1.Component{{Name: "c", Args: []string{"x"}, Artifact: &agentv1.Artifact{Url: "https://example.com/x"}}}},
	} {
		if _, err := r.Configure(ctx, p, noProgress); err == nil {
			t.Errorf("%s: Configure succeeded", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "escape")); err == nil {
		t.Error("a file was written outside the chain dir")
	}
}
