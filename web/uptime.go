package web

import (
	"math"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
)

// Uptime on the API: a node's owner (or an administrator) reads its
// rolling uptime and its history from the buckets the uptime worker keeps;
// administrators flag buckets for the worker to recompute.

// Defaults of the uptime queries when a parameter is absent.
const (
	defaultUptimeWindow      = "24h"
	defaultUptimeGranularity = engine.UptimeHourly
)

func (s *Server) routeUptime(authed *gin.RouterGroup) {
	if s.cfg.Store == nil || s.cfg.Uptime == nil {
		return
	}
	read, admin := requireScope(engine.ScopeNodesRead), requireScope(engine.ScopeAdmin)
	authed.GET("/nodes/:id/uptime", read, s.nodeUptime)
	authed.GET("/nodes/:id/uptime/history", read, s.nodeUptimeHistory)
	authed.POST("/admin/nodes/:id/uptime/recompute", admin, s.recomputeUptime)
}

// uptimePeriodJSON is a node's uptime over [start, end).
type uptimePeriodJSON struct {
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	UpSeconds   int64     `json:"up_seconds"`
	DownSeconds int64     `json:"down_seconds"`
	// Null when no time counts: the node did not exist or was terminating.
	Percent *float64 `json:"uptime_percent"`
}

func toUptimePeriodJSON(p engine.UptimePeriod) uptimePeriodJSON {
	j := uptimePeriodJSON{Start: p.Start, End: p.End, UpSeconds: p.UpSeconds, DownSeconds: p.DownSeconds}
	if pct, ok := p.Percent(); ok {
		pct = math.Round(pct*1e4) / 1e4
		j.Percent = &pct
	}
	return j
}

type uptimeSummaryJSON struct {
	NodeID string `json:"node_id"`
	Window string `json:"window"`
	uptimePeriodJSON
}

type uptimeHistoryPeriodJSON struct {
	uptimePeriodJSON
	// False while the period holds the current hour.
	Complete bool `json:"complete"`
}

type uptimeHistoryJSON struct {
	NodeID      string                    `json:"node_id"`
	Window      string                    `json:"window"`
	Granularity string                    `json:"granularity"`
	Periods     []uptimeHistoryPeriodJSON `json:"periods"`
}

// uptimeWindow reads ?window=, 24h when absent.
func uptimeWindow(c *gin.Context) (string, time.Duration, error) {
	name := c.DefaultQuery("window", defaultUptimeWindow)
	d, err := engine.ParseUptimeWindow(name)
	return name, d, err
}

// nodeUptime is the node's uptime over the window: its whole hours before
// the current one, and the current hour as far as the worker has counted it.
func (s *Server) nodeUptime(c *gin.Context) {
	name, window, err := uptimeWindow(c)
	if err != nil {
		writeError(c, err)
		return
	}
	n, err := s.visibleNode(c)
	if err != nil {
		writeError(c, err)
		return
	}
	p, err := s.cfg.Uptime.Summary(c.Request.Context(), n.ID, window)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, uptimeSummaryJSON{NodeID: n.ID, Window: name, uptimePeriodJSON: toUptimePeriodJSON(p)})
}

func (s *Server) nodeUptimeHistory(c *gin.Context) {
	name, window, err := uptimeWindow(c)
	if err != nil {
		writeError(c, err)
		return
	}
	g, err := engine.ParseUptimeGranularity(c.DefaultQuery("granularity", string(defaultUptimeGranularity)))
	if err != nil {
		writeError(c, err)
		return
	}
	n, err := s.visibleNode(c)
	if err != nil {
		writeError(c, err)
		return
	}
	periods, err := s.cfg.Uptime.History(c.Request.Context(), n.ID, window, g)
	if err != nil {
		writeError(c, err)
		return
	}
	out := uptimeHistoryJSON{NodeID: n.ID, Window: name, Granularity: string(g), Periods: make([]uptimeHistoryPeriodJSON, 0, len(periods))}
	for _, p := range periods {
		out.Periods = append(out.Periods, uptimeHistoryPeriodJSON{uptimePeriodJSON: toUptimePeriodJSON(p), Complete: p.Complete})
	}
	c.JSON(http.StatusOK, out)
}

// recomputeUptime flags the node's buckets of the hours from ?from= to
// ?to= (RFC 3339) for the worker's next pass.
func (s *Server) recomputeUptime(c *gin.Context) {
	from, to, err := uptimeRange(c)
	if err != nil {
		writeError(c, err)
		return
	}
	n, err := s.visibleNode(c)
	if err != nil {
		writeError(c, err)
		return
	}
	marked, err := s.cfg.Uptime.MarkRecompute(c.Request.Context(), n.ID, from, to)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"node_id": n.ID, "marked": marked})
}

// uptimeRange reads ?from= and ?to=, both RFC 3339 and from before to.
func uptimeRange(c *gin.Context) (from, to time.Time, err error) {
	from, err = time.Parse(time.RFC3339, c.Query("from"))
	if err != nil {
		return from, to, engine.Errorf(engine.EInvalid, "from must be an RFC 3339 time")
	}
	to, err = time.Parse(time.RFC3339, c.Query("to"))
	if err != nil {
		return from, to, engine.Errorf(engine.EInvalid, "to must be an RFC 3339 time")
	}
	if !from.Before(to) {
		return from, to, engine.Errorf(engine.EInvalid, "from must be before to")
	}
	return from, to, nil
}
