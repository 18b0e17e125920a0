package web

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
)

type subscribeRequest struct {
	ChainProfileID string `json:"chain_profile_id"`
	NodeType       string `json:"node_type"`
	Duration       string `json:"duration"`
}

type subscriptionJSON struct {
	ID             string    `json:"id"`
	ChainProfileID string    `json:"chain_profile_id"`
	NodeType       string    `json:"node_type"`
	Duration       string    `json:"duration"`
	Provider       string    `json:"provider"`
	Region         string    `json:"region"`
	InstanceType   string    `json:"instance_type"`
	Status         string    `json:"status"`
	PaymentID      string    `json:"payment_id,omitempty"`
	ExpiresAt      time.Time `json:"expires_at"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

func toSubscriptionJSON(s *engine.Subscription) subscriptionJSON {
	return subscriptionJSON{
		ID: s.ID, ChainProfileID: s.ChainProfileID, NodeType: s.NodeType, Duration: s.Duration,
		Provider: s.Provider, Region: s.Region, InstanceType: s.InstanceType, Status: string(s.Status),
		PaymentID: s.PaymentID, ExpiresAt: s.ExpiresAt, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt,
	}
}

// subscribe answers 201 with a new pending subscription, or 200 with the
// caller's pending one for the same purchase.
func subscribe(subs *engine.Subscriptions) gin.HandlerFunc {
	return func(c *gin.Context) {
		var req subscribeRequest
		if err := decodeJSON(c, &req); err != nil {
			writeError(c, err)
			return
		}
		s, created, err := subs.Subscribe(c.Request.Context(), principal(c), engine.SubscribeRequest{
			ChainProfileID: req.ChainProfileID, NodeType: req.NodeType, Duration: req.Duration,
		})
		if err != nil {
			writeError(c, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		c.JSON(status, toSubscriptionJSON(s))
	}
}

func listSubscriptions(subs *engine.Subscriptions) gin.HandlerFunc {
	return func(c *gin.Context) {
		list, err := subs.List(c.Request.Context(), principal(c))
		if err != nil {
			writeError(c, err)
			return
		}
		out := make([]subscriptionJSON, len(list))
		for i, s := range list {
			out[i] = toSubscriptionJSON(s)
		}
		c.JSON(http.StatusOK, gin.H{"subscriptions": out})
	}
}

func getSubscription(subs *engine.Subscriptions) gin.HandlerFunc {
	return func(c *gin.Context) {
		s, err := subs.Get(c.Request.Context(), principal(c), c.Param("id"))
		if err != nil {
			writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, toSubscriptionJSON(s))
	}
}

// cancelSubscription answers 200 with the cancelled subscription.
func cancelSubscription(subs *engine.Subscriptions) gin.HandlerFunc {
	return func(c *gin.Context) {
		s, err := subs.Cancel(c.Request.Context(), principal(c), c.Param("id"))
		if err != nil {
			writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, toSubscriptionJSON(s))
	}
}

type inputValueJSON struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type submitInputsRequest struct {
	Inputs []inputValueJSON `json:"inputs"`
}

// inputJSON describes a stored input without its value: a secret's
// ciphertext is of no use to the customer, and a text value is theirs.
type inputJSON struct {
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	Status    string    `json:"status"`
	UpdatedAt time.Time `json:"updated_at"`
}

func toInputsJSON(inputs []*engine.ProvisioningInput) gin.H {
	out := make([]inputJSON, len(inputs))
	for i, in := range inputs {
		out[i] = inputJSON{Name: in.Name, Type: string(in.Type), Status: string(in.Status), UpdatedAt: in.UpdatedAt}
	}
	return gin.H{"inputs": out}
}

// submitInputs answers 200 with the inputs stored; nothing is stored
// unless every input is valid.
func submitInputs(subs *engine.Subscriptions) gin.HandlerFunc {
	return func(c *gin.Context) {
		var req submitInputsRequest
		if err := decodeJSON(c, &req); err != nil {
			writeError(c, err)
			return
		}
		values := make([]engine.InputValue, len(req.Inputs))
		for i, v := range req.Inputs {
			values[i] = engine.InputValue{Name: v.Name, Value: v.Value}
		}
		stored, err := subs.SubmitInputs(c.Request.Context(), principal(c), c.Param("id"), values)
		if err != nil {
			writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, toInputsJSON(stored))
	}
}

func listInputs(subs *engine.Subscriptions) gin.HandlerFunc {
	return func(c *gin.Context) {
		inputs, err := subs.Inputs(c.Request.Context(), principal(c), c.Param("id"))
		if err != nil {
			writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, toInputsJSON(inputs))
	}
}
