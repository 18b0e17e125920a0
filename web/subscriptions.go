package web

import (
	"encoding/base64"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
)

// routeSubscriptions registers the subscription and provisioning-input
// routes: the public key on api, the rest on authed.
func (s *Server) routeSubscriptions(api, authed *gin.RouterGroup) {
	if s.cfg.SealingKey != nil {
		api.GET("/crypto/public-key", s.publicKey)
	}
	subs := s.cfg.Subscriptions
	if subs == nil {
		return
	}
	read, write := requireScope(engine.ScopeSubscriptionsRead), requireScope(engine.ScopeSubscriptionsWrite)
	authed.POST("/subscriptions", write, subscribe(subs))
	authed.GET("/subscriptions", read, listSubscriptions(subs))
	authed.GET("/subscriptions/:id", read, getSubscription(subs))
	authed.POST("/subscriptions/:id/cancel", write, cancelSubscription(subs))
	authed.GET("/subscriptions/:id/inputs", read, listInputs(subs))
	authed.POST("/subscriptions/:id/inputs", write, submitInputs(subs))
}

type publicKeyJSON struct {
	Algorithm string `json:"algorithm"`
	PublicKey string `json:"public_key"` // base64, standard, padded
	Format    string `json:"format"`
}

// publicKey is the X25519 key customers seal user-provided secrets to:
// the current one, which a rotation replaces.
func (s *Server) publicKey(c *gin.Context) {
	pub := s.cfg.SealingKey()
	c.JSON(http.StatusOK, publicKeyJSON{
		Algorithm: "X25519", PublicKey: base64.StdEncoding.EncodeToString(pub), Format: keys.SealedBoxFormat,
	})
}
