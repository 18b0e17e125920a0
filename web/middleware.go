package web

import (
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
)

// principalKey is where authenticate leaves the request's Principal.
const principalKey = "hoodcloud.principal"

// maxAuthorizationBytes caps the Authorization header before any parsing.
const maxAuthorizationBytes = len("Bearer ") + engine.MaxCredentialBytes

// authenticate requires a credential (a JWT, an API key or a bootstrap
// token, as a Bearer token) and stores its Principal; anything else is 401.
func (s *Server) authenticate(c *gin.Context) {
	p, err := s.principalOf(c)
	if err == nil && p == nil {
		err = engine.Errorf(engine.EUnauthorized, "an Authorization: Bearer credential is required")
	}
	if err != nil {
		unauthorized(c, err)
		return
	}
	c.Set(principalKey, p)
	c.Next()
}

// authenticateIfPresent authenticates a request that carries a credential
// and lets one without through anonymously; a bad credential is still 401.
func (s *Server) authenticateIfPresent(c *gin.Context) {
	p, err := s.principalOf(c)
	if err != nil {
		unauthorized(c, err)
		return
	}
	if p != nil {
		c.Set(principalKey, p)
	}
	c.Next()
}

// principalOf returns the request's principal, or nil when it carries no
// Authorization header.
func (s *Server) principalOf(c *gin.Context) (*engine.Principal, error) {
	h := c.GetHeader("Authorization")
	if h == "" {
		return nil, nil
	}
	if len(h) > maxAuthorizationBytes {
		return nil, engine.Errorf(engine.EUnauthorized, "the Authorization header is too long")
	}
	scheme, credential, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || credential == "" {
		return nil, engine.Errorf(engine.EUnauthorized, "the Authorization header must be Bearer <credential>")
	}
	return s.cfg.Identity.Authenticate(c.Request.Context(), strings.TrimSpace(credential))
}

func unauthorized(c *gin.Context, err error) {
	if engine.IsCode(err, engine.EUnauthorized) {
		c.Header("WWW-Authenticate", `Bearer realm="hoodcloud"`)
	}
	writeError(c, err)
}

// principal is the authenticated principal, nil on an anonymous request.
func principal(c *gin.Context) *engine.Principal {
	p, _ := c.Get(principalKey)
	pp, _ := p.(*engine.Principal)
	return pp
}

// requireScope answers 403 unless the principal holds scope (admin holds
// every scope). It goes after authenticate.
func requireScope(scope string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !principal(c).Can(scope) {
			writeError(c, engine.Errorf(engine.EForbidden, "this credential lacks the %s scope", scope))
			return
		}
		c.Next()
	}
}

// clientIP is the peer's address, or what a trusted proxy says it is.
func clientIP(c *gin.Context) string { return "ip:" + c.ClientIP() }

// credentialID counts an authenticated principal's requests.
func credentialID(c *gin.Context) string { return "credential:" + principal(c).ID() }

// noStore keeps tokens and keys out of caches on the way.
func noStore(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.Next()
}
