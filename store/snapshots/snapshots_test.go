package snapshots

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
)

func openDir(t *testing.T) (*Dir, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "snapshots")
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, dir
}

// put writes data as one snapshot and commits it.
func put(t *testing.T, d *Dir, node, id string, data []byte) {
	t.Helper()
	w, err := d.Create(context.Background(), node, id)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if size, err := w.Commit(); err != nil || size != int64(len(data)) {
		t.Fatalf("commit = %d, %v; want %d", size, err, len(data))
	}
}

func read(t *testing.T, d *Dir, node, id string) []byte {
	t.Helper()
	r, size, err := d.Open(context.Background(), node, id)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil || int64(len(b)) != size {
		t.Fatalf("read %d bytes of %d: %v", len(b), size, err)
	}
	return b
}

// filesUnder lists every file below dir, relative, directories left out.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return err
	})
	return out
}

func TestACommittedSnapshotReadsBackByteForByteFromA0600File(t *testing.T) {
	d, dir := openDir(t)
	data := bytes.Repeat([]byte("chain data "), 100_000)
	put(t, d, "node_a", "snap-1", data)
	if got := read(t, d, "node_a", "snap-1"); !bytes.Equal(got, data) {
		t.Fatal("the snapshot read back differs from what was written")
	}
	fi, err := os.Stat(filepath.Join(dir, "node_a", "snap-1.tar"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file: %v, %v; want mode 0600", fi, err)
	}
	if di, _ := os.Stat(filepath.Join(dir, "node_a")); di.Mode().Perm() != 0o700 {
		t.Errorf("node directory mode %v; want 0700", di.Mode().Perm())
	}
	// A commit of the same id replaces it whole.
	put(t, d, "node_a", "snap-1", []byte("again"))
	if got := read(t, d, "node_a", "snap-1"); string(got) != "again" {
		t.Errorf("after a second commit the snapshot is %d bytes; want the new 5", len(got))
	}
}

func TestNothingIsVisibleBeforeCommitAndAnAbortLeavesNothing(t *testing.T) {
	d, dir := openDir(t)
	ctx := context.Background()
	w, err := d.Create(ctx, "node_a", "snap-1")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("half a snapshot"))
	if _, _, err := d.Open(ctx, "node_a", "snap-1"); !engine.IsCode(err, engine.ENotFound) {
		t.Errorf("open while writing = %v; want not found", err)
	}
	if l, err := d.List(ctx, "node_a"); err != nil || len(l) != 0 {
		t.Errorf("list while writing = %v, %v; want none", l, err)
	}
	w.Abort()
	w.Abort() // twice is harmless
	if files := filesUnder(t, dir); len(files) != 0 {
		t.Errorf("an aborted snapshot left %v", files)
	}
	if _, err := w.Commit(); err == nil {
		t.Error("commit after abort succeeded")
	}
	if _, _, err := d.Open(ctx, "node_a", "snap-1"); !engine.IsCode(err, engine.ENotFound) {
		t.Errorf("open after abort = %v; want not found", err)
	}
}

func TestIDsThatAreNotNamesAreRefusedBeforeAnyIO(t *testing.T) {
	d, dir := openDir(t)
	ctx := context.Background()
	for _, bad := range []string{"", "..", ".", "../x", "a/b", `a\b`, "/abs", ".hidden", "a.tar", "a\x00b", string(bytes.Repeat([]byte("a"), 129))} {
		for _, ids := range [][2]string{{bad, "snap"}, {"node_a", bad}} {
			if _, err := d.Create(ctx, ids[0], ids[1]); !engine.IsCode(err, engine.EInvalid) {
				t.Errorf("Create(%q, %q) = %v; want invalid", ids[0], ids[1], err)
			}
			if _, _, err := d.Open(ctx, ids[0], ids[1]); !engine.IsCode(err, engine.EInvalid) {
				t.Errorf("Open(%q, %q) = %v; want invalid", ids[0], ids[1], err)
			}
			if err := d.Delete(ctx, ids[0], ids[1]); !engine.IsCode(err, engine.EInvalid) {
				t.Errorf("Delete(%q, %q) = %v; want invalid", ids[0], ids[1], err)
			}
		}
		if _, err := d.List(ctx, bad); !engine.IsCode(err, engine.EInvalid) {
			t.Errorf("List(%q) = %v; want invalid", bad, err)
		}
	}
	if files := filesUnder(t, filepath.Dir(dir)); len(files) != 0 {
		t.Errorf("refused ids made %v", files)
	}
}

func TestListDeleteAndOpenOfWhatIsNotThere(t *testing.T) {
	d, _ := openDir(t)
	ctx := context.Background()
	if l, err := d.List(ctx, "node_none"); err != nil || len(l) != 0 {
		t.Fatalf("list of an unknown node = %v, %v; want an empty list", l, err)
	}
	if err := d.Delete(ctx, "node_a", "missing"); err != nil {
		t.Errorf("delete of a missing snapshot = %v", err)
	}
	put(t, d, "node_a", "snap-1", []byte("one"))
	put(t, d, "node_a", "snap-2", []byte("two!"))
	put(t, d, "node_b", "snap-1", []byte("other node"))
	l, err := d.List(ctx, "node_a")
	if err != nil || len(l) != 2 || l[0].SnapshotID != "snap-1" || l[1].Size != 4 || l[1].NodeID != "node_a" {
		t.Fatalf("list = %+v, %v", l, err)
	}
	if err := d.Delete(ctx, "node_a", "snap-1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Open(ctx, "node_a", "snap-1"); !engine.IsCode(err, engine.ENotFound) {
		t.Errorf("open after delete = %v; want not found", err)
	}
	if got := read(t, d, "node_b", "snap-1"); string(got) != "other node" {
		t.Error("deleting one node's snapshot touched another node's")
	}
}

func TestReopeningRemovesWhatACrashLeftHalfWritten(t *testing.T) {
	d, dir := openDir(t)
	ctx := context.Background()
	put(t, d, "node_a", "kept", []byte("whole"))
	w, err := d.Create(ctx, "node_a", "crashed")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("half"))
	d.Close() // the appliance died before commit or abort
	d2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if files := filesUnder(t, dir); len(files) != 1 || files[0] != filepath.Join("node_a", "kept.tar") {
		t.Errorf("after reopening the store holds %v; want only the committed snapshot", files)
	}
}

func TestASymlinkPlantedInTheStoreDoesNotLeadOut(t *testing.T) {
	d, dir := openDir(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "node_evil")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Create(context.Background(), "node_evil", "snap"); err == nil {
		t.Error("a snapshot was created through a symlink out of the store")
	}
	if files := filesUnder(t, outside); len(files) != 0 {
		t.Errorf("files written outside the store: %v", files)
	}
}
