package web

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
)

// routePublic serves what a visitor may read before signing up.
func (s *Server) routePublic() {
	if s.cfg.Chains != nil {
		s.router.GET("/api/v1/chains", s.listChains)
	}
	if s.cfg.CAPEM != nil {
		s.router.GET("/ca.pem", s.caPEM)
	}
}

// listChains returns the chain profiles on offer; the checksum doubles as
// an ETag since the set only changes on a catalogue swap.
func (s *Server) listChains(c *gin.Context) {
	set := s.cfg.Chains.Snapshot()
	etag := `"` + set.Checksum() + `"`
	if c.GetHeader("If-None-Match") == etag {
		c.Status(http.StatusNotModified)
		return
	}
	c.Header("ETag", etag)
	c.JSON(http.StatusOK, gin.H{"chains": set.List(), "checksum": set.Checksum()})
}

// caPEM lets clients trust the appliance CA behind a self-issued certificate.
func (s *Server) caPEM(c *gin.Context) {
	pem := s.cfg.CAPEM()
	if pem == nil {
		writeError(c, engine.Errorf(engine.ENotFound, "no appliance CA in use"))
		return
	}
	c.Data(http.StatusOK, "application/x-pem-file", pem)
}
