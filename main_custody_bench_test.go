package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/internal/chains"
)

// BenchmarkValidatorMigration moves one real CometBFT validator whose
// chain data dir holds what the chain wrote, then one holding
// HOODCLOUD_BENCH_DATA_MIB (default 1024) MiB more, side by side, with the
// profile's own 30 s gap:
//
//	go test -run '^$' -bench ValidatorMigration -benchtime 1x -timeout 30m -v .
//
// It reports the migration's parts from its recorded steps (stop, snapshot,
// new host, restore, gap, start) and the signing downtime: the longest
// time between two consecutive blocks of the chain around the move, from
// the block headers (the last block signed on the old host to the first on
// the new).
func BenchmarkValidatorMigration(b *testing.B) {
	withChainClient(b, chains.CometBFT)
	for _, mib := range []int{0, benchDataMiB(b)} {
		b.Run(fmt.Sprintf("data-%dMiB", mib), func(b *testing.B) { benchMigration(b, mib) })
	}
}

func benchMigration(b *testing.B, mib int) {
	cfg := testConfig(b, b.TempDir())
	cfg.DevToken = "bench-admin"
	m := MustOpenMain(b, cfg)
	admin := apiClient{t: b, base: "http://" + m.HTTP.Addr() + "/api/v1", token: cfg.DevToken}
	customer := signUp(b, m, "mover@example.com", 1)
	keyFile, _, _ := customerValidatorKey(b)
	sub := buyCometValidator(b, m, customer, keyFile, "mover", "move")
	node := waitRunning(b, m, sub, 3*time.Minute)
	padChainData(b, node, mib)

	b.ResetTimer()
	for range b.N {
		waitFor(b, time.Minute, "blocks before the move", func() bool { return chainHeight(b, m, node.ID) > 1 })
		before := chainHeight(b, m, node.ID)
		began := time.Now()
		admin.do("POST", "/nodes/"+node.ID+"/migrate", "", 202, nil)
		waitFor(b, 20*time.Minute, "the migration to end", func() bool {
			n, err := m.Store.GetNode(b.Context(), node.ID)
			return err == nil && migrationEnded(n.LastMigration)
		})
		took := time.Since(began)
		b.StopTimer()
		after := chainHeight(b, m, node.ID) + 2
		waitFor(b, time.Minute, "blocks on the new host", func() bool { return chainHeight(b, m, node.ID) >= after })
		n, _ := m.Store.GetNode(b.Context(), node.ID)
		reportSteps(b, n.LastMigration, took)
		down := longestBlockGap(b, m, node.ID, before, after)
		b.ReportMetric(down.Seconds(), "s-signing-down")
		b.Logf("%d MiB moved in %s; signing down %s (blocks %d..%d)", mib, took.Round(time.Millisecond), down.Round(time.Millisecond), before, after)
		b.StartTimer()
	}
}

func benchDataMiB(b *testing.B) int {
	raw := os.Getenv("HOODCLOUD_BENCH_DATA_MIB")
	if raw == "" {
		return 1024
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 0 {
		b.Fatalf("HOODCLOUD_BENCH_DATA_MIB=%q: want a number of MiB", raw)
	}
	return n
}

// padChainData writes mib MiB of random bytes into the chain's data dir,
// as a long-running chain's store would hold.
func padChainData(b *testing.B, n *engine.Node, mib int) {
	f, err := os.Create(filepath.Join(chainDir(n), "cometbft", "data", "bench-padding.bin"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 1<<20)
	rand.Read(block)
	for range mib {
		if _, err := f.Write(block); err != nil {
			b.Fatal(err)
		}
	}
}

func migrationEnded(r engine.MigrationRecord) bool {
	if len(r.Steps) == 0 {
		return false
	}
	last := r.Steps[len(r.Steps)-1].Step
	return last == "done" || last == "compensated"
}

// reportSteps reports how long each part of the migration took: the time
// from the previous recorded step to each step's record.
func reportSteps(b *testing.B, r engine.MigrationRecord, took time.Duration) {
	b.ReportMetric(took.Seconds(), "s-migration")
	for i := 1; i < len(r.Steps); i++ {
		s := r.Steps[i]
		d := s.At.Sub(r.Steps[i-1].At)
		b.Logf("  %-12s +%-8s %s", s.Step, d.Round(time.Millisecond), s.Note)
		switch s.Step {
		case "snapshot", "restore", "provision", "stop-old", "gap", "start":
			b.ReportMetric(d.Seconds(), "s-"+s.Step)
		}
	}
}

// chainHeight is the node's chain height on its RPC port now.
func chainHeight(b *testing.B, m *Main, nodeID string) int {
	n, err := m.Store.GetNode(b.Context(), nodeID)
	if err != nil {
		b.Fatal(err)
	}
	s, err := cometStatus(n.Runtime.Ports["rpc"])
	if err != nil {
		return 0
	}
	return s.height()
}

// longestBlockGap is the longest time between consecutive block headers
// from..to, read from the node's RPC.
func longestBlockGap(b *testing.B, m *Main, nodeID string, from, to int) time.Duration {
	n, _ := m.Store.GetNode(b.Context(), nodeID)
	port := n.Runtime.Ports["rpc"]
	var longest time.Duration
	var prev time.Time
	for h := max(1, from-1); h <= to; h++ {
		at, err := blockTime(port, h)
		if err != nil {
			b.Fatalf("block %d: %v", h, err)
		}
		if !prev.IsZero() && at.Sub(prev) > longest {
			longest = at.Sub(prev)
		}
		prev = at
	}
	return longest
}

func blockTime(port, height int) (time.Time, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/block?height=%d", port, height))
	if err != nil {
		return time.Time{}, err
	}
	defer resp.Body.Close()
	var r struct {
		Result struct {
			Block struct {
				Header struct {
					Time time.Time `json:"time"`
				} `json:"header"`
			} `json:"block"`
		} `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return time.Time{}, err
	}
	return r.Result.Block.Header.Time, nil
}
