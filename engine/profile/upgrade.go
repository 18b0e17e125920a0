package profile

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/recipe"
)

// versionPattern: a version names the directory the agent installs it in.
var versionPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)

// CheckUpgrade validates an upgrade of the profile's component, from a
// manifest or from an operator: every problem, each naming its field, in
// one EInvalid error.
func CheckUpgrade(p *ChainProfile, component string, spec engine.UpgradeSpec) error {
	var ps problems
	checkUpgrade(&ps, p, component, spec)
	if len(ps) > 0 {
		return engine.Errorf(engine.EInvalid, "%s", strings.Join(ps, "; "))
	}
	return nil
}

func checkUpgrade(ps *problems, p *ChainProfile, component string, spec engine.UpgradeSpec) {
	if !slices.ContainsFunc(p.Components, func(c Component) bool { return c.Name == component }) {
		ps.add("component", "chain profile %s has no component %q", p.ID, component)
	}
	rel := spec.Release
	if !versionPattern.MatchString(rel.Version) {
		ps.add("version", "must be 1 to 128 letters, digits, '.', '_', '+' or '-', starting with a letter or digit")
	}
	if rel.URL != "" || rel.SHA256 != "" {
		checkArtifact(ps, "artifact", rawComponent{URL: rel.URL, SHA256: rel.SHA256})
	}
	if rel.Binary != "" && !isArchiveURL(rel.URL) {
		ps.add("artifact.binary", "names a program inside a .tar.gz or .tgz artifact only")
	}
	if rel.Binary != "" {
		checkChainPath(ps, "artifact.binary", rel.Binary)
	}
	if spec.Compatibility != engine.Compatible && spec.Compatibility != engine.Breaking {
		ps.add("compatibility", "must be compatible or breaking, got %q", spec.Compatibility)
	}
	if spec.TargetHeight < 0 {
		ps.add("target_height", "must not be negative")
	}
	checkUpgradeTemplates(ps, p, rel.Args, spec.ConfigChanges)
}

// checkUpgradeTemplates checks the paths and templates an upgrade brings
// over the profile's sample data, as its own templates are.
func checkUpgradeTemplates(ps *problems, p *ChainProfile, args []string, files []engine.ConfigChange) {
	nodeType := ""
	if len(p.NodeTypes) > 0 {
		nodeType = p.NodeTypes[0].Name
	}
	d := p.sampleData(nodeType)
	render := func(field, text string) {
		if _, err := recipe.Render(field, text, d); err != nil {
			ps.add(field, "bad template: %s", templateError(err))
		}
	}
	for i, a := range args {
		render(fmt.Sprintf("args[%d]", i), a)
	}
	for i, f := range files {
		field := fmt.Sprintf("config_changes[%d]", i)
		checkChainPath(ps, field+".path", f.Path)
		if f.Mode > 0o777 {
			ps.add(field+".mode", "must be permission bits such as 0600")
		}
		render(field+".template", f.Template)
	}
}

func isArchiveURL(u string) bool {
	return strings.HasSuffix(u, ".tar.gz") || strings.HasSuffix(u, ".tgz")
}
