package engine

import (
	"context"
	"time"
)

// ChainProfileRef records which version of a chain profile the appliance
// uses, so nodes keep pointing at the profile they were built from.
type ChainProfileRef struct {
	ID        string // e.g. "ethereum-holesky"
	Version   string
	Checksum  string // SHA-256 of the profile's YAML
	Source    string // "assets" or the config dir
	UpdatedAt time.Time
}

// ChainProfileStore keeps chain profile references. Safe for concurrent use.
type ChainProfileStore interface {
	// PutChainProfileRef creates or replaces the reference with r.ID.
	PutChainProfileRef(ctx context.Context, r *ChainProfileRef) error
	// GetChainProfileRef returns ENotFound if missing.
	GetChainProfileRef(ctx context.Context, id string) (*ChainProfileRef, error)
	// ListChainProfileRefs returns every reference ordered by ID.
	ListChainProfileRefs(ctx context.Context) ([]*ChainProfileRef, error)
}
