//go:build linux

package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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

	"github.com/hoodcloud/hoodcloud/engine/profile"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"golang.org/x/crypto/nacl/box"
)

// crashAsCLIEnv marks the processes of TestCrashDuringProvisioning's
// appliance. The local provisioner hands its agents the appliance's
// environment without HOODCLOUD_ variables, so HOODCLOUD_TEST_AS_CLI does
// not reach them; this variable does, and turns it back on before TestMain
// looks, so the simulated chains the agents start run this binary as
// hoodcloud too.
const crashAsCLIEnv = "HCTEST_CRASH_AS_CLI"

func init() {
	if os.Getenv(crashAsCLIEnv) == "1" {
		os.Setenv("HOODCLOUD_TEST_AS_CLI", "1")
	}
}

const crashDevToken = "crash-admin"

// crashRunningLimit is how long n nodes have to run after the restart.
func crashRunningLimit(n int) time.Duration {
	return max(4*time.Minute, time.Duration(n)*3*time.Second)
}

// TestCrashDuringProvisioning kills the appliance (kill -9) while many
// paid nodes are being provisioned, starts it again on the same data dir
// and ports, and expects every subscription to end with exactly one
// running node on exactly one host, with its keys. HOODCLOUD_CRASH_PROVISIONS
// sets how many subscriptions are paid at once.
func TestCrashDuringProvisioning(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the appliance twice and provisions many nodes")
	}
	requireLoopbackRange(t)
	n := crashProvisions(t)
	dir := t.TempDir()
	args := crashServeArgs(t, dir)
	base := "http://" + flagValue(args, "--http-addr")
	t.Cleanup(func() { reapProcessesOf(t, dir) })
	start := time.Now()

	first := startAppliance(t, args)
	customers := signUpCustomers(t, base, n)
	pub := publicKey(t, base)
	subs := make([]string, n)
	payments := make([]string, n)
	parallel(t, n, func(i int) error {
		var err error
		subs[i], payments[i], err = customers[i].buyValidator(pub, i)
		return err
	})
	admin := newCrashClient(base, crashDevToken, 0)
	paidAt := time.Now()
	parallel(t, n, func(i int) error {
		return admin.do("POST", "/payments/"+payments[i]+"/mark-paid", "", 202, nil)
	})
	t.Logf("%d customers paid %s after start", n, time.Since(start).Round(time.Millisecond))

	// Kill once a few nodes exist and hosts are being made, while most
	// nodes are still on their way.
	killAt := max(2, n/5)
	var seen map[string]*crashNode
	if !poll(t, time.Minute, 200*time.Millisecond, func() bool {
		seen = listAllNodes(t, customers)
		return len(seen) >= killAt && len(hostDirs(t, dir)) > 0
	}) {
		t.Fatalf("no %d nodes and a host within a minute; nodes: %s", killAt, stateCounts(seen))
	}
	first.kill(t)
	t.Logf("killed %s after marking paid, with %d of %d nodes: %s",
		time.Since(paidAt).Round(time.Millisecond), len(seen), n, stateCounts(seen))
	if countState(seen, "running") == len(subs) {
		t.Fatal("every node was running before the kill: the crash tested nothing")
	}
	assertOnlyAgentsOutlive(t, dir)

	restarted := time.Now()
	second := startAppliance(t, args)
	var nodes map[string]*crashNode
	running, lastRan := 0, time.Duration(0)
	allRunning := poll(t, crashRunningLimit(n), time.Second, func() bool {
		nodes = listAllNodes(t, customers)
		failIfFailed(t, dir, nodes, second)
		if r := countState(nodes, "running"); r > running {
			running, lastRan = r, time.Since(restarted).Round(time.Millisecond)
		}
		return len(nodes) >= n && running == len(nodes)
	})
	t.Logf("%d nodes running %s after the restart", running, lastRan)
	if !allRunning {
		explainStuck(t, dir, n, nodes, first, second)
	}
	t.Logf("all %d nodes running %s after the restart (%s in all)",
		n, time.Since(restarted).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	assertOneNodePerSubscription(t, customers, subs)
	assertOneHostPerNode(t, dir, nodes)
	second.stop(t)
	assertNoProcessOutlives(t, dir)
	assertKeysKept(t, dir, nodes, subs)
	if logs := second.stderr.String() + first.stderr.String(); logs != "" {
		t.Logf("appliance errors (both runs):\n%s", tail(logs, 8<<10))
	}
}

// crashProvisions is N: HOODCLOUD_CRASH_PROVISIONS, default 50 (`make
// soak` runs 200).
func crashProvisions(t *testing.T) int {
	return envCount(t, "HOODCLOUD_CRASH_PROVISIONS", 50, 2000)
}

// envCount is the count in the environment variable name, def when unset;
// anything but 1 to most fails the test.
func envCount(t testing.TB, name string, def, most int) int {
	raw := os.Getenv(name)
	if raw == "" {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > most {
		t.Fatalf("%s=%q: want 1-%d", name, raw, most)
	}
	return n
}

// crashServeArgs are the serve flags of both runs: every port fixed, so
// the restarted appliance is found where agents and Temporal expect it.
func crashServeArgs(t *testing.T, dir string) []string {
	p, err := freePorts(7)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"serve", "--data-dir", dir, "--log-level", "warn", "--dev-token", crashDevToken,
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", p[0]), "--agent-addr", fmt.Sprintf("127.0.0.1:%d", p[1]),
		"--temporal-frontend-port", fmt.Sprint(p[2]), "--temporal-http-port", fmt.Sprint(p[3]),
		"--temporal-history-port", fmt.Sprint(p[4]), "--temporal-matching-port", fmt.Sprint(p[5]),
		"--temporal-worker-port", fmt.Sprint(p[6]), "--agent-binary", testAgentBinary(t)}
}

func flagValue(args []string, name string) string {
	i := slices.Index(args, name)
	return args[i+1]
}

// childAppliance is `hoodcloud serve` run as a separate process.
type childAppliance struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed once the process is reaped
	err    error         // its exit, once done
	stdout testenv.LogBuffer
	stderr testenv.LogBuffer
}

// startAppliance runs serve and waits until /readyz says healthy.
func startAppliance(t *testing.T, args []string) *childAppliance {
	t.Helper()
	c := &childAppliance{done: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], args...)
	c.cmd.Env = append(os.Environ(), "HOODCLOUD_TEST_AS_CLI=1", crashAsCLIEnv+"=1")
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	// Dies with the test binary, should the test itself be killed.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() { c.kill(t) })
	c.waitHealthy(t, "http://"+flagValue(args, "--http-addr"), 2*time.Minute)
	return c
}

func (c *childAppliance) waitHealthy(t *testing.T, base string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !healthy(base) {
		select {
		case <-c.done:
			t.Fatalf("appliance exited before it was ready: %v\n%s", c.err, tail(c.stderr.String(), 8<<10))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("appliance not healthy within %s\n%s", limit, tail(c.stderr.String(), 8<<10))
		}
	}
}

func healthy(base string) bool {
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body struct{ Status string }
	json.NewDecoder(resp.Body).Decode(&body)
	return body.Status == "healthy"
}

// kill is kill -9; the process is reaped before it returns.
func (c *childAppliance) kill(t *testing.T) {
	t.Helper()
	select {
	case <-c.done:
		return
	default:
	}
	c.cmd.Process.Kill()
	<-c.done
}

// stop is an orderly stop: SIGTERM, then exit code 0 within a minute.
func (c *childAppliance) stop(t *testing.T) {
	t.Helper()
	began := time.Now()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		if c.err != nil {
			t.Fatalf("exit after SIGTERM: %v, want 0\n%s", c.err, tail(c.stderr.String(), 8<<10))
		}
		t.Logf("appliance stopped in %s", time.Since(began).Round(time.Millisecond))
	case <-time.After(time.Minute):
		c.kill(t)
		t.Fatalf("still running a minute after SIGTERM")
	}
}

// crashClient calls the API as one credential, from one loopback address.
type crashClient struct {
	base  string
	token string
	http  *http.Client
}

// newCrashClient connects from 127.0.0.x (x from i) so that the per-IP
// limit of sign-up and sign-in applies to each customer apart; i 0 is
// 127.0.0.1.
func newCrashClient(base, token string, i int) *crashClient {
	return &crashClient{base: base + "/api/v1", token: token, http: loopbackClient(i)}
}

func (c *crashClient) do(method, path, body string, want int, out any) error {
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s = %d %s, want %d", method, path, resp.StatusCode, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

// signUpCustomers registers n customers (the admin creates each account,
// the customer signs in) and returns their clients.
func signUpCustomers(t *testing.T, base string, n int) []*crashClient {
	t.Helper()
	customers := make([]*crashClient, n)
	parallel(t, n, func(i int) error {
		c := newCrashClient(base, crashDevToken, i+1)
		email := fmt.Sprintf(`{"email":"crash%d@example.com","password":"a long enough password"}`, i)
		if err := c.do("POST", "/users", email, 201, nil); err != nil {
			return err
		}
		var tokens struct {
			AccessToken string `json:"access_token"`
		}
		if err := c.do("POST", "/auth/login", email, 200, &tokens); err != nil {
			return err
		}
		c.token = tokens.AccessToken
		customers[i] = c
		return nil
	})
	return customers
}

// publicKey is the appliance's sealed-box key, as a client fetches it.
func publicKey(t *testing.T, base string) []byte {
	t.Helper()
	var key struct {
		PublicKey []byte `json:"public_key"` // base64 in JSON
	}
	if err := newCrashClient(base, "", 0).do("GET", "/crypto/public-key", "", 200, &key); err != nil {
		t.Fatal(err)
	}
	return key.PublicKey
}

// buyValidator subscribes to a demo validator, gives its inputs (the
// consensus key sealed) and links a payment, returning both ids.
func (c *crashClient) buyValidator(pub []byte, i int) (sub, payment string, err error) {
	var s, p struct{ ID string }
	if err := c.do("POST", "/subscriptions", `{"chain_profile_id":"cosmos-demo","node_type":"validator","duration":"1m"}`, 201, &s); err != nil {
		return "", "", err
	}
	key, err := profile.GenerateKey(&validatorKeySpec)
	if err != nil {
		return "", "", err
	}
	sealed, err := sealed(pub, key)
	if err != nil {
		return "", "", err
	}
	inputs := fmt.Sprintf(`{"inputs":[{"name":"moniker","value":"crash-%d"},{"name":"priv_validator_key","value":"%s"}]}`, i, sealed)
	if err := c.do("POST", "/subscriptions/"+s.ID+"/inputs", inputs, 200, nil); err != nil {
		return "", "", err
	}
	link := fmt.Sprintf(`{"external_id":"crash-inv-%d","amount_cents":7900,"currency":"EUR","subscription_ids":["%s"]}`, i, s.ID)
	if err := c.do("POST", "/payments", link, 201, &p); err != nil {
		return "", "", err
	}
	return s.ID, p.ID, nil
}

// sealed is what a client does to a secret input: ephemeral public key ||
// nonce || box, base64.
func sealed(pub, msg []byte) (string, error) {
	ephPub, ephPriv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	var nonce [24]byte
	var peer [32]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", err
	}
	copy(peer[:], pub)
	out := append(append([]byte{}, ephPub[:]...), nonce[:]...)
	return base64.StdEncoding.EncodeToString(box.Seal(out, msg, &nonce, &peer, ephPriv)), nil
}

// crashNode is a node as its owner sees it through the API.
type crashNode struct {
	ID             string `json:"id"`
	SubscriptionID string `json:"subscription_id"`
	State          string `json:"state"`
	owner          int    // index of the customer
}

// listAllNodes asks every customer for its nodes, by node id.
func listAllNodes(t *testing.T, customers []*crashClient) map[string]*crashNode {
	t.Helper()
	lists := make([][]*crashNode, len(customers))
	parallel(t, len(customers), func(i int) error {
		var page struct{ Nodes []*crashNode }
		if err := customers[i].do("GET", "/nodes?limit=500", "", 200, &page); err != nil {
			return err
		}
		for _, n := range page.Nodes {
			n.owner = i
		}
		lists[i] = page.Nodes
		return nil
	})
	all := map[string]*crashNode{}
	for _, l := range lists {
		for _, n := range l {
			all[n.ID] = n
		}
	}
	return all
}

func countState(nodes map[string]*crashNode, state string) int {
	c := 0
	for _, n := range nodes {
		if n.State == state {
			c++
		}
	}
	return c
}

func stateCounts(nodes map[string]*crashNode) string {
	counts := map[string]int{}
	for _, n := range nodes {
		counts[n.State]++
	}
	var parts []string
	for s, c := range counts {
		parts = append(parts, fmt.Sprintf("%s %d", s, c))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// failIfFailed stops the wait at the first failed node, with its agent's log.
func failIfFailed(t *testing.T, dir string, nodes map[string]*crashNode, c *childAppliance) {
	t.Helper()
	for _, n := range nodes {
		if n.State == "failed" {
			agentLog, _ := os.ReadFile(filepath.Join(dir, "hosts", n.ID, "agent.log"))
			t.Fatalf("node %s of subscription %s failed\nagent log:\n%s\nappliance:\n%s",
				n.ID, n.SubscriptionID, tail(string(agentLog), 4<<10), tail(c.stderr.String(), 8<<10))
		}
	}
}

// assertOneNodePerSubscription: each customer has exactly the node of its
// subscription; a replayed activity made no second one.
func assertOneNodePerSubscription(t *testing.T, customers []*crashClient, subs []string) {
	t.Helper()
	parallel(t, len(customers), func(i int) error {
		var page struct{ Nodes []*crashNode }
		if err := customers[i].do("GET", "/nodes?limit=500", "", 200, &page); err != nil {
			return err
		}
		if len(page.Nodes) != 1 || page.Nodes[0].SubscriptionID != subs[i] {
			return fmt.Errorf("customer %d has nodes %+v, want one for subscription %s", i, page.Nodes, subs[i])
		}
		return nil
	})
}

// assertOneHostPerNode: the hosts dir holds one directory per node and
// nothing else, so no host was orphaned by the crash.
func assertOneHostPerNode(t *testing.T, dir string, nodes map[string]*crashNode) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "hosts"))
	if err != nil {
		t.Fatal(err)
	}
	var extra []string
	for _, e := range entries {
		if nodes[e.Name()] == nil {
			extra = append(extra, e.Name())
		}
	}
	if len(entries) != len(nodes) || len(extra) > 0 {
		t.Fatalf("%d entries in the hosts dir for %d nodes; not a node's: %v", len(entries), len(nodes), extra)
	}
}

// assertOnlyAgentsOutlive: after kill -9, what survives of the appliance is
// the agents of local hosts (with their chains), each recorded in its
// host's pid file for the next start to adopt; the data dir is free.
func assertOnlyAgentsOutlive(t *testing.T, dir string) {
	t.Helper()
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Errorf("the data dir is still locked after the kill: %v", err)
	}
	lock.Close()
	agents := recordedAgents(dir)
	var strays []string
	procs := processesOf(dir)
	for _, p := range procs {
		if !agents[p.pgid] {
			strays = append(strays, fmt.Sprintf("pid %d (group %d): %s", p.pid, p.pgid, p.cmdline))
		}
	}
	if len(strays) > 0 {
		t.Errorf("processes outlive the appliance in no recorded agent's group:\n%s", strings.Join(strays, "\n"))
	}
	t.Logf("after the kill: %d processes of %d recorded agents outlive the appliance, as designed", len(procs), len(agents))
}

// recordedAgents is the set of agent pids in the hosts' pid files.
func recordedAgents(dir string) map[int]bool {
	pids := map[int]bool{}
	files, _ := filepath.Glob(filepath.Join(dir, "hosts", "*", "agent.pid"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			pids[pid] = true
		}
	}
	return pids
}

// assertNoProcessOutlives: after the orderly stop, no agent or chain of
// this appliance runs any more.
func assertNoProcessOutlives(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(testenv.Patience)
	for len(processesOf(dir)) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if procs := processesOf(dir); len(procs) > 0 {
		t.Errorf("%d processes outlive the orderly stop, e.g. %s", len(procs), procs[0].cmdline)
	}
}

// assertKeysKept opens the stopped appliance's state in process: each
// subscription has one node, and each node still has its data key and
// both chain keys.
func assertKeysKept(t *testing.T, dir string, nodes map[string]*crashNode, subs []string) {
	t.Helper()
	cfg := defaultConfig()
	cfg.DataDir = dir
	cfg.LogLevel = 8
	m := NewMain(cfg, testWriter{t})
	ctx := t.Context()
	if err := m.OpenState(ctx); err != nil {
		t.Fatalf("open the state: %v", err)
	}
	defer m.Close()
	all, err := m.Store.ListNodesByChain(ctx, "cosmos-demo", "", 10*len(subs)+10)
	if err != nil || len(all) != len(subs) {
		t.Fatalf("the store holds %d demo nodes (%v), want %d", len(all), err, len(subs))
	}
	for _, sub := range subs {
		n, err := m.Store.GetNodeBySubscription(ctx, sub)
		if err != nil || nodes[n.ID] == nil {
			t.Fatalf("node of subscription %s: %v, %v", sub, n, err)
		}
		keys, err := m.Store.ListNodeKeys(ctx, n.ID)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, k := range keys {
			names = append(names, k.Name)
		}
		for _, want := range []string{"dek", "node_key", "priv_validator_key"} {
			if !slices.Contains(names, want) {
				t.Errorf("node %s has keys %v, lacks %s", n.ID, names, want)
			}
		}
	}
}

// proc is a live process whose command line names the test's data dir.
type proc struct {
	pid, pgid int
	cmdline   string
}

// processesOf lists the live (not zombie) processes naming dir: the
// appliance, its agents and their simulated chains all do.
func processesOf(dir string) []proc {
	entries, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.Contains(cmdline, []byte(dir)) {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		i := bytes.LastIndexByte(stat, ')')
		if err != nil || i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		pgid, _ := strconv.Atoi(f[2])
		out = append(out, proc{pid: pid, pgid: pgid, cmdline: strings.ReplaceAll(string(cmdline), "\x00", " ")})
	}
	return out
}

// reapProcessesOf is the last resort of the cleanup: it kills the process
// groups of whatever still names dir, all started by this test.
func reapProcessesOf(t *testing.T, dir string) {
	procs := processesOf(dir)
	for _, p := range procs {
		syscall.Kill(-p.pgid, syscall.SIGKILL)
		syscall.Kill(p.pid, syscall.SIGKILL)
	}
	if len(procs) > 0 {
		t.Logf("cleanup killed %d leftover processes", len(procs))
	}
}

// poll waits up to limit for ok, at a pace the API's per-credential
// limit allows, and reports whether ok came true.
func poll(t *testing.T, limit, every time.Duration, ok func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
	return true
}

// explainStuck fails the test with what the nodes that did not make it
// were doing, their agents' logs and the appliance's errors.
func explainStuck(t *testing.T, dir string, n int, nodes map[string]*crashNode, runs ...*childAppliance) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "not every node ran within %s: %d nodes for %d subscriptions (%s)\n", crashRunningLimit(n), len(nodes), n, stateCounts(nodes))
	shown := 0
	for _, nd := range nodes {
		if nd.State == "running" || shown == 3 {
			continue
		}
		shown++
		dumpAgentStacks(dir, nd.ID)
		agentLog, _ := os.ReadFile(filepath.Join(dir, "hosts", nd.ID, "agent.log"))
		fmt.Fprintf(&b, "--- node %s (%s), agent log and stacks:\n%s\n", nd.ID, nd.State, tail(string(agentLog), 32<<10))
		for i, r := range runs {
			fmt.Fprintf(&b, "--- appliance run %d about it:\n%s\n", i+1, tail(linesNaming(r.stderr.String(), nd.ID), 6<<10))
		}
	}
	for i, r := range runs {
		fmt.Fprintf(&b, "--- appliance run %d:\n%s\n", i+1, tail(r.stderr.String(), 6<<10))
	}
	t.Fatal(b.String())
}

// linesNaming keeps the lines of log that name id.
func linesNaming(log, id string) string {
	var keep []string
	for line := range strings.Lines(log) {
		if strings.Contains(line, id) {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "")
}

// dumpAgentStacks makes a stuck node's agent write its goroutines' stacks
// to its log (SIGQUIT) and waits for it to exit: what it waits on is what
// a stuck provision needs explaining by.
func dumpAgentStacks(dir, nodeID string) {
	b, err := os.ReadFile(filepath.Join(dir, "hosts", nodeID, "agent.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || syscall.Kill(pid, syscall.SIGQUIT) != nil {
		return
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && syscall.Kill(pid, 0) == nil; {
		time.Sleep(50 * time.Millisecond)
	}
}

// hostDirs names the host directories, without those being made or removed.
func hostDirs(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "hosts"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names
}

// parallel runs f(0..n-1) on a few workers and fails the test with every
// error once all are done.
func parallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	next := make(chan int)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for range min(n, 8) {
		wg.Go(func() {
			for i := range next {
				errs[i] = f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

func tail(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return "…" + s[len(s)-max:]
}
