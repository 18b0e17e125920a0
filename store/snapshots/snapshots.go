// Package snapshots is the engine.SnapshotStore of the appliance: a
// directory holding <node>/<snapshot>.tar, files 0600 in directories 0700.
// A snapshot being written is a hidden partial file beside its final name,
// renamed over it on commit, so a reader sees a whole snapshot or none.
package snapshots

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/hoodcloud/hoodcloud/engine"
)

const (
	suffix        = ".tar"
	partialMarker = ".partial-" // in the name of a snapshot not yet committed
)

// Dir is an engine.SnapshotStore in one directory, reached through
// os.Root so that nothing in it (a symlink planted there, say) leads out.
type Dir struct {
	root *os.Root
}

var _ engine.SnapshotStore = (*Dir)(nil)

// Open makes dir (0700) if needed and removes the partial files a crash
// left: the appliance is the directory's only writer, and nothing writes
// before it opened the store.
func Open(dir string) (*Dir, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	d := &Dir{root: root}
	if err := d.removePartials(); err != nil {
		root.Close()
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	return d, nil
}

// Close releases the directory; the store is unusable afterwards.
func (d *Dir) Close() error { return d.root.Close() }

// removePartials removes every uncommitted snapshot.
func (d *Dir) removePartials() error {
	return fs.WalkDir(d.root.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() && strings.Contains(e.Name(), partialMarker) {
			return d.root.Remove(p)
		}
		return nil
	})
}

// Create starts a partial file beside the snapshot's name.
func (d *Dir) Create(ctx context.Context, nodeID, snapshotID string) (engine.SnapshotWriter, error) {
	if err := checkIDs(ctx, nodeID, snapshotID); err != nil {
		return nil, err
	}
	if err := d.root.Mkdir(nodeID, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	final := snapshotPath(nodeID, snapshotID)
	tmp := path.Join(nodeID, "."+snapshotID+suffix+partialMarker+randomSuffix())
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	return &writer{root: d.root, f: f, tmp: tmp, final: final, dir: nodeID}, nil
}

// Open returns the committed snapshot.
func (d *Dir) Open(ctx context.Context, nodeID, snapshotID string) (io.ReadCloser, int64, error) {
	if err := checkIDs(ctx, nodeID, snapshotID); err != nil {
		return nil, 0, err
	}
	f, err := d.root.Open(snapshotPath(nodeID, snapshotID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, engine.Errorf(engine.ENotFound, "snapshot %s of node %s not found", snapshotID, nodeID)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot store: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("snapshot store: %w", err)
	}
	return f, fi.Size(), nil
}

// Delete removes the snapshot if it is there.
func (d *Dir) Delete(ctx context.Context, nodeID, snapshotID string) error {
	if err := checkIDs(ctx, nodeID, snapshotID); err != nil {
		return err
	}
	if err := d.root.Remove(snapshotPath(nodeID, snapshotID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("snapshot store: %w", err)
	}
	return nil
}

// List reads the node's directory; partial files are not snapshots.
func (d *Dir) List(ctx context.Context, nodeID string) ([]engine.SnapshotInfo, error) {
	if err := checkIDs(ctx, nodeID); err != nil {
		return nil, err
	}
	f, err := d.root.Open(nodeID)
	if errors.Is(err, fs.ErrNotExist) {
		return []engine.SnapshotInfo{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	out := []engine.SnapshotInfo{}
	for _, e := range entries {
		if info, ok := snapshotInfo(nodeID, e); ok {
			out = append(out, info)
		}
	}
	slices.SortFunc(out, func(a, b engine.SnapshotInfo) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.SnapshotID, b.SnapshotID)
	})
	return out, nil
}

// snapshotInfo describes a committed snapshot's file; ok is false for
// anything else.
func snapshotInfo(nodeID string, e fs.DirEntry) (engine.SnapshotInfo, bool) {
	id, isTar := strings.CutSuffix(e.Name(), suffix)
	if !isTar || !e.Type().IsRegular() || !engine.ValidSnapshotName(id) {
		return engine.SnapshotInfo{}, false
	}
	fi, err := e.Info()
	if err != nil { // removed meanwhile
		return engine.SnapshotInfo{}, false
	}
	return engine.SnapshotInfo{NodeID: nodeID, SnapshotID: id, Size: fi.Size(), CreatedAt: fi.ModTime().UTC()}, true
}

func snapshotPath(nodeID, snapshotID string) string { return path.Join(nodeID, snapshotID+suffix) }

// checkIDs refuses ids that are not names, before any I/O.
func checkIDs(ctx context.Context, ids ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		if !engine.ValidSnapshotName(id) {
			return engine.Errorf(engine.EInvalid, "%q is not a valid node or snapshot id", id)
		}
	}
	return nil
}

func randomSuffix() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// writer is a snapshot being written to its partial file.
type writer struct {
	root       *os.Root
	f          *os.File
	tmp, final string
	dir        string
	size       int64
	done       bool
}

func (w *writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("snapshot store: write after commit or abort")
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	return n, err
}

// Commit syncs the partial file, renames it over the final name and syncs
// the directory, so a committed snapshot survives a crash.
func (w *writer) Commit() (int64, error) {
	if w.done {
		return 0, errors.New("snapshot store: commit after commit or abort")
	}
	w.done = true
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.root.Rename(w.tmp, w.final)
	}
	if err != nil {
		w.root.Remove(w.tmp)
		return 0, fmt.Errorf("snapshot store: commit: %w", err)
	}
	if err := syncDir(w.root, w.dir); err != nil {
		w.root.Remove(w.final) // not durable: not there
		return 0, fmt.Errorf("snapshot store: commit: %w", err)
	}
	return w.size, nil
}

func (w *writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	w.root.Remove(w.tmp)
}

func syncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
