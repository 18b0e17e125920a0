package profile

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/recipe"
)

// An upgrade manifest says what upgrading one component of a chain means:
// the release to install, whether it keeps the chain data compatible, and
// the configuration files it writes. A rollout in auto mode installs one,
// named by chain profile and upgrade id, and records its hash so that what
// ran can be told from what the file says later.

// MaxManifestBytes bounds a manifest file; manifests are a few lines.
const MaxManifestBytes = 64 << 10

var (
	// versionPattern keeps a version usable as a directory name on the
	// host, where releases are installed side by side.
	versionPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)
	// upgradeIDPattern keeps an upgrade id a single file name.
	upgradeIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// Manifest is one upgrade of one component of a chain, as its file says.
// Like profiles, manifests are immutable once parsed.
type Manifest struct {
	ChainProfileID string
	ID             string // the upgrade id: the file name without .yaml
	Component      string
	Version        string
	Artifact       Artifact // zero: the node keeps the program it runs
	Args           []string // templates; empty keeps the component's command line
	Compatibility  string   // engine.Compatible or engine.Breaking
	ConfigChanges  []engine.ConfigChange
	TargetHeight   int64 // 0: none
	Description    string
	File           string // where it was read from, for messages
	Hash           string // SHA-256 (lowercase hex) of the file's bytes
}

// Artifact is where a release's program comes from, as in a component.
type Artifact struct {
	URL    string // https, http, file, or "path:<program>" (see LocalArtifactScheme)
	SHA256 string // lowercase hex; empty for a local artifact
	Binary string // the program inside a .tar.gz or .tgz archive
}

// Spec is what a rollout installs from the manifest.
func (m *Manifest) Spec() engine.UpgradeSpec {
	return engine.UpgradeSpec{
		UpgradeID: m.ID,
		Release: engine.Release{
			Version: m.Version, URL: m.Artifact.URL, SHA256: m.Artifact.SHA256, Binary: m.Artifact.Binary,
			Args: slices.Clone(m.Args),
		},
		Compatibility: m.Compatibility,
		ConfigChanges: slices.Clone(m.ConfigChanges),
		TargetHeight:  m.TargetHeight,
	}
}

// The file format. Every field is listed: decoding rejects unknown ones.
type rawManifest struct {
	Component     string            `yaml:"component"`
	Version       string            `yaml:"version"`
	Artifact      *rawArtifact      `yaml:"artifact"`
	Args          []string          `yaml:"args"`
	Compatibility string            `yaml:"compatibility"`
	ConfigChanges []rawConfigChange `yaml:"config_changes"`
	TargetHeight  int64             `yaml:"target_height"`
	Description   string            `yaml:"description"`
}

type rawArtifact struct {
	URL    string `yaml:"url"`
	SHA256 string `yaml:"sha256"`
	Binary string `yaml:"binary"`
}

type rawConfigChange struct {
	Path     string `yaml:"path"`
	Template string `yaml:"template"`
	Mode     string `yaml:"mode"` // octal, e.g. "0600"
}

// ParseManifest reads and validates the manifest of upgrade upgradeID of
// chain profile chainID against p, the chain's profile. file names the
// manifest in errors and is kept as Manifest.File. Every error is EInvalid
// and names the file; validation errors name each offending field.
func ParseManifest(file, chainID, upgradeID string, data []byte, p *ChainProfile) (*Manifest, error) {
	if len(data) > MaxManifestBytes {
		return nil, engine.Errorf(engine.EInvalid, "%s: larger than %d bytes", file, MaxManifestBytes)
	}
	raw := new(rawManifest)
	if err := decodeStrict(data, raw, "upgrade manifest"); err != nil {
		return nil, engine.Errorf(engine.EInvalid, "%s: %s", file, err)
	}
	m, ps := buildManifest(chainID, upgradeID, raw, p)
	if len(ps) > 0 {
		return nil, engine.Errorf(engine.EInvalid, "%s: %s", file, strings.Join(ps, "; "))
	}
	sum := sha256.Sum256(data)
	m.File, m.Hash = file, hex.EncodeToString(sum[:])
	return m, nil
}

func buildManifest(chainID, upgradeID string, raw *rawManifest, p *ChainProfile) (*Manifest, problems) {
	var ps problems
	m := &Manifest{
		ChainProfileID: chainID, ID: upgradeID, Component: raw.Component, Version: raw.Version,
		Args: raw.Args, Compatibility: raw.Compatibility, TargetHeight: raw.TargetHeight, Description: raw.Description,
	}
	checkManifestIDs(&ps, chainID, upgradeID, p)
	checkManifestComponent(&ps, raw.Component, p)
	if !versionPattern.MatchString(raw.Version) {
		ps.add("version", "must be 1-128 letters, digits, dots, underscores, pluses and dashes, such as \"1.15.11\"")
	}
	m.Artifact = buildManifestArtifact(&ps, raw.Artifact)
	if raw.Compatibility != engine.Compatible && raw.Compatibility != engine.Breaking {
		ps.add("compatibility", "must be %s or %s", engine.Compatible, engine.Breaking)
	}
	m.ConfigChanges = buildConfigChanges(&ps, raw.ConfigChanges, p)
	if raw.TargetHeight < 0 {
		ps.add("target_height", "must not be negative")
	}
	checkManifestTemplates(&ps, m, p)
	return m, ps
}

// checkManifestIDs refuses ids that could not have come from a file's
// place, and a profile that is not the chain's.
func checkManifestIDs(ps *problems, chainID, upgradeID string, p *ChainProfile) {
	if !upgradeIDPattern.MatchString(upgradeID) {
		ps.add("upgrade id", "%q must be 1-64 letters, digits, dots, underscores and dashes, starting with a letter or digit", upgradeID)
	}
	switch {
	case !idPattern.MatchString(chainID):
		ps.add("chain profile id", "%q is not a chain profile id", chainID)
	case p == nil:
		ps.add("chain profile id", "chain profile %q is not loaded", chainID)
	case p.ID != chainID:
		ps.add("chain profile id", "%q was checked against chain profile %q", chainID, p.ID)
	}
}

func checkManifestComponent(ps *problems, name string, p *ChainProfile) {
	if name == "" {
		ps.add("component", "must name the component to upgrade")
		return
	}
	if p == nil {
		return
	}
	names := make([]string, len(p.Components))
	for i, c := range p.Components {
		names[i] = c.Name
	}
	if !slices.Contains(names, name) {
		ps.add("component", "%q is not a component of chain profile %q (%s)", name, p.ID, strings.Join(names, ", "))
	}
}

func buildManifestArtifact(ps *problems, r *rawArtifact) Artifact {
	if r == nil {
		return Artifact{}
	}
	if r.URL == "" {
		ps.add("artifact.url", "must name the release's artifact; leave artifact out to keep the program")
		return Artifact(*r)
	}
	checkArtifact(ps, "artifact", r.URL, r.SHA256)
	if r.Binary != "" {
		if !isArchiveURL(r.URL) {
			ps.add("artifact.binary", "applies to a .tar.gz or .tgz archive only")
		}
		checkChainPath(ps, "artifact.binary", r.Binary)
	}
	return Artifact(*r)
}

// isArchiveURL: the agent unpacks artifacts whose URL path ends in .tar.gz
// or .tgz; anything else is the program itself.
func isArchiveURL(u string) bool {
	u, _, _ = strings.Cut(u, "?")
	u, _, _ = strings.Cut(u, "#")
	return strings.HasSuffix(u, ".tar.gz") || strings.HasSuffix(u, ".tgz")
}

func buildConfigChanges(ps *problems, raws []rawConfigChange, p *ChainProfile) []engine.ConfigChange {
	keys := map[string]string{}
	if p != nil {
		for name, rel := range p.KeyPaths("") {
			keys[rel] = name
		}
	}
	out := make([]engine.ConfigChange, 0, len(raws))
	seen := map[string]bool{}
	for i, r := range raws {
		field := fmt.Sprintf("config_changes[%d]", i)
		checkChainPath(ps, field+".path", r.Path)
		if name, ok := keys[r.Path]; ok {
			ps.add(field+".path", "is the key file of %q", name)
		}
		if seen[r.Path] {
			ps.add(field+".path", "duplicate path %q", r.Path)
		}
		seen[r.Path] = true
		mode := parseMode(ps, field+".mode", r.Mode, 0o600)
		out = append(out, engine.ConfigChange{Path: r.Path, Template: r.Template, Mode: mode})
	}
	return out
}

// checkManifestTemplates parses the manifest's templates and, once they
// all parse, renders them over each node type's sample data, so that a
// reference to an input, key or port the chain does not have is refused
// here rather than on a host in the middle of a rollout.
func checkManifestTemplates(ps *problems, m *Manifest, p *ChainProfile) {
	type tmpl struct{ field, text string }
	var all []tmpl
	for i, a := range m.Args {
		all = append(all, tmpl{fmt.Sprintf("args[%d]", i), a})
	}
	for i, c := range m.ConfigChanges {
		all = append(all, tmpl{fmt.Sprintf("config_changes[%d].template", i), c.Template})
	}
	parsed := true
	for _, t := range all {
		if _, err := recipe.ParseTemplate(t.field, t.text); err != nil {
			ps.add(t.field, "bad template: %s", templateError(err))
			parsed = false
		}
	}
	if !parsed || p == nil {
		return
	}
	for _, nt := range p.NodeTypes {
		d := p.sampleData(nt.Name)
		for _, t := range all {
			if _, err := recipe.Render(t.field, t.text, d); err != nil {
				ps.add(t.field, "bad template for node type %s: %s", nt.Name, templateError(err))
				return // one is enough to fix the file
			}
		}
	}
}
