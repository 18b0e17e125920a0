package agent

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// A snapshot archive is a tar stream of the chain data dir's directories
// and regular files (slash-separated paths relative to the dir), then the
// member manifestMember holding the JSON SnapshotManifest: every file's
// size, mode and SHA-256. Both ends stream it: the archive is never held
// whole, only its manifest.

const (
	manifestMember = "SNAPSHOT_MANIFEST"
	// maxManifestSize bounds the one member a restore reads into memory.
	maxManifestSize = 64 << 20
	// copyBufferSize is the buffer files are copied through.
	copyBufferSize = 1 << 20
)

// leftOut is what a snapshot leaves out and a restore never writes: the
// agent's own directory, the key files and the paths a payload excludes,
// each clean and slash-separated; a directory stands for all below it.
type leftOut []string

// newLeftOut checks the payload's exclude paths and adds the key paths of
// the saved configuration.
func newLeftOut(exclude []string, keyPaths map[string]string) (leftOut, error) {
	l := leftOut{hostDir}
	for _, p := range exclude {
		if err := ValidateKeyPath(p); err != nil {
			return nil, permanent(fmt.Sprintf("excluded path %q: %v", p, err))
		}
		l = append(l, path.Clean(filepath.ToSlash(p)))
	}
	for _, p := range keyPaths {
		l = append(l, path.Clean(filepath.ToSlash(p)))
	}
	return l, nil
}

// has reports whether the slash-separated p is left out.
func (l leftOut) has(p string) bool {
	return slices.ContainsFunc(l, func(e string) bool { return p == e || strings.HasPrefix(p, e+"/") })
}

// snapshotEntry is a directory or regular file an archive holds.
type snapshotEntry struct {
	path    string // slash-separated, relative to the chain data dir
	dir     bool
	mode    fs.FileMode // permission bits
	modTime time.Time
}

// listSnapshot walks root in lexical order and returns what an archive
// holds, with the total size of its files. Symlinks, devices, sockets and
// pipes are left out, as is everything l names.
func listSnapshot(root *os.Root, l leftOut) ([]snapshotEntry, int64, error) {
	var entries []snapshotEntry
	var total int64
	err := fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case p == ".":
			return nil
		case l.has(p):
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		case p == manifestMember:
			return permanent(fmt.Sprintf("the chain data dir holds %s, the name of the archive's manifest", manifestMember))
		case !d.IsDir() && !d.Type().IsRegular():
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		entries = append(entries, snapshotEntry{path: p, dir: d.IsDir(), mode: fi.Mode().Perm(), modTime: fi.ModTime()})
		if !d.IsDir() {
			total += fi.Size()
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list the chain data dir: %w", err)
	}
	return entries, total, nil
}

// writeArchive writes the entries of root to w as a snapshot archive and
// returns its manifest; done receives the file bytes archived so far.
func writeArchive(root *os.Root, entries []snapshotEntry, w io.Writer, done func(int64)) (*agentv1.SnapshotManifest, error) {
	tw := tar.NewWriter(w)
	manifest := &agentv1.SnapshotManifest{}
	counter := &byteCounter{report: done}
	buf := make([]byte, copyBufferSize)
	for _, e := range entries {
		if e.dir {
			hdr := &tar.Header{Typeflag: tar.TypeDir, Name: e.path + "/", Mode: int64(e.mode), ModTime: e.modTime}
			if err := tw.WriteHeader(hdr); err != nil {
				return nil, err
			}
			continue
		}
		f, err := archiveFile(root, tw, e, counter, buf)
		if err != nil {
			return nil, err
		}
		manifest.Files = append(manifest.Files, f)
	}
	if err := writeManifest(tw, manifest); err != nil {
		return nil, err
	}
	return manifest, tw.Close()
}

// archiveFile writes one regular file, hashing it on the way.
func archiveFile(root *os.Root, tw *tar.Writer, e snapshotEntry, counter *byteCounter, buf []byte) (*agentv1.SnapshotFile, error) {
	f, err := root.Open(e.path)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", e.path, cause(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("snapshot %s: it is no longer a regular file", e.path)
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: e.path, Size: fi.Size(), Mode: int64(fi.Mode().Perm()), ModTime: fi.ModTime()}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	h := sha256.New()
	counter.w = io.MultiWriter(tw, h)
	n, err := io.CopyBuffer(counter, io.LimitReader(f, fi.Size()), buf)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", e.path, err)
	}
	if n != fi.Size() {
		return nil, fmt.Errorf("snapshot %s: the file changed while it was archived", e.path)
	}
	return &agentv1.SnapshotFile{Path: e.path, Size: uint64(n), Sha256: hex.EncodeToString(h.Sum(nil)), Mode: uint32(fi.Mode().Perm())}, nil
}

func writeManifest(tw *tar.Writer, m *agentv1.SnapshotManifest) error {
	b, err := agentv1.MarshalPayload(m)
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: manifestMember, Size: int64(len(b)), Mode: 0o600}); err != nil {
		return err
	}
	_, err = tw.Write(b)
	return err
}

// byteCounter passes writes to w and reports the running total.
type byteCounter struct {
	w      io.Writer
	n      int64
	report func(int64)
}

func (c *byteCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if c.report != nil {
		c.report(c.n)
	}
	return n, err
}

// restoredFile is a file a restore wrote to its staging dir.
type restoredFile struct {
	size   uint64
	sha256 string
	mode   fs.FileMode
}

// restore extracts one archive into a staging dir and installs it.
type restore struct {
	stage *os.Root // the staging dir
	left  leftOut
	files map[string]restoredFile // by slash-separated path
	dirs  map[string]fs.FileMode
	buf   []byte
}

// stagingDir is where a restore of snapshot id extracts: inside the
// agent's own directory, which no snapshot holds, on the chain data dir's
// filesystem so that installing is renaming.
func stagingDir(id string) string { return path.Join(hostDir, "restore-"+id) }

// restoreArchive extracts the archive r into a staging dir in chainDir,
// checks every file against the manifest, and only then moves the files
// into place, replacing those there. A refused or corrupt archive leaves
// the chain data dir as it was; the error names the path at fault.
func restoreArchive(chainDir, snapshotID string, r io.Reader, l leftOut) (*agentv1.SnapshotResult, error) {
	if err := os.MkdirAll(chainDir, 0o700); err != nil {
		return nil, fmt.Errorf("chain data dir: %w", err)
	}
	root, err := os.OpenRoot(chainDir)
	if err != nil {
		return nil, fmt.Errorf("chain data dir: %w", err)
	}
	defer root.Close()
	staging := stagingDir(snapshotID)
	stage, err := newStaging(root, staging)
	if err != nil {
		return nil, err
	}
	defer func() {
		stage.Close()
		root.RemoveAll(staging)
		root.Remove(hostDir) // when the restore made it
	}()
	rs := &restore{stage: stage, left: l, files: map[string]restoredFile{}, dirs: map[string]fs.FileMode{}, buf: make([]byte, copyBufferSize)}
	manifest, err := rs.extract(r)
	if err != nil {
		return nil, err
	}
	if err := rs.check(manifest); err != nil {
		return nil, err
	}
	if err := rs.install(root, staging); err != nil {
		return nil, err
	}
	return rs.result(snapshotID), nil
}

// newStaging makes an empty staging dir, removing what an interrupted
// restore left there.
func newStaging(root *os.Root, staging string) (*os.Root, error) {
	if err := root.RemoveAll(staging); err != nil {
		return nil, fmt.Errorf("staging dir: %w", err)
	}
	if err := root.MkdirAll(staging, 0o700); err != nil {
		return nil, fmt.Errorf("staging dir: %w", err)
	}
	stage, err := root.OpenRoot(staging)
	if err != nil {
		return nil, fmt.Errorf("staging dir: %w", err)
	}
	return stage, nil
}

// extract writes every member to the staging dir and returns the
// manifest, which must be the last member.
func (rs *restore) extract(r io.Reader) (*agentv1.SnapshotManifest, error) {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, permanent("the snapshot archive ends without its manifest")
		}
		if err != nil {
			return nil, permanent(fmt.Sprintf("the snapshot archive is not a valid tar stream: %v", err))
		}
		if hdr.Name == manifestMember {
			return readManifest(r, tr, hdr)
		}
		if err := rs.extractMember(tr, hdr); err != nil {
			return nil, err
		}
	}
}

// extractMember writes one directory or regular file, refusing any path
// that leaves the chain data dir, is the agent's own or left out.
func (rs *restore) extractMember(tr *tar.Reader, hdr *tar.Header) error {
	p, err := rs.memberPath(hdr.Name)
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := rs.stage.MkdirAll(filepath.FromSlash(p), 0o700); err != nil {
			return permanent(fmt.Sprintf("snapshot directory %q cannot be made: %v", p, cause(err)))
		}
		rs.dirs[p] = fs.FileMode(hdr.Mode).Perm()
		return nil
	case tar.TypeReg:
		return rs.extractFile(tr, hdr, p)
	default:
		return permanent(fmt.Sprintf("snapshot member %q is neither a regular file nor a directory", p))
	}
}

// memberPath is name checked and cleaned.
func (rs *restore) memberPath(name string) (string, error) {
	p := strings.TrimSuffix(name, "/")
	if err := chainPath("snapshot member", p); err != nil {
		return "", err
	}
	p = path.Clean(p)
	if p == "." {
		return "", permanent("a snapshot member names the chain data dir itself")
	}
	if rs.left.has(p) {
		return "", permanent(fmt.Sprintf("snapshot member %q is a path the restore never writes (a key or an excluded path)", p))
	}
	return p, nil
}

func (rs *restore) extractFile(tr *tar.Reader, hdr *tar.Header, p string) error {
	if _, twice := rs.files[p]; twice {
		return permanent(fmt.Sprintf("snapshot member %q appears twice", p))
	}
	name := filepath.FromSlash(p)
	if d := filepath.Dir(name); d != "." {
		if err := rs.stage.MkdirAll(d, 0o700); err != nil {
			return permanent(fmt.Sprintf("snapshot member %q cannot be written: %v", p, cause(err)))
		}
	}
	f, err := rs.stage.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return permanent(fmt.Sprintf("snapshot member %q cannot be written: %v", p, cause(err)))
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(f, h), tr, rs.buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return permanent(fmt.Sprintf("snapshot member %q is cut short", p))
	}
	if err != nil {
		return fmt.Errorf("snapshot member %q: %w", p, err)
	}
	rs.files[p] = restoredFile{size: uint64(n), sha256: hexSum(h), mode: fs.FileMode(hdr.Mode).Perm()}
	return nil
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// readManifest reads the manifest member and checks that nothing follows
// it in the archive; r, the stream under the archive, is read to its end,
// so that a stream that breaks after the archive fails the restore before
// anything is installed.
func readManifest(r io.Reader, tr *tar.Reader, hdr *tar.Header) (*agentv1.SnapshotManifest, error) {
	if hdr.Size > maxManifestSize {
		return nil, permanent(fmt.Sprintf("the snapshot manifest is larger than %d bytes", maxManifestSize))
	}
	b, err := io.ReadAll(tr)
	if err != nil {
		return nil, fmt.Errorf("snapshot manifest: %w", err)
	}
	var m agentv1.SnapshotManifest
	if err := agentv1.UnmarshalPayload(b, &m); err != nil {
		return nil, permanent("the snapshot manifest does not parse: " + err.Error())
	}
	if _, err := tr.Next(); !errors.Is(err, io.EOF) {
		return nil, permanent("the snapshot archive goes on after its manifest")
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return nil, fmt.Errorf("snapshot stream: %w", err)
	}
	return &m, nil
}

// check compares what was extracted with the manifest: a file missing,
// extra, or of another size, digest or mode fails the restore.
func (rs *restore) check(m *agentv1.SnapshotManifest) error {
	listed := map[string]bool{}
	for _, f := range m.GetFiles() {
		p := f.GetPath()
		got, ok := rs.files[p]
		switch {
		case listed[p]:
			return permanent(fmt.Sprintf("the snapshot manifest lists %q twice", p))
		case !ok:
			return permanent(fmt.Sprintf("snapshot file %q is in the manifest but not in the archive", p))
		case got.size != f.GetSize() || got.sha256 != f.GetSha256():
			return permanent(fmt.Sprintf("snapshot file %q does not match its digest in the manifest", p))
		case uint32(got.mode) != f.GetMode():
			return permanent(fmt.Sprintf("snapshot file %q has mode %o in the archive and %o in the manifest", p, got.mode, f.GetMode()))
		}
		listed[p] = true
	}
	for _, p := range slices.Sorted(maps.Keys(rs.files)) {
		if !listed[p] {
			return permanent(fmt.Sprintf("snapshot file %q is in the archive but not in the manifest", p))
		}
	}
	return nil
}

// install moves every checked file from the staging dir over its place in
// the chain data dir, then gives the directories their archived modes
// (last, so that none is closed to the agent while it moves files in).
func (rs *restore) install(root *os.Root, staging string) error {
	for _, p := range slices.Sorted(maps.Keys(rs.files)) {
		name := filepath.FromSlash(p)
		if err := rs.stage.Chmod(name, rs.files[p].mode); err != nil {
			return fmt.Errorf("restore %s: %w", p, cause(err))
		}
		if d := filepath.Dir(name); d != "." {
			if err := root.MkdirAll(d, 0o700); err != nil {
				return fmt.Errorf("restore %s: %w", p, cause(err))
			}
		}
		if err := root.Rename(filepath.Join(staging, name), name); err != nil {
			return fmt.Errorf("restore %s: %w", p, cause(err))
		}
	}
	for _, d := range slices.Sorted(maps.Keys(rs.dirs)) {
		name := filepath.FromSlash(d)
		if err := root.MkdirAll(name, 0o700); err != nil {
			return fmt.Errorf("restore %s: %w", d, cause(err))
		}
		if err := root.Chmod(name, rs.dirs[d]); err != nil {
			return fmt.Errorf("restore %s: %w", d, cause(err))
		}
	}
	return nil
}

func (rs *restore) result(id string) *agentv1.SnapshotResult {
	res := &agentv1.SnapshotResult{SnapshotId: id, Files: uint64(len(rs.files))}
	for _, f := range rs.files {
		res.Bytes += f.size
	}
	return res
}
