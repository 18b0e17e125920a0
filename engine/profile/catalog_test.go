package profile_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hoodcloud/hoodcloud/internal/testenv"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
)

// profileYAML is testdata/valid.yaml with another id and version.
func profileYAML(t testing.TB, id, version string) string {
	t.Helper()
	doc := edit(t, validYAML(t), "id: test-chain", "id: "+id)
	return edit(t, doc, `version: "1"`, fmt.Sprintf("version: %q", version))
}

// writeFile replaces name whole (write, then rename), so a watcher never
// reads it half-written: a half-written file is another set, rejected on
// its own.
func writeFile(t testing.TB, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func defaults(t testing.TB) profile.Source {
	t.Helper()
	return profile.Source{Name: "assets", FS: fstest.MapFS{
		"alpha.yaml":  {Data: []byte(profileYAML(t, "alpha", "1"))},
		"beta.yaml":   {Data: []byte(profileYAML(t, "beta", "1"))},
		"README.md":   {Data: []byte("not a profile")},
		".#beta.yaml": {Data: []byte("an editor's lock file")},
		"old/x.yaml":  {Data: []byte("not at the root")},
	}}
}

func configDir(t testing.TB) (string, profile.Source) {
	t.Helper()
	dir := t.TempDir()
	return dir, profile.Source{Name: dir, FS: os.DirFS(dir)}
}

func mustLoad(t testing.TB, sources ...profile.Source) *profile.Catalog {
	t.Helper()
	c, err := profile.LoadCatalog(sources...)
	if err != nil {
		t.Fatalf("load catalog: %v", err)
	}
	return c
}

// versions renders the catalog as "id@version(source)" in list order.
func versions(c *profile.Catalog) string {
	var out []string
	for _, p := range c.List() {
		out = append(out, fmt.Sprintf("%s@%s(%s)", p.ID, p.Version, p.Source))
	}
	return strings.Join(out, " ")
}

func TestCatalogConfigDirOverridesDefaultsByID(t *testing.T) {
	dir, cfg := configDir(t)
	writeFile(t, dir, "my-beta.yml", profileYAML(t, "beta", "2")) // a different file name: ids decide
	writeFile(t, dir, "gamma.yaml", profileYAML(t, "gamma", "1"))
	c := mustLoad(t, defaults(t), cfg)
	want := fmt.Sprintf("alpha@1(assets) beta@2(%s) gamma@1(%s)", dir, dir)
	if got := versions(c); got != want {
		t.Fatalf("catalog = %s\nwant      %s", got, want)
	}
}

func TestCatalogWithoutConfigDirServesDefaults(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent")
	c := mustLoad(t, defaults(t), profile.Source{Name: missing, FS: os.DirFS(missing)}, profile.Source{Name: "nil"})
	if got := versions(c); got != "alpha@1(assets) beta@1(assets)" {
		t.Fatalf("catalog = %s", got)
	}
}

func TestCatalogGet(t *testing.T) {
	c := mustLoad(t, defaults(t))
	if p, err := c.Get("beta"); err != nil || p.ID != "beta" {
		t.Fatalf("Get(beta) = %v, %v", p, err)
	}
	if _, err := c.Get("nope"); !engine.IsCode(err, engine.ENotFound) {
		t.Fatalf("Get(nope) = %v, want ENotFound", err)
	}
}

func TestLoadCatalogRejects(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"an invalid file", map[string]string{"ok.yaml": "", "bad.yaml": "id: bad\n"}, "cfg/bad.yaml: chain profile \"bad\": name: must not be empty"},
		{"an id twice in one source", map[string]string{"one.yaml": "alpha", "two.yaml": "alpha"}, `cfg/two.yaml: chain profile "alpha" is already defined in cfg/one.yaml`},
		{"no profiles at all", map[string]string{}, "no chain profiles found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for name, content := range tt.files {
				if content == "" || content == "alpha" {
					content = profileYAML(t, "alpha", "1")
				}
				fsys[name] = &fstest.MapFile{Data: []byte(content)}
			}
			_, err := profile.LoadCatalog(profile.Source{Name: "cfg", FS: fsys})
			if !engine.IsCode(err, engine.EInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant EInvalid containing %q", err, tt.want)
			}
		})
	}
}

func TestReloadSwapsWhenFilesChange(t *testing.T) {
	dir, cfg := configDir(t)
	writeFile(t, dir, "beta.yaml", profileYAML(t, "beta", "2"))
	c := mustLoad(t, defaults(t), cfg)
	before := c.Snapshot()

	if swapped, err := c.Reload(); err != nil || swapped {
		t.Fatalf("Reload without change = %v, %v; want no swap", swapped, err)
	}
	writeFile(t, dir, "beta.yaml", profileYAML(t, "beta", "3"))
	if swapped, err := c.Reload(); err != nil || !swapped {
		t.Fatalf("Reload after change = %v, %v; want a swap", swapped, err)
	}
	if p, _ := c.Get("beta"); p.Version != "3" {
		t.Fatalf("beta version %s after reload, want 3", p.Version)
	}
	if c.Checksum() == before.Checksum() {
		t.Fatal("checksum unchanged after a file changed")
	}
	if p, _ := before.Get("beta"); p.Version != "2" {
		t.Fatalf("an earlier snapshot changed: beta version %s", p.Version)
	}
}

func TestReloadKeepsCurrentSetWhenNewSetIsInvalid(t *testing.T) {
	dir, cfg := configDir(t)
	writeFile(t, dir, "beta.yaml", profileYAML(t, "beta", "2"))
	c := mustLoad(t, defaults(t), cfg)
	sum := c.Checksum()

	writeFile(t, dir, "beta.yaml", profileYAML(t, "beta", "3"))    // valid on its own…
	writeFile(t, dir, "gamma.yaml", "id: gamma\nnode_types: []\n") // …but the set is not
	swapped, err := c.Reload()
	if swapped || !engine.IsCode(err, engine.EInvalid) || !strings.Contains(err.Error(), "gamma.yaml") {
		t.Fatalf("Reload = %v, %v; want EInvalid naming gamma.yaml", swapped, err)
	}
	if p, _ := c.Get("beta"); p.Version != "2" || c.Checksum() != sum {
		t.Fatalf("current set replaced by a rejected one: beta@%s", p.Version)
	}
	if _, err := c.Get("gamma"); !engine.IsCode(err, engine.ENotFound) {
		t.Fatalf("rejected profile served: %v", err)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testenv.Patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pollCounter is a source's files counting how often the catalog lists
// them: once per reload.
type pollCounter struct {
	fs.FS
	n atomic.Int64
}

func (p *pollCounter) Open(name string) (fs.File, error) {
	if name == "." {
		p.n.Add(1)
	}
	return p.FS.Open(name)
}

func TestWatchSwapsAndRejectsOnce(t *testing.T) {
	dir, cfg := configDir(t)
	polls := &pollCounter{FS: cfg.FS}
	cfg.FS = polls
	c := mustLoad(t, defaults(t), cfg)
	var swaps atomic.Int32
	c.OnSwap(func(*profile.Set) { swaps.Add(1) })
	logs := &testenv.LogBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Watch(ctx, 5*time.Millisecond, slog.New(slog.NewTextHandler(logs, nil)))
	}()
	defer func() { cancel(); <-done }()

	writeFile(t, dir, "gamma.yaml", profileYAML(t, "gamma", "1"))
	eventually(t, "gamma to appear", func() bool { _, err := c.Get("gamma"); return err == nil })

	writeFile(t, dir, "gamma.yaml", "id: gamma\n")
	eventually(t, "the rejection to be logged", func() bool { return strings.Count(logs.String(), "chain profiles rejected") > 0 })
	more := polls.n.Load() + 10
	eventually(t, "ten more ticks over the same bad files", func() bool { return polls.n.Load() >= more })
	if n := strings.Count(logs.String(), "chain profiles rejected"); n != 1 {
		t.Fatalf("rejection logged %d times, want once", n)
	}
	if p, err := c.Get("gamma"); err != nil || p.Version != "1" {
		t.Fatalf("old gamma not kept: %v, %v", p, err)
	}

	writeFile(t, dir, "gamma.yaml", profileYAML(t, "gamma", "2"))
	eventually(t, "the fixed gamma", func() bool { p, err := c.Get("gamma"); return err == nil && p.Version == "2" })
	if n := swaps.Load(); n != 2 {
		t.Fatalf("OnSwap ran %d times, want 2", n)
	}
}

// TestConcurrentReadersSeeWholeSets flips the config dir between two complete
// releases (a symlink swap, as a deploy does) while readers check that every
// snapshot holds profiles of one release only. Run with -race.
func TestConcurrentReadersSeeWholeSets(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"1", "2"} {
		release := filepath.Join(root, "release-"+v)
		if err := os.Mkdir(release, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"alpha", "beta", "gamma"} {
			writeFile(t, release, id+".yaml", profileYAML(t, id, v))
		}
	}
	current := filepath.Join(root, "current")
	point := func(v string) {
		tmp := filepath.Join(root, "next")
		os.Remove(tmp)
		if err := os.Symlink("release-"+v, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, current); err != nil {
			t.Fatal(err)
		}
	}
	point("1")
	c := mustLoad(t, profile.Source{Name: "cfg", FS: os.DirFS(current)})

	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				if msg := mixedRelease(c.Snapshot()); msg != "" {
					errs <- msg
					return
				}
				reads.Add(1)
			}
		})
	}
	for i := range 40 {
		point([]string{"2", "1"}[i%2])
		if swapped, err := c.Reload(); err != nil || !swapped {
			t.Errorf("reload %d = %v, %v", i, swapped, err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
	if reads.Load() == 0 {
		t.Fatal("readers never ran")
	}
}

func mixedRelease(s *profile.Set) string {
	list := s.List()
	if len(list) != 3 {
		return fmt.Sprintf("snapshot has %d profiles, want 3", len(list))
	}
	for _, p := range list {
		if p.Version != list[0].Version {
			return fmt.Sprintf("snapshot mixes versions %s and %s", list[0].Version, p.Version)
		}
		if got, err := s.Get(p.ID); err != nil || got != p {
			return fmt.Sprintf("Get(%s) disagrees with List", p.ID)
		}
	}
	return ""
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestChecksumsFileGuardsAgainstPartialReleases(t *testing.T) {
	alpha, beta := profileYAML(t, "alpha", "1"), profileYAML(t, "beta", "1")
	listed := sha(alpha) + "  alpha.yaml\n" + sha(beta) + " *beta.yaml\n"
	tests := []struct {
		name      string
		checksums string
		files     map[string]string
		want      string // "" for a valid set
	}{
		{"every file listed and matching", "# release 1.1.0\n" + listed + sha("x") + "  upgrades/alpha/u1.yaml\n", map[string]string{"alpha.yaml": alpha, "beta.yaml": beta}, ""},
		{"a file differs", listed, map[string]string{"alpha.yaml": alpha, "beta.yaml": profileYAML(t, "beta", "2")}, "cfg/beta.yaml: SHA-256 differs from checksums.txt"},
		{"a file not listed", sha(alpha) + "  alpha.yaml\n", map[string]string{"alpha.yaml": alpha, "beta.yaml": beta}, "cfg/beta.yaml: not listed in checksums.txt"},
		{"a listed file missing", listed, map[string]string{"alpha.yaml": alpha}, "cfg/beta.yaml: listed in checksums.txt but missing"},
		{"a malformed line", listed + "nonsense\n", map[string]string{"alpha.yaml": alpha, "beta.yaml": beta}, "cfg/checksums.txt line 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{profile.ChecksumsFile: {Data: []byte(tt.checksums)}}
			for name, content := range tt.files {
				fsys[name] = &fstest.MapFile{Data: []byte(content)}
			}
			_, err := profile.LoadCatalog(profile.Source{Name: "cfg", FS: fsys})
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("load: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v\nwant one containing %q", err, tt.want)
			}
		})
	}
}

func TestChecksumsFileChangeIsNoticed(t *testing.T) {
	dir, cfg := configDir(t)
	alpha := profileYAML(t, "alpha", "1")
	writeFile(t, dir, "alpha.yaml", alpha)
	writeFile(t, dir, profile.ChecksumsFile, sha(alpha)+"  alpha.yaml\n")
	c := mustLoad(t, cfg)

	alpha2 := profileYAML(t, "alpha", "2")
	writeFile(t, dir, "alpha.yaml", alpha2) // copied before its checksum: rejected
	if _, err := c.Reload(); err == nil {
		t.Fatal("half-copied release accepted")
	}
	writeFile(t, dir, profile.ChecksumsFile, sha(alpha2)+"  alpha.yaml\n") // the release completes
	if swapped, err := c.Reload(); err != nil || !swapped {
		t.Fatalf("completed release: %v, %v", swapped, err)
	}
}
