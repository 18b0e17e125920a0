package web

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPIDocument describes every /api route. It is written by hand;
// TestOpenAPICoversRoutes fails when it and the router disagree.
//
//go:embed openapi.json
var openAPIDocument []byte

// routeOpenAPI serves the API description to anyone.
func (s *Server) routeOpenAPI() {
	s.router.GET("/api/openapi.json", func(c *gin.Context) {
		c.Data(http.StatusOK, "application/json", openAPIDocument)
	})
}
