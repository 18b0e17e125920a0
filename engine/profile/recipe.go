package profile

import (
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/recipe"
)

// A component's recipe says how its host runs it: the program in its
// artifact, the command line and environment, the steps run once before the
// first start and the configuration files. Args, env values, init steps,
// file contents and the metrics URL are Go text/templates over the node's
// recipe.Data, rendered by the agent on the host; the profile's
// ports and key paths are what makes several nodes share one machine.

// LocalArtifactScheme marks an artifact found on the appliance's PATH
// ("path:cometbft"): usable by the local provisioner only, and pinned by
// the digest of the file found when the node is provisioned.
const LocalArtifactScheme = "path"

// InitStep runs the component's program once, before the first start.
type InitStep struct {
	Args    []string
	Env     map[string]string
	Creates string // relative to the chain data dir: the step is done once it exists
}

// TemplateFile is a configuration file rendered on the host.
type TemplateFile struct {
	Path     string // relative to the chain data dir
	Template string
	Mode     uint32 // 0: 0644
	// Keep: written only when absent, before the init steps; for state
	// the chain owns once it runs.
	Keep bool
}

// Genesis is the chain's genesis file, written on the host after the init
// steps: downloaded (URL and SHA256), shipped beside the profile (File) or
// inline (Content).
type Genesis struct {
	Path    string
	URL     string
	SHA256  string
	File    string // a file name in the profile's own directory
	Content []byte // inline, or read from File at load
}

// Local reports whether the component's artifact is a binary on the
// appliance's PATH, and its name there.
func (c *Component) Local() (name string, ok bool) {
	return strings.CutPrefix(c.URL, LocalArtifactScheme+":")
}

// KeyPaths maps each secret a node of nodeType has a key file of on its
// host to its path; "" takes every node type's.
func (p *ChainProfile) KeyPaths(nodeType string) map[string]string {
	out := map[string]string{}
	for _, s := range p.Inputs {
		if s.Type == engine.InputSecret && s.KeyPath != "" && (nodeType == "" || s.AppliesTo(nodeType)) {
			out[s.Name] = s.KeyPath
		}
	}
	return out
}

type rawInitStep struct {
	Args    []string          `yaml:"args"`
	Env     map[string]string `yaml:"env"`
	Creates string            `yaml:"creates"`
}

type rawFile struct {
	Path     string `yaml:"path"`
	Template string `yaml:"template"`
	Mode     string `yaml:"mode"` // octal, e.g. "0644"
	Keep     bool   `yaml:"keep"`
}

type rawGenesis struct {
	Path   string `yaml:"path"`
	URL    string `yaml:"url"`
	SHA256 string `yaml:"sha256"`
	File   string `yaml:"file"`
	Inline string `yaml:"inline"`
}

// checkArtifact validates an artifact's URL and digest (a component's, or
// an upgrade manifest's): http(s) and file URLs carry a sha256; a local
// artifact is pinned when provisioned.
func checkArtifact(ps *problems, field, rawURL, digest string) {
	if name, ok := strings.CutPrefix(rawURL, LocalArtifactScheme+":"); ok {
		if !namePattern.MatchString(name) {
			ps.add(field+".url", "%q must name a program on the appliance's PATH, e.g. \"path:cometbft\"", rawURL)
		}
		if digest != "" {
			ps.add(field+".sha256", "a local artifact is pinned by the digest of the file found when provisioning: leave it out")
		}
		return
	}
	u, err := url.Parse(rawURL)
	switch {
	case err != nil:
		ps.add(field+".url", "must be an http(s) or file URL")
	case u.Scheme == "file":
		if u.Host != "" || !path.IsAbs(u.Path) {
			ps.add(field+".url", "a file URL must be file:///absolute/path")
		}
	case (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		ps.add(field+".url", "must be an http(s) or file URL")
	}
	if !sha256Pattern.MatchString(digest) {
		ps.add(field+".sha256", "must be 64 lowercase hex digits: every artifact is verified before use")
	}
}

func buildInitSteps(ps *problems, field string, raws []rawInitStep) []InitStep {
	out := make([]InitStep, 0, len(raws))
	for i, r := range raws {
		f := fmt.Sprintf("%s.init[%d]", field, i)
		if len(r.Args) == 0 {
			ps.add(f+".args", "must give the program's arguments")
		}
		if r.Creates != "" {
			checkChainPath(ps, f+".creates", r.Creates)
		}
		out = append(out, InitStep(r))
	}
	return out
}

func buildFiles(ps *problems, field string, raws []rawFile) []TemplateFile {
	out := make([]TemplateFile, 0, len(raws))
	for i, r := range raws {
		f := fmt.Sprintf("%s.files[%d]", field, i)
		checkChainPath(ps, f+".path", r.Path)
		mode := parseMode(ps, f+".mode", r.Mode, 0o644)
		out = append(out, TemplateFile{Path: r.Path, Template: r.Template, Mode: mode, Keep: r.Keep})
	}
	return out
}

// parseMode reads octal permission bits such as "0644"; empty is def.
func parseMode(ps *problems, field, text string, def uint32) uint32 {
	if text == "" {
		return def
	}
	m, err := strconv.ParseUint(text, 8, 32)
	if err != nil || m > 0o777 {
		ps.add(field, "must be octal permission bits such as %q", fmt.Sprintf("%04o", def))
		return def
	}
	return uint32(m)
}

func buildGenesis(ps *problems, r *rawGenesis) *Genesis {
	if r == nil {
		return nil
	}
	g := &Genesis{Path: r.Path, URL: r.URL, SHA256: r.SHA256, File: r.File, Content: []byte(r.Inline)}
	checkChainPath(ps, "genesis.path", r.Path)
	given := 0
	for _, v := range []string{r.URL, r.File, r.Inline} {
		if v != "" {
			given++
		}
	}
	if given != 1 {
		ps.add("genesis", "give exactly one of url (with sha256), file or inline")
	}
	if r.URL != "" {
		if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "file") {
			ps.add("genesis.url", "must be an http(s) or file URL")
		}
		if !sha256Pattern.MatchString(r.SHA256) {
			ps.add("genesis.sha256", "must be 64 lowercase hex digits")
		}
	}
	if r.File != "" && (strings.ContainsAny(r.File, `/\`) || strings.HasPrefix(r.File, ".")) {
		ps.add("genesis.file", "must be the name of a file beside the profile")
	}
	return g
}

func buildPorts(ps *problems, ports, endpoints []string) {
	seen := map[string]bool{}
	for i, name := range ports {
		switch {
		case !inputNamePattern.MatchString(name):
			ps.add(fmt.Sprintf("ports[%d]", i), "must be a lowercase name such as \"rpc\"")
		case seen[name]:
			ps.add(fmt.Sprintf("ports[%d]", i), "duplicate port %q", name)
		}
		seen[name] = true
	}
	for i, name := range endpoints {
		if !seen[name] {
			ps.add(fmt.Sprintf("endpoints[%d]", i), "%q is not one of the profile's ports", name)
		}
	}
}

// checkChainPath keeps a path the agent writes inside the chain data dir.
// The agent confines it again (symlinks included); this refuses a bad
// profile before any node is built from it.
func checkChainPath(ps *problems, field, p string) {
	switch {
	case p == "":
		ps.add(field, "must name a file inside the chain data dir")
	case path.IsAbs(p) || strings.HasPrefix(p, `\`) || (len(p) > 1 && p[1] == ':'):
		ps.add(field, "must be relative to the chain data dir, not absolute")
	case slices.Contains(strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }), ".."):
		ps.add(field, "must not contain \"..\": it would leave the chain data dir")
	case strings.ContainsAny(p, "\\\x00") || path.Clean(p) != p || p == ".":
		ps.add(field, "must be a clean slash-separated path naming a file")
	}
}

// sampleData is recipe data with every name the profile declares, so that
// rendering a template over it fails exactly when the template refers to
// something the profile does not have.
func (p *ChainProfile) sampleData(nodeType string) *recipe.Data {
	d := &recipe.Data{NodeID: "node_sample", DataDir: "/chain", Inputs: map[string]string{}, Keys: map[string]string{}, Ports: map[string]int{}}
	for _, s := range p.InputsFor(nodeType) {
		if s.Type != engine.InputSecret {
			d.Inputs[s.Name] = "sample"
		}
	}
	for name, rel := range p.KeyPaths(nodeType) {
		d.Keys[name] = path.Join(d.DataDir, rel)
	}
	for i, name := range p.Ports {
		d.Ports[name] = 20000 + i
	}
	d.Programs = map[string]string{}
	for _, c := range p.Components {
		d.Programs[c.Name] = path.Join(d.DataDir, ".hoodcloud/bin", c.Name)
	}
	return d
}

// checkKeyFiles keeps the config files and genesis off the key files: a
// config written over a key would replace it, and with mode 0644.
func checkKeyFiles(ps *problems, p *ChainProfile) {
	keys := map[string]string{}
	for name, rel := range p.KeyPaths("") {
		keys[rel] = name
	}
	for i, c := range p.Components {
		for j, f := range c.Files {
			if name, ok := keys[f.Path]; ok {
				ps.add(fmt.Sprintf("components[%d].files[%d].path", i, j), "is the key file of %q", name)
			}
		}
	}
	if p.Genesis != nil {
		if name, ok := keys[p.Genesis.Path]; ok {
			ps.add("genesis.path", "is the key file of %q", name)
		}
	}
}

// checkTemplates renders every template of the profile over the sample
// data of each node type, whose inputs and keys may differ.
func checkTemplates(ps *problems, p *ChainProfile) {
	for _, nt := range p.NodeTypes {
		before := len(*ps)
		checkTemplatesFor(ps, p, nt.Name)
		if len(*ps) > before {
			if len(p.NodeTypes) > 1 {
				(*ps)[before] = "for node type " + nt.Name + ": " + (*ps)[before]
			}
			return // one node type's problems are enough to fix the file
		}
	}
}

func checkTemplatesFor(ps *problems, p *ChainProfile, nodeType string) {
	d := p.sampleData(nodeType)
	render := func(field, text string) string {
		out, err := recipe.Render(field, text, d)
		if err != nil {
			ps.add(field, "bad template: %s", templateError(err))
		}
		return out
	}
	for i, c := range p.Components {
		field := fmt.Sprintf("components[%d]", i)
		for j, a := range c.Args {
			render(fmt.Sprintf("%s.args[%d]", field, j), a)
		}
		for k, v := range c.Env {
			render(fmt.Sprintf("%s.env.%s", field, k), v)
		}
		for j, s := range c.Init {
			for k, a := range s.Args {
				render(fmt.Sprintf("%s.init[%d].args[%d]", field, j, k), a)
			}
			for k, v := range s.Env {
				render(fmt.Sprintf("%s.init[%d].env.%s", field, j, k), v)
			}
		}
		for j, f := range c.Files {
			render(fmt.Sprintf("%s.files[%d].template", field, j), f.Template)
		}
		if c.Metrics != nil && strings.Contains(c.Metrics.URL, "{{") {
			if u := render(field+".metrics.url", c.Metrics.URL); u != "" {
				if msg := checkMetricsURL(u); msg != "" {
					ps.add(field+".metrics.url", "%s", msg)
				}
			}
		}
	}
}

// templateError keeps what is wrong, without the template package's
// repetition of the field the caller names.
func templateError(err error) string {
	msg := err.Error()
	if _, rest, ok := strings.Cut(msg, "executing "); ok {
		if _, why, ok := strings.Cut(rest, " at "); ok {
			return why
		}
	}
	return strings.TrimPrefix(msg, "template: ")
}

// readGenesisFile reads the genesis file shipped beside the profile.
func (p *ChainProfile) readGenesisFile(fsys fs.FS) error {
	if p.Genesis == nil || p.Genesis.File == "" {
		return nil
	}
	if fsys == nil {
		return fmt.Errorf("%q: the profile has no directory", p.Genesis.File)
	}
	data, err := readBounded(fsys, p.Genesis.File)
	if err != nil {
		return fmt.Errorf("%q: %s", p.Genesis.File, engine.ErrorMessage(err))
	}
	p.Genesis.Content = data
	return nil
}
