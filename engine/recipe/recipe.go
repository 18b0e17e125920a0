// Package recipe renders a chain profile's recipe templates (component
// args, env, config files, init steps, metrics URL) over a node's data. The
// control plane renders them over sample data when it loads a profile; the
// ops-agent renders them over the real data on the host.
package recipe

import (
	"bytes"
	"fmt"
	"text/template"
)

// Data is what a chain profile's templates (component args, env,
// config files, init steps, metrics URL) are rendered over on the host.
// The control plane renders the same templates over sample data when it
// loads a profile, so a template that refers to anything not here, or to an
// input, key or port the profile does not declare, is refused at load.
type Data struct {
	NodeID  string
	DataDir string            // absolute path of the chain data directory
	Inputs  map[string]string // text and proof inputs; "" for one not supplied
	Keys    map[string]string // key name → absolute path of its file
	Ports   map[string]int    // port name → port the host allocated
	// Component name → absolute path of its installed program, for a
	// component that runs another's (cosmovisor running gaiad).
	Programs map[string]string
}

// ParseTemplate parses text as one recipe template; name says where it
// comes from in messages.
func ParseTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Option("missingkey=error").Parse(text)
}

// Render parses and executes text over d.
func Render(name, text string, d *Data) (string, error) {
	t, err := ParseTemplate(name, text)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	return b.String(), nil
}
