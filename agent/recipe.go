package agent

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	templates "github.com/hoodcloud/hoodcloud/engine/recipe"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/protobuf/proto"
)

// A chain profile's recipe (ConfigurePayload) is made concrete on the host
// the same way by every runtime: ports allocated, artifacts installed,
// templates rendered over templates.Data, init steps run, files
// written. This file renders; chainhost.go does the rest.

// hostDir is the agent's own directory inside the chain data dir: the
// installed binaries, the allocated ports and downloads in progress. No
// chain file, key or init step output may be put there (reservedPath).
const hostDir = ".hoodcloud"

var portName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// reservedPath refuses a chain-relative path inside hostDir.
func reservedPath(p string) error {
	first, _, _ := strings.Cut(filepath.ToSlash(filepath.Clean(p)), "/")
	if first == hostDir {
		return fmt.Errorf("%s is the agent's own directory", hostDir)
	}
	return nil
}

// chainPath checks a path a payload names inside the chain data dir.
func chainPath(what, p string) error {
	if err := ValidateKeyPath(p); err != nil {
		return permanent(fmt.Sprintf("%s %q: %v", what, p, err))
	}
	if err := reservedPath(p); err != nil {
		return permanent(fmt.Sprintf("%s %q: %v", what, p, err))
	}
	return nil
}

// checkRecipe refuses a payload no runtime can make concrete safely.
func checkRecipe(p *agentv1.ConfigurePayload) error {
	if len(p.GetComponents()) == 0 {
		return permanent("the configuration names no component")
	}
	if p.GetSnapshot().GetUrl() != "" {
		return permanent("this agent does not restore snapshots")
	}
	if err := checkComponentNames(p); err != nil {
		return err
	}
	if err := checkPorts(p.GetPorts()); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(p.GetKeyPaths())) {
		if err := chainPath(fmt.Sprintf("key %q at", name), p.GetKeyPaths()[name]); err != nil {
			return err
		}
	}
	if g := p.GetGenesis(); g != nil {
		if err := chainPath("genesis", g.GetPath()); err != nil {
			return err
		}
		if err := checkGenesis(g); err != nil {
			return permanent("genesis: " + err.Error())
		}
	}
	for _, f := range p.GetFiles() {
		if err := chainPath("config file", f.GetPath()); err != nil {
			return err
		}
	}
	for _, c := range p.GetComponents() {
		if err := checkComponentRecipe(c); err != nil {
			return err
		}
	}
	return nil
}

func checkGenesis(g *agentv1.Genesis) error {
	switch {
	case g.GetArtifact().GetUrl() != "" && len(g.GetContent()) > 0:
		return errors.New("both an artifact and content")
	case g.GetArtifact().GetUrl() != "":
		return checkDigest(g.GetArtifact())
	case len(g.GetContent()) == 0:
		return errors.New("neither an artifact nor content")
	}
	return nil
}

func checkPorts(names []string) error {
	seen := map[string]bool{}
	for _, n := range names {
		if !portName.MatchString(n) || seen[n] {
			return permanent(fmt.Sprintf("port name %q is not a unique identifier", n))
		}
		seen[n] = true
	}
	return nil
}

func checkComponentRecipe(c *agentv1.Component) error {
	for i, s := range c.GetInit() {
		if s.GetCreates() != "" {
			if err := chainPath(fmt.Sprintf("component %q init[%d] creates", c.GetName(), i), s.GetCreates()); err != nil {
				return err
			}
		}
		if err := checkEnv(c.GetName(), s.GetEnv()); err != nil {
			return err
		}
	}
	for _, t := range c.GetTemplates() {
		if err := chainPath(fmt.Sprintf("component %q template", c.GetName()), t.GetPath()); err != nil {
			return err
		}
	}
	return nil
}

// recipeData is what templates see for the chain data dir dataDir, as the
// chain sees it (the host path, or the mount point in a container).
func recipeData(p *agentv1.ConfigurePayload, dataDir string, ports map[string]int) *templates.Data {
	d := &templates.Data{NodeID: p.GetNodeId(), DataDir: dataDir,
		Inputs: map[string]string{}, Keys: map[string]string{}, Ports: map[string]int{}}
	maps.Copy(d.Inputs, p.GetInputs())
	for name, rel := range p.GetKeyPaths() {
		d.Keys[name] = filepath.Join(dataDir, rel)
	}
	for _, name := range p.GetPorts() {
		d.Ports[name] = ports[name]
	}
	return d
}

// renderer renders one component's templates, naming the field that fails.
type renderer struct {
	comp string
	data *templates.Data
}

func (r renderer) one(field, text string) (string, error) {
	out, err := templates.Render("component "+r.comp+" "+field, text, r.data)
	if err != nil {
		return "", permanent(fmt.Sprintf("component %q: template %s: %v", r.comp, field, err))
	}
	return out, nil
}

func (r renderer) list(field string, texts []string) ([]string, error) {
	out := make([]string, len(texts))
	for i, t := range texts {
		var err error
		if out[i], err = r.one(fmt.Sprintf("%s[%d]", field, i), t); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r renderer) env(field string, env map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		v, err := r.one(field+" "+k, env[k])
		if err != nil {
			return nil, err
		}
		if strings.ContainsAny(v, "\n\r\x00") {
			return nil, permanent(fmt.Sprintf("component %q: %s %s renders to more than one line", r.comp, field, k))
		}
		out[k] = v
	}
	return out, nil
}

// renderComponent returns c with its templates rendered: args (behind
// program when it is not empty), env, init steps and metrics URL. Its
// template files are rendered apart (renderTemplates) and left out.
func renderComponent(c *agentv1.Component, d *templates.Data, program string) (*agentv1.Component, error) {
	r := renderer{comp: c.GetName(), data: d}
	out := proto.CloneOf(c)
	out.Templates = nil
	args, err := r.list("args", c.GetArgs())
	if err != nil {
		return nil, err
	}
	if program != "" {
		args = append([]string{program}, args...)
	}
	out.Args = args
	if out.Env, err = r.env("env", c.GetEnv()); err != nil {
		return nil, err
	}
	for i, s := range out.GetInit() {
		field := fmt.Sprintf("init[%d]", i)
		if s.Args, err = r.list(field+".args", s.GetArgs()); err != nil {
			return nil, err
		}
		if s.Env, err = r.env(field+".env", s.GetEnv()); err != nil {
			return nil, err
		}
	}
	if out.GetMetrics().GetUrl() != "" {
		if out.Metrics.Url, err = r.one("metrics.url", c.GetMetrics().GetUrl()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// renderTemplates renders every component's template files as files: out
// to write after the init steps, kept to write before them when absent.
func renderTemplates(comps []*agentv1.Component, d *templates.Data) (out, kept []*agentv1.ConfigFile, err error) {
	for _, c := range comps {
		r := renderer{comp: c.GetName(), data: d}
		for _, t := range c.GetTemplates() {
			text, err := r.one("templates["+t.GetPath()+"]", t.GetTemplate())
			if err != nil {
				return nil, nil, err
			}
			mode := t.GetMode() & 0o777
			if mode == 0 {
				mode = 0o644
			}
			f := &agentv1.ConfigFile{Path: t.GetPath(), Content: []byte(text), Mode: mode}
			if t.GetKeep() {
				kept = append(kept, f)
			} else {
				out = append(out, f)
			}
		}
	}
	return out, kept, nil
}

// RenderedMetrics returns p with each component's metrics URL rendered
// over the host's recipe data, for the agent's metrics watcher.
func RenderedMetrics(p *agentv1.ConfigurePayload, chainDir string, ports map[string]uint32) (*agentv1.ConfigurePayload, error) {
	d := recipeData(p, chainDir, intPorts(ports))
	out := proto.CloneOf(p)
	for _, c := range out.GetComponents() {
		if c.GetMetrics().GetUrl() == "" {
			continue
		}
		u, err := renderer{comp: c.GetName(), data: d}.one("metrics.url", c.GetMetrics().GetUrl())
		if err != nil {
			return nil, err
		}
		c.Metrics.Url = u
	}
	return out, nil
}

func intPorts(ports map[string]uint32) map[string]int {
	out := make(map[string]int, len(ports))
	for k, v := range ports {
		out[k] = int(v)
	}
	return out
}
