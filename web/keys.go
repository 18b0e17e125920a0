package web

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
)

// jwksMaxAge is how long verifiers may cache the JWKS. A rotation is not
// held up by it: verifiers fetch again on a kid they do not know.
const jwksMaxAge = "public, max-age=300"

// routeKeys mounts the public keys of session tokens and, for
// administrators, key rotation.
func (s *Server) routeKeys(authed *gin.RouterGroup) {
	s.router.GET("/.well-known/jwks.json", s.jwks)
	authed.POST("/admin/rotate/:what", requireScope(engine.ScopeAdmin), s.rotateKey)
}

// jwks serves the current and in-grace public keys of session tokens
// (RFC 7517), for anyone verifying them.
func (s *Server) jwks(c *gin.Context) {
	c.Header("Cache-Control", jwksMaxAge)
	c.JSON(http.StatusOK, s.cfg.Identity.JWKS())
}

type rotateRequest struct {
	// Grace is how long the replaced key stays honoured, as a Go duration
	// ("48h"); the kind's default when empty.
	Grace string `json:"grace"`
}

type rotationJSON struct {
	Kind       string               `json:"kind"`
	KeyID      string               `json:"key_id"`
	GraceUntil *time.Time           `json:"grace_until,omitempty"`
	Rewrap     *keys.RewrapProgress `json:"rewrap,omitempty"`
	Resumed    bool                 `json:"resumed,omitempty"`
}

// rotateKey replaces a key: 200 once done, or 202 for the master key,
// whose rewrap of node data keys goes on in the background.
func (s *Server) rotateKey(c *gin.Context) {
	if s.cfg.Rotation == nil {
		writeError(c, engine.Errorf(engine.EUnsupported, "key rotation is not configured"))
		return
	}
	grace, err := rotationGrace(c)
	if err != nil {
		writeError(c, err)
		return
	}
	rot, err := s.cfg.Rotation.Rotate(c.Request.Context(), keys.Kind(c.Param("what")), grace)
	if err != nil {
		writeError(c, err)
		return
	}
	out := rotationJSON{Kind: string(rot.Kind), KeyID: rot.KeyID, Rewrap: rot.Rewrap, Resumed: rot.Resumed}
	if !rot.GraceUntil.IsZero() {
		out.GraceUntil = &rot.GraceUntil
	}
	status := http.StatusOK
	if rot.Rewrap != nil {
		status = http.StatusAccepted
	}
	c.JSON(status, out)
}

// rotationGrace reads the optional body's grace; zero when absent.
func rotationGrace(c *gin.Context) (time.Duration, error) {
	if c.Request.ContentLength == 0 {
		return 0, nil
	}
	var req rotateRequest
	if err := decodeJSON(c, &req); err != nil {
		return 0, err
	}
	if req.Grace == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(req.Grace)
	if err != nil || d <= 0 {
		return 0, engine.Errorf(engine.EInvalid, `grace must be a positive duration such as "48h"`)
	}
	return d, nil
}
