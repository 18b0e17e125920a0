package profile

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hoodcloud/hoodcloud/engine"
)

// AppliesTo reports whether a node of nodeType takes the input: a signing
// key means nothing to a full node that does not sign.
func (s *InputSpec) AppliesTo(nodeType string) bool {
	return len(s.NodeTypes) == 0 || slices.Contains(s.NodeTypes, nodeType)
}

// InputsFor returns the inputs a node of nodeType takes, in declared order.
func (p *ChainProfile) InputsFor(nodeType string) []InputSpec {
	var out []InputSpec
	for _, s := range p.Inputs {
		if s.AppliesTo(nodeType) {
			out = append(out, s)
		}
	}
	return out
}

// InputFor returns the spec of the input called name that a node of
// nodeType takes. EInvalid, naming the input, when the profile has no such
// input or the input is for other node types.
func (p *ChainProfile) InputFor(nodeType, name string) (*InputSpec, error) {
	s, ok := p.Input(name)
	switch {
	case !ok:
		return nil, engine.Errorf(engine.EInvalid, "chain profile %q has no input %q", p.ID, name)
	case !s.AppliesTo(nodeType):
		return nil, engine.Errorf(engine.EInvalid, "input %q of chain profile %q is not taken by a %q node (only by: %s)",
			name, p.ID, nodeType, strings.Join(s.NodeTypes, ", "))
	}
	return s, nil
}

// checkInputNodeTypes refuses node_types naming node types the profile
// does not declare, and lists on each node type the inputs it takes. The
// first declared inputs of p.Inputs are provisioning_inputs; the legacy
// keys after them apply to every node type.
func checkInputNodeTypes(ps *problems, p *ChainProfile, declared int) {
	for i := range p.Inputs[:min(declared, len(p.Inputs))] {
		checkNodeTypeList(ps, fmt.Sprintf("provisioning_inputs[%d].node_types", i), p, p.Inputs[i].NodeTypes)
	}
	for i := range p.NodeTypes {
		nt := &p.NodeTypes[i]
		nt.Inputs = []string{}
		for _, s := range p.InputsFor(nt.Name) {
			nt.Inputs = append(nt.Inputs, s.Name)
		}
	}
}

func checkNodeTypeList(ps *problems, field string, p *ChainProfile, names []string) {
	if names != nil && len(names) == 0 {
		ps.add(field, "must name at least one node type; omit it for every node type")
	}
	seen := map[string]bool{}
	for _, name := range names {
		_, known := p.NodeType(name)
		switch {
		case !known:
			ps.add(field, "unknown node type %q (declared: %s)", name, strings.Join(p.nodeTypeNames(), ", "))
		case seen[name]:
			ps.add(field, "node type %q is named twice", name)
		}
		seen[name] = true
	}
}
