package profile_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
)

// validatorYAML is testdata/valid.yaml with a validator node type and a
// consensus key only validators take.
func validatorYAML(t testing.TB) string {
	doc := edit(t, validYAML(t), "provisioning_inputs:", `  - name: validator
    durations:
      1m: {provider: hetzner, region: fsn1, instance_type: ccx23}
provisioning_inputs:`)
	return edit(t, doc, "keys:", `  - name: consensus_key
    type: secret
    source: user_provided
    key_type: ed25519
    format: cometbft_priv_validator_key
    required: true
    node_types: [validator]
keys:`)
}

func TestInputsApplyPerNodeType(t *testing.T) {
	p := mustParse(t, validatorYAML(t))
	if got := p.MissingInputs("full", profile.PhasePreProvision, nil); strings.Join(got, ",") != "fee_recipient" {
		t.Errorf("a full node misses %v, want only fee_recipient: it signs nothing", got)
	}
	if got := p.MissingInputs("validator", profile.PhasePreProvision, nil); strings.Join(got, ",") != "fee_recipient,consensus_key" {
		t.Errorf("a validator misses %v, want fee_recipient,consensus_key", got)
	}
	if got := p.Secrets("full", profile.SourceUserProvided); len(got) != 0 {
		t.Errorf("a full node's user-provided secrets = %+v, want none", got)
	}
	if got := p.Secrets("validator", profile.SourceUserProvided); len(got) != 1 || got[0].Name != "consensus_key" {
		t.Errorf("a validator's user-provided secrets = %+v", got)
	}
	if _, err := p.InputFor("validator", "consensus_key"); err != nil {
		t.Errorf("InputFor(validator, consensus_key) = %v", err)
	}
	_, err := p.InputFor("full", "consensus_key")
	if !engine.IsCode(err, engine.EInvalid) || !strings.Contains(engine.ErrorMessage(err), `input "consensus_key" of chain profile "test-chain" is not taken by a "full" node (only by: validator)`) {
		t.Errorf("InputFor(full, consensus_key) = %v, want EInvalid naming the input and who takes it", err)
	}
	if _, err := p.InputFor("full", "nope"); !engine.IsCode(err, engine.EInvalid) {
		t.Errorf("InputFor(full, nope) = %v, want EInvalid", err)
	}
}

// The catalogue's JSON tells a customer which inputs each node type takes.
func TestCatalogJSONNamesTheInputsOfEachNodeType(t *testing.T) {
	b, err := json.Marshal(mustParse(t, validatorYAML(t)))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		NodeTypes []struct {
			Name   string
			Inputs []string
		} `json:"node_types"`
		Inputs []struct {
			Name      string
			Format    string
			NodeTypes []string `json:"node_types"`
		} `json:"provisioning_inputs"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	inputs := map[string]string{}
	for _, nt := range got.NodeTypes {
		inputs[nt.Name] = strings.Join(nt.Inputs, ",")
	}
	if inputs["full"] != "fee_recipient,node_key,legacy_key" || inputs["validator"] != "fee_recipient,node_key,consensus_key,legacy_key" {
		t.Errorf("inputs per node type = %v", inputs)
	}
	for _, in := range got.Inputs {
		if in.Name == "consensus_key" && (strings.Join(in.NodeTypes, ",") != "validator" || in.Format != "cometbft_priv_validator_key") {
			t.Errorf("consensus_key = %+v, want its node types and format", in)
		}
		if in.Name == "node_key" && (in.NodeTypes != nil || in.Format != "raw") {
			t.Errorf("node_key = %+v, want no node types (all) and format raw", in)
		}
	}
}

func TestParseRejectsBadNodeTypesAndFormats(t *testing.T) {
	valid := validatorYAML(t)
	tests := []struct {
		name, old, new string
		want           string
	}{
		{"an unknown node type", "node_types: [validator]", "node_types: [validator, archive]", `provisioning_inputs[2].node_types: unknown node type "archive" (declared: full, validator)`},
		{"no node type", "node_types: [validator]", "node_types: []", "provisioning_inputs[2].node_types: must name at least one node type"},
		{"a node type twice", "node_types: [validator]", "node_types: [validator, validator]", `provisioning_inputs[2].node_types: node type "validator" is named twice`},
		{"an unknown format", "format: cometbft_priv_validator_key", "format: pem", `provisioning_inputs[2].format: unknown format "pem" (cometbft_node_key, cometbft_priv_validator_key, raw)`},
		{"a format that cannot hold the key type", "    key_type: ed25519\n    format:", "    key_type: secp256k1\n    format:", "provisioning_inputs[2].format: format cometbft_priv_validator_key holds ed25519 keys, not secp256k1"},
		{"a format on a text input", "    type: text\n", "    type: text\n    format: raw\n", "provisioning_inputs[0].format: applies to secret inputs only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := profile.Parse("chains/test.yaml", []byte(edit(t, valid, tt.old, tt.new)))
			msg := engine.ErrorMessage(err)
			if !engine.IsCode(err, engine.EInvalid) || !strings.Contains(msg, `chain profile "test-chain"`) || !strings.Contains(msg, tt.want) {
				t.Fatalf("error %q\nwant EInvalid naming the profile and containing %q", msg, tt.want)
			}
		})
	}
}

// The legacy keys: form still declares generated secrets for every node type.
func TestLegacyKeysApplyToEveryNodeType(t *testing.T) {
	p := mustParse(t, validatorYAML(t))
	for _, nt := range []string{"full", "validator"} {
		if got := p.Secrets(nt, profile.SourceGenerated); len(got) != 1 || got[0].Name != "legacy_key" || got[0].Format != profile.FormatRaw {
			t.Errorf("generated secrets of %s = %+v", nt, got)
		}
	}
}
