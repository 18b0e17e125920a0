package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// snapshotBenchEnv sets the size of the chain data dir
// BenchmarkSnapshotAndRestore moves, in MiB; default 64.
const snapshotBenchEnv = "HOODCLOUD_BENCH_SNAPSHOT_MIB"

// BenchmarkSnapshotAndRestore moves a chain data dir of random files (16
// MiB each, the last smaller) through the whole path: archive and digests
// on the agent, mTLS gRPC to an in-process gateway, the directory snapshot
// store, and back into another chain data dir, checked and installed. It
// reports MB/s of the round trip and of each half. The disk needs three
// times the size free (the data, the stored archive, the restored copy).
//
//	HOODCLOUD_BENCH_SNAPSHOT_MIB=1024 go test -run '^$' -bench SnapshotAndRestore -benchtime 3x ./agent/
func BenchmarkSnapshotAndRestore(b *testing.B) {
	mib := 64
	if v := os.Getenv(snapshotBenchEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("%s=%q is not a positive number of MiB", snapshotBenchEnv, v)
		}
		mib = n
	}
	e := newSnapshotEnv(b)
	a, _ := e.directAgent(b, "node_a")
	source, target := a.cfg.ChainDir, filepath.Join(b.TempDir(), "restored")
	fillChainDir(b, source, mib)
	b.SetBytes(int64(mib) << 20)
	var put, get time.Duration
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("bench-%d", i)
		start := time.Now()
		a.cfg.ChainDir = source
		if _, err := e.runDirect(b, a, engine.CommandSnapshot, &agentv1.SnapshotPayload{SnapshotId: id}); err != nil {
			b.Fatal(err)
		}
		put += time.Since(start)
		start = time.Now()
		a.cfg.ChainDir = target
		if _, err := e.runDirect(b, a, engine.CommandRestoreSnapshot, &agentv1.RestoreSnapshotPayload{SnapshotId: id}); err != nil {
			b.Fatal(err)
		}
		get += time.Since(start)
		b.StopTimer()
		mustOK(b, e.snaps.Delete(b.Context(), "node_a", id))
		b.StartTimer()
	}
	mb := float64(mib) * float64(1<<20) / 1e6 * float64(b.N)
	b.ReportMetric(mb/put.Seconds(), "snapshot-MB/s")
	b.ReportMetric(mb/get.Seconds(), "restore-MB/s")
}

// fillChainDir writes mib MiB of random data in files of 16 MiB at most.
func fillChainDir(b *testing.B, dir string, mib int) {
	b.Helper()
	const fileMiB = 16
	for i := 0; mib > 0; i++ {
		n := min(mib, fileMiB)
		writeRandomFile(b, filepath.Join(dir, "data", fmt.Sprintf("blocks-%04d.db", i)), n<<20)
		mib -= n
	}
}
