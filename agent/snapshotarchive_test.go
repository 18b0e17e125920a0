package agent

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// treeEntry is what a test compares of one path in a directory tree.
type treeEntry struct {
	kind   string // "file", "dir" or "symlink"
	mode   fs.FileMode
	sha256 string
}

// tree maps every path below dir (slash-separated) to its entry.
func treeOf(t *testing.T, dir string) map[string]treeEntry {
	t.Helper()
	out := map[string]treeEntry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := treeEntry{kind: "file", mode: fi.Mode().Perm()}
		switch {
		case fi.IsDir():
			e.kind = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			e.kind, e.mode = "symlink", 0
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			e.sha256 = hex.EncodeToString(sum[:])
		default:
			e.kind = "special"
		}
		out[filepath.ToSlash(rel)] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// write makes a file with its directories.
func writeFileIn(t testing.TB, dir, rel, content string, mode fs.FileMode) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// snapshotChainDir lays out a chain data dir as a stopped chain leaves it:
// data of several modes, a key file, paths to exclude, the agent's own
// directory, symlinks (one leading out) and a pipe.
func snapshotChainDir(t *testing.T) string {
	t.Helper()
	outside := t.TempDir()
	chain := filepath.Join(t.TempDir(), "chain")
	writeFileIn(t, outside, "secret", outsideSecret, 0o600)
	writeFileIn(t, chain, "config/app.toml", "moniker = \"a\"\n", 0o644)
	writeFileIn(t, chain, "config/node_key.json", `{"priv_key":"the node key"}`, 0o600)
	writeFileIn(t, chain, "data/blockstore.db/000001.sst", strings.Repeat("block data ", 10_000), 0o640)
	writeFileIn(t, chain, "data/priv_validator_state.json", `{"height":"7"}`, 0o600)
	writeFileIn(t, chain, "data/cache/tmp.bin", "cache", 0o600)
	writeFileIn(t, chain, "bin/tool", "#!/bin/sh\n", 0o755)
	writeFileIn(t, chain, ".hoodcloud/ports.json", `{"p2p":26656}`, 0o600)
	writeFileIn(t, chain, "empty.txt", "", 0o444)
	for _, dir := range []string{"data/empty"} {
		if err := os.MkdirAll(filepath.Join(chain, dir), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(chain, "data"), 0o750); err != nil {
		t.Fatal(err)
	}
	mustOK(t, os.Symlink("config/app.toml", filepath.Join(chain, "inner-link")))
	mustOK(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(chain, "outer-link")))
	mustOK(t, syscall.Mkfifo(filepath.Join(chain, "data/pipe"), 0o600))
	return chain
}

func mustOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// testLeftOut is what the tests leave out: a key file, a state file and a
// cache directory.
func testLeftOut(t testing.TB) leftOut {
	t.Helper()
	l, err := newLeftOut([]string{"data/priv_validator_state.json", "data/cache"}, map[string]string{"node_key": "config/node_key.json"})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// archiveOf is the snapshot archive of chain, made in memory (small
// trees only).
func archiveOf(t testing.TB, chain string, l leftOut) []byte {
	t.Helper()
	root, err := os.OpenRoot(chain)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	entries, _, err := listSnapshot(root, l)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := writeArchive(root, entries, &buf, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// wantSnapshotOf checks that restored holds exactly what a snapshot of
// chain carries: every directory and regular file, byte for byte and
// mode for mode, but what l leaves out (the agent's own dir among them)
// and what is neither.
func wantSnapshotOf(t *testing.T, chain, restored string, l leftOut) {
	t.Helper()
	want := treeOf(t, chain)
	for p, e := range want {
		if e.kind == "symlink" || e.kind == "special" || l.has(p) {
			delete(want, p)
		}
	}
	got := treeOf(t, restored)
	for _, p := range slices.Sorted(maps.Keys(want)) {
		if got[p] != want[p] {
			t.Errorf("%s restored as %+v; want %+v", p, got[p], want[p])
		}
	}
	for _, p := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[p]; !ok {
			t.Errorf("%s restored; the snapshot must not carry it", p)
		}
	}
}

func TestASnapshotRestoredElsewhereIsTheChainDirByteForByteWithoutKeysAndExcludedPaths(t *testing.T) {
	chain := snapshotChainDir(t)
	archive := archiveOf(t, chain, testLeftOut(t))
	restored := filepath.Join(t.TempDir(), "chain")
	res, err := restoreArchive(restored, "snap-1", bytes.NewReader(archive), testLeftOut(t))
	if err != nil {
		t.Fatal(err)
	}
	wantSnapshotOf(t, chain, restored, testLeftOut(t))
	if res.GetSnapshotId() != "snap-1" || res.GetFiles() != 4 || res.GetBytes() != uint64(len("moniker = \"a\"\n")+len(strings.Repeat("block data ", 10_000))+len("#!/bin/sh\n")) {
		t.Errorf("result = %v", res)
	}
	if bytes.Contains(archive, []byte("the node key")) || bytes.Contains(archive, []byte(outsideSecret)) {
		t.Error("the archive holds a key file or what a symlink points to")
	}
}

func TestARestoreReplacesFilesAndKeepsTheOthers(t *testing.T) {
	chain := snapshotChainDir(t)
	archive := archiveOf(t, chain, testLeftOut(t))
	target := filepath.Join(t.TempDir(), "chain")
	writeFileIn(t, target, "config/app.toml", "stale", 0o600)
	writeFileIn(t, target, "config/node_key.json", "the new host's key", 0o600)
	if _, err := restoreArchive(target, "snap-1", bytes.NewReader(archive), testLeftOut(t)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(target, "config/app.toml")); string(b) != "moniker = \"a\"\n" {
		t.Errorf("config/app.toml = %q; want the snapshot's", b)
	}
	if b, _ := os.ReadFile(filepath.Join(target, "config/node_key.json")); string(b) != "the new host's key" {
		t.Error("a key file of the host was touched")
	}
	if _, err := os.Stat(filepath.Join(target, stagingDir("snap-1"))); err == nil {
		t.Error("the staging dir is left behind")
	}
}

// tarMember is one member of a crafted archive.
type tarMember struct {
	name, body string
	typ        byte
	mode       int64
	link       string
}

func regularMember(name, body string) tarMember {
	return tarMember{name: name, body: body, typ: tar.TypeReg, mode: 0o600}
}

// manifestOf lists the regular members, as an honest agent would.
func manifestOf(t testing.TB, members ...tarMember) tarMember {
	t.Helper()
	m := &agentv1.SnapshotManifest{}
	for _, f := range members {
		if f.typ == tar.TypeReg {
			sum := sha256.Sum256([]byte(f.body))
			m.Files = append(m.Files, &agentv1.SnapshotFile{Path: f.name, Size: uint64(len(f.body)), Sha256: hex.EncodeToString(sum[:]), Mode: uint32(f.mode)})
		}
	}
	b, err := agentv1.MarshalPayload(m)
	if err != nil {
		t.Fatal(err)
	}
	return regularMember(manifestMember, string(b))
}

func tarOf(t testing.TB, members ...tarMember) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		hdr := &tar.Header{Name: m.name, Typeflag: m.typ, Mode: m.mode, Size: int64(len(m.body)), Linkname: m.link}
		if m.typ != tar.TypeReg {
			hdr.Size = 0
		}
		mustOK(t, tw.WriteHeader(hdr))
		if _, err := io.WriteString(tw, m.body); m.typ == tar.TypeReg && err != nil {
			t.Fatal(err)
		}
	}
	mustOK(t, tw.Close())
	return buf.Bytes()
}

// withManifest is members followed by their honest manifest.
func withManifest(t testing.TB, members ...tarMember) []byte {
	return tarOf(t, append(members, manifestOf(t, members...))...)
}

// wantRefusedRestore restores archive into a chain dir holding a file and
// checks that it fails for good, naming mention, with the chain data dir
// and what lies beside it as they were.
func wantRefusedRestore(t *testing.T, archive []byte, mention string) {
	t.Helper()
	parent := t.TempDir()
	chain := filepath.Join(parent, "chain")
	writeFileIn(t, chain, "config/app.toml", "kept", 0o644)
	before := treeOf(t, parent)
	_, err := restoreArchive(chain, "snap-1", bytes.NewReader(archive), testLeftOut(t))
	wantPermanent(t, "restore", err, mention)
	after := treeOf(t, parent)
	if !maps.Equal(before, after) {
		t.Errorf("a refused restore changed the directory: before %v, after %v", before, after)
	}
}

func TestACraftedArchiveNeverWritesOutsideTheChainDirNorWhatTheRestoreLeavesOut(t *testing.T) {
	tests := []struct {
		name    string
		member  tarMember
		mention string
	}{
		{"parent", regularMember("../escaped", "x"), "../escaped"},
		{"parent inside", regularMember("data/../../escaped", "x"), "data/../../escaped"},
		{"absolute", regularMember("/tmp/escaped", "x"), "/tmp/escaped"},
		{"backslash", regularMember(`data\..\..\escaped`, "x"), `data\\..\\..\\escaped`},
		{"the agent's own dir", regularMember(".hoodcloud/bin/evil", "x"), ".hoodcloud/bin/evil"},
		{"a key file", regularMember("config/node_key.json", "a planted key"), "config/node_key.json"},
		{"an excluded file", regularMember("data/priv_validator_state.json", `{"height":"0"}`), "data/priv_validator_state.json"},
		{"inside an excluded dir", regularMember("data/cache/x", "x"), "data/cache/x"},
		{"the chain dir itself", tarMember{name: "./", typ: tar.TypeDir, mode: 0o777}, "chain data dir itself"},
		{"a symlink", tarMember{name: "link", typ: tar.TypeSymlink, link: "/etc/passwd"}, `"link"`},
		{"a hard link", tarMember{name: "hard", typ: tar.TypeLink, link: "/etc/passwd"}, `"hard"`},
		{"a device", tarMember{name: "dev", typ: tar.TypeChar, mode: 0o600}, `"dev"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantRefusedRestore(t, withManifest(t, regularMember("config/ok.toml", "ok"), tt.member), tt.mention)
		})
	}
}

func TestARestoreChecksEveryFileAgainstTheManifest(t *testing.T) {
	a, b := regularMember("data/a.db", "the first file"), regularMember("data/b.db", "the second file")
	corrupt := withManifest(t, a, b)
	i := bytes.Index(corrupt, []byte("the second file"))
	corrupt[i] ^= 0x01
	badMode := manifestOf(t, a, b)
	badMode.body = strings.Replace(badMode.body, `"mode":384`, `"mode":420`, 1)
	tests := []struct {
		name    string
		archive []byte
		mention string
	}{
		{"a flipped byte", corrupt, `"data/b.db" does not match its digest`},
		{"no manifest", tarOf(t, a, b), "without its manifest"},
		{"a file the manifest lacks", tarOf(t, a, b, manifestOf(t, a)), `"data/b.db" is in the archive but not in the manifest`},
		{"a file the archive lacks", tarOf(t, a, manifestOf(t, a, b)), `"data/b.db" is in the manifest but not in the archive`},
		{"another mode", tarOf(t, a, b, badMode), "mode"},
		{"a file twice", tarOf(t, a, a, manifestOf(t, a)), `"data/a.db" appears twice`},
		{"members after the manifest", tarOf(t, a, manifestOf(t, a), b), "after its manifest"},
		{"a manifest that does not parse", tarOf(t, a, regularMember(manifestMember, "{")), "manifest does not parse"},
		{"an archive cut in a file", corrupt[:i+5], `"data/b.db" is cut short`},
		{"an archive cut in a header", corrupt[:1024+100], "not a valid tar stream"},
		{"an archive cut after a file", corrupt[:1024], "without its manifest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantRefusedRestore(t, tt.archive, tt.mention) })
	}
}

func TestExcludedPathsThatLeaveTheChainDirAreRefused(t *testing.T) {
	for _, p := range []string{"../x", "/etc", "", `a\b`} {
		_, err := newLeftOut([]string{p}, nil)
		wantPermanent(t, "exclude "+p, err, "excluded path")
	}
}

func TestASnapshotRefusesAChainFileNamedLikeItsManifest(t *testing.T) {
	chain := t.TempDir()
	writeFileIn(t, chain, manifestMember, "chain data", 0o600)
	root, err := os.OpenRoot(chain)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	_, _, err = listSnapshot(root, nil)
	wantPermanent(t, "snapshot", err, manifestMember)
}

// FuzzRestoreArchive: whatever the gateway sends, a restore never panics
// and never writes beside the chain data dir.
func FuzzRestoreArchive(f *testing.F) {
	f.Add(withManifest(f, regularMember("config/app.toml", "moniker"), tarMember{name: "data/", typ: tar.TypeDir, mode: 0o750}))
	f.Add(withManifest(f, regularMember("../escaped", "x")))
	f.Add(tarOf(f, regularMember("data/a", "a")))
	f.Add([]byte("not an archive"))
	f.Fuzz(func(t *testing.T, archive []byte) {
		parent := t.TempDir()
		chain := filepath.Join(parent, "chain")
		_, _ = restoreArchive(chain, "fuzz", bytes.NewReader(archive), testLeftOut(t))
		entries, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "chain" {
				t.Fatalf("the restore wrote %s beside the chain data dir", e.Name())
			}
		}
		if _, err := os.Stat(filepath.Join(chain, stagingDir("fuzz"))); err == nil {
			t.Fatal("the staging dir is left behind")
		}
	})
}
