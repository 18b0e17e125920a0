package profile

import (
	"regexp"

	"github.com/hoodcloud/hoodcloud/engine"
)

// Phase is when an input must be available.
type Phase string

const (
	PhasePreProvision  Phase = "pre_provision"  // before the host is created
	PhasePostProvision Phase = "post_provision" // once the node exists
)

// SecretSource is where a secret input's material comes from.
type SecretSource string

const (
	SourceGenerated      SecretSource = "generated"       // the appliance generates it (GenerateNodeKeys)
	SourceChainGenerated SecretSource = "chain_generated" // the chain writes it; the agent captures it
	SourceUserProvided   SecretSource = "user_provided"   // the customer seals it to the appliance's key
)

// KeyType is the kind of key material a secret holds.
type KeyType string

const (
	KeyEd25519   KeyType = "ed25519"
	KeySecp256k1 KeyType = "secp256k1"
	KeyBLS12381  KeyType = "bls12_381"
	KeySr25519   KeyType = "sr25519"
	KeyHex32     KeyType = "hex32" // 32 random bytes, hex encoded: e.g. the Ethereum Engine API JWT secret
)

var keyTypes = map[KeyType]bool{KeyEd25519: true, KeySecp256k1: true, KeyBLS12381: true, KeySr25519: true, KeyHex32: true}

// MaxInputValueBytes bounds a text or proof value.
const MaxInputValueBytes = 64 << 10

// InputSpec declares one provisioning input of a chain profile.
type InputSpec struct {
	Name        string           `json:"name"`
	Type        engine.InputType `json:"type"`
	Description string           `json:"description,omitempty"`
	Required    bool             `json:"required"`
	Validation  string           `json:"validation,omitempty"` // the pattern as written; matched against the whole value
	Phase       Phase            `json:"phase"`
	Source      SecretSource     `json:"source,omitempty"`   // secrets only
	KeyType     KeyType          `json:"key_type,omitempty"` // secrets only
	KeyPath     string           `json:"key_path,omitempty"` // chain_generated only: relative to the chain data dir
	pattern     *regexp.Regexp   // Validation compiled once, anchored

	Format    KeyFormat `json:"format,omitempty"`     // secrets only: how the key material is encoded (raw when omitted)
	NodeTypes []string  `json:"node_types,omitempty"` // the node types that take the input; all when empty
}

// SuppliedByCustomer reports whether the customer provides the value (text,
// proof and user-provided secrets) rather than the appliance or the chain.
func (s *InputSpec) SuppliedByCustomer() bool {
	return s.Type != engine.InputSecret || s.Source == SourceUserProvided
}

// CheckValue validates a text or proof value against the spec. Errors are
// EInvalid (ETooLarge for an oversized value) and name the input, never the
// value. Secret inputs have no plain-text value to check.
func (s *InputSpec) CheckValue(value string) error {
	switch {
	case s.Type == engine.InputSecret:
		return engine.Errorf(engine.EInvalid, "input %q is a secret: submit it sealed, not as plain text", s.Name)
	case len(value) > MaxInputValueBytes:
		return engine.Errorf(engine.ETooLarge, "input %q is longer than %d bytes", s.Name, MaxInputValueBytes)
	case value == "" && s.Required:
		return engine.Errorf(engine.EInvalid, "input %q is required", s.Name)
	case value == "":
		return nil
	case s.pattern != nil && !s.pattern.MatchString(value):
		return engine.Errorf(engine.EInvalid, "input %q does not match the pattern %s", s.Name, s.Validation)
	}
	return nil
}

// Input returns the spec called name.
func (p *ChainProfile) Input(name string) (*InputSpec, bool) {
	for i := range p.Inputs {
		if p.Inputs[i].Name == name {
			return &p.Inputs[i], true
		}
	}
	return nil, false
}

// CheckInput validates a text or proof value for the input called name;
// EInvalid if the profile has no such input.
func (p *ChainProfile) CheckInput(name, value string) error {
	s, ok := p.Input(name)
	if !ok {
		return engine.Errorf(engine.EInvalid, "chain profile %q has no input %q", p.ID, name)
	}
	return s.CheckValue(value)
}

// MissingInputs returns, in declared order, the required inputs of phase
// that a node of nodeType takes, that the customer supplies and that
// supplied does not name.
func (p *ChainProfile) MissingInputs(nodeType string, phase Phase, supplied []string) []string {
	have := make(map[string]bool, len(supplied))
	for _, name := range supplied {
		have[name] = true
	}
	var missing []string
	for _, s := range p.InputsFor(nodeType) {
		if s.Required && s.Phase == phase && s.SuppliedByCustomer() && !have[s.Name] {
			missing = append(missing, s.Name)
		}
	}
	return missing
}

// Secrets returns the secret inputs with source that a node of nodeType
// takes, in declared order.
func (p *ChainProfile) Secrets(nodeType string, source SecretSource) []InputSpec {
	var out []InputSpec
	for _, s := range p.InputsFor(nodeType) {
		if s.Type == engine.InputSecret && s.Source == source {
			out = append(out, s)
		}
	}
	return out
}
