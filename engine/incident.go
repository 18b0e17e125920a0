package engine

import (
	"context"
	"time"
)

// Severity of an incident.
type Severity string

const (
	SeverityCritical Severity = "critical"
	SeverityWarning  Severity = "warning"
	SeverityInfo     Severity = "info"
)

// Incident is a problem with a node that an operator should know of.
type Incident struct {
	ID         string
	NodeID     string
	DedupeKey  string // at most one open incident per (NodeID, DedupeKey)
	Severity   Severity
	Summary    string
	OpenedAt   time.Time
	ResolvedAt time.Time // zero while open
	NotifiedAt time.Time
	Version    int64
}

// Open reports whether the incident is unresolved.
func (i *Incident) Open() bool { return i.ResolvedAt.IsZero() }

// IncidentStore keeps incidents. Safe for concurrent use.
type IncidentStore interface {
	// OpenIncident stores i with Version 1. Returns EConflict if the ID is
	// taken or an open incident with the same node and dedupe key exists.
	OpenIncident(ctx context.Context, i *Incident) error
	// GetIncident returns ENotFound if missing.
	GetIncident(ctx context.Context, id string) (*Incident, error)
	// FindOpenIncident returns the open incident for (nodeID, dedupeKey) or ENotFound.
	FindOpenIncident(ctx context.Context, nodeID, dedupeKey string) (*Incident, error)
	// ListIncidents returns the node's incidents, newest first.
	ListIncidents(ctx context.Context, nodeID string) ([]*Incident, error)
	// UpdateIncident writes i if the version matches, then bumps it (resolve,
	// mark notified). Returns ENotFound or EConflict.
	UpdateIncident(ctx context.Context, i *Incident) error
}
