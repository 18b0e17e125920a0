package profile

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/hoodcloud/hoodcloud/engine"
)

var (
	// Profile ids end up in paths (upgrades/{id}/…) and metric label
	// queries: keep them to a strict alphabet.
	idPattern        = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	namePattern      = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	inputNamePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	sha256Pattern    = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// maxPatternBytes bounds an input's validation regex. Go's regexps run in
// linear time; the bound keeps compilation cheap too.
const maxPatternBytes = 1024

// problems collects every validation failure of a profile, each naming its
// field, so an operator fixes a file in one pass.
type problems []string

func (ps *problems) add(field, format string, args ...any) {
	*ps = append(*ps, field+": "+fmt.Sprintf(format, args...))
}

// build turns the file format into a ChainProfile, validating as it goes.
func build(raw *rawProfile) (*ChainProfile, []string) {
	var ps problems
	p := &ChainProfile{
		ID: raw.ID, Name: raw.Name, Version: raw.Version, Family: raw.Family, Description: raw.Description,
		Health: Health{Collectors: raw.Health.Collectors},
	}
	checkHeader(&ps, raw)
	p.Components = buildComponents(&ps, raw.Components)
	p.NodeTypes, p.nodeTypes = buildNodeTypes(&ps, raw.NodeTypes)
	p.Inputs = buildInputs(&ps, raw.Inputs, raw.Keys)
	checkInputNodeTypes(&ps, p, len(raw.Inputs))
	checkKeyFormats(&ps, p.Inputs, len(raw.Inputs))
	buildPorts(&ps, raw.Ports, raw.Endpoints)
	p.Ports, p.Endpoints = raw.Ports, raw.Endpoints
	p.Genesis = buildGenesis(&ps, raw.Genesis)
	p.Custody = buildCustody(&ps, raw.Custody)
	p.Health.Policy = buildPolicy(&ps, raw.Health.Policies)
	if len(ps) == 0 {
		checkKeyFiles(&ps, p)
		checkSigners(&ps, p)
		checkTemplates(&ps, p)
	}
	return p, ps
}

func checkHeader(ps *problems, raw *rawProfile) {
	if !idPattern.MatchString(raw.ID) {
		ps.add("id", "must be 1-63 lowercase letters, digits and dashes, starting with a letter or digit")
	}
	requireText(ps, "name", raw.Name)
	requireText(ps, "version", raw.Version)
	if !namePattern.MatchString(raw.Family) {
		ps.add("family", "must be a lowercase name such as \"ethereum\" or \"cosmos\"")
	}
}

func requireText(ps *problems, field, value string) {
	if strings.TrimSpace(value) == "" {
		ps.add(field, "must not be empty")
	}
}

func buildComponents(ps *problems, raws []rawComponent) []Component {
	out := make([]Component, 0, len(raws))
	seen := map[string]bool{}
	for i, rc := range raws {
		field := fmt.Sprintf("components[%d]", i)
		switch {
		case !namePattern.MatchString(rc.Name):
			ps.add(field+".name", "must be a lowercase name such as \"geth\"")
		case seen[rc.Name]:
			ps.add(field+".name", "duplicate component %q", rc.Name)
		}
		seen[rc.Name] = true
		requireText(ps, field+".version", rc.Version)
		checkArtifact(ps, field, rc.URL, rc.SHA256)
		if rc.Binary != "" {
			checkChainPath(ps, field+".binary", rc.Binary)
		}
		out = append(out, Component{Name: rc.Name, Version: rc.Version, URL: rc.URL, SHA256: rc.SHA256,
			Metrics: buildMetrics(ps, field+".metrics", rc.Metrics),
			Binary:  rc.Binary, Args: rc.Args, Env: rc.Env,
			Init: buildInitSteps(ps, field, rc.Init), Files: buildFiles(ps, field, rc.Files), SignsWith: rc.SignsWith})
	}
	return out
}

func buildNodeTypes(ps *problems, raws []rawNodeType) ([]NodeType, map[string]int) {
	if len(raws) == 0 {
		ps.add("node_types", "must declare at least one node type")
	}
	out := make([]NodeType, 0, len(raws))
	index := make(map[string]int, len(raws))
	for i, rn := range raws {
		field := fmt.Sprintf("node_types[%d]", i)
		switch _, dup := index[rn.Name]; {
		case !namePattern.MatchString(rn.Name):
			ps.add(field+".name", "must be a lowercase name such as \"full\"")
		case dup:
			ps.add(field+".name", "duplicate node type %q", rn.Name)
		default:
			index[rn.Name] = len(out)
			field = fmt.Sprintf("node_types[%s]", rn.Name)
			out = append(out, NodeType{Name: rn.Name, Description: rn.Description, Offers: buildOffers(ps, field, rn.Durations)})
		}
	}
	return out, index
}

func buildOffers(ps *problems, field string, durations map[string]rawPlacement) []Offer {
	if len(durations) == 0 {
		ps.add(field+".durations", "must offer at least one duration")
	}
	offers := make([]Offer, 0, len(durations))
	for _, name := range slices.Sorted(maps.Keys(durations)) {
		rp := durations[name]
		d, err := ParseDuration(name)
		if err != nil {
			ps.add(field+".durations", "%s", engine.ErrorMessage(err))
			continue
		}
		checkPlacement(ps, field+".durations."+name, rp)
		offers = append(offers, Offer{Duration: d, Placement: Placement(rp)})
	}
	slices.SortFunc(offers, func(a, b Offer) int {
		if c := a.Duration.approxDays() - b.Duration.approxDays(); c != 0 {
			return c
		}
		return strings.Compare(string(a.Duration), string(b.Duration))
	})
	return offers
}

func checkPlacement(ps *problems, field string, rp rawPlacement) {
	if !namePattern.MatchString(rp.Provider) {
		ps.add(field+".provider", "must be a lowercase name such as \"hetzner\"")
	}
	requireText(ps, field+".region", rp.Region)
	requireText(ps, field+".instance_type", rp.InstanceType)
	if rp.PriceCents < 0 {
		ps.add(field+".price_cents", "must not be negative")
	}
}

// buildInputs validates provisioning_inputs and appends the legacy keys as
// generated secrets; names are unique across both lists.
func buildInputs(ps *problems, raws []rawInput, keys []rawKey) []InputSpec {
	out := make([]InputSpec, 0, len(raws)+len(keys))
	seen := map[string]bool{}
	add := func(field string, s InputSpec) {
		switch {
		case !inputNamePattern.MatchString(s.Name):
			ps.add(field+".name", "must be 1-64 lowercase letters, digits and underscores, starting with a letter")
		case seen[s.Name]:
			ps.add(field+".name", "duplicate input %q", s.Name)
		}
		seen[s.Name] = true
		out = append(out, s)
	}
	for i, ri := range raws {
		add(fmt.Sprintf("provisioning_inputs[%d]", i), buildInput(ps, fmt.Sprintf("provisioning_inputs[%d]", i), ri))
	}
	for i, rk := range keys {
		field := fmt.Sprintf("keys[%d]", i)
		add(field, buildInput(ps, field, rawInput{Name: rk.Name, Type: string(engine.InputSecret), Source: string(SourceGenerated), KeyType: rk.KeyType}))
	}
	return out
}

func buildInput(ps *problems, field string, ri rawInput) InputSpec {
	s := InputSpec{
		Name: ri.Name, Type: engine.InputType(ri.Type), Description: ri.Description, Required: ri.Required,
		Validation: ri.Validation, Phase: Phase(ri.Phase), Source: SecretSource(ri.Source), KeyType: KeyType(ri.KeyType), KeyPath: ri.KeyPath,
		Format: KeyFormat(ri.Format), NodeTypes: ri.NodeTypes,
	}
	switch s.Type {
	case engine.InputText, engine.InputProof:
		checkPlainInput(ps, field, &s)
	case engine.InputSecret:
		checkSecretInput(ps, field, &s)
	default:
		ps.add(field+".type", "unknown input type %q (text, proof or secret)", ri.Type)
	}
	checkPhase(ps, field, &s)
	return s
}

func checkPlainInput(ps *problems, field string, s *InputSpec) {
	if s.Source != "" || s.KeyType != "" || s.KeyPath != "" {
		ps.add(field, "source, key_type and key_path apply to secret inputs only")
	}
	if s.Validation == "" {
		return
	}
	if len(s.Validation) > maxPatternBytes {
		ps.add(field+".validation", "longer than %d bytes", maxPatternBytes)
		return
	}
	// Compiled as written first so an error quotes the operator's pattern,
	// then anchored: a pattern must match the whole value, not a substring.
	if _, err := regexp.Compile(s.Validation); err != nil {
		ps.add(field+".validation", "bad regular expression: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		return
	}
	re, err := regexp.Compile(`^(?:` + s.Validation + `)$`)
	if err != nil {
		ps.add(field+".validation", "cannot be anchored to match the whole value")
		return
	}
	s.pattern = re
}

func checkSecretInput(ps *problems, field string, s *InputSpec) {
	if s.Validation != "" {
		ps.add(field+".validation", "secrets arrive sealed and cannot be matched against a pattern")
	}
	switch s.Source {
	case "":
		ps.add(field+".source", "a secret needs a source (generated, chain_generated or user_provided)")
	case SourceGenerated, SourceUserProvided:
		if s.KeyPath != "" { // where the key is delivered on the host
			checkChainPath(ps, field+".key_path", s.KeyPath)
		}
	case SourceChainGenerated:
		if s.KeyPath == "" {
			ps.add(field+".key_path", "a chain_generated secret needs the path of its key file inside the chain data dir")
		} else {
			checkChainPath(ps, field+".key_path", s.KeyPath)
		}
	default:
		ps.add(field+".source", "unknown source %q (generated, chain_generated or user_provided)", s.Source)
	}
	switch {
	case s.KeyType == "":
		ps.add(field+".key_type", "a secret needs a key type")
	case !keyTypes[s.KeyType]:
		ps.add(field+".key_type", "unknown key type %q (%s)", s.KeyType, knownKeyTypes())
	}
}

func checkPhase(ps *problems, field string, s *InputSpec) {
	chainGenerated := s.Type == engine.InputSecret && s.Source == SourceChainGenerated
	switch {
	case s.Phase == "" && chainGenerated:
		s.Phase = PhasePostProvision
	case s.Phase == "":
		s.Phase = PhasePreProvision
	case s.Phase != PhasePreProvision && s.Phase != PhasePostProvision:
		ps.add(field+".phase", "unknown phase %q (pre_provision or post_provision)", s.Phase)
	case s.Phase == PhasePreProvision && chainGenerated:
		ps.add(field+".phase", "a chain_generated secret exists only after provisioning: use post_provision")
	}
}

func knownKeyTypes() string {
	names := make([]string, 0, len(keyTypes))
	for k := range keyTypes {
		names = append(names, string(k))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
