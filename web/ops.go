package web

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
)

func (s *Server) routeOps() {
	s.router.GET("/health", s.health)
	s.router.GET("/readyz", s.readyz)
	s.router.GET("/livez", s.livez)
	s.router.GET("/metrics", gin.WrapH(s.metricsHandler()))
}

type componentJSON struct {
	Name      string  `json:"name"`
	Status    string  `json:"status"`
	LatencyMS float64 `json:"latency_ms"`
	ErrorCode string  `json:"error_code,omitempty"`
	Detail    string  `json:"detail,omitempty"`
}

type readinessJSON struct {
	Status        string          `json:"status"`
	Version       string          `json:"version"`
	UptimeSeconds float64         `json:"uptime_seconds"`
	Components    []componentJSON `json:"components"`
}

// health is for load balancers: the overall status, nothing to fingerprint.
func (s *Server) health(c *gin.Context) {
	r := s.cfg.Health(c.Request.Context())
	c.JSON(readinessStatus(r.Status), gin.H{"status": r.Status})
}

// readyz details every component, for operators and orchestrators.
func (s *Server) readyz(c *gin.Context) {
	r := s.cfg.Health(c.Request.Context())
	out := readinessJSON{
		Status:        string(r.Status),
		Version:       s.cfg.Version,
		UptimeSeconds: time.Since(s.started).Round(time.Millisecond).Seconds(),
		Components:    make([]componentJSON, len(r.Components)),
	}
	for i, comp := range r.Components {
		out.Components[i] = componentJSON{
			Name:      comp.Name,
			Status:    string(comp.Status),
			LatencyMS: float64(comp.Latency.Microseconds()) / 1000,
			ErrorCode: string(comp.ErrorCode),
			Detail:    comp.Detail,
		}
	}
	c.JSON(readinessStatus(r.Status), out)
}

// livez says the process serves HTTP; it checks no dependency so a
// database outage never gets the appliance restarted.
func (s *Server) livez(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "alive"}) }

// readinessStatus keeps a degraded appliance in rotation.
func readinessStatus(s engine.HealthStatus) int {
	if s == engine.Unhealthy {
		return http.StatusServiceUnavailable
	}
	return http.StatusOK
}
