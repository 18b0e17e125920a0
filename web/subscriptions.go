package web

import (
	"encoding/base64"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
	"github.com/hoodcloud/hoodcloud/engine/profile"
)

// routeSubscriptions registers the subscription and provisioning-input
// routes: public ones on api, authenticated ones on authed. They need a
// Store and the chain catalogue; the public key needs the boot material.
func (s *Server) routeSubscriptions(api, authed *gin.RouterGroup) {
	if s.cfg.Boot != nil && s.cfg.Boot.SealedBox() != nil {
		api.GET("/crypto/public-key", s.publicKey)
	}
	subs := s.subscriptionUseCases()
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

// subscriptionUseCases wires the use-cases to the catalogue, nil when the
// server lacks a Store or the catalogue.
func (s *Server) subscriptionUseCases() *engine.Subscriptions {
	if s.cfg.Store == nil || s.cfg.Chains == nil {
		return nil
	}
	cfg := engine.SubscriptionsConfig{
		Store: s.cfg.Store, Workflows: s.cfg.Workflows,
		Placement: catalogPlacement(s.cfg.Chains), Expiry: durationExpiry, Input: catalogInput(s.cfg.Chains),
	}
	if s.cfg.Boot != nil && s.cfg.Boot.SealedBox() != nil {
		cfg.SealedBoxKeys = s.cfg.Boot.SealedBox()
	}
	subs, err := engine.NewSubscriptions(cfg)
	if err != nil {
		s.cfg.Logger.Error("subscription API disabled", "err", err)
		return nil
	}
	return subs
}

// chainProfile is the catalogue's profile, with an unknown id as EInvalid:
// it is a bad request, not a missing resource.
func chainProfile(c *profile.Catalog, id string) (*profile.ChainProfile, error) {
	p, err := c.Get(id)
	if engine.IsCode(err, engine.ENotFound) {
		return nil, engine.Errorf(engine.EInvalid, "unknown chain profile %q", id)
	}
	return p, err
}

func catalogPlacement(c *profile.Catalog) func(chainProfileID, nodeType, duration string) (string, string, string, error) {
	return func(chainProfileID, nodeType, duration string) (string, string, string, error) {
		p, err := chainProfile(c, chainProfileID)
		if err != nil {
			return "", "", "", err
		}
		pl, err := p.Resolve(nodeType, duration)
		return pl.Provider, pl.Region, pl.InstanceType, err
	}
}

func catalogInput(c *profile.Catalog) func(chainProfileID, name string) (engine.InputRule, error) {
	return func(chainProfileID, name string) (engine.InputRule, error) {
		p, err := chainProfile(c, chainProfileID)
		if err != nil {
			return engine.InputRule{}, err
		}
		spec, ok := p.Input(name)
		if !ok {
			return engine.InputRule{}, engine.Errorf(engine.EInvalid, "chain profile %q has no input %q", chainProfileID, name)
		}
		return engine.InputRule{Type: spec.Type, Supplied: spec.SuppliedByCustomer(), Check: spec.CheckValue}, nil
	}
}

func durationExpiry(duration string, from time.Time) (time.Time, error) {
	d, err := profile.ParseDuration(duration)
	if err != nil {
		return time.Time{}, err
	}
	return d.Expiry(from)
}

type publicKeyJSON struct {
	Algorithm string `json:"algorithm"`
	PublicKey string `json:"public_key"` // base64, standard, padded
	Format    string `json:"format"`
}

// publicKey is the X25519 key customers seal user-provided secrets to:
// the current one, which a rotation replaces.
func (s *Server) publicKey(c *gin.Context) {
	pub := s.cfg.Boot.SealedBox().PublicKey()
	c.JSON(http.StatusOK, publicKeyJSON{
		Algorithm: "X25519", PublicKey: base64.StdEncoding.EncodeToString(pub), Format: keys.SealedBoxFormat,
	})
}
