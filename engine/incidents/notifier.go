// Package incidents tells operators of incidents. A dispatcher, run by the
// leader, delivers each incident's events (opened, acknowledged, resolved)
// to every configured notifier, in order and at least once, and records
// each notifier's progress on the incident after every delivery: a restart
// neither loses what was not delivered nor repeats what was.
package incidents

import (
	"context"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// Notifier tells one receiver of incident events.
type Notifier interface {
	// Notify delivers n; nil means the receiver has it. The dispatcher may
	// call it again with the same n: after a failure, after a crash
	// between a delivery and its record, and to re-post an open incident.
	// n.DeliveryID is the same each time, so a receiver can drop repeats.
	Notify(ctx context.Context, n Notification) error
}

// Channel is a notifier as the dispatcher drives it.
type Channel struct {
	// Name keys the notifier's progress on each incident: keep it stable
	// across restarts, or the notifier starts over.
	Name     string
	Notifier Notifier
	// Events are what the notifier is told of; nil for every event.
	Events []engine.IncidentEvent
	// Repost is how often an open incident is posted again (Alertmanager
	// forgets an alert not re-posted within its resolve_timeout); zero
	// posts it once.
	Repost time.Duration
}

func (c Channel) takes(e engine.IncidentEvent) bool {
	if c.Events == nil {
		return true
	}
	for _, t := range c.Events {
		if t == e {
			return true
		}
	}
	return false
}

// Notification is one event of an incident, for one notifier.
type Notification struct {
	// DeliveryID names the event of the incident: "<incident id>:<event>".
	DeliveryID string
	Event      engine.IncidentEvent
	// Incident is as it stands now; notifiers must not change it.
	Incident *engine.Incident
	// ChainProfileID is the chain of the incident's node; "" if unknown.
	ChainProfileID string
}

// DeliveryID names event of incident id, the same for every attempt.
func DeliveryID(incidentID string, e engine.IncidentEvent) string {
	return incidentID + ":" + string(e)
}

// Payload is the JSON an incident event travels as, to a webhook and on
// the bus. Its shape is part of the API: fields are only ever added.
type Payload struct {
	DeliveryID string               `json:"delivery_id"`
	Event      engine.IncidentEvent `json:"event"`
	Incident   PayloadIncident      `json:"incident"`
}

// PayloadIncident is the incident as receivers see it.
type PayloadIncident struct {
	ID             string    `json:"id"`
	NodeID         string    `json:"node_id"`
	ChainProfileID string    `json:"chain_profile_id,omitempty"`
	DedupeKey      string    `json:"dedupe_key"`
	Severity       string    `json:"severity"`
	Summary        string    `json:"summary"`
	OpenedAt       time.Time `json:"opened_at"`
	AcknowledgedAt time.Time `json:"acknowledged_at,omitzero"`
	AcknowledgedBy string    `json:"acknowledged_by,omitempty"`
	ResolvedAt     time.Time `json:"resolved_at,omitzero"`
}

// NewPayload is n as a receiver reads it.
func NewPayload(n Notification) Payload {
	in := n.Incident
	return Payload{DeliveryID: n.DeliveryID, Event: n.Event, Incident: PayloadIncident{
		ID: in.ID, NodeID: in.NodeID, ChainProfileID: n.ChainProfileID, DedupeKey: in.DedupeKey,
		Severity: string(in.Severity), Summary: in.Summary, OpenedAt: in.OpenedAt,
		AcknowledgedAt: in.AcknowledgedAt, AcknowledgedBy: in.AcknowledgedBy, ResolvedAt: in.ResolvedAt,
	}}
}
