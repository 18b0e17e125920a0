package engine

import "time"

// Placement is where a node runs: a provider, its region and the instance
// type of the host.
type Placement struct {
	Provider     string
	Region       string
	InstanceType string
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
	// Expiry is when a subscription of duration starting at from ends.
	// EInvalid for a duration the catalogue does not know.
	Expiry(duration string, from time.Time) (time.Time, error)
}
