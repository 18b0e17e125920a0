package profile

import (
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

var _ engine.Catalog = (*Catalog)(nil)

// Placement implements engine.Catalog from the current profiles.
func (c *Catalog) Placement(chainProfileID, nodeType, duration string) (engine.Placement, error) {
	p, err := c.offered(chainProfileID)
	if err != nil {
		return engine.Placement{}, err
	}
	pl, err := p.Resolve(nodeType, duration)
	if err != nil {
		return engine.Placement{}, err
	}
	return engine.Placement{Provider: pl.Provider, Region: pl.Region, InstanceType: pl.InstanceType, PriceCents: pl.PriceCents}, nil
}

// RequiredInputs implements engine.Catalog: the required pre-provision
// inputs the customer supplies for a node of nodeType.
func (c *Catalog) RequiredInputs(chainProfileID, nodeType string) ([]string, error) {
	p, err := c.offered(chainProfileID)
	if err != nil {
		return nil, err
	}
	if _, ok := p.NodeType(nodeType); !ok {
		return nil, engine.Errorf(engine.EInvalid, "chain profile %q has no node type %q", chainProfileID, nodeType)
	}
	return p.MissingInputs(nodeType, PhasePreProvision, nil), nil
}

// Input implements engine.Catalog from the current profiles.
func (c *Catalog) Input(chainProfileID, nodeType, name string) (engine.InputRule, error) {
	p, err := c.offered(chainProfileID)
	if err != nil {
		return engine.InputRule{}, err
	}
	spec, err := p.InputFor(nodeType, name)
	if err != nil {
		return engine.InputRule{}, err
	}
	return engine.InputRule{Type: spec.Type, Supplied: spec.SuppliedByCustomer(), Check: spec.CheckValue, CheckKey: spec.CheckKey}, nil
}

// Expiry implements engine.Catalog: durations mean the same in every profile.
func (c *Catalog) Expiry(duration string, from time.Time) (time.Time, error) {
	d, err := ParseDuration(duration)
	if err != nil {
		return time.Time{}, err
	}
	return d.Expiry(from)
}

// offered is the current profile called id; an unknown id is EInvalid, as
// engine.Catalog promises: the caller named something not on offer.
func (c *Catalog) offered(id string) (*ChainProfile, error) {
	p, err := c.Get(id)
	if engine.IsCode(err, engine.ENotFound) {
		return nil, engine.Errorf(engine.EInvalid, "unknown chain profile %q", id)
	}
	return p, err
}
