package web

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
)

type createAPIKeyRequest struct {
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	ExpiresAt *time.Time `json:"expires_at"`
}

type apiKeyJSON struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	Scopes    []string   `json:"scopes"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// Key is the secret itself, in the creation answer only.
	Key string `json:"key,omitempty"`
}

func toAPIKeyJSON(k *engine.APIKey) apiKeyJSON {
	return apiKeyJSON{
		ID: k.ID, Name: k.Name, Prefix: k.Prefix, Scopes: k.Scopes, CreatedAt: k.CreatedAt,
		ExpiresAt: optionalTime(k.ExpiresAt), RevokedAt: optionalTime(k.RevokedAt),
	}
}

func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// createAPIKey answers 201 with the key, shown this once.
func (s *Server) createAPIKey(c *gin.Context) {
	var req createAPIKeyRequest
	if err := decodeJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	nk := engine.NewAPIKey{Name: req.Name, Scopes: req.Scopes}
	if req.ExpiresAt != nil {
		nk.ExpiresAt = *req.ExpiresAt
	}
	k, secret, err := s.cfg.Identity.CreateAPIKey(c.Request.Context(), principal(c), nk)
	if err != nil {
		writeError(c, err)
		return
	}
	out := toAPIKeyJSON(k)
	out.Key = secret
	c.JSON(http.StatusCreated, out)
}

func (s *Server) listAPIKeys(c *gin.Context) {
	keys, err := s.cfg.Identity.ListAPIKeys(c.Request.Context(), principal(c))
	if err != nil {
		writeError(c, err)
		return
	}
	out := make([]apiKeyJSON, len(keys))
	for i, k := range keys {
		out[i] = toAPIKeyJSON(k)
	}
	c.JSON(http.StatusOK, gin.H{"api_keys": out})
}

// revokeAPIKey answers 204; another user's key is 404, as if missing.
func (s *Server) revokeAPIKey(c *gin.Context) {
	if err := s.cfg.Identity.RevokeAPIKey(c.Request.Context(), principal(c), c.Param("id")); err != nil {
		writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
