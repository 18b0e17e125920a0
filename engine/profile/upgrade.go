package profile

import (
	"fmt"
	"strings"

	"github.com/hoodcloud/hoodcloud/engine"
)

// CheckUpgrade validates an upgrade an operator gives by hand (manual
// mode) with the rules of a manifest: every problem, each naming its
// field, in one EInvalid error.
func CheckUpgrade(p *ChainProfile, component string, spec engine.UpgradeSpec) error {
	raw := &rawManifest{Component: component, Version: spec.Release.Version, Args: spec.Release.Args,
		Compatibility: spec.Compatibility, TargetHeight: spec.TargetHeight}
	if r := spec.Release; r.URL != "" || r.SHA256 != "" || r.Binary != "" {
		raw.Artifact = &rawArtifact{URL: r.URL, SHA256: r.SHA256, Binary: r.Binary}
	}
	for _, c := range spec.ConfigChanges {
		mode := ""
		if c.Mode != 0 {
			mode = fmt.Sprintf("%04o", c.Mode)
		}
		raw.ConfigChanges = append(raw.ConfigChanges, rawConfigChange{Path: c.Path, Template: c.Template, Mode: mode})
	}
	if _, ps := buildManifest(p.ID, "manual", raw, p); len(ps) > 0 {
		return engine.Errorf(engine.EInvalid, "%s", strings.Join(ps, "; "))
	}
	return nil
}
