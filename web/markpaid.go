package web

import (
	"net/http"

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
// can never match; and its subscriptions must have their required inputs
// (409 naming them), so the money is not taken for nodes that cannot be
// provisioned.
func (s *Server) markPaid(c *gin.Context) {
	if s.cfg.Payments == nil {
		writeError(c, engine.Errorf(engine.EUnsupported, "payments are not configured"))
		return
	}
	id, ok := paymentID(c)
	if !ok {
		return
	}
	if err := s.cfg.Payments.MarkPaid(c.Request.Context(), id); err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, markPaidJSON{PaymentID: id, Status: "accepted"})
}
