package mock

import (
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// Catalog is a fake engine.Catalog.
type Catalog struct {
	PlacementFn func(chainProfileID, nodeType, duration string) (engine.Placement, error)
	InputFn     func(chainProfileID, nodeType, name string) (engine.InputRule, error)
	ExpiryFn    func(duration string, from time.Time) (time.Time, error)
	// RequiredInputsFn nil: no node needs an input before payment.
	RequiredInputsFn func(chainProfileID, nodeType string) ([]string, error)
}

var _ engine.Catalog = (*Catalog)(nil)

func (c *Catalog) Placement(chainProfileID, nodeType, duration string) (engine.Placement, error) {
	return c.PlacementFn(chainProfileID, nodeType, duration)
}

func (c *Catalog) Input(chainProfileID, nodeType, name string) (engine.InputRule, error) {
	return c.InputFn(chainProfileID, nodeType, name)
}

func (c *Catalog) Expiry(duration string, from time.Time) (time.Time, error) {
	return c.ExpiryFn(duration, from)
}

func (c *Catalog) RequiredInputs(chainProfileID, nodeType string) ([]string, error) {
	if c.RequiredInputsFn == nil {
		return nil, nil
	}
	return c.RequiredInputsFn(chainProfileID, nodeType)
}
