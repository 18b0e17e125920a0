package engine

import "time"

// Placement is where a node runs: a provider, its region and the instance
// type of the host; and what it costs.
type Placement struct {
	Provider     string
	Region       string
	InstanceType string
	// PriceCents is the price of the whole duration in euro cents
	// (PaymentCurrency); 0 when the profile sets no price.
	PriceCents int64
}

// Catalog is what the use-cases know of the chain profiles: where a node is
// placed, which provisioning inputs each node type takes and when a paid duration ends.
// Implemented by the profile package; safe for concurrent use, and every
// answer reflects the profiles current when it is asked.
//
// One error contract for every method: a profile, node type, duration or
// input the catalogue does not offer is EInvalid (the request names
// something that does not exist; asking again will not help).
type Catalog interface {
	// Placement returns where a node of nodeType bought for duration under
	// the chain profile runs. EInvalid when any of the three is not offered.
	Placement(chainProfileID, nodeType, duration string) (Placement, error)
	// Input returns the rule of the chain profile's input called name for
	// a node of nodeType. EInvalid when the profile or the input is
	// unknown, or when nodes of nodeType do not take the input.
	Input(chainProfileID, nodeType, name string) (InputRule, error)
	// RequiredInputs names the inputs a customer must supply for a node of
	// nodeType before it is paid for: required, supplied by the customer
	// and needed before provisioning. EInvalid when the profile or the node
	// type is unknown.
	RequiredInputs(chainProfileID, nodeType string) ([]string, error)
	// Expiry is when a subscription of duration starting at from ends.
	// EInvalid for a duration the catalogue does not know.
	Expiry(duration string, from time.Time) (time.Time, error)
}
