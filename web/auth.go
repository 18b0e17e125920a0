package web

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
)

// routeAPI mounts the public API when an Identity is configured.
// Sign-in, refresh and sign-up are limited per client IP; everything
// authenticated is limited per credential.
func (s *Server) routeAPI() {
	if s.cfg.Identity == nil {
		return
	}
	s.limiter = newRateLimiter(s.cfg.Cache, s.cfg.Limits, s.cfg.Registerer, s.cfg.Logger)
	api := s.router.Group("/api/v1", noStore)

	byIP := s.limiter.limit(s.cfg.Limits.AuthPerMinute, clientIP)
	api.POST("/auth/login", byIP, s.login)
	api.POST("/auth/refresh", byIP, s.refresh)
	api.POST("/users", byIP, s.authenticateIfPresent, s.register)

	authed := api.Group("", s.authenticate, s.limiter.limit(s.cfg.Limits.APIPerMinute, credentialID))
	authed.GET("/me", s.me)
	authed.POST("/api-keys", s.createAPIKey)
	authed.GET("/api-keys", s.listAPIKeys)
	authed.DELETE("/api-keys/:id", s.revokeAPIKey)
	s.routeSubscriptions(api, authed)
	s.routePayments(api, authed)
	s.routeDeadLetters(authed)
	s.routeNodes(api, authed)
	s.routeCustody(api, authed)
	s.routeUptime(authed)
	s.routeKeys(authed)
	s.routeIncidents(authed)
	s.routeRollouts(authed)
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

type tokensJSON struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"` // seconds
}

func (s *Server) login(c *gin.Context) {
	var req loginRequest
	if err := decodeJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	t, err := s.cfg.Identity.Login(c.Request.Context(), req.Email, req.Password)
	writeTokens(c, t, err)
}

func (s *Server) refresh(c *gin.Context) {
	var req refreshRequest
	if err := decodeJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	t, err := s.cfg.Identity.Refresh(c.Request.Context(), req.RefreshToken)
	writeTokens(c, t, err)
}

func writeTokens(c *gin.Context, t *engine.Tokens, err error) {
	if err != nil {
		unauthorized(c, err)
		return
	}
	c.JSON(http.StatusOK, tokensJSON{
		AccessToken: t.Access, RefreshToken: t.Refresh, TokenType: "Bearer",
		ExpiresIn: int(t.ExpiresIn / time.Second),
	})
}

type registerRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Admin    bool   `json:"admin"`
}

type userJSON struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Admin     bool      `json:"admin"`
	CreatedAt time.Time `json:"created_at"`
}

func toUserJSON(u *engine.User) userJSON {
	return userJSON{ID: u.ID, Email: u.Email, Admin: u.Admin, CreatedAt: u.CreatedAt}
}

// register is sign-up; only an administrator's credential may ask for admin.
func (s *Server) register(c *gin.Context) {
	var req registerRequest
	if err := decodeJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	u, err := s.cfg.Identity.Register(c.Request.Context(), principal(c), req.Email, req.Password, req.Admin)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusCreated, toUserJSON(u))
}

type meJSON struct {
	ID       string   `json:"id"`
	Email    string   `json:"email,omitempty"`
	Admin    bool     `json:"admin"`
	Scopes   []string `json:"scopes"`
	APIKeyID string   `json:"api_key_id,omitempty"`
}

// me describes the caller: its user and what its credential may do.
func (s *Server) me(c *gin.Context) {
	p := principal(c)
	out := meJSON{ID: engine.BootstrapPrincipalID, Admin: p.Can(engine.ScopeAdmin), Scopes: p.Scopes, APIKeyID: p.KeyID}
	if !p.Bootstrap() {
		u, err := s.cfg.Identity.User(c.Request.Context(), p)
		if err != nil {
			writeError(c, err)
			return
		}
		out.ID, out.Email = u.ID, u.Email
	}
	c.JSON(http.StatusOK, out)
}
