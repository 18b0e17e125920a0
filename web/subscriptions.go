package web

import "github.com/gin-gonic/gin"

// routeSubscriptions registers the subscription and provisioning-input
// routes: public ones on api, authenticated ones on authed.
func (s *Server) routeSubscriptions(api, authed *gin.RouterGroup) {}
