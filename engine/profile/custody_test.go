package profile_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
)

// signerYAML: the validator of validatorYAML, whose consensus key has a key
// file and is signed with by geth.
func signerYAML(t testing.TB) string {
	doc := edit(t, validatorYAML(t), "    node_types: [validator]\n", "    node_types: [validator]\n    key_path: keys/consensus.json\n")
	return edit(t, doc, "    binary: geth-linux-amd64/geth\n", "    binary: geth-linux-amd64/geth\n    signs_with: [consensus_key]\n")
}

func TestASignerSignsOnlyOnNodeTypesThatTakeItsKey(t *testing.T) {
	p := mustParse(t, signerYAML(t))
	if got := p.SigningKeys("validator"); !slices.Equal(got, []string{"consensus_key"}) {
		t.Errorf("a validator signs with %v, want [consensus_key]", got)
	}
	if got := p.SigningKeys("full"); len(got) != 0 {
		t.Errorf("a full node signs with %v, want nothing: it has no consensus key", got)
	}
}

func TestCustodyDefaultsToTwoBlocksAndThirtySeconds(t *testing.T) {
	p := mustParse(t, signerYAML(t))
	if p.Custody.Gap != 30*time.Second || p.Custody.GapBlocks != 2 || len(p.Custody.StateFiles) != 0 {
		t.Errorf("custody = %+v, want a 30s and 2-block gap and no state files", p.Custody)
	}
	p = mustParse(t, signerYAML(t)+"custody:\n  gap: 5s\n  gap_blocks: 0\n  state_files:\n    - {name: sign_state, path: data/state.json}\n")
	want := profile.Custody{Gap: 5 * time.Second, StateFiles: []profile.StateFile{{Name: "sign_state", Path: "data/state.json"}}}
	if p.Custody.Gap != want.Gap || p.Custody.GapBlocks != 0 || !slices.Equal(p.Custody.StateFiles, want.StateFiles) {
		t.Errorf("custody = %+v, want %+v", p.Custody, want)
	}
}

func TestParseRejectsBadCustody(t *testing.T) {
	valid := signerYAML(t)
	tests := []struct {
		name, add, old, new string
		want                string
	}{
		{name: "signing with a text input", old: "signs_with: [consensus_key]", new: "signs_with: [fee_recipient]", want: `components[0].signs_with[0]: "fee_recipient" is not a secret input with a key_path`},
		{name: "signing with an unknown key", old: "signs_with: [consensus_key]", new: "signs_with: [nope]", want: `components[0].signs_with[0]: "nope" is not a secret input with a key_path`},
		{name: "a negative gap", add: "custody:\n  gap: -1s\n", want: "custody.gap: must be a duration between 0s and 24h"},
		{name: "a gap that is no duration", add: "custody:\n  gap: soon\n", want: "custody.gap: must be a duration"},
		{name: "negative blocks", add: "custody:\n  gap_blocks: -2\n", want: "custody.gap_blocks: must be between 0 and 10000"},
		{name: "a state file leaving the dir", add: "custody:\n  state_files: [{name: s, path: ../s.json}]\n", want: `custody.state_files[0].path: must not contain ".."`},
		{name: "a state file named like a key", add: "custody:\n  state_files: [{name: consensus_key, path: data/s.json}]\n", want: "custody.state_files[0].name: is the name of a key"},
		{name: "a state file at a key file", add: "custody:\n  state_files: [{name: s, path: keys/consensus.json}]\n", want: `custody.state_files[0].path: is the key file of "consensus_key"`},
		{name: "a state file twice", add: "custody:\n  state_files: [{name: s, path: a.json}, {name: s, path: b.json}]\n", want: `custody.state_files[1].name: duplicate state file "s"`},
		{name: "an unknown custody field", add: "custody:\n  lease: forever\n", want: `unknown field "lease"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := valid + tt.add
			if tt.old != "" {
				doc = edit(t, valid, tt.old, tt.new)
			}
			_, err := profile.Parse("chains/test.yaml", []byte(doc))
			if msg := engine.ErrorMessage(err); !engine.IsCode(err, engine.EInvalid) || !strings.Contains(msg, "chains/test.yaml") || !strings.Contains(msg, tt.want) {
				t.Fatalf("error %q\nwant EInvalid naming the file and containing %q", msg, tt.want)
			}
		})
	}
}
