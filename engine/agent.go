package engine

import (
	"context"
	"slices"
	"time"
)

// EnrollmentToken lets one agent enrol for one node before it expires.
// Only the token's hash is stored. Consuming it binds it to the agent's
// key, so the same agent may repeat an enrolment whose reply it lost while
// any other key is refused.
type EnrollmentToken struct {
	Hash           []byte
	NodeID         string
	ExpiresAt      time.Time
	UsedAt         time.Time
	KeyFingerprint []byte // SHA-256 of the enrolled key's SubjectPublicKeyInfo; empty until used
	// Incarnation is the host the token was issued for
	// (HostSpec.Incarnation): empty for the node's first host.
	Incarnation string
	CreatedAt   time.Time
}

// AgentRegistration is the identity an enrolled agent holds.
type AgentRegistration struct {
	NodeID     string
	CertSerial string // of the client certificate issued last
	// PreviousCertSerial is the certificate CertSerial renewed; it stays
	// valid until it expires, so an agent that lost the renewal's reply can
	// still connect and renew again. Empty after an enrolment.
	PreviousCertSerial string
	AgentVersion       string
	// Incarnation is the host the agent enrolled on, from its token: the
	// gateway hands a START bearing signing leases only to their holder.
	Incarnation string
	EnrolledAt  time.Time
	RevokedAt   time.Time // zero: valid
}

// Accepts reports whether serial is a certificate the registration stands
// behind: the current one or the one it was renewed from, unless revoked.
func (r *AgentRegistration) Accepts(serial string) bool {
	return r.RevokedAt.IsZero() && serial != "" && (serial == r.CertSerial || serial == r.PreviousCertSerial)
}

// AgentStore keeps enrolment tokens and agent registrations. Safe for concurrent use.
type AgentStore interface {
	// CreateEnrollmentToken returns EConflict if the hash is taken.
	CreateEnrollmentToken(ctx context.Context, t *EnrollmentToken) error
	// ConsumeEnrollmentToken uses the token for the key whose fingerprint
	// (non-empty) is given and returns it. The first use sets UsedAt to now
	// and KeyFingerprint; a later use with the same fingerprint returns the
	// token as that first use left it (the agent repeats an enrolment whose
	// reply it lost). Returns ENotFound if unknown, EForbidden if expired at
	// now, used or not, and EConflict if already used for another key. Of
	// concurrent consumers with different keys exactly one succeeds.
	ConsumeEnrollmentToken(ctx context.Context, hash, keyFingerprint []byte, now time.Time) (*EnrollmentToken, error)
	// PutAgentRegistration creates or replaces the node's registration.
	PutAgentRegistration(ctx context.Context, r *AgentRegistration) error
	// GetAgentRegistration returns ENotFound if the node has none.
	GetAgentRegistration(ctx context.Context, nodeID string) (*AgentRegistration, error)
	// RevokeAgentRegistration sets RevokedAt. Returns ENotFound if missing.
	RevokeAgentRegistration(ctx context.Context, nodeID string, at time.Time) error
}

// AppHealth is an agent's verdict on the chain software it runs.
type AppHealth string

const (
	AppHealthUnknown  AppHealth = "unknown"
	AppHealthHealthy  AppHealth = "healthy"
	AppHealthDegraded AppHealth = "degraded"
	AppHealthCritical AppHealth = "critical"
)

// AgentStatus is what a node's agent said in its latest heartbeat. It is
// hot state: kept in the Cache for a few heartbeat intervals, never in the
// Store, so a missing status means the agent has gone quiet.
type AgentStatus struct {
	NodeID            string
	AgentVersion      string
	RunningCommandIDs []string // acknowledged and not yet reported finished
	Health            AppHealth
	HealthMessage     string // why Health is what it is; empty when healthy
	Syncing           bool
	BlockHeight       uint64
	HighestBlock      uint64 // the network head as the node knows it
	Peers             int
	Metrics           map[string]float64 // the agent's latest sample of the chain's metrics
	MetricsAt         time.Time          // when that sample was taken; zero without one
	ReportedAt        time.Time          // when the gateway received the heartbeat
	Components        []ComponentStatus  `json:",omitempty"` // in the configuration's order
}

// ComponentStatus is how one chain component (a binary or container of
// the node) runs on its host, as the agent last reported it.
type ComponentStatus struct {
	Name      string `json:"name"`
	Version   string `json:"version,omitempty"` // installed now
	Running   bool   `json:"running"`
	Restarts  int    `json:"restarts,omitempty"` // crashes recovered from since its start
	CrashLoop bool   `json:"crash_loop,omitempty"`
	LastExit  string `json:"last_exit,omitempty"` // why it last exited, for people
}

// Running reports whether the agent listed commandID as running.
func (s *AgentStatus) Running(commandID string) bool {
	return slices.Contains(s.RunningCommandIDs, commandID)
}

// AgentStatusCache keeps the latest AgentStatus of each node. Adapters:
// the Redis Cache (embedded and external). Safe for concurrent use.
type AgentStatusCache interface {
	// SetAgentStatus replaces the node's status, expiring after ttl.
	SetAgentStatus(ctx context.Context, s *AgentStatus, ttl time.Duration) error
	// GetAgentStatus returns the node's latest status, or ENotFound when
	// none arrived within the ttl it was set with.
	GetAgentStatus(ctx context.Context, nodeID string) (*AgentStatus, error)
}

// AgentStatusLister reads the statuses of many nodes at once: the health
// evaluator reads the fleet in batches. The Redis Cache is one.
type AgentStatusLister interface {
	// GetAgentStatuses returns the latest status of each node that has one,
	// by node id, in one round trip: nodes without a recent status are
	// absent from the map.
	GetAgentStatuses(ctx context.Context, nodeIDs []string) (map[string]*AgentStatus, error)
}
