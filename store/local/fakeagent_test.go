package local

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the agent the provisioner starts: with
// fakeEnv set it is a tiny program instead of the tests.
const (
	fakeEnv    = "LOCALTEST_FAKE"    // "agent" or "chain"
	recordsEnv = "LOCALTEST_RECORDS" // where the fake agent records its runs
)

func TestMain(m *testing.M) {
	switch os.Getenv(fakeEnv) {
	case "agent":
		os.Exit(fakeAgent(os.Args[1:]))
	case "chain":
		time.Sleep(time.Hour)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// run is what one start of the fake agent recorded.
type run struct {
	PID      int      `json:"pid"`
	ChainPID int      `json:"chain_pid"`
	Args     []string `json:"args"`
	Token    string   `json:"token"`
	HasToken bool     `json:"has_token"`
	Env      []string `json:"env"`
}

// fakeAgent records its run, starts a "chain" child in its own process
// group, and sleeps. Control files in the records dir make it exit with a
// code (<node>.exit) or ignore SIGTERM (<node>.ignoreterm).
func fakeAgent(args []string) int {
	dir := os.Getenv(recordsEnv)
	node := flagValue(args, "--node-id")
	if _, err := os.Stat(filepath.Join(dir, node+".ignoreterm")); err == nil {
		signal.Ignore(syscall.SIGTERM)
	}
	chain := exec.Command(os.Args[0])
	chain.Env = append(os.Environ(), fakeEnv+"=chain")
	if err := chain.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "fake agent: start chain:", err)
		return 1
	}
	token, has := os.LookupEnv(TokenEnv)
	r := run{PID: os.Getpid(), ChainPID: chain.Process.Pid, Args: args, Token: token, HasToken: has, Env: os.Environ()}
	b, _ := json.Marshal(r)
	name := filepath.Join(dir, fmt.Sprintf("%s-%d.json", node, r.PID))
	if err := os.WriteFile(name+".tmp", b, 0o600); err != nil || os.Rename(name+".tmp", name) != nil {
		return 1
	}
	fmt.Println("fake agent running with", strings.Join(args, " "))
	if code, err := os.ReadFile(filepath.Join(dir, node+".exit")); err == nil {
		n, _ := strconv.Atoi(strings.TrimSpace(string(code)))
		return n
	}
	time.Sleep(time.Hour)
	return 0
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}
