package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Severity of an incident.
type Severity string

const (
	SeverityCritical Severity = "critical"
	SeverityWarning  Severity = "warning"
	SeverityInfo     Severity = "info"
)

// Incident is a problem with a node that an operator should know of. It is
// opened, perhaps acknowledged, resolved; notifiers are told of each of
// those events (see engine/incidents).
type Incident struct {
	ID         string
	NodeID     string
	DedupeKey  string // at most one open incident per (NodeID, DedupeKey)
	Severity   Severity
	Summary    string
	OpenedAt   time.Time
	ResolvedAt time.Time // zero while open
	// NotifiedAt is when a notifier first delivered the opening.
	NotifiedAt     time.Time
	AcknowledgedAt time.Time // zero until an administrator acknowledges it
	AcknowledgedBy string    // the user id of who did
	// Transitions is the incident's history, oldest first. Append-only:
	// stores keep what they hold and add only what is new.
	Transitions []IncidentTransition
	// Deliveries is each notifier's progress, one entry per notifier name.
	Deliveries []Delivery
	// NotifyAt is when the dispatcher should next look at the incident:
	// zero once it is resolved and every notifier is done with it.
	NotifyAt time.Time
	Version  int64
}

// Open reports whether the incident is unresolved.
func (i *Incident) Open() bool { return i.ResolvedAt.IsZero() }

// Happened reports whether e has happened to the incident.
func (i *Incident) Happened(e IncidentEvent) bool {
	switch e {
	case IncidentOpened:
		return true
	case IncidentAcknowledged:
		return !i.AcknowledgedAt.IsZero()
	case IncidentResolved:
		return !i.Open()
	}
	return false
}

// Delivery returns the named notifier's progress, nil if it has none yet.
func (i *Incident) Delivery(notifier string) *Delivery {
	for k := range i.Deliveries {
		if i.Deliveries[k].Notifier == notifier {
			return &i.Deliveries[k]
		}
	}
	return nil
}

// DeliveryOf returns the named notifier's progress, adding it if new.
func (i *Incident) DeliveryOf(notifier string) *Delivery {
	if d := i.Delivery(notifier); d != nil {
		return d
	}
	i.Deliveries = append(i.Deliveries, Delivery{Notifier: notifier})
	return &i.Deliveries[len(i.Deliveries)-1]
}

// Record appends a transition at now.
func (i *Incident) Record(now time.Time, kind TransitionKind, note string) {
	i.Transitions = append(i.Transitions, IncidentTransition{At: now, Kind: kind, Note: note})
}

// Clone is a copy sharing nothing with i.
func (i *Incident) Clone() *Incident {
	c := *i
	c.Transitions = slices.Clone(i.Transitions)
	c.Deliveries = make([]Delivery, len(i.Deliveries))
	for k, d := range i.Deliveries {
		d.Delivered, d.DeadLettered = slices.Clone(d.Delivered), slices.Clone(d.DeadLettered)
		c.Deliveries[k] = d
	}
	return &c
}

// dueBy moves NotifyAt to t unless the incident is due sooner.
func (i *Incident) dueBy(t time.Time) {
	if i.NotifyAt.IsZero() || t.Before(i.NotifyAt) {
		i.NotifyAt = t
	}
}

// IncidentEvent is what notifiers are told of an incident.
type IncidentEvent string

const (
	IncidentOpened       IncidentEvent = "opened"
	IncidentAcknowledged IncidentEvent = "acknowledged"
	IncidentResolved     IncidentEvent = "resolved"
)

// IncidentEvents are the events in the order they happen, and are delivered.
var IncidentEvents = []IncidentEvent{IncidentOpened, IncidentAcknowledged, IncidentResolved}

// TransitionKind names a step of an incident's life.
type TransitionKind string

const (
	TransitionOpened       TransitionKind = "opened"
	TransitionAcknowledged TransitionKind = "acknowledged"
	TransitionResolved     TransitionKind = "resolved"
	TransitionNotified     TransitionKind = "notified"      // a notifier delivered an event
	TransitionDeadLettered TransitionKind = "dead_lettered" // a notifier gave an event up
)

// IncidentTransition is one step of an incident's history.
type IncidentTransition struct {
	At   time.Time
	Kind TransitionKind
	Note string
}

// Delivery is how far one notifier got in telling of an incident. Events
// go out in order; each is delivered, or dead-lettered after too many
// failed attempts.
type Delivery struct {
	Notifier     string
	Delivered    []IncidentEvent
	DeadLettered []IncidentEvent
	// LastSentAt is the latest success, re-posts of an open incident included.
	LastSentAt time.Time
	// Attempts counts the failures since the last success or dead letter.
	Attempts      int
	NextAttemptAt time.Time // the backoff: no attempt before it
	LastError     string
}

// Done reports whether e was delivered or given up.
func (d *Delivery) Done(e IncidentEvent) bool {
	return d != nil && (slices.Contains(d.Delivered, e) || slices.Contains(d.DeadLettered, e))
}

// IncidentState selects incidents by whether they are resolved.
type IncidentState string

const (
	IncidentsAny      IncidentState = ""
	IncidentsOpen     IncidentState = "open"
	IncidentsResolved IncidentState = "resolved"
)

// IncidentQuery selects a page of incidents, newest first: by OpenedAt
// descending, then ID ascending.
type IncidentQuery struct {
	OwnerID string // only the incidents of this user's nodes; "" for every node
	State   IncidentState
	After   string // the ID of the last incident of the previous page; "" from the newest
	Limit   int    // at most this many; <= 0 for all
}

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
	// QueryIncidents returns the page of incidents q selects. Returns
	// EInvalid if q.After names no incident.
	QueryIncidents(ctx context.Context, q IncidentQuery) ([]*Incident, error)
	// ListIncidentsToNotify returns the incidents whose NotifyAt is set and
	// not after t, soonest first, at most limit (all when limit <= 0).
	ListIncidentsToNotify(ctx context.Context, t time.Time, limit int) ([]*Incident, error)
	// UpdateIncident writes i if the version matches, then bumps it.
	// Transitions already stored stay as stored; those of i beyond them are
	// appended. Returns ENotFound or EConflict.
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
// this call opened it. A new incident is due for notification at once.
func RaiseIncident(ctx context.Context, store IncidentStore, spec IncidentSpec, now time.Time) (*Incident, bool, error) {
	if in, err := store.FindOpenIncident(ctx, spec.NodeID, spec.DedupeKey); err == nil {
		return in, false, nil
	} else if !IsCode(err, ENotFound) {
		return nil, false, fmt.Errorf("find open incident %s of node %s: %w", spec.DedupeKey, spec.NodeID, err)
	}
	in := &Incident{
		ID: NewID("inc"), NodeID: spec.NodeID, DedupeKey: spec.DedupeKey,
		Severity: spec.Severity, Summary: spec.Summary, OpenedAt: now, NotifyAt: now,
	}
	in.Record(now, TransitionOpened, spec.Summary)
	err := store.OpenIncident(ctx, in)
	if IsCode(err, EConflict) && !errors.Is(err, ErrStaleLeader) {
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
// now. It returns the resolved incident, or nil when none was open. The
// resolution is due for notification at once.
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
		in.Record(now, TransitionResolved, "")
		in.dueBy(now)
		err = store.UpdateIncident(ctx, in)
		if err == nil {
			return in, nil
		}
		if !IsCode(err, EConflict) || errors.Is(err, ErrStaleLeader) {
			return nil, fmt.Errorf("resolve incident %s: %w", in.ID, err)
		}
	}
	return nil, Errorf(EConflict, "incident %s of node %s kept changing while resolving", dedupeKey, nodeID)
}

// AcknowledgeIncident records that userID, an administrator, took the
// incident in hand at now. Idempotent: an acknowledged incident is
// returned as it is, with its first acknowledgement. Returns ENotFound, or
// EConflict for a resolved incident nobody acknowledged: there is nothing
// left to take in hand.
func AcknowledgeIncident(ctx context.Context, store IncidentStore, id, userID string, now time.Time) (*Incident, error) {
	for range transitionAttempts {
		in, err := store.GetIncident(ctx, id)
		switch {
		case err != nil:
			return nil, err
		case !in.AcknowledgedAt.IsZero():
			return in, nil
		case !in.Open():
			return nil, Errorf(EConflict, "incident %s is resolved: there is nothing to acknowledge", id)
		}
		in.AcknowledgedAt, in.AcknowledgedBy = now, userID
		in.Record(now, TransitionAcknowledged, "by "+userID)
		in.dueBy(now)
		err = store.UpdateIncident(ctx, in)
		if err == nil {
			return in, nil
		}
		if !IsCode(err, EConflict) {
			return nil, fmt.Errorf("acknowledge incident %s: %w", id, err)
		}
	}
	return nil, Errorf(EConflict, "incident %s kept changing while acknowledging", id)
}
