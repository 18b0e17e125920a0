package web

import (
	"net/http"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
)

type markPaidJSON struct {
	PaymentID string `json:"payment_id"`
	Status    string `json:"status"`
}

// markPaid announces a linked payment as completed without a payment
// provider, for staging: 202 once payment.completed is on the bus. The
// payment must exist, so a typo is a 404 and not an event the consumer
// can never match.
func (s *Server) markPaid(c *gin.Context) {
	if s.cfg.Events == nil {
		writeError(c, engine.Errorf(engine.EUnsupported, "the event bus is not configured"))
		return
	}
	id, ctx := c.Param("id"), c.Request.Context()
	if len(id) > maxIDBytes || !utf8.ValidString(id) {
		writeError(c, engine.Errorf(engine.ENotFound, "no such payment"))
		return
	}
	if _, err := s.cfg.Store.GetPayment(ctx, id); err != nil {
		writeError(c, err)
		return
	}
	if err := engine.MarkPaid(ctx, s.cfg.Events, id); err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, markPaidJSON{PaymentID: id, Status: "accepted"})
}
