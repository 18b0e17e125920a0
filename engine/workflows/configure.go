package workflows

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
)

// The JSON of the agent protocol's CONFIGURE messages (proto/agent/v1):
// the chain profile's recipe, which the agent renders on the host.
type (
	configurePayload struct {
		ChainProfileID string            `json:"chain_profile_id"`
		NodeID         string            `json:"node_id,omitempty"`
		Components     []configComponent `json:"components,omitempty"`
		Inputs         map[string]string `json:"inputs,omitempty"`
		Ports          []string          `json:"ports,omitempty"`
		KeyPaths       map[string]string `json:"key_paths,omitempty"`
		Genesis        *configGenesis    `json:"genesis,omitempty"`
	}
	configComponent struct {
		Name      string            `json:"name"`
		Version   string            `json:"version"`
		Artifact  configArtifact    `json:"artifact"`
		Args      []string          `json:"args,omitempty"`
		Env       map[string]string `json:"env,omitempty"`
		Metrics   *configMetrics    `json:"metrics,omitempty"`
		Binary    string            `json:"binary,omitempty"`
		Init      []configInit      `json:"init,omitempty"`
		Templates []configTemplate  `json:"templates,omitempty"`
		SignsWith []string          `json:"signs_with,omitempty"`
	}
	configArtifact struct {
		URL    string `json:"url,omitempty"`
		SHA256 string `json:"sha256,omitempty"`
	}
	configInit struct {
		Args    []string          `json:"args,omitempty"`
		Env     map[string]string `json:"env,omitempty"`
		Creates string            `json:"creates,omitempty"`
	}
	configTemplate struct {
		Path     string `json:"path"`
		Template string `json:"template"`
		Mode     uint32 `json:"mode,omitempty"`
		Keep     bool   `json:"keep,omitempty"`
	}
	configGenesis struct {
		Path     string          `json:"path"`
		Artifact *configArtifact `json:"artifact,omitempty"`
		Content  []byte          `json:"content,omitempty"`
	}
	// configMetrics is the protocol's MetricsSpec: where the agent scrapes
	// the component's metrics.
	configMetrics struct {
		URL          string `json:"url"`
		BlockHeight  string `json:"block_height"`
		HighestBlock string `json:"highest_block,omitempty"`
		Peers        string `json:"peers,omitempty"`
		Syncing      string `json:"syncing,omitempty"`
		AddrFile     string `json:"addr_file,omitempty"`
	}
	// configureResult is the protocol's ConfigureResult.
	configureResult struct {
		Ports          map[string]int    `json:"ports,omitempty"`
		ArtifactSHA256 map[string]string `json:"artifact_sha256,omitempty"`
	}
)

// LocalArtifacts finds the programs a profile names "path:<name>" on the
// appliance's PATH (the local provisioner's hosts share its machine).
type LocalArtifacts interface {
	// Find returns the file URL and lowercase hex SHA-256 of the program
	// called name; ENotFound when there is none.
	Find(name string) (url, sha256 string, err error)
}

// SendConfigureCommand queues CONFIGURE with the chain profile's recipe and
// the customer's text and proof inputs, and waits for the agent to
// acknowledge it.
func (a *Activities) SendConfigureCommand(ctx context.Context, req CommandRequest) error {
	payload, err := a.configurePayload(ctx, req.NodeID)
	if err != nil {
		return classify(err)
	}
	return a.sendAndAwaitAck(ctx, req, engine.CommandConfigure, payload)
}

func (a *Activities) configurePayload(ctx context.Context, nodeID string) ([]byte, error) {
	n, err := a.Store.GetNode(ctx, nodeID)
	if err != nil {
		return nil, fmt.Errorf("read node %s: %w", nodeID, err)
	}
	p, err := a.Chains(n.ChainProfileID)
	if err != nil {
		return nil, err
	}
	inputs, err := a.Store.ListInputs(ctx, n.SubscriptionID)
	if err != nil {
		return nil, fmt.Errorf("list inputs of %s: %w", n.SubscriptionID, err)
	}
	sim, local, err := a.localRun(ctx, n, p)
	if err != nil {
		return nil, err
	}
	cp := configureOf(p, n.NodeType, inputs, sim, local)
	withReleases(&cp, n.Runtime.Releases, sim != nil)
	cp.NodeID = n.ID
	return json.Marshal(cp)
}

// localRun decides how the local provisioner runs the node's chain: the
// real programs when the profile names local artifacts ("path:cometbft")
// and every one of them is on the appliance's PATH, the simulated chain
// otherwise. The real programs are pinned by the digests of the files
// found the first time, recorded on the node, so every later CONFIGURE
// (re-sent, or after a migration) runs the same files.
func (a *Activities) localRun(ctx context.Context, n *engine.Node, p *profile.ChainProfile) (*Simulation, map[string]configArtifact, error) {
	local := localPrograms(p)
	switch {
	case a.Simulation == nil && len(local) > 0:
		return nil, nil, engine.Errorf(engine.EUnsupported, "chain profile %q runs programs from the appliance's PATH: only the local provisioner can", p.ID)
	case a.Simulation == nil:
		return nil, nil, nil
	case len(local) == 0 || a.Simulation.Artifacts == nil:
		return a.Simulation, nil, nil
	}
	found := map[string]configArtifact{}
	for component, program := range local {
		if n.Runtime.Releases[component].URL != "" {
			continue // upgraded: the release's artifact replaces the PATH's program
		}
		url, sha, err := a.Simulation.Artifacts.Find(program)
		_, pinned := n.Runtime.Artifacts[component]
		switch {
		case engine.IsCode(err, engine.ENotFound) && pinned:
			return nil, nil, engine.Errorf(engine.EUnavailable, "component %q of node %s runs %s, which is no longer on the PATH", component, n.ID, program)
		case engine.IsCode(err, engine.ENotFound):
			return a.Simulation, nil, nil // not installed here: the simulated chain stands in
		}
		if err != nil {
			return nil, nil, fmt.Errorf("find %s for component %q: %w", program, component, err)
		}
		if pinned, ok := n.Runtime.Artifacts[component]; ok && pinned != sha {
			return nil, nil, engine.Errorf(engine.EInvalid, "component %q of node %s is pinned to sha256 %s, but %s on the PATH now has sha256 %s",
				component, n.ID, pinned, program, sha)
		}
		found[component] = configArtifact{URL: url, SHA256: sha}
	}
	return nil, found, a.pinArtifacts(ctx, n.ID, found)
}

// simulated reports whether the node runs the simulated chain: with the
// local provisioner, unless every program of the profile is pinned on the
// node (localRun found them all on the PATH).
func (a *Activities) simulated(n *engine.Node, p *profile.ChainProfile) bool {
	if a.Simulation == nil {
		return false
	}
	local := localPrograms(p)
	if len(local) == 0 || a.Simulation.Artifacts == nil {
		return true
	}
	for component := range local {
		if _, pinned := n.Runtime.Artifacts[component]; !pinned {
			return true
		}
	}
	return false
}

// localPrograms maps each component with a local artifact to its program.
func localPrograms(p *profile.ChainProfile) map[string]string {
	out := map[string]string{}
	for _, c := range p.Components {
		if program, ok := c.Local(); ok {
			out[c.Name] = program
		}
	}
	return out
}

// pinArtifacts records the digests on the node.
func (a *Activities) pinArtifacts(ctx context.Context, nodeID string, found map[string]configArtifact) error {
	return a.updateNode(ctx, nodeID, func(n *engine.Node) bool {
		changed := false
		for component, art := range found {
			if n.Runtime.Artifacts[component] != art.SHA256 {
				if n.Runtime.Artifacts == nil {
					n.Runtime.Artifacts = map[string]string{}
				}
				n.Runtime.Artifacts[component], changed = art.SHA256, true
			}
		}
		return changed
	})
}

// configureOf is the CONFIGURE payload of a node of p: the simulated chain
// when sim is set, else the profile's recipe with its artifacts, those in
// local replacing the profile's.
func configureOf(p *profile.ChainProfile, nodeType string, inputs []*engine.ProvisioningInput, sim *Simulation, local map[string]configArtifact) configurePayload {
	cp := configurePayload{ChainProfileID: p.ID, Inputs: map[string]string{}}
	for _, c := range p.Components {
		if sim != nil {
			cp.Components = append(cp.Components, configComponent{Name: c.Name, Version: c.Version, Args: sim.command(c, p, nodeType), Metrics: sim.metrics(c)})
			continue
		}
		cc := recipeOf(c)
		cc.SignsWith = signing(c.SignsWith, p.SigningKeys(nodeType))
		if art, ok := local[c.Name]; ok {
			cc.Artifact = art
		}
		cp.Components = append(cp.Components, cc)
	}
	if sim == nil {
		cp.Ports, cp.KeyPaths, cp.Genesis = p.Ports, p.KeyPaths(nodeType), genesisOf(p.Genesis)
		for _, s := range p.InputsFor(nodeType) {
			if s.Type != engine.InputSecret {
				cp.Inputs[s.Name] = "" // declared: a template may name it
			}
		}
	}
	for _, in := range inputs {
		if in.Type != engine.InputSecret {
			cp.Inputs[in.Name] = in.Value
		}
	}
	return cp
}

// withReleases puts the releases the node's upgrades installed in place of
// the profile's components: a migrated node runs what it ran. A simulated
// node takes the version alone (its command line names it).
func withReleases(cp *configurePayload, releases map[string]engine.Release, simulated bool) {
	for i := range cp.Components {
		c := &cp.Components[i]
		rel, ok := releases[c.Name]
		if !ok {
			continue
		}
		if simulated {
			c.Args = slices.Clone(c.Args)
			if j := slices.Index(c.Args, c.Version); j > 0 && c.Args[j-1] == "--version" {
				c.Args[j] = rel.Version
			}
			c.Version = rel.Version
			continue
		}
		c.Version = rel.Version
		if rel.URL != "" {
			c.Artifact, c.Binary = configArtifact{URL: rel.URL, SHA256: rel.SHA256}, rel.Binary
		}
		if len(rel.Args) > 0 {
			c.Args = rel.Args
		}
	}
}

// signing is what a component signs with on a node whose type takes keys.
func signing(signsWith, keys []string) []string {
	var out []string
	for _, k := range signsWith {
		if slices.Contains(keys, k) {
			out = append(out, k)
		}
	}
	return out
}

func recipeOf(c profile.Component) configComponent {
	cc := configComponent{Name: c.Name, Version: c.Version, Artifact: configArtifact{URL: c.URL, SHA256: c.SHA256},
		Args: c.Args, Env: maps.Clone(c.Env), Metrics: metricsOf(c.Metrics), Binary: c.Binary}
	for _, s := range c.Init {
		cc.Init = append(cc.Init, configInit{Args: s.Args, Env: maps.Clone(s.Env), Creates: s.Creates})
	}
	for _, f := range c.Files {
		cc.Templates = append(cc.Templates, configTemplate{Path: f.Path, Template: f.Template, Mode: f.Mode, Keep: f.Keep})
	}
	return cc
}

func genesisOf(g *profile.Genesis) *configGenesis {
	switch {
	case g == nil:
		return nil
	case g.URL != "":
		return &configGenesis{Path: g.Path, Artifact: &configArtifact{URL: g.URL, SHA256: g.SHA256}}
	default:
		return &configGenesis{Path: g.Path, Content: g.Content}
	}
}

func metricsOf(m *profile.MetricsSpec) *configMetrics {
	if m == nil {
		return nil
	}
	return &configMetrics{URL: m.URL, BlockHeight: m.BlockHeight, HighestBlock: m.HighestBlock, Peers: m.Peers, Syncing: m.Syncing}
}

// recordRuntime keeps what the host made of a completed CONFIGURE on the
// node: the ports it allocated and the digests of what it installed.
func (a *Activities) recordRuntime(ctx context.Context, c *engine.Command) error {
	var r configureResult
	if len(c.Result) == 0 {
		return nil // an agent that allocates nothing
	}
	if err := json.Unmarshal(c.Result, &r); err != nil {
		return permanent(engine.EInvalid, "the result of CONFIGURE %s does not decode: %v", c.ID, err)
	}
	return a.updateNode(ctx, c.NodeID, func(n *engine.Node) bool {
		if maps.Equal(n.Runtime.Ports, r.Ports) && (len(r.ArtifactSHA256) == 0 || maps.Equal(n.Runtime.Artifacts, r.ArtifactSHA256)) {
			return false
		}
		n.Runtime.Ports = r.Ports
		if len(r.ArtifactSHA256) > 0 {
			n.Runtime.Artifacts = r.ArtifactSHA256
		}
		return true
	})
}

// updateNode applies change to the node and writes it when change reports
// a change, reading again after a concurrent writer.
func (a *Activities) updateNode(ctx context.Context, nodeID string, change func(*engine.Node) bool) error {
	var err error
	for range 5 {
		var n *engine.Node
		if n, err = a.Store.GetNode(ctx, nodeID); err != nil {
			return classify(fmt.Errorf("read node %s: %w", nodeID, err))
		}
		if !change(n) {
			return nil
		}
		n.UpdatedAt = a.now().Truncate(time.Microsecond)
		if err = a.Store.UpdateNode(ctx, n); !engine.IsCode(err, engine.EConflict) {
			return classify(err)
		}
	}
	return fmt.Errorf("update node %s: %w", nodeID, err)
}

// Simulation runs the simulated chain node in place of every chain binary:
// with the local provisioner (dev, CI, evaluation) nothing is downloaded
// and the node behaves like a chain that syncs and makes blocks. A profile
// whose programs are all on the appliance's PATH (Artifacts) runs them
// instead.
type Simulation struct {
	Binary    string // the hoodcloud binary, run as `Binary simnode …`
	Artifacts LocalArtifacts
}

func (s *Simulation) command(c profile.Component, p *profile.ChainProfile, nodeType string) []string {
	args := []string{s.Binary, "simnode", "--data-dir", c.Name, "--metrics-addr", "127.0.0.1:0", "--version", c.Version}
	// The simulated node writes its key where the profile says the real
	// component does, so that capturing it works as on a real host.
	for _, k := range p.Secrets(nodeType, profile.SourceChainGenerated) {
		if rel, ok := strings.CutPrefix(k.KeyPath, c.Name+"/"); ok {
			return append(args, "--node-key-file", rel)
		}
	}
	return args
}

// metrics points the agent at the simulated node of c: it listens on a
// free port, which it writes to the file "addr" of its data dir, and serves
// the chain_* gauges (see agent/simnode).
func (s *Simulation) metrics(c profile.Component) *configMetrics {
	return &configMetrics{URL: "http://127.0.0.1/metrics", AddrFile: c.Name + "/addr",
		BlockHeight: "chain_block_height", HighestBlock: "chain_highest_block", Peers: "chain_peers", Syncing: "chain_syncing"}
}
