// Package profile reads chain profiles: the YAML documents that declare a
// chain's components, its node types with their placements per duration, and
// the provisioning inputs a customer supplies. A Catalog holds the validated
// set (embedded defaults overlaid by the config dir) and swaps it atomically
// when the files change.
//
// Profiles are immutable once parsed: callers share them and must not modify
// them.
package profile

import (
	"strings"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/observe"
	"gopkg.in/yaml.v3"
)

// ChainProfile is one chain as the appliance offers it.
type ChainProfile struct {
	ID          string         `json:"id"` // e.g. "ethereum-holesky"; safe in paths and metric labels
	Name        string         `json:"name"`
	Version     string         `json:"version"`
	Family      string         `json:"family"` // e.g. "ethereum", "cosmos"
	Description string         `json:"description,omitempty"`
	Components  []Component    `json:"components"` // in declared order: rollout groups upgrade them in it
	NodeTypes   []NodeType     `json:"node_types"` // in declared order
	Inputs      []InputSpec    `json:"provisioning_inputs"`
	Health      Health         `json:"-"`
	File        string         `json:"-"`                   // where it was read from, for messages: "<source>/<file>"
	Source      string         `json:"-"`                   // the Source it came from: "assets" or the config dir (not for customers)
	Checksum    string         `json:"checksum"`            // SHA-256 (hex) of the file's bytes
	Ports       []string       `json:"-"`                   // allocated per node by its host, by name
	Endpoints   []string       `json:"endpoints,omitempty"` // the ports a node's owner reaches
	Genesis     *Genesis       `json:"-"`
	Custody     Custody        `json:"-"`
	nodeTypes   map[string]int // name → index in NodeTypes
}

// Component is a binary the chain runs, pinned by version and digest, and
// its recipe: how the host runs it (see recipe.go).
type Component struct {
	Name    string            `json:"name"`
	Version string            `json:"version"`
	URL     string            `json:"url"`
	SHA256  string            `json:"sha256"` // lowercase hex of the download; empty for a local artifact
	Metrics *MetricsSpec      `json:"-"`      // nil when the component serves none
	Binary  string            `json:"-"`      // the program inside an archive artifact
	Args    []string          `json:"-"`
	Env     map[string]string `json:"-"`
	Init    []InitStep        `json:"-"`
	Files   []TemplateFile    `json:"-"`
	// SignsWith names the keys the component signs with: it starts only
	// under a signing lease on each (see Custody).
	SignsWith []string `json:"-"`
}

// MetricsSpec is where a component serves Prometheus metrics on its host
// and which of them tell the chain's progress. The agent on the node
// scrapes it and reports height, peers and sync status in its heartbeats.
type MetricsSpec struct {
	URL          string // http(s) on a loopback address
	BlockHeight  string // metric names; BlockHeight and Peers are required
	HighestBlock string
	Peers        string
	Syncing      string // 1 while syncing
}

// NodeType is a kind of node of a chain (full, archive, validator…) and the
// durations it is sold for.
type NodeType struct {
	Name        string  `json:"name"`
	Description string  `json:"description,omitempty"`
	Offers      []Offer `json:"offers"` // shortest duration first

	Inputs []string `json:"inputs"` // the provisioning inputs a node of this type takes, in declared order
}

// Offer is one duration of a node type and where such a node runs.
type Offer struct {
	Duration Duration `json:"duration"`
	Placement
}

// Placement is where a node of a node type and duration is provisioned.
type Placement struct {
	Provider     string `json:"provider"` // e.g. "hetzner", "local"
	Region       string `json:"region"`
	InstanceType string `json:"instance_type"`
	// PriceCents is the price of the whole duration in euro cents: every
	// profile prices in EUR (engine.PaymentCurrency). 0 when the profile
	// sets no price; such a node is paid by any payment.
	PriceCents int64 `json:"price_cents,omitempty"`
}

// Health is the profile's observation config: its collectors, kept opaque,
// and its health policy, compiled once when the profile is loaded.
type Health struct {
	Collectors yaml.Node
	Policy     *observe.Policy // the default rules overlaid by the profile's
}

// NodeType returns the node type called name.
func (p *ChainProfile) NodeType(name string) (*NodeType, bool) {
	i, ok := p.nodeTypes[name]
	if !ok {
		return nil, false
	}
	return &p.NodeTypes[i], true
}

// Offer returns the offer of nodeType for duration, or EInvalid naming what
// the profile does not have.
func (p *ChainProfile) Offer(nodeType, duration string) (Offer, error) {
	nt, ok := p.NodeType(nodeType)
	if !ok {
		return Offer{}, engine.Errorf(engine.EInvalid, "chain profile %q has no node type %q (offered: %s)",
			p.ID, nodeType, strings.Join(p.nodeTypeNames(), ", "))
	}
	for _, o := range nt.Offers {
		if string(o.Duration) == duration {
			return o, nil
		}
	}
	return Offer{}, engine.Errorf(engine.EInvalid, "node type %q of chain profile %q is not offered for duration %q (offered: %s)",
		nodeType, p.ID, duration, strings.Join(nt.durationNames(), ", "))
}

// Resolve returns the provider, region and instance type of a node of
// nodeType bought for duration, or EInvalid naming what is unknown.
func (p *ChainProfile) Resolve(nodeType, duration string) (Placement, error) {
	o, err := p.Offer(nodeType, duration)
	return o.Placement, err
}

// Ref is the reference the Store keeps of this profile.
func (p *ChainProfile) Ref(at time.Time) *engine.ChainProfileRef {
	return &engine.ChainProfileRef{ID: p.ID, Version: p.Version, Checksum: p.Checksum, Source: p.Source, UpdatedAt: at}
}

func (p *ChainProfile) nodeTypeNames() []string {
	names := make([]string, len(p.NodeTypes))
	for i, nt := range p.NodeTypes {
		names[i] = nt.Name
	}
	return names
}

func (nt *NodeType) durationNames() []string {
	names := make([]string, len(nt.Offers))
	for i, o := range nt.Offers {
		names[i] = string(o.Duration)
	}
	return names
}
