package agent

import (
	"context"
	"fmt"
	"os"
	"slices"

	templates "github.com/hoodcloud/hoodcloud/engine/recipe"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/protobuf/proto"
)

// release is an upgrade's new version of one component, made concrete on
// the host over the applied configuration's recipe data, as CONFIGURE
// makes the first one.
type release struct {
	old, next *agentv1.Component    // as configured: templates unrendered
	run       *agentv1.Component    // next rendered: what the runtime runs
	files     []*agentv1.ConfigFile // the config changes, then the rendered config templates
}

// release makes p concrete. It returns nil, nil when the component is at
// p's version already, and a permanent error for a payload that does not
// fit the component.
func (h *chainHost) release(p *agentv1.UpgradePayload) (*release, error) {
	old := h.appliedComponent(p.GetComponent())
	if old == nil {
		return nil, permanent(fmt.Sprintf("no component %q is configured", p.GetComponent()))
	}
	next, err := upgradedComponent(old, p)
	if err != nil || next == nil {
		return nil, err
	}
	if err := h.checkUpgrade(old, p); err != nil {
		return nil, err
	}
	if !h.images {
		if err := checkArtifacts([]*agentv1.Component{next}); err != nil {
			return nil, err
		}
	}
	d := h.releaseData(next)
	run, err := h.renderRun(next, d)
	if err != nil {
		return nil, err
	}
	files, err := h.upgradeFiles(p, d)
	if err != nil {
		return nil, err
	}
	return &release{old: old, next: next, run: run, files: files}, nil
}

func (h *chainHost) appliedComponent(name string) *agentv1.Component {
	if i := findComponent(h.applied.GetComponents(), name); i >= 0 {
		return h.applied.GetComponents()[i]
	}
	return nil
}

// checkUpgrade refuses what the host cannot install: a component whose
// program was installed from an artifact needs the new version's, and
// every file stays inside the chain data dir, out of the agent's own.
func (h *chainHost) checkUpgrade(old *agentv1.Component, p *agentv1.UpgradePayload) error {
	url := p.GetArtifact().GetUrl()
	switch {
	case !h.images && old.GetArtifact().GetUrl() != "" && url == "":
		return permanent(fmt.Sprintf("component %q runs a program installed from an artifact: the upgrade needs the new version's artifact", old.GetName()))
	case p.GetBinary() != "" && url == "":
		return permanent("the upgrade names a binary but no artifact")
	}
	for _, f := range p.GetConfigChanges() {
		if err := chainPath("config file", f.GetPath()); err != nil {
			return err
		}
	}
	for _, t := range p.GetConfigTemplates() {
		if err := chainPath("config template", t.GetPath()); err != nil {
			return err
		}
	}
	return nil
}

// releaseData is the recipe data of the applied configuration, with
// next's program in place of its old one.
func (h *chainHost) releaseData(next *agentv1.Component) *templates.Data {
	d := recipeData(h.applied, h.dataDir, h.ports)
	d.Programs = h.programs(h.applied)
	delete(d.Programs, next.GetName())
	if prog := h.program(next); prog != "" {
		d.Programs[next.GetName()] = prog
	}
	return d
}

// upgradeFiles are p's config changes and its config templates rendered
// over d; a template to keep is left out when its file exists.
func (h *chainHost) upgradeFiles(p *agentv1.UpgradePayload, d *templates.Data) ([]*agentv1.ConfigFile, error) {
	out, kept, err := renderTemplates([]*agentv1.Component{{Name: p.GetComponent(), Templates: p.GetConfigTemplates()}}, d)
	if err != nil {
		return nil, err
	}
	files := append(slices.Clone(p.GetConfigChanges()), out...)
	if len(kept) == 0 {
		return files, nil
	}
	root, err := h.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	for _, f := range kept {
		exists, err := created(root, f.GetPath())
		if err != nil {
			return nil, fmt.Errorf("config template %q: %w", f.GetPath(), err)
		}
		if !exists {
			files = append(files, f)
		}
	}
	return files, nil
}

// acquire installs c's artifact unless the same artifact is installed
// already: a rollback to the previous version downloads nothing.
func (h *chainHost) acquire(ctx context.Context, c *agentv1.Component, progress ProgressFunc) error {
	if h.program(c) == "" {
		return nil
	}
	root, err := h.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	return h.ensureInstalled(ctx, root, c, progress)
}

// verify checks the program rel runs: an installed one against the
// digest recorded when it was installed, one already on the host against
// the artifact's digest (if the upgrade gives one).
func (h *chainHost) verify(rel *release) error {
	if h.program(rel.next) == "" {
		return verifyProgram(h.dir, rel.run.GetArgs(), rel.next.GetArtifact().GetSha256())
	}
	root, err := h.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	if !installed(root, rel.next) {
		return permanent(fmt.Sprintf("the installed program of %s %s does not match the artifact it came from", rel.next.GetName(), rel.next.GetVersion()))
	}
	return nil
}

// adopt makes c the applied configuration's component of its name, so the
// next upgrade starts from it.
func (h *chainHost) adopt(c *agentv1.Component) {
	next := proto.CloneOf(h.applied)
	if i := findComponent(next.GetComponents(), c.GetName()); i >= 0 {
		next.Components[i] = c
	}
	h.applied = next
}

// ensureInstalled installs c's artifact unless it is installed already.
func (h *chainHost) ensureInstalled(ctx context.Context, root *os.Root, c *agentv1.Component, progress ProgressFunc) error {
	if installed(root, c) {
		return nil
	}
	if err := h.install(ctx, root, c, progress); err != nil {
		return err
	}
	h.logger.Info("artifact installed", "component", c.GetName(), "version", c.GetVersion())
	return nil
}
