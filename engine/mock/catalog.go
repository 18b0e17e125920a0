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
