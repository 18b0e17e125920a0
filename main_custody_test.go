package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/assets"
	"github.com/hoodcloud/hoodcloud/internal/chains"
)

// Slashing-safe custody on real validators: each CometBFT validator moves
// host twice while the appliance is killed (kill -9) at a random step of
// the migrations and started again. A watchdog looks at every host's
// processes every 100 ms: at no instant may two live cometbft processes
// sign with the same key. HOODCLOUD_CUSTODY_VALIDATORS sets how many
// validators move at once (`make soak` runs 10).
func TestMigratedValidatorsNeverSignTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real validators through migrations and appliance crashes")
	}
	withChainClient(t, chains.CometBFT)
	n := custodyValidators(t)
	dir := t.TempDir()
	args := append(crashServeArgs(t, dir), "--chains-dir", shortGapChains(t))
	base := "http://" + flagValue(args, "--http-addr")
	t.Cleanup(func() { reapProcessesOf(t, dir) })

	app := startAppliance(t, args)
	admin := newCrashClient(base, crashDevToken, 0)
	customer := signUpCustomers(t, base, 1)[0]
	pub := publicKey(t, base)
	validators := make([]*movingValidator, n)
	for i := range validators {
		validators[i] = buyMovingValidator(t, customer, admin, pub, i)
	}
	for _, v := range validators {
		v.awaitState(t, admin, "running")
		v.awaitBlocks(t, admin)
	}

	watch := watchSigners(t, dir)
	for round := 1; round <= 2; round++ {
		for _, v := range validators {
			if err := admin.do("POST", "/nodes/"+v.nodeID+"/migrate", "", 202, nil); err != nil {
				t.Fatal(err)
			}
		}
		// Kill once one migration has reached a random step.
		step := 1 + rand.IntN(6)
		v := validators[rand.IntN(n)]
		if !poll(t, 3*time.Minute, 50*time.Millisecond, func() bool { return v.migrationSteps(t, admin) >= step }) {
			t.Fatalf("round %d: the migration of %s never reached step %d", round, v.nodeID, step)
		}
		app.kill(t)
		t.Logf("round %d: killed the appliance at step %d of %s's migration", round, step, v.nodeID)
		app = startAppliance(t, args)
		for _, v := range validators {
			t.Logf("round %d: %s %s", round, v.nodeID, v.awaitMoved(t, admin, round))
			v.awaitBlocks(t, admin)
		}
	}
	if twice := watch.stop(); len(twice) > 0 {
		t.Fatalf("two live signers of one key, %d times; first: %s", len(twice), twice[0])
	}
	for _, v := range validators {
		// The watchdog must have seen the key sign, and on more than one
		// host: a watch that saw nothing proves nothing.
		if hosts := len(watch.homes[v.address]); hosts < 2 {
			t.Errorf("the watchdog saw %s's key sign on %d host(s), want it moved", v.nodeID, hosts)
		}
	}
	t.Logf("the watchdog took %d looks at the hosts; never two signers of one key", watch.looks)
	assertOneHolderPerKey(t, admin, validators)
	app.stop(t)
}

func custodyValidators(t *testing.T) int {
	return envCount(t, "HOODCLOUD_CUSTODY_VALIDATORS", 3, 50)
}

// shortGapChains is a chains dir whose cometbft-kvstore waits 2 s between
// signers instead of 30, so the battery fits in CI.
func shortGapChains(t *testing.T) string {
	b, err := fs.ReadFile(assets.Chains, "cometbft-kvstore.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(string(b), "gap: 30s", "gap: 2s", 1)
	if doc == string(b) {
		t.Fatal("the cometbft-kvstore profile has no 30s gap to shorten")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cometbft-kvstore.yaml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// movingValidator is one customer's validator under test.
type movingValidator struct {
	nodeID  string
	address string // the validator address of the customer's key
	height  int    // the chain's height last seen
}

func buyMovingValidator(t *testing.T, customer, admin *crashClient, pub []byte, i int) *movingValidator {
	t.Helper()
	keyFile, address, _ := customerValidatorKey(t)
	box, err := sealed(pub, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var sub, pay struct{ ID string }
	must(t, customer.do("POST", "/subscriptions", `{"chain_profile_id":"cometbft-kvstore","node_type":"validator","duration":"1m"}`, 201, &sub))
	must(t, customer.do("POST", "/subscriptions/"+sub.ID+"/inputs", fmt.Sprintf(`{"inputs":[{"name":"moniker","value":"mover %d"},{"name":"priv_validator_key","value":"%s"}]}`, i, box), 200, nil))
	must(t, customer.do("POST", "/payments", fmt.Sprintf(`{"external_id":"move-%d","amount_cents":100,"currency":"EUR","subscription_ids":["%s"]}`, i, sub.ID), 201, &pay))
	must(t, admin.do("POST", "/payments/"+pay.ID+"/mark-paid", "", 202, nil))
	v := &movingValidator{address: address}
	if !poll(t, 2*time.Minute, 200*time.Millisecond, func() bool {
		var nodes struct {
			Nodes []struct {
				ID             string `json:"id"`
				SubscriptionID string `json:"subscription_id"`
			} `json:"nodes"`
		}
		must(t, customer.do("GET", "/nodes", "", 200, &nodes))
		for _, n := range nodes.Nodes {
			if n.SubscriptionID == sub.ID {
				v.nodeID = n.ID
			}
		}
		return v.nodeID != ""
	}) {
		t.Fatalf("no node for subscription %s", sub.ID)
	}
	return v
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// custodyNode is the node page as an administrator reads it.
type custodyNode struct {
	State     string `json:"state"`
	Endpoints map[string]struct {
		Port int `json:"port"`
	} `json:"endpoints"`
	SigningLeases []struct {
		Key    string `json:"key"`
		Holder struct {
			Incarnation string `json:"incarnation"`
		} `json:"holder"`
		Epoch      uint64    `json:"epoch"`
		ReleasedAt time.Time `json:"released_at"`
	} `json:"signing_leases"`
	LastMigration *struct {
		ID    string `json:"id"`
		Steps []struct {
			Step string `json:"step"`
			Note string `json:"note"`
		} `json:"steps"`
	} `json:"last_migration"`
}

func (v *movingValidator) page(t *testing.T, admin *crashClient) custodyNode {
	var n custodyNode
	if err := admin.do("GET", "/nodes/"+v.nodeID, "", 200, &n); err != nil {
		t.Logf("read node %s: %v", v.nodeID, err) // the appliance may be restarting
	}
	return n
}

func (v *movingValidator) awaitState(t *testing.T, admin *crashClient, state string) {
	t.Helper()
	var n custodyNode
	if !poll(t, 3*time.Minute, 200*time.Millisecond, func() bool { n = v.page(t, admin); return n.State == state }) {
		t.Fatalf("node %s is %s, not %s: %+v", v.nodeID, n.State, state, n.LastMigration)
	}
}

func (v *movingValidator) migrationSteps(t *testing.T, admin *crashClient) int {
	if n := v.page(t, admin); n.LastMigration != nil {
		return len(n.LastMigration.Steps)
	}
	return 0
}

// awaitMoved waits for the node's round-th migration to end: migrated (a
// "done" step) or compensated, and the node signing again. It returns how
// it ended.
func (v *movingValidator) awaitMoved(t *testing.T, admin *crashClient, round int) string {
	t.Helper()
	var n custodyNode
	if !poll(t, 5*time.Minute, 250*time.Millisecond, func() bool {
		n = v.page(t, admin)
		if n.LastMigration == nil || len(n.LastMigration.Steps) == 0 {
			return false
		}
		last := n.LastMigration.Steps[len(n.LastMigration.Steps)-1].Step
		return (last == "done" || last == "compensated") && (n.State == "running" || n.State == "syncing" || n.State == "degraded")
	}) {
		t.Fatalf("round %d: the migration of %s did not end: %s, %+v", round, v.nodeID, n.State, n.LastMigration)
	}
	last := n.LastMigration.Steps[len(n.LastMigration.Steps)-1]
	return last.Step + " (" + last.Note + ")"
}

// awaitBlocks waits for the chain to grow past the height last seen, with
// the customer's key.
func (v *movingValidator) awaitBlocks(t *testing.T, admin *crashClient) {
	t.Helper()
	var last cometStatusReply
	var err error
	if !poll(t, 2*time.Minute, 200*time.Millisecond, func() bool {
		port := v.page(t, admin).Endpoints["rpc"].Port
		if port == 0 {
			return false
		}
		last, err = cometStatus(port)
		return err == nil && last.height() > v.height
	}) {
		t.Fatalf("the chain of %s does not grow past %d: %+v, %v", v.nodeID, v.height, last, err)
	}
	if last.Result.ValidatorInfo.Address != v.address {
		t.Fatalf("node %s signs as %s, the customer's key is %s", v.nodeID, last.Result.ValidatorInfo.Address, v.address)
	}
	v.height = last.height()
}

// assertOneHolderPerKey: each validator's key has one lease, held (not
// released) by the node's current host.
func assertOneHolderPerKey(t *testing.T, admin *crashClient, validators []*movingValidator) {
	t.Helper()
	for _, v := range validators {
		n := v.page(t, admin)
		if len(n.SigningLeases) != 1 || n.SigningLeases[0].Key != "priv_validator_key" || !n.SigningLeases[0].ReleasedAt.IsZero() {
			t.Errorf("node %s has leases %+v; want priv_validator_key held", v.nodeID, n.SigningLeases)
		}
	}
}

// signerWatch samples the hosts' processes every 100 ms and records every
// instant two live cometbft processes signed with one key.
type signerWatch struct {
	dir   string
	done  chan struct{}
	wg    sync.WaitGroup
	looks int
	twice []string
	keys  map[string]string          // home dir → validator address
	homes map[string]map[string]bool // validator address → the homes it signed in
}

func watchSigners(t *testing.T, dir string) *signerWatch {
	w := &signerWatch{dir: dir, done: make(chan struct{}), keys: map[string]string{}, homes: map[string]map[string]bool{}}
	w.wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			w.look()
			select {
			case <-w.done:
				return
			case <-tick.C:
			}
		}
	})
	t.Cleanup(func() { w.stop() })
	return w
}

func (w *signerWatch) stop() []string {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	w.wg.Wait()
	return w.twice
}

// look finds the live cometbft nodes and the key each signs with.
func (w *signerWatch) look() {
	w.looks++
	signers := map[string][]string{} // address → home dirs
	for _, p := range processesOf(w.dir) {
		f := strings.Fields(p.cmdline)
		if len(f) < 4 || filepath.Base(f[0]) != "cometbft" || f[1] != "node" {
			continue
		}
		home := f[len(f)-1]
		if addr := w.address(home); addr != "" {
			signers[addr] = append(signers[addr], home)
			if w.homes[addr] == nil {
				w.homes[addr] = map[string]bool{}
			}
			w.homes[addr][home] = true
		}
	}
	for addr, homes := range signers {
		if len(homes) > 1 {
			w.twice = append(w.twice, fmt.Sprintf("%s at %s signs in %v", addr, time.Now().Format(time.StampMilli), homes))
		}
	}
}

// address is the validator address of the key under home, read once.
func (w *signerWatch) address(home string) string {
	if a, ok := w.keys[home]; ok {
		return a
	}
	_, addr, err := readValidatorKey(filepath.Join(home, "config", "priv_validator_key.json"))
	if err != nil {
		return ""
	}
	w.keys[home] = addr
	return addr
}

// readValidatorKey reads the address a priv_validator_key.json names.
func readValidatorKey(path string) ([]byte, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	var k struct{ Address string }
	if err := json.Unmarshal(b, &k); err != nil || k.Address == "" {
		return nil, "", fmt.Errorf("%s names no address", path)
	}
	return b, k.Address, nil
}
