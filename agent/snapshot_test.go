package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/agent/simnode"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"github.com/hoodcloud/hoodcloud/store/snapshots"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// snapshotEnv is a control plane whose gateway keeps snapshots in a
// directory.
type snapshotEnv struct {
	*testEnv
	snaps *snapshots.Dir
	dir   string // of the snapshot store
}

func newSnapshotEnv(t testing.TB) *snapshotEnv {
	t.Helper()
	e := &snapshotEnv{testEnv: newTestEnv(t), dir: filepath.Join(t.TempDir(), "snapshots")}
	var err error
	if e.snaps, err = snapshots.Open(e.dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.snaps.Close() })
	e.cfg.Snapshots = e.snaps
	stopGateway(e.gw)
	e.startGateway(t)
	return e
}

// directAgent is an enrolled agent of nodeID whose commands the test runs
// itself (runDirect), without heartbeats; its chain runs nowhere.
func (e *testEnv) directAgent(t testing.TB, nodeID string, tune ...func(*AgentConfig)) (*opsAgent, *testenv.LogBuffer) {
	t.Helper()
	ctx := context.Background()
	tok, err := e.identity.IssueEnrollmentToken(ctx, nodeID, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testenv.LogBuffer{}
	cfg := AgentConfig{GatewayAddr: e.addr, NodeID: nodeID, EnrollmentToken: tok, CAFile: e.caFile, DataDir: t.TempDir(),
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	for _, f := range tune {
		f(&cfg)
	}
	cfg = cfg.withDefaults()
	mustOK(t, os.MkdirAll(cfg.ChainDir, 0o700))
	creds, err := ensureEnrolled(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newOpsAgent(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.gw, err = dialGateway(cfg, creds); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.gw.close)
	return a, logs
}

// queue records a command for a's node as the control plane does.
func (e *testEnv) queue(t testing.TB, nodeID string, typ engine.CommandType, payload proto.Message) *agentv1.Command {
	t.Helper()
	b, err := agentv1.MarshalPayload(payload)
	if err != nil {
		t.Fatal(err)
	}
	c := &engine.Command{NodeID: nodeID, Type: typ, Payload: b}
	if err := engine.EnqueueCommand(context.Background(), e.store, e.cache, c); err != nil {
		t.Fatal(err)
	}
	return &agentv1.Command{Id: c.ID, Type: agentv1.CommandType(typ), Payload: b}
}

// runDirect queues a command and runs it as a's executor would.
func (e *testEnv) runDirect(t testing.TB, a *opsAgent, typ engine.CommandType, payload proto.Message) ([]byte, error) {
	t.Helper()
	return a.execute(context.Background(), e.queue(t, a.cfg.NodeID, typ, payload), func(Progress) {})
}

func snapshotPayload(t *testing.T, id string, exclude ...string) []byte {
	t.Helper()
	b, err := agentv1.MarshalPayload(&agentv1.SnapshotPayload{SnapshotId: id, Exclude: exclude})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func restorePayload(t *testing.T, id string, exclude ...string) []byte {
	t.Helper()
	b, err := agentv1.MarshalPayload(&agentv1.RestoreSnapshotPayload{SnapshotId: id, Exclude: exclude})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// storedSnapshot is the path of a snapshot in the store's directory.
func (e *snapshotEnv) storedSnapshot(node, id string) string {
	return filepath.Join(e.dir, node, id+".tar")
}

func TestAChainSnapshottedOnOneHostIsRestoredOnTheNextWithoutItsKeysAndExcludedPaths(t *testing.T) {
	e := newSnapshotEnv(t)
	e.createNode(t, "node_a")
	cfg := processAgentConfig(e.agentConfig(t, "node_a", nil))
	ra := startAgent(t, cfg)
	configure, _ := agentv1.MarshalPayload(&agentv1.ConfigurePayload{ChainProfileId: "sim",
		Components: []*agentv1.Component{{Name: "simnode", Args: []string{os.Args[0]}, Env: map[string]string{simnodeEnv: cfg.ChainDir}}},
		KeyPaths:   map[string]string{"node_key": simnode.NodeKeyPath}})
	e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandConfigure, configure), engine.CommandCompleted, 10*time.Second)
	e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandStart, nil), engine.CommandCompleted, 10*time.Second)
	waitHealthy(t, cfg.ChainDir)

	exclude := []string{"data/priv_validator_state.json", "data/cache"}
	refused := e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandSnapshot, snapshotPayload(t, "mig-1", exclude...)), engine.CommandFailed, 10*time.Second)
	if !strings.Contains(refused.Error, "STOP") {
		t.Errorf("a snapshot of a running chain failed with %q; want it to say the chain must stop", refused.Error)
	}
	e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandStop, nil), engine.CommandCompleted, 10*time.Second)
	writeFileIn(t, cfg.ChainDir, "data/blockstore.db/000001.sst", "block data: marker-0001 "+strings.Repeat("x", 300_000), 0o640)
	writeFileIn(t, cfg.ChainDir, "data/priv_validator_state.json", `{"height":"7"}`, 0o600)
	writeFileIn(t, cfg.ChainDir, "data/cache/tmp.bin", "cache", 0o600)
	writeFileIn(t, cfg.ChainDir, "bin/tool", "#!/bin/sh\n", 0o755)

	done := e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandSnapshot, snapshotPayload(t, "mig-1", exclude...)), engine.CommandCompleted, 10*time.Second)
	var made agentv1.SnapshotResult
	if err := agentv1.UnmarshalPayload(done.Result, &made); err != nil || made.SnapshotId != "mig-1" || made.Files < 3 {
		t.Fatalf("snapshot result = %v, %v", &made, err)
	}
	if fi, err := os.Stat(e.storedSnapshot("node_a", "mig-1")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stored snapshot: %v, %v; want a 0600 file", fi, err)
	}
	ra.stop(t)

	// The node's next host: another agent, another chain data dir.
	next := processAgentConfig(e.agentConfig(t, "node_a", nil))
	startAgent(t, next)
	done = e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandRestoreSnapshot, restorePayload(t, "mig-1", exclude...)), engine.CommandCompleted, 10*time.Second)
	var restored agentv1.SnapshotResult
	if err := agentv1.UnmarshalPayload(done.Result, &restored); err != nil || !proto.Equal(&restored, &made) {
		t.Errorf("restore result = %v, %v; want %v", &restored, err, &made)
	}
	l, _ := newLeftOut(exclude, map[string]string{"node_key": simnode.NodeKeyPath})
	wantSnapshotOf(t, cfg.ChainDir, next.ChainDir, l)
	if _, err := os.Stat(filepath.Join(next.ChainDir, simnode.NodeKeyPath)); err == nil {
		t.Error("the node key travelled in the snapshot")
	}

	// A byte flipped in the stored archive: the restore fails naming the
	// file, and the chain data dir is as it was.
	writeFileIn(t, next.ChainDir, "data/blockstore.db/000001.sst", "the new host's own data", 0o600)
	before := treeOf(t, next.ChainDir)
	flipByteAfter(t, e.storedSnapshot("node_a", "mig-1"), "marker-0001")
	failed := e.waitStatus(t, e.enqueue(t, "node_a", engine.CommandRestoreSnapshot, restorePayload(t, "mig-1", exclude...)), engine.CommandFailed, 10*time.Second)
	if !strings.Contains(failed.Error, "data/blockstore.db/000001.sst") || !strings.Contains(failed.Error, "digest") {
		t.Errorf("restore of a corrupt snapshot failed with %q; want it to name the file", failed.Error)
	}
	if after := treeOf(t, next.ChainDir); !maps.Equal(before, after) {
		t.Errorf("a failed restore changed the chain data dir:\nbefore %v\nafter  %v", before, after)
	}
}

// flipByteAfter changes the byte that follows marker in the file.
func flipByteAfter(t *testing.T, path, marker string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(marker))
	if i < 0 {
		t.Fatalf("%s does not hold %q", path, marker)
	}
	b[i+len(marker)] ^= 0x01
	mustOK(t, os.WriteFile(path, b, 0o600))
}

// storeArchive puts archive in the store as snapshot id of node.
func (e *snapshotEnv) storeArchive(t *testing.T, node, id string, archive []byte) {
	t.Helper()
	w, err := e.snaps.Create(context.Background(), node, id)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.Write(archive); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestTheAgentRefusesACraftedSnapshotThatLeavesTheChainDir(t *testing.T) {
	e := newSnapshotEnv(t)
	a, _ := e.directAgent(t, "node_a")
	e.storeArchive(t, "node_a", "evil", withManifest(t, regularMember("config/ok.toml", "ok"), regularMember("../../escaped", "x")))
	_, err := e.runDirect(t, a, engine.CommandRestoreSnapshot, &agentv1.RestoreSnapshotPayload{SnapshotId: "evil"})
	wantPermanent(t, "restore", err, "../../escaped")
	for _, p := range []string{filepath.Join(a.cfg.ChainDir, "../../escaped"), filepath.Join(a.cfg.ChainDir, "config/ok.toml")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s was written", p)
		}
	}
}

func TestA64MiBSnapshotStreamsThroughWithoutBeingHeldInMemory(t *testing.T) {
	const size = 64 << 20
	e := newSnapshotEnv(t)
	a, _ := e.directAgent(t, "node_a")
	sum := writeRandomFile(t, filepath.Join(a.cfg.ChainDir, "data/big.db"), size)

	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	peak, stop := watchHeap()
	if _, err := e.runDirect(t, a, engine.CommandSnapshot, &agentv1.SnapshotPayload{SnapshotId: "big"}); err != nil {
		t.Fatal(err)
	}
	b, _ := e.directAgent(t, "node_a") // the next host: enrolling retires a's certificate
	if _, err := e.runDirect(t, b, engine.CommandRestoreSnapshot, &agentv1.RestoreSnapshotPayload{SnapshotId: "big"}); err != nil {
		t.Fatal(err)
	}
	stop()
	// Both ends hold a few chunks at a time, whatever the size: about
	// 13 MiB for 16 MiB as for 128 MiB.
	if grew := int64(peak.Load()) - int64(before.HeapInuse); grew > size/2 {
		t.Errorf("the heap grew by %d MiB while a %d MiB snapshot went through", grew>>20, size>>20)
	}
	if got := fileSum(t, filepath.Join(b.cfg.ChainDir, "data/big.db")); got != sum {
		t.Error("the restored file differs")
	}
}

// watchHeap samples HeapInuse until stop and keeps the highest.
func watchHeap() (*atomic.Uint64, func()) {
	var peak atomic.Uint64
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return &peak, func() { close(done); <-stopped }
}

// writeRandomFile writes size random bytes to path in pieces and returns
// their digest.
func writeRandomFile(t testing.TB, path string, size int) [32]byte {
	t.Helper()
	mustOK(t, os.MkdirAll(filepath.Dir(path), 0o700))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, int64(size)); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

func fileSum(t testing.TB, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// chunkRecorder is a PutSnapshot stream that keeps what is sent.
type chunkRecorder struct {
	grpc.ClientStream
	chunks []*agentv1.SnapshotChunk
}

func (r *chunkRecorder) Send(c *agentv1.SnapshotChunk) error {
	r.chunks = append(r.chunks, c)
	return nil
}

func (r *chunkRecorder) CloseAndRecv() (*agentv1.PutSnapshotResponse, error) {
	return &agentv1.PutSnapshotResponse{}, nil
}

func TestSnapshotChunksCarryAtMostOneMiBAndNameTheirSnapshot(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 3*snapshotChunkSize+snapshotChunkSize/2)
	rec := &chunkRecorder{}
	idle := watchIdle(time.Minute, func() {})
	defer idle.stop()
	named := &agentv1.SnapshotChunk{NodeId: "node_a", CommandId: "cmd_1", SnapshotId: "snap-1"}
	if err := sendChunks(rec, bytes.NewReader(data), named, idle); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for i, c := range rec.chunks {
		if len(c.Data) > snapshotChunkSize || c.NodeId != "node_a" || c.CommandId != "cmd_1" || c.SnapshotId != "snap-1" {
			t.Errorf("chunk %d: %d bytes for %s/%s/%s", i, len(c.Data), c.NodeId, c.CommandId, c.SnapshotId)
		}
		got = append(got, c.Data...)
	}
	if len(rec.chunks) != 4 || !bytes.Equal(got, data) {
		t.Errorf("%d chunks carrying %d bytes; want 4 carrying the %d", len(rec.chunks), len(got), len(data))
	}
}

func TestTheGatewayStoresASnapshotOnlyFromTheRunningSnapshotCommandNamingIt(t *testing.T) {
	e := newSnapshotEnv(t)
	a, _ := e.directAgent(t, "node_a")
	other, _ := e.directAgent(t, "node_b")
	snap := e.queue(t, "node_a", engine.CommandSnapshot, &agentv1.SnapshotPayload{SnapshotId: "snap-1"})
	restore := e.queue(t, "node_a", engine.CommandRestoreSnapshot, &agentv1.RestoreSnapshotPayload{SnapshotId: "snap-1"})
	finished := e.queue(t, "node_a", engine.CommandSnapshot, &agentv1.SnapshotPayload{SnapshotId: "snap-1"})
	e.finishCommand(t, finished.Id)
	chunk := func(node, cmd, id string) *agentv1.SnapshotChunk {
		return &agentv1.SnapshotChunk{NodeId: node, CommandId: cmd, SnapshotId: id, Data: []byte("archive")}
	}
	tests := []struct {
		name   string
		client *opsAgent
		chunks []*agentv1.SnapshotChunk
		want   codes.Code
	}{
		{"another snapshot than the payload's", a, []*agentv1.SnapshotChunk{chunk("node_a", snap.Id, "snap-2")}, codes.PermissionDenied},
		{"a RESTORE_SNAPSHOT command", a, []*agentv1.SnapshotChunk{chunk("node_a", restore.Id, "snap-1")}, codes.PermissionDenied},
		{"a finished command", a, []*agentv1.SnapshotChunk{chunk("node_a", finished.Id, "snap-1")}, codes.PermissionDenied},
		{"another node's certificate", other, []*agentv1.SnapshotChunk{chunk("node_a", snap.Id, "snap-1")}, codes.PermissionDenied},
		{"another node's command", other, []*agentv1.SnapshotChunk{chunk("node_b", snap.Id, "snap-1")}, codes.NotFound},
		{"a later chunk of another snapshot", a, []*agentv1.SnapshotChunk{chunk("node_a", snap.Id, "snap-1"), chunk("node_a", snap.Id, "snap-2")}, codes.InvalidArgument},
		{"a later chunk of another node", a, []*agentv1.SnapshotChunk{chunk("node_a", snap.Id, "snap-1"), chunk("node_b", snap.Id, "snap-1")}, codes.PermissionDenied},
		{"no chunk", a, nil, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := putChunks(context.Background(), tt.client, tt.chunks)
			if status.Code(err) != tt.want {
				t.Errorf("PutSnapshot = %v; want %s", err, tt.want)
			}
		})
	}
	// A stream cut before its end leaves nothing either.
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := a.gw.rpc().PutSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, stream.Send(chunk("node_a", snap.Id, "snap-1")))
	cancel()
	_, _ = stream.CloseAndRecv()
	waitFor(t, time.Second, "the cut stream to be aborted", func() bool { return partialFiles(t, e.dir) == 0 })
	if l, err := e.snaps.List(context.Background(), "node_a"); err != nil || len(l) != 0 {
		t.Errorf("refused streams stored %v, %v", l, err)
	}

	// The honest stream is stored, and read back only for a RESTORE_SNAPSHOT.
	if resp, err := putChunks(context.Background(), a, []*agentv1.SnapshotChunk{chunk("node_a", snap.Id, "snap-1")}); err != nil || resp.GetSize() != 7 {
		t.Fatalf("PutSnapshot = %v, %v", resp, err)
	}
	if _, err := getAll(a, &agentv1.GetSnapshotRequest{NodeId: "node_a", CommandId: snap.Id, SnapshotId: "snap-1"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("GetSnapshot for a SNAPSHOT command = %v; want permission denied", err)
	}
	if _, err := getAll(other, &agentv1.GetSnapshotRequest{NodeId: "node_a", CommandId: restore.Id, SnapshotId: "snap-1"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("GetSnapshot by another node = %v; want permission denied", err)
	}
	if got, err := getAll(a, &agentv1.GetSnapshotRequest{NodeId: "node_a", CommandId: restore.Id, SnapshotId: "snap-1"}); err != nil || string(got) != "archive" {
		t.Errorf("GetSnapshot = %q, %v", got, err)
	}
}

// finishCommand marks a command completed in the store.
func (e *testEnv) finishCommand(t testing.TB, id string) {
	t.Helper()
	c, err := e.store.GetCommand(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	c.Status, c.FinishedAt = engine.CommandCompleted, time.Now().UTC()
	mustOK(t, e.store.UpdateCommand(context.Background(), c))
}

func putChunks(ctx context.Context, a *opsAgent, chunks []*agentv1.SnapshotChunk) (*agentv1.PutSnapshotResponse, error) {
	stream, err := a.gw.rpc().PutSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range chunks {
		if err := stream.Send(c); err != nil {
			break // the gateway ended the stream: CloseAndRecv says why
		}
	}
	return stream.CloseAndRecv()
}

func getAll(a *opsAgent, req *agentv1.GetSnapshotRequest) ([]byte, error) {
	stream, err := a.gw.rpc().GetSnapshot(context.Background(), req)
	if err != nil {
		return nil, err
	}
	var out []byte
	for {
		c, err := stream.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c.Data...)
	}
}

// partialFiles counts the snapshots being written in the store.
func partialFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	for p := range treeOf(t, dir) {
		if strings.Contains(p, ".partial-") {
			n++
		}
	}
	return n
}

func TestARestoreOfASnapshotNeverStoredFailsForGood(t *testing.T) {
	e := newSnapshotEnv(t)
	a, _ := e.directAgent(t, "node_a")
	_, err := e.runDirect(t, a, engine.CommandRestoreSnapshot, &agentv1.RestoreSnapshotPayload{SnapshotId: "missing"})
	wantPermanent(t, "restore", err, "not found")
}

func TestAGatewayWithoutASnapshotStoreRefusesSnapshotsForGood(t *testing.T) {
	e := newTestEnv(t)
	a, _ := e.directAgent(t, "node_a")
	writeFileIn(t, a.cfg.ChainDir, "data/x", "x", 0o600)
	_, err := e.runDirect(t, a, engine.CommandSnapshot, &agentv1.SnapshotPayload{SnapshotId: "snap-1"})
	wantPermanent(t, "snapshot", err, "stores no snapshots")
	_, err = e.runDirect(t, a, engine.CommandSnapshot, &agentv1.SnapshotPayload{SnapshotId: "../x"})
	wantPermanent(t, "snapshot of a bad id", err, "snapshot id")
}

func TestASnapshotIsMadeAgainWhenTheGatewayComesBack(t *testing.T) {
	e := newSnapshotEnv(t)
	a, logs := e.directAgent(t, "node_a", func(c *AgentConfig) { c.MinBackoff, c.MaxBackoff = 200*time.Millisecond, time.Second })
	writeFileIn(t, a.cfg.ChainDir, "data/x", "chain data", 0o600)
	cmd := e.queue(t, "node_a", engine.CommandSnapshot, &agentv1.SnapshotPayload{SnapshotId: "snap-1"})
	stopGateway(e.gw) // the appliance restarts
	done := make(chan error, 1)
	go func() {
		_, err := a.execute(context.Background(), cmd, func(Progress) {})
		done <- err
	}()
	waitFor(t, 5*time.Second, "the transfer to be interrupted", func() bool {
		return strings.Contains(logs.String(), "snapshot transfer interrupted")
	})
	e.startGateway(t)
	if err := <-done; err != nil {
		t.Fatalf("snapshot after the gateway came back: %v", err)
	}
	if l, err := e.snaps.List(context.Background(), "node_a"); err != nil || len(l) != 1 {
		t.Errorf("stored snapshots = %v, %v; want one", l, err)
	}
}

func TestSnapshotStreamsNeedTheNodesCurrentCertificate(t *testing.T) {
	e := newSnapshotEnv(t)
	old, _ := e.directAgent(t, "node_a")
	snap := e.queue(t, "node_a", engine.CommandSnapshot, &agentv1.SnapshotPayload{SnapshotId: "snap-1"})
	restore := e.queue(t, "node_a", engine.CommandRestoreSnapshot, &agentv1.RestoreSnapshotPayload{SnapshotId: "snap-1"})
	chunks := []*agentv1.SnapshotChunk{{NodeId: "node_a", CommandId: snap.Id, SnapshotId: "snap-1", Data: []byte("archive")}}
	get := &agentv1.GetSnapshotRequest{NodeId: "node_a", CommandId: restore.Id, SnapshotId: "snap-1"}

	// Without a certificate.
	anonymous := *old.gw.credentials()
	anonymous.cert.PrivateKey = nil
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(anonymous.tlsConfig("127.0.0.1"))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := agentv1.NewAgentServiceClient(conn).PutSnapshot(context.Background())
	if err == nil {
		_ = stream.Send(chunks[0])
		_, err = stream.CloseAndRecv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("PutSnapshot without a certificate = %v; want unauthenticated", err)
	}

	// With a certificate the node's next enrolment superseded.
	e.directAgent(t, "node_a")
	waitFor(t, time.Second, "the gateway's cached registration to expire", func() bool {
		_, err := getAll(old, get) // not found while the old certificate passes
		return status.Code(err) == codes.PermissionDenied
	})
	if _, err := putChunks(context.Background(), old, chunks); status.Code(err) != codes.PermissionDenied {
		t.Errorf("PutSnapshot with a superseded certificate = %v; want permission denied", err)
	}
	if l, _ := e.snaps.List(context.Background(), "node_a"); len(l) != 0 {
		t.Errorf("refused streams stored %v", l)
	}
}
