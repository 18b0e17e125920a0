package profile_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
)

// validYAML is testdata/valid.yaml: every case below breaks it in one place.
func validYAML(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile("testdata/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// nodeTypesBlock is the node_types section of testdata/valid.yaml.
const nodeTypesBlock = `node_types:
  - name: full
    durations:
      12m: {provider: hetzner, region: nbg1, instance_type: cpx41, price_cents: 49900}
      1m: {provider: hetzner, region: fsn1, instance_type: cpx41}
      3m: {provider: hetzner, region: fsn1, instance_type: cpx41}
`

// edit replaces old, which must occur in doc, by new.
func edit(t testing.TB, doc, old, new string) string {
	t.Helper()
	if !strings.Contains(doc, old) {
		t.Fatalf("test bug: %q not in the document", old)
	}
	return strings.Replace(doc, old, new, 1)
}

func mustParse(t testing.TB, doc string) *profile.ChainProfile {
	t.Helper()
	p, err := profile.Parse("chains/test.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return p
}

func TestParseValidProfile(t *testing.T) {
	p := mustParse(t, validYAML(t))
	if p.ID != "test-chain" || p.Name != "Test Chain" || p.Version != "1" || p.Family != "ethereum" {
		t.Fatalf("header = %q %q %q %q", p.ID, p.Name, p.Version, p.Family)
	}
	if p.File != "chains/test.yaml" || len(p.Checksum) != 64 {
		t.Fatalf("file %q checksum %q", p.File, p.Checksum)
	}
	if len(p.Components) != 1 || p.Components[0].Name != "geth" {
		t.Fatalf("components = %+v", p.Components)
	}
	nt, ok := p.NodeType("full")
	if !ok {
		t.Fatal("node type full missing")
	}
	var durations []string
	for _, o := range nt.Offers {
		durations = append(durations, string(o.Duration))
	}
	if got := strings.Join(durations, ","); got != "1m,3m,12m" {
		t.Fatalf("offers in order %s, want shortest first 1m,3m,12m", got)
	}
}

func TestParseDefaultsPhases(t *testing.T) {
	p := mustParse(t, validYAML(t))
	want := map[string]profile.Phase{
		"fee_recipient": profile.PhasePreProvision,  // omitted: before provisioning
		"node_key":      profile.PhasePostProvision, // chain_generated keys exist only afterwards
		"legacy_key":    profile.PhasePreProvision,
	}
	for name, phase := range want {
		in, ok := p.Input(name)
		if !ok || in.Phase != phase {
			t.Errorf("input %s: phase %q, want %q", name, in.Phase, phase)
		}
	}
}

func TestLegacyKeysBecomeGeneratedSecrets(t *testing.T) {
	p := mustParse(t, validYAML(t))
	in, ok := p.Input("legacy_key")
	if !ok {
		t.Fatal("legacy key not converted to an input")
	}
	want := profile.InputSpec{Name: "legacy_key", Type: engine.InputSecret, Source: profile.SourceGenerated, KeyType: profile.KeyEd25519, Phase: profile.PhasePreProvision}
	if in.Name != want.Name || in.Type != want.Type || in.Source != want.Source || in.KeyType != want.KeyType || in.Phase != want.Phase || in.Required {
		t.Fatalf("legacy key = %+v, want %+v", *in, want)
	}
	if last := p.Inputs[len(p.Inputs)-1]; last.Name != "legacy_key" {
		t.Fatalf("legacy keys come after provisioning_inputs; last is %q", last.Name)
	}
	if got := p.Secrets("full", profile.SourceGenerated); len(got) != 1 || got[0].Name != "legacy_key" {
		t.Fatalf("generated secrets = %+v", got)
	}
}

func TestParseRejects(t *testing.T) {
	valid := validYAML(t)
	tests := []struct {
		name, old, new string
		want           string // substring of the error
	}{
		// decoding
		{"unknown top-level field", "family: ethereum", "family: ethereum\ncolour: blue", `line 5: unknown field "colour"`},
		{"unknown node type field", "  - name: full\n", "  - name: full\n    size: big\n", `unknown field "size"`},
		{"unknown placement field", "region: fsn1, instance_type: cpx41}", "region: fsn1, zone: a, instance_type: cpx41}", `unknown field "zone"`},
		{"unknown input field", "    required: true\n", "    required: true\n    secret_value: x\n", `unknown field "secret_value"`},
		{"unknown legacy key field", "    key_type: ed25519\n", "    key_type: ed25519\n    path: x\n", `unknown field "path"`},
		{"duplicate mapping key", "version: \"1\"", "version: \"1\"\nversion: \"2\"", `mapping key "version" already defined`},
		{"wrong scalar type", "price_cents: 49900", "price_cents: lots", "cannot unmarshal"},
		{"syntax error", "family: ethereum", "family: [ethereum", "line"},
		{"two documents", "family: ethereum", "family: ethereum\n---\nid: other", "more than one YAML document"},
		{"empty file", valid, "", "empty file"},
		// header
		{"missing id", "id: test-chain", "id: ''", `id: must be`},
		{"id with a slash", "id: test-chain", "id: ../etc", `chain profile "../etc": id: must be`},
		{"uppercase id", "id: test-chain", "id: Test", "id: must be"},
		{"missing name", "name: Test Chain", "name: ' '", "name: must not be empty"},
		{"missing version", "version: \"1\"", "version: \"\"", "version: must not be empty"},
		{"missing family", "family: ethereum", "family: ''", "family: must be"},
		// components
		{"component without version", `version: "1.15.11"`, `version: ""`, "components[0].version: must not be empty"},
		{"component with a bad url", "url: https://example.com/geth.tar.gz", "url: ftp://example.com/geth", "components[0].url: must be an http(s) or file URL"},
		{"component with a bad digest", "sha256: \"9f86", "sha256: \"9F86", "components[0].sha256: must be 64 lowercase hex digits"},
		{"duplicate component", "ports:", "  - {name: geth, version: \"2\", url: \"https://e.com/g\", sha256: \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}\nports:", `components[1].name: duplicate component "geth"`},
		// node types
		{"no node types", nodeTypesBlock, "node_types: []\n", "node_types: must declare at least one node type"},
		{"duplicate node type", "provisioning_inputs:", "  - name: full\n    durations: {1m: {provider: hetzner, region: fsn1, instance_type: cpx41}}\nprovisioning_inputs:", `node_types[1].name: duplicate node type "full"`},
		{"bad node type name", "  - name: full\n", "  - name: Full Node\n", "node_types[0].name: must be"},
		{"node type without durations", "  - name: full\n", "  - name: empty\n    durations: {}\n  - name: full\n", "node_types[empty].durations: must offer at least one duration"},
		{"bad duration", "      3m:", "      3 months:", `node_types[full].durations: duration "3 months" is not a count and a unit`},
		{"zero duration", "      3m:", "      0m:", `duration "0m"`},
		{"placement without provider", "{provider: hetzner, region: fsn1, instance_type: cpx41}", "{region: fsn1, instance_type: cpx41}", "node_types[full].durations.1m.provider: must be"},
		{"placement without region", "{provider: hetzner, region: fsn1, instance_type: cpx41}", "{provider: hetzner, instance_type: cpx41}", "node_types[full].durations.1m.region: must not be empty"},
		{"placement without instance type", "{provider: hetzner, region: fsn1, instance_type: cpx41}", "{provider: hetzner, region: fsn1}", "node_types[full].durations.1m.instance_type: must not be empty"},
		{"negative price", "price_cents: 49900", "price_cents: -1", "node_types[full].durations.12m.price_cents: must not be negative"},
		// inputs
		{"duplicate input names", "  - name: node_key", "  - name: fee_recipient", `provisioning_inputs[1].name: duplicate input "fee_recipient"`},
		{"legacy key clashing with an input", "  - name: legacy_key", "  - name: node_key", `keys[0].name: duplicate input "node_key"`},
		{"bad input name", "  - name: fee_recipient", "  - name: Fee-Recipient", "provisioning_inputs[0].name: must be"},
		{"unknown input type", "    type: text", "    type: password", `provisioning_inputs[0].type: unknown input type "password"`},
		{"missing input type", "    type: text\n", "", `provisioning_inputs[0].type: unknown input type ""`},
		{"bad regex", `validation: "0x[0-9a-fA-F]{40}"`, `validation: "0x[0-9a-f"`, "provisioning_inputs[0].validation: bad regular expression: missing closing ]"},
		{"regex too long", `validation: "0x[0-9a-fA-F]{40}"`, `validation: "` + strings.Repeat("a", 1025) + `"`, "provisioning_inputs[0].validation: longer than 1024 bytes"},
		{"unknown phase", "    required: true\n", "    required: true\n    phase: someday\n", `provisioning_inputs[0].phase: unknown phase "someday"`},
		{"source on a text input", "    required: true\n", "    required: true\n    source: generated\n", "provisioning_inputs[0]: source, key_type and key_path apply to secret inputs only"},
		{"secret without source", "    source: chain_generated\n", "", "provisioning_inputs[1].source: a secret needs a source"},
		{"unknown secret source", "source: chain_generated", "source: vault", `provisioning_inputs[1].source: unknown source "vault"`},
		{"secret without key type", "    key_type: secp256k1\n", "", "provisioning_inputs[1].key_type: a secret needs a key type"},
		{"unknown key type", "key_type: secp256k1", "key_type: rsa", `provisioning_inputs[1].key_type: unknown key type "rsa"`},
		{"legacy key with an unknown key type", "key_type: ed25519", "key_type: dsa", `keys[0].key_type: unknown key type "dsa"`},
		{"legacy key without a name", "  - name: legacy_key\n", "  - name: ''\n", "keys[0].name: must be"},
		{"validation on a secret", "    key_type: secp256k1\n", "    key_type: secp256k1\n    validation: \".*\"\n", "provisioning_inputs[1].validation: secrets arrive sealed"},
		{"chain_generated without key_path", "    key_path: geth/nodekey\n", "", "provisioning_inputs[1].key_path: a chain_generated secret needs the path"},
		{"absolute key_path", "key_path: geth/nodekey", "key_path: /etc/shadow", "provisioning_inputs[1].key_path: must be relative"},
		{"windows absolute key_path", "key_path: geth/nodekey", `key_path: 'C:\keys\k'`, "provisioning_inputs[1].key_path: must be relative"},
		{"dot-dot key_path", "key_path: geth/nodekey", "key_path: geth/../../etc/shadow", `provisioning_inputs[1].key_path: must not contain ".."`},
		{"backslash dot-dot key_path", "key_path: geth/nodekey", `key_path: 'geth\..\..\x'`, `provisioning_inputs[1].key_path: must not contain ".."`},
		{"unclean key_path", "key_path: geth/nodekey", "key_path: ./geth//nodekey", "provisioning_inputs[1].key_path: must be a clean slash-separated path"},
		// recipes
		{"component without a digest", "    sha256: \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n    binary", "    binary", "components[0].sha256: must be 64 lowercase hex digits: every artifact is verified"},
		{"relative file url", "url: https://example.com/geth.tar.gz", "url: file:geth.tar.gz", "components[0].url: a file URL must be file:///absolute/path"},
		{"local artifact with a digest", "url: https://example.com/geth.tar.gz", "url: path:geth", "components[0].sha256: a local artifact is pinned"},
		{"template that does not parse", `"{{.Ports.rpc}}", "--miner`, `"{{.Ports.rpc", "--miner`, "components[0].args[3]: bad template"},
		{"template naming an unknown input", "{{.Inputs.fee_recipient}}", "{{.Inputs.fee_recipent}}", `components[0].args[5]: bad template: <.Inputs.fee_recipent>: map has no entry for key "fee_recipent"`},
		{"template naming an unknown port", "HTTPPort = {{.Ports.rpc}}", "HTTPPort = {{.Ports.http}}", `components[0].files[0].template: bad template: <.Ports.http>: map has no entry for key "http"`},
		{"template naming an unknown field", "{{.NodeID}}", "{{.Host}}", `components[0].env.GETH_NODE: bad template: <.Host>: can't evaluate field Host`},
		{"metrics url that renders off the host", "ports:", "    metrics: {url: \"http://10.0.0.1:{{.Ports.metrics}}/m\", block_height: h, peers: p}\nports:", "components[0].metrics.url: must name a loopback address"},
		{"file escaping the chain dir", "path: geth/config.toml", "path: ../config.toml", `components[0].files[0].path: must not contain ".."`},
		{"absolute file path", "path: geth/config.toml", "path: /etc/config.toml", "components[0].files[0].path: must be relative"},
		{"bad file mode", `mode: "0640"`, `mode: "rw"`, "components[0].files[0].mode: must be octal"},
		{"init step escaping the chain dir", "creates: geth/geth/chaindata", "creates: ../../x", `components[0].init[0].creates: must not contain ".."`},
		{"init step without args", `      - args: ["init", "--datadir", "{{.DataDir}}/geth", "{{.DataDir}}/genesis.json"]`, "      - args: []", "components[0].init[0].args: must give"},
		{"endpoint that is not a port", "endpoints: [rpc]", "endpoints: [ws]", `endpoints[0]: "ws" is not one of the profile's ports`},
		{"duplicate port", "ports: [rpc, metrics]", "ports: [rpc, rpc, metrics]", `ports[1]: duplicate port "rpc"`},
		{"genesis two ways", "  inline: '{\"config\": {}}'", "  inline: '{}'\n  url: https://e.com/g.json", "genesis: give exactly one of url"},
		{"genesis url without digest", "  inline: '{\"config\": {}}'", "  url: https://e.com/g.json", "genesis.sha256: must be 64 lowercase hex digits"},
		{"config file over a key file", "path: geth/config.toml", "path: geth/nodekey", `components[0].files[0].path: is the key file of "node_key"`},
		{"genesis escaping the chain dir", "  path: genesis.json", "  path: ../genesis.json", `genesis.path: must not contain ".."`},
		{"chain_generated before provisioning", "    key_path: geth/nodekey\n", "    key_path: geth/nodekey\n    phase: pre_provision\n", "provisioning_inputs[1].phase: a chain_generated secret exists only after provisioning"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := edit(t, valid, tt.old, tt.new)
			_, err := profile.Parse("chains/test.yaml", []byte(doc))
			if err == nil {
				t.Fatalf("parsed; want an error containing %q", tt.want)
			}
			if engine.ErrorCode(err) != engine.EInvalid {
				t.Errorf("code %q, want %q", engine.ErrorCode(err), engine.EInvalid)
			}
			msg := engine.ErrorMessage(err)
			if !strings.HasPrefix(msg, "chains/test.yaml: ") {
				t.Errorf("error %q does not name the file first", msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q\ndoes not contain %q", msg, tt.want)
			}
		})
	}
}

func TestParseNamesProfileAndReportsEveryProblem(t *testing.T) {
	doc := edit(t, validYAML(t), "region: fsn1, instance_type: cpx41}", "region: '', instance_type: cpx41}")
	doc = edit(t, doc, "type: text", "type: note")
	_, err := profile.Parse("chains/test.yaml", []byte(doc))
	msg := engine.ErrorMessage(err)
	for _, want := range []string{`chains/test.yaml: chain profile "test-chain": `, "durations.1m.region", "provisioning_inputs[0].type"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
}

func TestParseRejectsOversizedFile(t *testing.T) {
	doc := validYAML(t) + "# " + strings.Repeat("x", profile.MaxProfileBytes) + "\n"
	_, err := profile.Parse("chains/big.yaml", []byte(doc))
	if !engine.IsCode(err, engine.EInvalid) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v, want EInvalid larger than", err)
	}
}

func TestParseKeepsCollectorsOpaqueAndCompilesPolicies(t *testing.T) {
	doc := validYAML(t) + "health:\n  collectors:\n    - {type: prometheus, url: 'http://127.0.0.1:6060/metrics', anything: [1, 2]}\n" +
		"  policies:\n    - {name: lagging, verdict: degraded, when: 'has_metric(m, \"lag\") && metric(m, \"lag\") > 3.0'}\n    - {name: no-peers, disabled: true}\n"
	p := mustParse(t, doc)
	if len(p.Health.Collectors.Content) != 1 || p.Health.Policy == nil {
		t.Fatalf("health = %+v", p.Health)
	}
	var names []string
	for _, r := range p.Health.Policy.Rules() {
		names = append(names, r.Name)
	}
	if !slices.Contains(names, "lagging") || slices.Contains(names, "no-peers") || !slices.Contains(names, "stuck") {
		t.Errorf("rules %v: want the defaults without no-peers, plus lagging", names)
	}
}

func TestAnUnnamedRuleIsNamedAfterItsPlace(t *testing.T) {
	doc := validYAML(t) + "health:\n  policies:\n    - {verdict: critical, when: 'peers > 100'}\n"
	p := mustParse(t, doc)
	var found bool
	for _, r := range p.Health.Policy.Rules() {
		found = found || (r.Name == "rule-1" && r.Verdict == "critical")
	}
	if !found {
		t.Fatal("the unnamed rule is not among the rules as rule-1")
	}
}

func TestAPolicyThatDoesNotCompileMakesTheProfileInvalid(t *testing.T) {
	doc := validYAML(t) + "health:\n  policies:\n    - {name: broken, verdict: degraded, when: 'peers >'}\n"
	_, err := profile.Parse("chains/bad.yaml", []byte(doc))
	if !engine.IsCode(err, engine.EInvalid) || !strings.Contains(err.Error(), "chains/bad.yaml") ||
		!strings.Contains(err.Error(), `health.policies: rule "broken": when:`) {
		t.Fatalf("err = %v; want the file, the field and the rule named", err)
	}
}
