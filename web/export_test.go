package web

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// RouteScopeForTest mounts GET path behind authentication and scope, so
// tests can check scope enforcement before the routes that need each scope
// exist.
func (s *Server) RouteScopeForTest(path, scope string) {
	s.router.GET(path, s.authenticate, requireScope(scope), func(c *gin.Context) { c.Status(http.StatusNoContent) })
}
