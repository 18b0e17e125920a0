package engine

import (
	"context"
	"time"
)

// EnrollmentToken lets one agent enrol once for one node before it expires.
// Only the token's hash is stored.
type EnrollmentToken struct {
	Hash      []byte
	NodeID    string
	ExpiresAt time.Time
	UsedAt    time.Time
	CreatedAt time.Time
}

// AgentRegistration is the identity an enrolled agent holds.
type AgentRegistration struct {
	NodeID       string
	CertSerial   string // of the client certificate issued at enrolment
	AgentVersion string
	EnrolledAt   time.Time
	RevokedAt    time.Time // zero: valid
}

// AgentStore keeps enrolment tokens and agent registrations. Safe for concurrent use.
type AgentStore interface {
	// CreateEnrollmentToken returns EConflict if the hash is taken.
	CreateEnrollmentToken(ctx context.Context, t *EnrollmentToken) error
	// ConsumeEnrollmentToken marks the token used at now and returns it.
	// Returns ENotFound if unknown, EConflict if already used, EForbidden if
	// expired at now. Of two concurrent consumers exactly one succeeds.
	ConsumeEnrollmentToken(ctx context.Context, hash []byte, now time.Time) (*EnrollmentToken, error)
	// PutAgentRegistration creates or replaces the node's registration.
	PutAgentRegistration(ctx context.Context, r *AgentRegistration) error
	// GetAgentRegistration returns ENotFound if the node has none.
	GetAgentRegistration(ctx context.Context, nodeID string) (*AgentRegistration, error)
	// RevokeAgentRegistration sets RevokedAt. Returns ENotFound if missing.
	RevokeAgentRegistration(ctx context.Context, nodeID string, at time.Time) error
}
