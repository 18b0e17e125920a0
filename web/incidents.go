package web

import (
	"context"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
)

// Incidents on the API: administrators list every incident and
// acknowledge them; customers read those of their own nodes, with their
// history but not how each notifier fared.

// Incident list paging, as for nodes.
const (
	defaultIncidentPage = 50
	maxIncidentPage     = 500
)

func (s *Server) routeIncidents(authed *gin.RouterGroup) {
	if s.cfg.Store == nil {
		return
	}
	read, admin := requireScope(engine.ScopeNodesRead), requireScope(engine.ScopeAdmin)
	authed.GET("/incidents", read, s.listIncidents)
	authed.GET("/incidents/:id", read, s.getIncident)
	authed.POST("/incidents/:id/acknowledge", admin, s.acknowledgeIncident)
}

type incidentTransitionJSON struct {
	At   time.Time `json:"at"`
	Kind string    `json:"kind"`
	Note string    `json:"note,omitempty"`
}

// incidentDeliveryJSON is one notifier's progress: administrators only.
type incidentDeliveryJSON struct {
	Notifier      string                 `json:"notifier"`
	Delivered     []engine.IncidentEvent `json:"delivered"`
	DeadLettered  []engine.IncidentEvent `json:"dead_lettered"`
	Attempts      int                    `json:"attempts"`
	NextAttemptAt time.Time              `json:"next_attempt_at,omitzero"`
	LastSentAt    time.Time              `json:"last_sent_at,omitzero"`
	LastError     string                 `json:"last_error,omitempty"`
}

type incidentJSON struct {
	ID             string                   `json:"id"`
	NodeID         string                   `json:"node_id"`
	DedupeKey      string                   `json:"dedupe_key"`
	Severity       string                   `json:"severity"`
	Summary        string                   `json:"summary"`
	State          engine.IncidentState     `json:"state"`
	OpenedAt       time.Time                `json:"opened_at"`
	AcknowledgedAt time.Time                `json:"acknowledged_at,omitzero"`
	AcknowledgedBy string                   `json:"acknowledged_by,omitempty"`
	ResolvedAt     time.Time                `json:"resolved_at,omitzero"`
	NotifiedAt     time.Time                `json:"notified_at,omitzero"`
	Transitions    []incidentTransitionJSON `json:"transitions"`
	Deliveries     []incidentDeliveryJSON   `json:"deliveries,omitempty"`
}

type incidentsJSON struct {
	Incidents []incidentJSON `json:"incidents"`
	NextAfter string         `json:"next_after,omitempty"` // the cursor of the next page
}

// toIncidentJSON is in as the caller may see it: customers see the
// incident's own steps, administrators the notifiers' too.
func toIncidentJSON(in *engine.Incident, admin bool) incidentJSON {
	out := incidentJSON{
		ID: in.ID, NodeID: in.NodeID, DedupeKey: in.DedupeKey, Severity: string(in.Severity), Summary: in.Summary,
		State: engine.IncidentsOpen, OpenedAt: in.OpenedAt, AcknowledgedAt: in.AcknowledgedAt, AcknowledgedBy: in.AcknowledgedBy,
		ResolvedAt: in.ResolvedAt, NotifiedAt: in.NotifiedAt, Transitions: []incidentTransitionJSON{},
	}
	if !in.Open() {
		out.State = engine.IncidentsResolved
	}
	for _, t := range in.Transitions {
		if admin || (t.Kind != engine.TransitionNotified && t.Kind != engine.TransitionDeadLettered) {
			out.Transitions = append(out.Transitions, incidentTransitionJSON{At: t.At, Kind: string(t.Kind), Note: t.Note})
		}
	}
	if admin {
		for _, d := range in.Deliveries {
			out.Deliveries = append(out.Deliveries, incidentDeliveryJSON{
				Notifier: d.Notifier, Delivered: orEmpty(d.Delivered), DeadLettered: orEmpty(d.DeadLettered), Attempts: d.Attempts,
				NextAttemptAt: d.NextAttemptAt, LastSentAt: d.LastSentAt, LastError: d.LastError,
			})
		}
	}
	return out
}

func orEmpty(es []engine.IncidentEvent) []engine.IncidentEvent {
	if es == nil {
		return []engine.IncidentEvent{}
	}
	return es
}

// errNoIncident is the one answer for a missing incident and one of
// another tenant's node.
var errNoIncident = engine.Errorf(engine.ENotFound, "no such incident")

// errBadCursor is the one answer for a cursor that is no incident of the list.
var errBadCursor = engine.Errorf(engine.EInvalid, "after must be the id of an incident of this list")

// incidentQuery reads ?state=, ?after= and ?limit= for p: administrators
// list every incident, customers those of their nodes.
func (s *Server) incidentQuery(c *gin.Context, p *engine.Principal) (engine.IncidentQuery, error) {
	q := engine.IncidentQuery{State: engine.IncidentState(c.Query("state")), After: c.Query("after"), Limit: defaultIncidentPage}
	if q.State != engine.IncidentsAny && q.State != engine.IncidentsOpen && q.State != engine.IncidentsResolved {
		return q, engine.Errorf(engine.EInvalid, "state must be open or resolved")
	}
	if raw, ok := c.GetQuery("limit"); ok {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxIncidentPage {
			return q, engine.Errorf(engine.EInvalid, "limit must be an integer from 1 to %d", maxIncidentPage)
		}
		q.Limit = n
	}
	if !p.Can(engine.ScopeAdmin) {
		q.OwnerID = p.UserID
	}
	if q.After != "" {
		if _, err := s.visibleIncident(c.Request.Context(), p, q.After); engine.IsCode(err, engine.ENotFound) {
			return q, errBadCursor
		} else if err != nil {
			return q, err
		}
	}
	return q, nil
}

// listIncidents pages through the incidents newest first. It asks for one
// more than the page to know whether another page follows.
func (s *Server) listIncidents(c *gin.Context) {
	p := principal(c)
	q, err := s.incidentQuery(c, p)
	if err != nil {
		writeError(c, err)
		return
	}
	limit := q.Limit
	q.Limit++
	is, err := s.cfg.Store.QueryIncidents(c.Request.Context(), q)
	if err != nil {
		writeError(c, err)
		return
	}
	out := incidentsJSON{Incidents: make([]incidentJSON, 0, min(len(is), limit))}
	if len(is) > limit {
		is = is[:limit]
		out.NextAfter = is[limit-1].ID
	}
	for _, in := range is {
		out.Incidents = append(out.Incidents, toIncidentJSON(in, p.Can(engine.ScopeAdmin)))
	}
	c.JSON(http.StatusOK, out)
}

// visibleIncident is the incident id if p administers or owns its node;
// anything else is ENotFound, so other tenants' incidents cannot be probed.
func (s *Server) visibleIncident(ctx context.Context, p *engine.Principal, id string) (*engine.Incident, error) {
	if len(id) > maxIDBytes || !utf8.ValidString(id) {
		return nil, errNoIncident
	}
	in, err := s.cfg.Store.GetIncident(ctx, id)
	switch {
	case engine.IsCode(err, engine.ENotFound):
		return nil, errNoIncident
	case err != nil:
		return nil, err
	case p.Can(engine.ScopeAdmin):
		return in, nil
	}
	n, err := s.cfg.Store.GetNode(ctx, in.NodeID)
	switch {
	case engine.IsCode(err, engine.ENotFound):
		return nil, errNoIncident
	case err != nil:
		return nil, err
	case n.OwnerID != p.UserID || p.UserID == "":
		return nil, errNoIncident
	}
	return in, nil
}

func (s *Server) getIncident(c *gin.Context) {
	p := principal(c)
	in, err := s.visibleIncident(c.Request.Context(), p, c.Param("id"))
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toIncidentJSON(in, p.Can(engine.ScopeAdmin)))
}

// acknowledgeIncident records that the administrator took the incident in
// hand. Idempotent: an acknowledged incident keeps its first
// acknowledgement and answers 200 again. A resolved incident nobody
// acknowledged is 409: there is nothing left to take in hand.
func (s *Server) acknowledgeIncident(c *gin.Context) {
	p := principal(c)
	in, err := s.visibleIncident(c.Request.Context(), p, c.Param("id"))
	if err == nil {
		in, err = engine.AcknowledgeIncident(c.Request.Context(), s.cfg.Store, in.ID, actorID(p), time.Now().UTC())
	}
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toIncidentJSON(in, true))
}

// actorID names who acts (acknowledges an incident, creates a rollout):
// the user, or the bootstrap administrator, who is none.
func actorID(p *engine.Principal) string {
	if p.UserID == "" {
		return engine.BootstrapPrincipalID
	}
	return p.UserID
}
