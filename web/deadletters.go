package web

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
)

// Dead-lettered payments on the API: administrators read the payment
// events the consumer gave up on and redrive them once the cause is fixed.

// Bounds of the dead letter listing.
const (
	defaultDeadLetterPage = 100
	maxDeadLetterPage     = 1000
)

func (s *Server) routeDeadLetters(authed *gin.RouterGroup) {
	if s.cfg.DeadLetters == nil {
		return
	}
	admin := requireScope(engine.ScopeAdmin)
	authed.GET("/admin/payments/dead-letters", admin, s.listDeadLetters)
	authed.GET("/admin/payments/dead-letters/:id", admin, s.getDeadLetter)
	authed.POST("/admin/payments/dead-letters/:id/redrive", admin, s.redriveDeadLetter)
}

// DeadLetterJSON is a dead letter on the API (and in `admin payments`). The payload is shown as text when it
// is UTF-8, else base64 encoded.
type DeadLetterJSON struct {
	ID            string    `json:"id"`
	Status        string    `json:"status"`
	Subject       string    `json:"subject"`
	MessageID     string    `json:"message_id,omitempty"`
	EventID       string    `json:"event_id,omitempty"`
	PaymentID     string    `json:"payment_id,omitempty"`
	Payload       *string   `json:"payload,omitempty"`
	PayloadBase64 string    `json:"payload_base64,omitempty"`
	Error         string    `json:"error"`
	Deliveries    int       `json:"deliveries"`
	FirstSeenAt   time.Time `json:"first_seen_at"`
	LastSeenAt    time.Time `json:"last_seen_at"`
	RedrivenAt    time.Time `json:"redriven_at,omitzero"`
	RedrivenBy    string    `json:"redriven_by,omitempty"`
	IncidentKey   string    `json:"incident_dedupe_key"`
}

func toDeadLetterJSON(l *engine.PaymentDeadLetter) DeadLetterJSON {
	j := DeadLetterJSON{
		ID: l.ID, Status: string(l.Status), Subject: l.Subject, MessageID: l.MessageID, EventID: l.EventID,
		PaymentID: l.PaymentID, Error: l.Error, Deliveries: l.Deliveries, FirstSeenAt: l.FirstSeenAt,
		LastSeenAt: l.LastSeenAt, RedrivenAt: l.RedrivenAt, RedrivenBy: l.RedrivenBy,
		IncidentKey: engine.PaymentDeadLetterIncidentKey(l.ID),
	}
	if utf8.Valid(l.Payload) {
		text := string(l.Payload)
		j.Payload = &text
	} else {
		j.PayloadBase64 = base64.StdEncoding.EncodeToString(l.Payload)
	}
	return j
}

func (s *Server) listDeadLetters(c *gin.Context) {
	limit := defaultDeadLetterPage
	if q := c.Query("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > maxDeadLetterPage {
			writeError(c, engine.Errorf(engine.EInvalid, "limit must be a number from 1 to %d", maxDeadLetterPage))
			return
		}
		limit = n
	}
	ls, err := s.cfg.DeadLetters.List(c.Request.Context(), engine.DeadLetterStatus(c.Query("status")), limit)
	if err != nil {
		writeError(c, err)
		return
	}
	out := make([]DeadLetterJSON, 0, len(ls))
	for _, l := range ls {
		out = append(out, toDeadLetterJSON(l))
	}
	c.JSON(http.StatusOK, gin.H{"dead_letters": out})
}

func (s *Server) getDeadLetter(c *gin.Context) {
	l, err := s.cfg.DeadLetters.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toDeadLetterJSON(l))
}

// redriveDeadLetter answers the letter as the redrive left it; a conflict
// (not dead, or still failing) carries it beside the error.
func (s *Server) redriveDeadLetter(c *gin.Context) {
	l, err := s.cfg.DeadLetters.Redrive(c.Request.Context(), c.Param("id"), principal(c).ID())
	switch {
	case err == nil:
		c.JSON(http.StatusOK, toDeadLetterJSON(l))
	case engine.IsCode(err, engine.EConflict) && l != nil:
		var body struct {
			errorBody
			DeadLetter DeadLetterJSON `json:"dead_letter"`
		}
		body.Error.Code, body.Error.Message = string(engine.EConflict), engine.ErrorMessage(err)
		body.DeadLetter = toDeadLetterJSON(l)
		c.AbortWithStatusJSON(http.StatusConflict, body)
	default:
		writeError(c, err)
	}
}
