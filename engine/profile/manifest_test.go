package profile_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
)

// fullManifest upgrades geth of testdata/valid.yaml with every field set.
const fullManifest = `component: geth
version: "1.16.0"
artifact:
  url: https://example.com/geth-1.16.0.tar.gz
  sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
  binary: geth-linux-amd64/geth
args: ["--datadir", "{{.DataDir}}/geth", "--http.port", "{{.Ports.rpc}}"]
compatibility: breaking
config_changes:
  - path: geth/config.toml
    mode: "0640"
    template: |
      [Node]
      HTTPPort = {{.Ports.rpc}}
  - path: geth/extra.toml
    template: "fee = {{.Inputs.fee_recipient}}"
target_height: 1200
description: Geth 1.16, new database layout.
`

// minimalManifest has the required fields only.
const minimalManifest = "component: geth\nversion: 1.15.12\ncompatibility: compatible\n"

const manifestFile = "chains/upgrades/test-chain/v1.16.0.yaml"

func parseManifest(t testing.TB, doc string) (*profile.Manifest, error) {
	t.Helper()
	return profile.ParseManifest(manifestFile, "test-chain", "v1.16.0", []byte(doc), mustParse(t, validYAML(t)))
}

func mustParseManifest(t testing.TB, doc string) *profile.Manifest {
	t.Helper()
	m, err := parseManifest(t, doc)
	if err != nil {
		t.Fatalf("parse manifest: %v", err)
	}
	return m
}

func TestParseManifestReadsEveryField(t *testing.T) {
	m := mustParseManifest(t, fullManifest)
	if m.ChainProfileID != "test-chain" || m.ID != "v1.16.0" || m.File != manifestFile {
		t.Errorf("place = %q %q %q", m.ChainProfileID, m.ID, m.File)
	}
	if m.Component != "geth" || m.Version != "1.16.0" || m.Compatibility != engine.Breaking ||
		m.TargetHeight != 1200 || m.Description != "Geth 1.16, new database layout." {
		t.Errorf("header = %+v", m)
	}
	want := profile.Artifact{URL: "https://example.com/geth-1.16.0.tar.gz", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Binary: "geth-linux-amd64/geth"}
	if m.Artifact != want {
		t.Errorf("artifact = %+v", m.Artifact)
	}
	if len(m.ConfigChanges) != 2 || m.ConfigChanges[0].Mode != 0o640 || m.ConfigChanges[0].Path != "geth/config.toml" {
		t.Errorf("config changes = %+v", m.ConfigChanges)
	}
}

func TestManifestSpecIsWhatARolloutInstalls(t *testing.T) {
	m := mustParseManifest(t, fullManifest)
	want := engine.UpgradeSpec{
		UpgradeID: "v1.16.0",
		Release: engine.Release{Version: "1.16.0", URL: m.Artifact.URL, SHA256: m.Artifact.SHA256, Binary: m.Artifact.Binary,
			Args: []string{"--datadir", "{{.DataDir}}/geth", "--http.port", "{{.Ports.rpc}}"}},
		Compatibility: engine.Breaking,
		ConfigChanges: []engine.ConfigChange{
			{Path: "geth/config.toml", Template: "[Node]\nHTTPPort = {{.Ports.rpc}}\n", Mode: 0o640},
			{Path: "geth/extra.toml", Template: "fee = {{.Inputs.fee_recipient}}", Mode: 0o600},
		},
		TargetHeight: 1200,
	}
	spec := m.Spec()
	if !reflect.DeepEqual(spec, want) {
		t.Fatalf("spec = %+v\nwant %+v", spec, want)
	}
	spec.Release.Args[0], spec.ConfigChanges[0].Path = "changed", "changed"
	if m.Args[0] == "changed" || m.ConfigChanges[0].Path == "changed" {
		t.Error("the spec shares its slices with the manifest")
	}
}

func TestMinimalManifestKeepsTheProgram(t *testing.T) {
	m := mustParseManifest(t, minimalManifest)
	if m.Artifact != (profile.Artifact{}) || m.Args != nil || len(m.ConfigChanges) != 0 || m.TargetHeight != 0 {
		t.Fatalf("manifest = %+v, want no artifact, args, config changes or height", m)
	}
	if s := m.Spec(); s.Release.URL != "" || s.Release.Version != "1.15.12" || s.Compatibility != engine.Compatible {
		t.Fatalf("spec = %+v", s)
	}
}

func TestManifestConfigChangeModeDefaultsTo0600(t *testing.T) {
	m := mustParseManifest(t, minimalManifest+"config_changes: [{path: geth/a.toml, template: x}]\n")
	if m.ConfigChanges[0].Mode != 0o600 {
		t.Fatalf("mode = %o, want 600", m.ConfigChanges[0].Mode)
	}
}

func TestManifestLocalArtifactNeedsNoDigest(t *testing.T) {
	m := mustParseManifest(t, minimalManifest+"artifact: {url: \"path:geth-1.15.12\"}\n")
	if m.Artifact.URL != "path:geth-1.15.12" || m.Artifact.SHA256 != "" {
		t.Fatalf("artifact = %+v", m.Artifact)
	}
}

func TestManifestHashIsTheSHA256OfTheFile(t *testing.T) {
	m := mustParseManifest(t, fullManifest)
	sum := sha256.Sum256([]byte(fullManifest))
	if m.Hash != hex.EncodeToString(sum[:]) {
		t.Fatalf("hash = %q", m.Hash)
	}
	if other := mustParseManifest(t, fullManifest+"# a comment\n"); other.Hash == m.Hash {
		t.Fatal("a changed file kept its hash")
	}
}

func TestBadManifests(t *testing.T) {
	const digest = `"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"`
	tests := []struct {
		name, doc, want string
	}{
		{"no component", "version: 1.0.0\ncompatibility: compatible\n", "component: must name"},
		{"a component the chain lacks", "component: reth\nversion: 1.0.0\ncompatibility: compatible\n", `component: "reth" is not a component of chain profile "test-chain" (geth)`},
		{"no version", "component: geth\ncompatibility: compatible\n", "version: must be"},
		{"a version that is a path", "component: geth\nversion: 1.0/../../x\ncompatibility: compatible\n", "version: must be"},
		{"no compatibility", "component: geth\nversion: 1.0.0\n", "compatibility: must be compatible or breaking"},
		{"an unknown compatibility", "component: geth\nversion: 1.0.0\ncompatibility: maybe\n", "compatibility: must be compatible or breaking"},
		{"an artifact without url", minimalManifest + "artifact: {sha256: " + digest + "}\n", "artifact.url: must name"},
		{"an ftp artifact", minimalManifest + "artifact: {url: ftp://e.com/geth, sha256: " + digest + "}\n", "artifact.url: must be an http(s) or file URL"},
		{"a relative file artifact", minimalManifest + "artifact: {url: file:geth, sha256: " + digest + "}\n", "artifact.url: a file URL must be file:///absolute/path"},
		{"an artifact without digest", minimalManifest + "artifact: {url: https://e.com/geth}\n", "artifact.sha256: must be 64 lowercase hex digits"},
		{"an uppercase digest", minimalManifest + "artifact: {url: https://e.com/geth, sha256: " + strings.ToUpper(digest) + "}\n", "artifact.sha256: must be 64 lowercase hex digits"},
		{"a local artifact with a digest", minimalManifest + "artifact: {url: \"path:geth\", sha256: " + digest + "}\n", "artifact.sha256: a local artifact is pinned"},
		{"a local artifact with a path", minimalManifest + "artifact: {url: \"path:../bin/geth\"}\n", "artifact.url: \"path:../bin/geth\" must name a program"},
		{"a binary in a plain file", minimalManifest + "artifact: {url: https://e.com/geth, sha256: " + digest + ", binary: geth}\n", "artifact.binary: applies to a .tar.gz or .tgz archive only"},
		{"a binary in a local artifact", minimalManifest + "artifact: {url: \"path:geth\", binary: geth}\n", "artifact.binary: applies to a .tar.gz or .tgz archive only"},
		{"a binary outside the archive", minimalManifest + "artifact: {url: https://e.com/g.tgz, sha256: " + digest + ", binary: ../geth}\n", `artifact.binary: must not contain ".."`},
		{"args that do not parse", minimalManifest + "args: [\"{{.DataDir\"]\n", "args[0]: bad template"},
		{"args naming an unknown port", minimalManifest + "args: [\"{{.Ports.http}}\"]\n", `args[0]: bad template for node type full: <.Ports.http>: map has no entry for key "http"`},
		{"a config change without path", minimalManifest + "config_changes: [{template: x}]\n", "config_changes[0].path: must name a file inside the chain data dir"},
		{"an absolute config change", minimalManifest + "config_changes: [{path: /etc/passwd, template: x}]\n", "config_changes[0].path: must be relative"},
		{"a config change escaping the data dir", minimalManifest + "config_changes: [{path: geth/../../x, template: x}]\n", `config_changes[0].path: must not contain ".."`},
		{"a config change over a key file", minimalManifest + "config_changes: [{path: geth/nodekey, template: x}]\n", `config_changes[0].path: is the key file of "node_key"`},
		{"two config changes of one file", minimalManifest + "config_changes: [{path: a, template: x}, {path: a, template: y}]\n", `config_changes[1].path: duplicate path "a"`},
		{"a config template that does not parse", minimalManifest + "config_changes: [{path: a, template: \"{{if}}\"}]\n", "config_changes[0].template: bad template"},
		{"a config template naming an unknown input", minimalManifest + "config_changes: [{path: a, template: \"{{.Inputs.moniker}}\"}]\n", `config_changes[0].template: bad template for node type full: <.Inputs.moniker>: map has no entry for key "moniker"`},
		{"a mode that is not octal", minimalManifest + "config_changes: [{path: a, template: x, mode: rw}]\n", `config_changes[0].mode: must be octal permission bits such as "0600"`},
		{"a mode beyond permission bits", minimalManifest + "config_changes: [{path: a, template: x, mode: \"4755\"}]\n", "config_changes[0].mode: must be octal"},
		{"a negative target height", minimalManifest + "target_height: -1\n", "target_height: must not be negative"},
		{"an unknown field", minimalManifest + "colour: blue\n", `line 4: unknown field "colour"`},
		{"a misspelt nested field", minimalManifest + "artifact: {uri: https://e.com/geth}\n", `unknown field "uri"`},
		{"args that are not a list", minimalManifest + "args: --fast\n", "line 4: cannot unmarshal"},
		{"two documents", minimalManifest + "---\n" + minimalManifest, "more than one YAML document: a file holds one upgrade manifest"},
		{"an empty file", "", "empty file"},
		{"a list", "- component: geth\n", "cannot unmarshal"},
		{"too large", minimalManifest + "description: " + strings.Repeat("x", profile.MaxManifestBytes) + "\n", "larger than 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseManifest(t, tt.doc)
			wantInvalid(t, err, manifestFile+": ", tt.want)
		})
	}
}

func TestManifestReportsEveryProblemAtOnce(t *testing.T) {
	_, err := parseManifest(t, "component: reth\nversion: ''\ncompatibility: maybe\ntarget_height: -5\n")
	for _, field := range []string{"component:", "version:", "compatibility:", "target_height:"} {
		wantInvalid(t, err, manifestFile+": ", field)
	}
}

func TestManifestIDsComeFromItsPlace(t *testing.T) {
	p := mustParse(t, validYAML(t))
	tests := []struct {
		name, chain, upgrade string
		p                    *profile.ChainProfile
		want                 string
	}{
		{"an upgrade id with a slash", "test-chain", "a/b", p, `upgrade id: "a/b" must be`},
		{"an upgrade id starting with a dot", "test-chain", "..", p, `upgrade id: ".." must be`},
		{"an empty upgrade id", "test-chain", "", p, `upgrade id: "" must be`},
		{"a chain id with a slash", "../test-chain", "v1", p, `chain profile id: "../test-chain" is not a chain profile id`},
		{"another chain's profile", "other-chain", "v1", p, `chain profile id: "other-chain" was checked against chain profile "test-chain"`},
		{"no profile", "test-chain", "v1", nil, `chain profile id: chain profile "test-chain" is not loaded`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := profile.ParseManifest("m.yaml", tt.chain, tt.upgrade, []byte(minimalManifest), tt.p)
			wantInvalid(t, err, "m.yaml: ", tt.want)
		})
	}
}

func wantInvalid(t *testing.T, err error, prefix, want string) {
	t.Helper()
	switch msg := engine.ErrorMessage(err); {
	case err == nil:
		t.Fatalf("accepted; want an error containing %q", want)
	case !engine.IsCode(err, engine.EInvalid):
		t.Errorf("code %q, want invalid: %v", engine.ErrorCode(err), err)
	case !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, want):
		t.Errorf("error %q\nwant it to start with %q and contain %q", msg, prefix, want)
	}
}

// manifestSources are an embedded set and a chains dir, both holding
// v1; the chains dir's says breaking.
func manifestSources() (embedded, dir profile.Source) {
	embedded = profile.Source{Name: "assets", FS: fstest.MapFS{
		"upgrades/test-chain/v1.yaml": {Data: []byte(minimalManifest)},
		"upgrades/test-chain/v2.yaml": {Data: []byte(minimalManifest)},
	}}
	dir = profile.Source{Name: "/etc/chains", FS: fstest.MapFS{
		"upgrades/test-chain/v1.yaml": {Data: []byte(strings.Replace(minimalManifest, "compatible", "breaking", 1))},
	}}
	return embedded, dir
}

func TestLookupPrefersTheChainsDirOverTheEmbeddedSet(t *testing.T) {
	p := mustParse(t, validYAML(t))
	ms := profile.NewManifests(manifestSources())
	m, err := ms.Lookup("test-chain", "v1", p)
	if err != nil {
		t.Fatal(err)
	}
	if m.Compatibility != engine.Breaking || m.File != "/etc/chains/upgrades/test-chain/v1.yaml" {
		t.Errorf("v1 = %s from %s, want breaking from the chains dir", m.Compatibility, m.File)
	}
	m, err = ms.Lookup("test-chain", "v2", p)
	if err != nil {
		t.Fatal(err)
	}
	if m.File != "assets/upgrades/test-chain/v2.yaml" {
		t.Errorf("v2 read from %s, want the embedded set", m.File)
	}
}

func TestLookupOfABadFileDoesNotFallBackToTheEmbeddedOne(t *testing.T) {
	embedded, _ := manifestSources()
	dir := profile.Source{Name: "/etc/chains", FS: fstest.MapFS{"upgrades/test-chain/v1.yaml": {Data: []byte("component: geth\n")}}}
	_, err := profile.NewManifests(embedded, dir).Lookup("test-chain", "v1", mustParse(t, validYAML(t)))
	wantInvalid(t, err, "/etc/chains/upgrades/test-chain/v1.yaml: ", "version: must be")
}

func TestLookupOfAMissingManifestNamesBothIDs(t *testing.T) {
	_, err := profile.NewManifests(manifestSources()).Lookup("test-chain", "v9", mustParse(t, validYAML(t)))
	if !engine.IsCode(err, engine.ENotFound) || engine.ErrorMessage(err) != `upgrade "v9" of chain profile "test-chain" not found` {
		t.Fatalf("err = %v, want not found naming both ids", err)
	}
}

func TestLookupFindsAManifestDroppedInWithoutARestart(t *testing.T) {
	dir := t.TempDir()
	ms := profile.NewManifests(profile.Source{Name: dir, FS: os.DirFS(dir)})
	p := mustParse(t, validYAML(t))
	if _, err := ms.Lookup("test-chain", "v1", p); !engine.IsCode(err, engine.ENotFound) {
		t.Fatalf("before: %v, want not found", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "upgrades", "test-chain"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "upgrades", "test-chain", "v1.yaml"), []byte(minimalManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if m, err := ms.Lookup("test-chain", "v1", p); err != nil || m.Version != "1.15.12" {
		t.Fatalf("after: %+v, %v", m, err)
	}
}

// openCounter is a file system that counts the files opened in it.
type openCounter struct {
	fs.FS
	opens atomic.Int32
}

func (c *openCounter) Open(name string) (fs.File, error) {
	c.opens.Add(1)
	return c.FS.Open(name)
}

func TestManifestIDsWithTraversalAreRefusedBeforeAnyFileIsRead(t *testing.T) {
	fsys := &openCounter{FS: fstest.MapFS{"upgrades/test-chain/v1.yaml": {Data: []byte(minimalManifest)}, "secret.yaml": {Data: []byte("x")}}}
	ms := profile.NewManifests(profile.Source{Name: "dir", FS: fsys})
	p := mustParse(t, validYAML(t))
	for _, ids := range [][2]string{
		{"test-chain", "../../secret"}, {"test-chain", "../v1"}, {"test-chain", "a/b"}, {"test-chain", ".."},
		{"test-chain", ""}, {"test-chain", `..\x`}, {"..", "secret"}, {"test-chain/..", "v1"}, {"", "v1"}, {"Test-Chain", "v1"},
	} {
		if _, err := ms.Lookup(ids[0], ids[1], p); !engine.IsCode(err, engine.EInvalid) {
			t.Errorf("Lookup(%q, %q) = %v, want invalid", ids[0], ids[1], err)
		}
	}
	for _, chain := range []string{"..", "../upgrades", "a/b", ""} {
		if _, err := ms.List(chain, p); !engine.IsCode(err, engine.EInvalid) {
			t.Errorf("List(%q) = %v, want invalid", chain, err)
		}
	}
	if n := fsys.opens.Load(); n != 0 {
		t.Fatalf("%d files opened for bad ids", n)
	}
}

func TestListSortsByIDAndReportsEveryBadFile(t *testing.T) {
	embedded, dir := manifestSources()
	embedded.FS.(fstest.MapFS)["upgrades/test-chain/v3.yaml"] = &fstest.MapFile{Data: []byte("component: geth\n")} // replaced below
	d := dir.FS.(fstest.MapFS)
	d["upgrades/test-chain/v3.yaml"] = &fstest.MapFile{Data: []byte(minimalManifest)}
	d["upgrades/test-chain/v0.yaml"] = &fstest.MapFile{Data: []byte(minimalManifest)}
	d["upgrades/test-chain/broken.yaml"] = &fstest.MapFile{Data: []byte("component: geth\nversion: 1\ncompatibility: sometimes\n")}
	d["upgrades/test-chain/v4.yml"] = &fstest.MapFile{Data: []byte(minimalManifest)}
	d["upgrades/test-chain/.v5.yaml.swp"] = &fstest.MapFile{Data: []byte("junk")}
	d["upgrades/test-chain/README.md"] = &fstest.MapFile{Data: []byte("notes")}
	d["upgrades/other-chain/v9.yaml"] = &fstest.MapFile{Data: []byte("junk")}

	got, err := profile.NewManifests(embedded, dir).List("test-chain", mustParse(t, validYAML(t)))
	var ids []string
	for _, m := range got {
		src := "dir"
		if strings.HasPrefix(m.File, "assets/") {
			src = "assets"
		}
		ids = append(ids, m.ID+"@"+src)
	}
	if strings.Join(ids, " ") != "v0@dir v1@dir v2@assets v3@dir" {
		t.Errorf("listed %v, want v0 v1 v3 from the chains dir and v2 from assets", ids)
	}
	wantInvalid(t, err, "", `/etc/chains/upgrades/test-chain/broken.yaml: compatibility: must be`)
	wantInvalid(t, err, "", "/etc/chains/upgrades/test-chain/v4.yml: an upgrade manifest's name ends in .yaml")
	if msg := engine.ErrorMessage(err); strings.Contains(msg, "swp") || strings.Contains(msg, "README") || strings.Contains(msg, "v9") {
		t.Errorf("error %q names a file that is not a manifest of the chain", msg)
	}
}

func TestListOfAChainWithoutManifestsIsEmpty(t *testing.T) {
	p := mustParse(t, validYAML(t))
	for _, ms := range []*profile.Manifests{
		profile.NewManifests(),
		profile.NewManifests(profile.Source{Name: "none"}, profile.Source{Name: "missing", FS: os.DirFS(filepath.Join(t.TempDir(), "absent"))}),
		profile.NewManifests(profile.Source{Name: "assets", FS: fstest.MapFS{"upgrades/other-chain/v1.yaml": {Data: []byte(minimalManifest)}}}),
	} {
		if got, err := ms.List("test-chain", p); err != nil || len(got) != 0 {
			t.Errorf("List = %v, %v; want none", got, err)
		}
	}
}

// FuzzParseManifest feeds arbitrary bytes to the manifest parser: it must
// never panic, must fail only with EInvalid naming the file, and whatever
// it accepts must keep the promises a rollout relies on.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(fullManifest))
	f.Add([]byte(minimalManifest))
	f.Add([]byte(minimalManifest + "artifact: {url: \"path:geth-2\"}\nconfig_changes: [{path: a/b.toml, template: \"{{.NodeID}}\", mode: \"0644\"}]\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("---\n...\n---\n"))
	f.Add([]byte(minimalManifest + "config_changes: [{path: ../x, template: x}]\n"))
	p := mustParse(f, validYAML(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := profile.ParseManifest("fuzz.yaml", "test-chain", "v1", data, p)
		if err != nil {
			if !engine.IsCode(err, engine.EInvalid) || !strings.HasPrefix(engine.ErrorMessage(err), "fuzz.yaml: ") {
				t.Fatalf("error %v: want EInvalid naming the file", err)
			}
			return
		}
		checkAcceptedManifest(t, m)
	})
}

var fuzzDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

// checkAcceptedManifest asserts what an accepted manifest guarantees.
func checkAcceptedManifest(t *testing.T, m *profile.Manifest) {
	t.Helper()
	if m.Component != "geth" || m.Version == "" || strings.ContainsAny(m.Version, `/\`) || m.TargetHeight < 0 {
		t.Fatalf("accepted component %q version %q height %d", m.Component, m.Version, m.TargetHeight)
	}
	if m.Compatibility != engine.Compatible && m.Compatibility != engine.Breaking {
		t.Fatalf("accepted compatibility %q", m.Compatibility)
	}
	if a := m.Artifact; a.URL != "" && !strings.HasPrefix(a.URL, profile.LocalArtifactScheme+":") && !fuzzDigest.MatchString(a.SHA256) {
		t.Fatalf("accepted artifact %+v without a digest", a)
	}
	for _, c := range m.ConfigChanges {
		if !filepath.IsLocal(c.Path) || c.Mode > 0o777 {
			t.Fatalf("accepted config change %q mode %o", c.Path, c.Mode)
		}
	}
	if s := m.Spec(); s.UpgradeID != m.ID || s.Release.Version != m.Version || len(s.ConfigChanges) != len(m.ConfigChanges) {
		t.Fatalf("spec %+v differs from the manifest", s)
	}
}
