package profile_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/hoodcloud/hoodcloud/engine/profile"
)

func TestRecipeIsRead(t *testing.T) {
	p := mustParse(t, validYAML(t))
	c := p.Components[0]
	if c.Binary != "geth-linux-amd64/geth" || len(c.Args) != 6 || c.Env["GETH_NODE"] != "{{.NodeID}}" {
		t.Fatalf("recipe = binary %q args %q env %v", c.Binary, c.Args, c.Env)
	}
	if len(c.Init) != 1 || c.Init[0].Creates != "geth/geth/chaindata" || c.Init[0].Args[0] != "init" {
		t.Fatalf("init = %+v", c.Init)
	}
	if len(c.Files) != 1 || c.Files[0].Path != "geth/config.toml" || c.Files[0].Mode != 0o640 || !strings.Contains(c.Files[0].Template, "{{.Ports.rpc}}") {
		t.Fatalf("files = %+v", c.Files)
	}
	if strings.Join(p.Ports, ",") != "rpc,metrics" || strings.Join(p.Endpoints, ",") != "rpc" {
		t.Fatalf("ports %v endpoints %v", p.Ports, p.Endpoints)
	}
	if p.Genesis == nil || p.Genesis.Path != "genesis.json" || string(p.Genesis.Content) != `{"config": {}}` {
		t.Fatalf("genesis = %+v", p.Genesis)
	}
	if got := p.KeyPaths("full"); len(got) != 1 || got["node_key"] != "geth/nodekey" {
		t.Fatalf("key paths = %v", got)
	}
}

func TestTemplatedMetricsURLIsAccepted(t *testing.T) {
	doc := edit(t, validYAML(t), "ports:", "    metrics: {url: \"http://127.0.0.1:{{.Ports.metrics}}/m\", block_height: h, peers: p}\nports:")
	if m := mustParse(t, doc).Components[0].Metrics; m == nil || m.URL != "http://127.0.0.1:{{.Ports.metrics}}/m" {
		t.Fatalf("metrics = %+v", m)
	}
}

func TestLocalArtifactNeedsNoDigest(t *testing.T) {
	doc := edit(t, validYAML(t), "    url: https://example.com/geth.tar.gz\n    sha256: \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n", "    url: path:geth\n")
	name, ok := mustParse(t, doc).Components[0].Local()
	if !ok || name != "geth" {
		t.Fatalf("Local() = %q, %v", name, ok)
	}
}

func TestGenesisFileIsReadBesideTheProfile(t *testing.T) {
	doc := edit(t, validYAML(t), "  inline: '{\"config\": {}}'", "  file: test-genesis.json")
	src := profile.Source{Name: "conf", FS: fstest.MapFS{
		"test.yaml":         {Data: []byte(doc)},
		"test-genesis.json": {Data: []byte(`{"chain_id": "t"}`)},
	}}
	c, err := profile.LoadCatalog(src)
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Get("test-chain")
	if err != nil {
		t.Fatal(err)
	}
	if string(p.Genesis.Content) != `{"chain_id": "t"}` {
		t.Fatalf("genesis content = %q", p.Genesis.Content)
	}
	missing := profile.Source{Name: "conf", FS: fstest.MapFS{"test.yaml": {Data: []byte(doc)}}}
	if _, err := profile.LoadCatalog(missing); err == nil || !strings.Contains(err.Error(), "genesis.file") {
		t.Fatalf("a missing genesis file: err = %v, want one naming genesis.file", err)
	}
}

func TestAChangedGenesisFileIsReloaded(t *testing.T) {
	doc := edit(t, validYAML(t), "  inline: '{\"config\": {}}'", "  file: test-genesis.json")
	files := fstest.MapFS{
		"test.yaml":         {Data: []byte(doc)},
		"test-genesis.json": {Data: []byte(`{"chain_id": "one"}`)},
	}
	c, err := profile.LoadCatalog(profile.Source{Name: "conf", FS: files})
	if err != nil {
		t.Fatal(err)
	}
	files["test-genesis.json"] = &fstest.MapFile{Data: []byte(`{"chain_id": "two, longer"}`)}
	if swapped, err := c.Reload(); err != nil || !swapped {
		t.Fatalf("Reload after the genesis file changed: swapped %v, %v", swapped, err)
	}
	p, _ := c.Get("test-chain")
	if string(p.Genesis.Content) != `{"chain_id": "two, longer"}` {
		t.Fatalf("genesis = %s", p.Genesis.Content)
	}
}
