package web

import (
	"context"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/rollouts"
)

// Rollouts on the API: administrators create upgrade rollouts (one
// component, or a group of a chain's components), watch them batch by
// batch and steer them with signals.

// Rollout list paging.
const (
	defaultRolloutPage = 50
	maxRolloutPage     = 200
)

// rolloutSignals are the signals a rollout takes, by their name in the URL.
var rolloutSignals = map[string]engine.RolloutSignal{
	"pause": engine.SignalPause, "resume": engine.SignalResume, "cancel": engine.SignalCancel,
	"force": engine.SignalForce, "approve-canary": engine.SignalApproveCanary, "rollback": engine.SignalRollback,
}

// groupSignals are the signals a rollout group takes.
var groupSignals = map[string]engine.RolloutSignal{
	"pause": engine.SignalPause, "resume": engine.SignalResume, "cancel": engine.SignalCancel,
	"rollback": engine.SignalRollback, "skip": engine.SignalSkip,
}

func (s *Server) routeRollouts(authed *gin.RouterGroup) {
	if s.cfg.Rollouts == nil {
		return
	}
	admin := authed.Group("", requireScope(engine.ScopeAdmin))
	admin.POST("/rollouts", s.createRollout)
	admin.GET("/rollouts", s.listRollouts)
	admin.GET("/rollouts/:id", s.getRollout)
	admin.POST("/rollouts/:id/:signal", s.signalRollout)
	admin.POST("/rollout-groups", s.createRolloutGroup)
	admin.GET("/rollout-groups", s.listRolloutGroups)
	admin.GET("/rollout-groups/:id", s.getRolloutGroup)
	admin.POST("/rollout-groups/:id/:signal", s.signalRolloutGroup)
}

func (s *Server) createRollout(c *gin.Context) {
	var req CreateRolloutRequest
	if err := decodeJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	u, err := toUpgrade(req.upgrade(), "")
	if err != nil {
		writeError(c, err)
		return
	}
	u.TargetHeight = req.TargetHeight
	plan, err := toPlan(req.plan())
	if err != nil {
		writeError(c, err)
		return
	}
	ro, err := s.cfg.Rollouts.Create(c.Request.Context(), rollouts.Request{
		ChainProfileID: req.ChainProfileID, Upgrade: u, Plan: plan, CreatedBy: actorID(principal(c)),
	})
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusCreated, toRolloutJSON(ro))
}

func (s *Server) createRolloutGroup(c *gin.Context) {
	var req CreateRolloutGroupRequest
	if err := decodeJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	gr, err := toGroupRequest(req)
	if err != nil {
		writeError(c, err)
		return
	}
	gr.CreatedBy = actorID(principal(c))
	g, ros, err := s.cfg.Rollouts.CreateGroup(c.Request.Context(), gr)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusCreated, toRolloutGroupViewJSON(g, ros))
}

// toGroupRequest applies the plan, target height included, to every
// component's upgrade.
func toGroupRequest(req CreateRolloutGroupRequest) (rollouts.GroupRequest, error) {
	out := rollouts.GroupRequest{ChainProfileID: req.ChainProfileID, FailurePolicy: req.FailurePolicy}
	for i, ur := range req.Upgrades {
		u, err := toUpgrade(ur, "upgrades["+strconv.Itoa(i)+"].")
		if err != nil {
			return out, err
		}
		u.TargetHeight = req.TargetHeight
		out.Upgrades = append(out.Upgrades, u)
	}
	plan, err := toPlan(req.plan())
	out.Plan = plan
	return out, err
}

// rolloutPage reads ?before= and ?limit=; the cursor must be an item of
// the list, which exists checks.
func rolloutPage(c *gin.Context, what string, exists func(context.Context, string) error) (before string, limit int, err error) {
	before, limit = c.Query("before"), defaultRolloutPage
	if raw, ok := c.GetQuery("limit"); ok {
		limit, err = strconv.Atoi(raw)
		if err != nil || limit < 1 || limit > maxRolloutPage {
			return "", 0, engine.Errorf(engine.EInvalid, "limit must be an integer from 1 to %d", maxRolloutPage)
		}
	}
	if before == "" {
		return before, limit, nil
	}
	badCursor := engine.Errorf(engine.EInvalid, "before must be the id of a %s of this list (next of the previous page)", what)
	if len(before) > maxIDBytes || !utf8.ValidString(before) {
		return "", 0, badCursor
	}
	if err := exists(c.Request.Context(), before); engine.IsCode(err, engine.ENotFound) {
		return "", 0, badCursor
	} else if err != nil {
		return "", 0, err
	}
	return before, limit, nil
}

// pageOf cuts items, fetched one past limit, to the page and names the
// cursor of the next page, "" when this one is the last.
func pageOf[T any](items []*T, limit int, id func(*T) string) ([]*T, string) {
	if len(items) <= limit {
		return items, ""
	}
	return items[:limit], id(items[limit-1])
}

func (s *Server) listRollouts(c *gin.Context) {
	store := s.cfg.Rollouts.Store
	before, limit, err := rolloutPage(c, "rollout", func(ctx context.Context, id string) error {
		_, err := store.GetRollout(ctx, id)
		return err
	})
	if err != nil {
		writeError(c, err)
		return
	}
	ros, err := s.cfg.Rollouts.List(c.Request.Context(), before, limit+1)
	if err != nil {
		writeError(c, err)
		return
	}
	ros, next := pageOf(ros, limit, func(r *engine.Rollout) string { return r.ID })
	out := RolloutsJSON{Rollouts: make([]RolloutJSON, 0, len(ros)), Next: next}
	for _, r := range ros {
		out.Rollouts = append(out.Rollouts, toRolloutJSON(r))
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) listRolloutGroups(c *gin.Context) {
	store := s.cfg.Rollouts.Store
	before, limit, err := rolloutPage(c, "rollout group", func(ctx context.Context, id string) error {
		_, err := store.GetRolloutGroup(ctx, id)
		return err
	})
	if err != nil {
		writeError(c, err)
		return
	}
	gs, err := s.cfg.Rollouts.ListGroups(c.Request.Context(), before, limit+1)
	if err != nil {
		writeError(c, err)
		return
	}
	gs, next := pageOf(gs, limit, func(g *engine.RolloutGroup) string { return g.ID })
	out := RolloutGroupsJSON{Groups: make([]RolloutGroupJSON, 0, len(gs)), Next: next}
	for _, g := range gs {
		out.Groups = append(out.Groups, toRolloutGroupJSON(g))
	}
	c.JSON(http.StatusOK, out)
}

// pathID is the :id of the URL; one too long to be an id names nothing.
func pathID(c *gin.Context, what string) (string, error) {
	id := c.Param("id")
	if len(id) > maxIDBytes || !utf8.ValidString(id) {
		return "", engine.Errorf(engine.ENotFound, "no such %s", what)
	}
	return id, nil
}

func (s *Server) getRollout(c *gin.Context) {
	id, err := pathID(c, "rollout")
	if err != nil {
		writeError(c, err)
		return
	}
	v, err := s.cfg.Rollouts.Get(c.Request.Context(), id)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toRolloutViewJSON(v))
}

func (s *Server) getRolloutGroup(c *gin.Context) {
	id, err := pathID(c, "rollout group")
	if err != nil {
		writeError(c, err)
		return
	}
	v, err := s.cfg.Rollouts.GetGroup(c.Request.Context(), id)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toRolloutGroupViewJSON(v.Group, v.Rollouts))
}

// signalRollout answers 202 with the rollout as it was when signalled:
// the workflow acts on the signal after the answer.
func (s *Server) signalRollout(c *gin.Context) {
	sig, ok := rolloutSignals[c.Param("signal")]
	if !ok {
		writeError(c, engine.Errorf(engine.ENotFound, "a rollout takes pause, resume, cancel, force, approve-canary or rollback, not %q", c.Param("signal")))
		return
	}
	id, err := pathID(c, "rollout")
	if err == nil {
		err = decodeOptionalJSON(c, &struct{}{})
	}
	if err != nil {
		writeError(c, err)
		return
	}
	ro, err := s.cfg.Rollouts.Signal(c.Request.Context(), id, sig)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, toRolloutJSON(ro))
}

// signalRolloutGroup is signalRollout for a group; skip's body may name
// the component.
func (s *Server) signalRolloutGroup(c *gin.Context) {
	sig, ok := groupSignals[c.Param("signal")]
	if !ok {
		writeError(c, engine.Errorf(engine.ENotFound, "a rollout group takes pause, resume, cancel, rollback or skip, not %q", c.Param("signal")))
		return
	}
	var req SkipRequest
	var body any = &struct{}{}
	if sig == engine.SignalSkip {
		body = &req
	}
	id, err := pathID(c, "rollout group")
	if err == nil {
		err = decodeOptionalJSON(c, body)
	}
	if err != nil {
		writeError(c, err)
		return
	}
	g, err := s.cfg.Rollouts.SignalGroup(c.Request.Context(), id, sig, req.Component)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, toRolloutGroupJSON(g))
}
