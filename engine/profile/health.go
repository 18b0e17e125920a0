package profile

import (
	"fmt"
	"strings"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/observe"
)

// buildPolicy compiles the profile's health rules over the defaults. A
// rule that does not compile makes the whole profile invalid, so a bad
// edit never replaces the policy that runs.
func buildPolicy(ps *problems, raw []rawPolicy) *observe.Policy {
	specs := make([]observe.RuleSpec, len(raw))
	for i, r := range raw {
		if r.Name == "" && !r.Disabled {
			// Profiles written before rules had names still load: such a
			// rule is named after its place, so it adds and never replaces.
			r.Name = fmt.Sprintf("rule-%d", i+1)
		}
		specs[i] = observe.RuleSpec{
			Name: r.Name, Verdict: observe.Verdict(r.Verdict), When: r.When,
			Summary: r.Summary, Remedy: observe.Remedy(r.Remedy), Disabled: r.Disabled,
		}
	}
	p, err := observe.Compile(specs)
	if err != nil {
		ps.add("health.policies", "%s", strings.TrimPrefix(err.Error(), string(engine.EInvalid)+": "))
		return nil
	}
	return p
}
