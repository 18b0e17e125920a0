package engine

import (
	"context"
	"fmt"
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

// IncidentSpec is a problem to raise on a node.
type IncidentSpec struct {
	NodeID    string
	DedupeKey string // e.g. "policy:stuck": at most one open incident per node and key
	Severity  Severity
	Summary   string
}

// RaiseIncident opens an incident for spec at now unless one is open for
// the same node and dedupe key. It returns the open incident and whether
// this call opened it.
func RaiseIncident(ctx context.Context, store IncidentStore, spec IncidentSpec, now time.Time) (*Incident, bool, error) {
	if in, err := store.FindOpenIncident(ctx, spec.NodeID, spec.DedupeKey); err == nil {
		return in, false, nil
	} else if !IsCode(err, ENotFound) {
		return nil, false, fmt.Errorf("find open incident %s of node %s: %w", spec.DedupeKey, spec.NodeID, err)
	}
	in := &Incident{
		ID: NewID("inc"), NodeID: spec.NodeID, DedupeKey: spec.DedupeKey,
		Severity: spec.Severity, Summary: spec.Summary, OpenedAt: now,
	}
	err := store.OpenIncident(ctx, in)
	if IsCode(err, EConflict) && err != ErrStaleLeader {
		// Another writer opened it first.
		in, err = store.FindOpenIncident(ctx, spec.NodeID, spec.DedupeKey)
		return in, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("open incident %s of node %s: %w", spec.DedupeKey, spec.NodeID, err)
	}
	return in, true, nil
}

// ResolveIncident resolves the open incident for (nodeID, dedupeKey) at
// now. It returns the resolved incident, or nil when none was open.
func ResolveIncident(ctx context.Context, store IncidentStore, nodeID, dedupeKey string, now time.Time) (*Incident, error) {
	for range transitionAttempts {
		in, err := store.FindOpenIncident(ctx, nodeID, dedupeKey)
		if IsCode(err, ENotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("find open incident %s of node %s: %w", dedupeKey, nodeID, err)
		}
		in.ResolvedAt = now
		err = store.UpdateIncident(ctx, in)
		if err == nil {
			return in, nil
		}
		if !IsCode(err, EConflict) || err == ErrStaleLeader {
			return nil, fmt.Errorf("resolve incident %s: %w", in.ID, err)
		}
	}
	return nil, Errorf(EConflict, "incident %s of node %s kept changing while resolving", dedupeKey, nodeID)
}
