package assets_test

import (
	"encoding/base64"
	"io/fs"
	"reflect"
	"strings"
	"testing"

	"github.com/hoodcloud/hoodcloud/assets"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
)

func loadDefaults(t *testing.T) *profile.Catalog {
	t.Helper()
	c, err := profile.LoadCatalog(profile.Source{Name: "assets", FS: assets.Chains})
	if err != nil {
		t.Fatalf("embedded chain profiles are invalid: %v", err)
	}
	return c
}

func TestDefaultChainProfilesLoad(t *testing.T) {
	c := loadDefaults(t)
	var ids []string
	for _, p := range c.List() {
		ids = append(ids, p.ID)
	}
	if strings.Join(ids, " ") != "cometbft-kvstore cosmos-demo ethereum-holesky geth-dev" {
		t.Fatalf("embedded profiles = %v", ids)
	}
}

func TestEthereumHolesky(t *testing.T) {
	p, err := loadDefaults(t).Get("ethereum-holesky")
	if err != nil {
		t.Fatal(err)
	}
	for _, nt := range []string{"full", "archive"} {
		for _, d := range []string{"1m", "3m", "12m"} {
			pl, err := p.Resolve(nt, d)
			if err != nil || pl.Provider != "hetzner" || (pl.Region != "fsn1" && pl.Region != "nbg1") {
				t.Errorf("Resolve(%s, %s) = %+v, %v", nt, d, pl, err)
			}
		}
	}
	if len(p.Components) != 2 || p.Components[0].Name != "geth" || p.Components[1].Name != "lighthouse" {
		t.Errorf("components = %+v", p.Components)
	}
	if err := p.CheckInput("fee_recipient", "0x00000000219ab540356cBB839Cbe05303d7705Fa"); err != nil {
		t.Errorf("fee recipient address rejected: %v", err)
	}
	if err := p.CheckInput("fee_recipient", "0x1234"); !engine.IsCode(err, engine.EInvalid) {
		t.Errorf("short address: %v, want EInvalid", err)
	}
	wantSecret(t, p, "jwt_secret", profile.SourceGenerated, profile.KeyHex32)
	if k := wantSecret(t, p, "node_key", profile.SourceChainGenerated, profile.KeySecp256k1); k != nil && k.KeyPath != "geth/nodekey" {
		t.Errorf("node_key key_path = %q", k.KeyPath)
	}
}

func TestCosmosDemo(t *testing.T) {
	p, err := loadDefaults(t).Get("cosmos-demo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resolve("validator", "12m"); err != nil {
		t.Error(err)
	}
	if k := wantSecret(t, p, "priv_validator_key", profile.SourceUserProvided, profile.KeyEd25519); k != nil && (!k.Required || k.Format != profile.FormatCometBFTPrivValidatorKey) {
		t.Errorf("priv_validator_key = %+v, want a required priv_validator_key.json", k)
	}
	wantSecret(t, p, "node_key", profile.SourceGenerated, profile.KeyEd25519)
	if err := p.CheckInput("moniker", "my node-1"); err != nil {
		t.Errorf("moniker rejected: %v", err)
	}
	if err := p.CheckInput("moniker", "<script>"); !engine.IsCode(err, engine.EInvalid) {
		t.Errorf("bad moniker: %v, want EInvalid", err)
	}
	if in, ok := p.Input("operator_attestation"); !ok || in.Type != engine.InputProof {
		t.Errorf("proof input = %+v", in)
	}
	signature := base64.StdEncoding.EncodeToString(make([]byte, 64))
	if err := p.CheckInput("operator_attestation", signature); err != nil {
		t.Errorf("base64 signature rejected: %v", err)
	}
	if got := p.MissingInputs("validator", profile.PhasePreProvision, nil); len(got) != 2 {
		t.Errorf("a validator's inputs missing before provisioning = %v, want moniker and priv_validator_key", got)
	}
	if got := p.MissingInputs("full", profile.PhasePreProvision, nil); len(got) != 1 || got[0] != "moniker" {
		t.Errorf("a full node's inputs missing before provisioning = %v, want moniker only: it signs nothing", got)
	}
	for _, name := range []string{"priv_validator_key", "operator_attestation"} {
		if _, err := p.InputFor("full", name); !engine.IsCode(err, engine.EInvalid) {
			t.Errorf("a full node takes %s: %v", name, err)
		}
	}
}

func wantSecret(t *testing.T, p *profile.ChainProfile, name string, source profile.SecretSource, kt profile.KeyType) *profile.InputSpec {
	t.Helper()
	in, ok := p.Input(name)
	if !ok || in.Type != engine.InputSecret || in.Source != source || in.KeyType != kt {
		t.Errorf("%s: input %s = %+v, want a %s %s secret", p.ID, name, in, source, kt)
		return nil
	}
	return in
}

// TestDefaultUpgradeManifestsFitTheirProfiles validates every embedded
// manifest against the embedded profile of its chain, and refuses a folder
// of manifests for a chain that has no profile: nothing would list them.
func TestDefaultUpgradeManifestsFitTheirProfiles(t *testing.T) {
	c := loadDefaults(t)
	ms := profile.NewManifests(profile.Source{Name: "assets", FS: assets.Upgrades})
	chains, err := fs.ReadDir(assets.Upgrades, profile.ManifestDir)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, dir := range chains {
		p, err := c.Get(dir.Name())
		if err != nil {
			t.Errorf("%s/%s: %v", profile.ManifestDir, dir.Name(), err)
			continue
		}
		list, err := ms.List(p.ID, p)
		if err != nil {
			t.Errorf("embedded upgrade manifests are invalid: %v", err)
		}
		found += len(list)
	}
	if found == 0 {
		t.Error("no embedded upgrade manifests found")
	}
}

func TestCometBFTKVStoreUpgrade(t *testing.T) {
	p, err := loadDefaults(t).Get("cometbft-kvstore")
	if err != nil {
		t.Fatal(err)
	}
	m, err := profile.NewManifests(profile.Source{Name: "assets", FS: assets.Upgrades}).Lookup(p.ID, "v0.38.20", p)
	if err != nil {
		t.Fatal(err)
	}
	s := m.Spec()
	if m.Component != "cometbft" || s.UpgradeID != "v0.38.20" || s.Compatibility != engine.Compatible ||
		!reflect.DeepEqual(s.Release, engine.Release{Version: "0.38.20", URL: "path:cometbft-0.38.20"}) {
		t.Errorf("spec = %+v of %s", s, m.Component)
	}
	if m.File != "assets/upgrades/cometbft-kvstore/v0.38.20.yaml" || len(m.Hash) != 64 {
		t.Errorf("file %q hash %q", m.File, m.Hash)
	}
}
