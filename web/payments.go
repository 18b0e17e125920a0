package web

import (
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
)

// routePayments registers the payment routes and the signed webhook.
// The webhook carries no bearer credential: its HMAC signature is the
// credential, checked before the body is parsed.
func (s *Server) routePayments(api, authed *gin.RouterGroup) {
	api.POST("/payments/webhook", s.paymentWebhook)
	authed.POST("/payments", requireScope(engine.ScopeSubscriptionsWrite), s.linkPayment)
	authed.GET("/payments/:id", requireScope(engine.ScopeSubscriptionsRead), s.getPayment)
}

type linkPaymentRequest struct {
	ExternalID      string   `json:"external_id"`
	AmountCents     int64    `json:"amount_cents"`
	Currency        string   `json:"currency"`
	SubscriptionIDs []string `json:"subscription_ids"`
}

type paymentJSON struct {
	ID                       string    `json:"id"`
	ExternalID               string    `json:"external_id,omitempty"`
	AmountCents              int64     `json:"amount_cents"`
	Currency                 string    `json:"currency"`
	Status                   string    `json:"status"`
	StatusReason             string    `json:"status_reason,omitempty"`
	SubscriptionIDs          []string  `json:"subscription_ids"`
	ActivatedSubscriptionIDs []string  `json:"activated_subscription_ids"`
	CreatedAt                time.Time `json:"created_at"`
	CompletedAt              time.Time `json:"completed_at,omitzero"`
}

func toPaymentJSON(p *engine.Payment) paymentJSON {
	return paymentJSON{
		ID: p.ID, ExternalID: p.ExternalID, AmountCents: p.AmountCents, Currency: p.Currency,
		Status: string(p.Status), StatusReason: p.StatusReason, SubscriptionIDs: nonNil(p.SubscriptionIDs),
		ActivatedSubscriptionIDs: nonNil(p.ActivatedIDs), CreatedAt: p.CreatedAt, CompletedAt: p.CompletedAt,
	}
}

// nonNil makes an empty list [] in JSON, not null.
func nonNil(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}

// getPayment answers the caller's payment: its status, amount and what it
// activated. Another user's payment is 404, as a missing one.
func (s *Server) getPayment(c *gin.Context) {
	if s.cfg.Payments == nil {
		writeError(c, engine.Errorf(engine.EUnsupported, "payments are not configured"))
		return
	}
	id, ok := paymentID(c)
	if !ok {
		return
	}
	p, err := s.cfg.Payments.Get(c.Request.Context(), principal(c), id)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toPaymentJSON(p))
}

// linkPayment links a payment to the caller's pending subscriptions: 201
// when created, 200 when the same request was made before.
func (s *Server) linkPayment(c *gin.Context) {
	if s.cfg.Payments == nil {
		writeError(c, engine.Errorf(engine.EUnsupported, "payments are not configured"))
		return
	}
	var req linkPaymentRequest
	if err := decodeJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	p, created, err := s.cfg.Payments.Link(c.Request.Context(), principal(c), engine.LinkPaymentRequest{
		ExternalID: req.ExternalID, AmountCents: req.AmountCents, Currency: req.Currency, SubscriptionIDs: req.SubscriptionIDs,
	})
	if err != nil {
		writeError(c, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, toPaymentJSON(p))
}

type webhookAcceptedJSON struct {
	EventID string `json:"event_id"`
	Status  string `json:"status"`
}

// paymentWebhook publishes a signed payment notification: 202 once stored
// on the bus, 401 for a bad or stale signature, 400 for a bad body.
func (s *Server) paymentWebhook(c *gin.Context) {
	wh := s.cfg.Webhook
	if wh == nil {
		writeError(c, engine.Errorf(engine.EUnsupported, "payment webhooks are not configured"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes))
	if err != nil {
		if tooLarge(err) {
			writeError(c, engine.Errorf(engine.ETooLarge, "request body exceeds %d bytes", maxBodyBytes))
			return
		}
		writeError(c, engine.Errorf(engine.EInvalid, "unreadable request body"))
		return
	}
	e, err := wh.Receive(c.Request.Context(), c.GetHeader(engine.WebhookTimestampHeader), c.GetHeader(engine.WebhookSignatureHeader), body)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, webhookAcceptedJSON{EventID: e.EventID, Status: "accepted"})
}

// paymentID is the payment named in the URL; a malformed one names no
// payment, and is answered 404.
func paymentID(c *gin.Context) (string, bool) {
	id := c.Param("id")
	if len(id) > maxIDBytes || !utf8.ValidString(id) {
		writeError(c, engine.Errorf(engine.ENotFound, "no such payment"))
		return "", false
	}
	return id, true
}
