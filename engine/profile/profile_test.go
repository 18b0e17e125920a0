package profile_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
)

func TestResolve(t *testing.T) {
	p := mustParse(t, validYAML(t))
	got, err := p.Resolve("full", "12m")
	if err != nil {
		t.Fatal(err)
	}
	want := profile.Placement{Provider: "hetzner", Region: "nbg1", InstanceType: "cpx41", PriceCents: 49900}
	if got != want {
		t.Fatalf("Resolve(full, 12m) = %+v, want %+v", got, want)
	}
}

func TestResolveNamesWhatIsUnknown(t *testing.T) {
	p := mustParse(t, validYAML(t))
	tests := []struct {
		nodeType, duration string
		want               []string
	}{
		{"validator", "1m", []string{`chain profile "test-chain" has no node type "validator"`, "offered: full"}},
		{"full", "6m", []string{`node type "full" of chain profile "test-chain" is not offered for duration "6m"`, "offered: 1m, 3m, 12m"}},
		{"", "", []string{`no node type ""`}},
	}
	for _, tt := range tests {
		_, err := p.Resolve(tt.nodeType, tt.duration)
		if !engine.IsCode(err, engine.EInvalid) {
			t.Fatalf("Resolve(%q, %q) = %v, want EInvalid", tt.nodeType, tt.duration, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(engine.ErrorMessage(err), w) {
				t.Errorf("Resolve(%q, %q): %q does not contain %q", tt.nodeType, tt.duration, engine.ErrorMessage(err), w)
			}
		}
	}
}

func TestCheckInput(t *testing.T) {
	p := mustParse(t, validYAML(t))
	address := "0x" + strings.Repeat("aB", 20)
	tests := []struct {
		name, input, value string
		code               engine.Code // "" for valid
	}{
		{"matching value", "fee_recipient", address, ""},
		{"pattern anchored at the end", "fee_recipient", address + "00", engine.EInvalid},
		{"pattern anchored at the start", "fee_recipient", "x" + address, engine.EInvalid},
		{"required and empty", "fee_recipient", "", engine.EInvalid},
		{"oversized", "fee_recipient", strings.Repeat("a", profile.MaxInputValueBytes+1), engine.ETooLarge},
		{"secret as plain text", "node_key", "0xdeadbeef", engine.EInvalid},
		{"unknown input", "nope", "x", engine.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.CheckInput(tt.input, tt.value)
			if got := engine.ErrorCode(err); got != tt.code {
				t.Fatalf("CheckInput(%s) = %v, want code %q", tt.input, err, tt.code)
			}
			if err == nil {
				return
			}
			msg := engine.ErrorMessage(err)
			if !strings.Contains(msg, `"`+tt.input+`"`) {
				t.Errorf("error %q does not name the input", msg)
			}
			if len(tt.value) > 3 && strings.Contains(msg, tt.value) {
				t.Errorf("error %q echoes the value", msg)
			}
		})
	}
}

func TestOptionalInputMayBeEmpty(t *testing.T) {
	p := mustParse(t, edit(t, validYAML(t), "required: true", "required: false"))
	if err := p.CheckInput("fee_recipient", ""); err != nil {
		t.Fatalf("empty optional input: %v", err)
	}
}

func TestMissingInputs(t *testing.T) {
	doc := edit(t, validYAML(t), "keys:", `  - {name: validator_key, type: secret, source: user_provided, key_type: ed25519, required: true}
  - {name: attestation, type: proof, required: true, phase: post_provision}
  - {name: generated_required, type: secret, source: generated, key_type: ed25519, required: true}
keys:`)
	p := mustParse(t, doc)
	if got := p.MissingInputs("full", profile.PhasePreProvision, nil); strings.Join(got, ",") != "fee_recipient,validator_key" {
		t.Fatalf("missing before provisioning = %v, want fee_recipient,validator_key (generated secrets are not the customer's)", got)
	}
	if got := p.MissingInputs("full", profile.PhasePreProvision, []string{"fee_recipient", "validator_key"}); len(got) != 0 {
		t.Fatalf("missing with all supplied = %v", got)
	}
	if got := p.MissingInputs("full", profile.PhasePostProvision, nil); strings.Join(got, ",") != "attestation" {
		t.Fatalf("missing after provisioning = %v", got)
	}
}

func TestDurationExpiry(t *testing.T) {
	from := time.Date(2025, 1, 31, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		d    profile.Duration
		want time.Time
	}{
		{"30d", time.Date(2025, 3, 2, 12, 0, 0, 0, time.UTC)},
		{"2w", time.Date(2025, 2, 14, 12, 0, 0, 0, time.UTC)},
		{"1m", time.Date(2025, 3, 3, 12, 0, 0, 0, time.UTC)}, // calendar month from Jan 31 normalises like time.AddDate
		{"12m", time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC)},
		{"1y", time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		got, err := tt.d.Expiry(from)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("%s.Expiry = %v, %v; want %v", tt.d, got, err, tt.want)
		}
	}
	if _, err := profile.Duration("forever").Expiry(from); !engine.IsCode(err, engine.EInvalid) {
		t.Fatalf("bad duration: %v, want EInvalid", err)
	}
}

func TestRef(t *testing.T) {
	p := mustParse(t, validYAML(t))
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	ref := p.Ref(at)
	if ref.ID != p.ID || ref.Version != p.Version || ref.Checksum != p.Checksum || !ref.UpdatedAt.Equal(at) {
		t.Fatalf("ref = %+v", ref)
	}
}

// The API serves profiles as JSON: placements yes, internals no.
func TestJSONShape(t *testing.T) {
	p := mustParse(t, validYAML(t)+"health:\n  collectors: [{type: prometheus}]\n")
	p.Source = "/etc/hoodcloud/chains"
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, want := range []string{`"id":"test-chain"`, `"offers":[{"duration":"1m","provider":"hetzner","region":"fsn1","instance_type":"cpx41"}`, `"key_path":"geth/nodekey"`, `"checksum":"`} {
		if !strings.Contains(doc, want) {
			t.Errorf("JSON lacks %s:\n%s", want, doc)
		}
	}
	for _, leak := range []string{"/etc/hoodcloud", "Health", "Collectors", "chains/test.yaml", "pattern"} {
		if strings.Contains(doc, leak) {
			t.Errorf("JSON exposes %q:\n%s", leak, doc)
		}
	}
}
