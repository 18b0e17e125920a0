package rollouts

import (
	"context"
	"fmt"
	"slices"

	"github.com/hoodcloud/hoodcloud/engine"
)

// View is a rollout with its nodes.
type View struct {
	Rollout *engine.Rollout
	Nodes   []*engine.RolloutNode
}

// GroupView is a group with its rollouts.
type GroupView struct {
	Group    *engine.RolloutGroup
	Rollouts []*engine.Rollout
}

// Get returns the rollout and every node's part in it.
func (s *Service) Get(ctx context.Context, id string) (*View, error) {
	ro, err := s.Store.GetRollout(ctx, id)
	if err != nil {
		return nil, err
	}
	ns, err := s.Store.ListRolloutNodes(ctx, id, -1)
	if err != nil {
		return nil, fmt.Errorf("list nodes of rollout %s: %w", id, err)
	}
	return &View{Rollout: ro, Nodes: ns}, nil
}

// GetGroup returns the group and its rollouts in order.
func (s *Service) GetGroup(ctx context.Context, id string) (*GroupView, error) {
	g, err := s.Store.GetRolloutGroup(ctx, id)
	if err != nil {
		return nil, err
	}
	v := &GroupView{Group: g}
	for _, rid := range g.Rollouts {
		ro, err := s.Store.GetRollout(ctx, rid)
		if err != nil {
			return nil, fmt.Errorf("read rollout %s of group %s: %w", rid, id, err)
		}
		v.Rollouts = append(v.Rollouts, ro)
	}
	return v, nil
}

// Signal steers a rollout. A signal that makes no sense in the rollout's
// status is refused with EConflict naming the status; a rollback of a
// finished rollout starts one that puts its nodes back.
func (s *Service) Signal(ctx context.Context, id string, sig engine.RolloutSignal) (*engine.Rollout, error) {
	ro, err := s.Store.GetRollout(ctx, id)
	if err != nil {
		return nil, err
	}
	if sig == engine.SignalRollback && rolledBackOnce(ro.Status) && ro.GroupID != "" {
		if g, err := s.Store.GetRolloutGroup(ctx, ro.GroupID); err == nil && !g.Status.Finished() {
			return nil, engine.Errorf(engine.EConflict, "rollout %s belongs to group %s, which is %s: roll the group back", id, g.ID, g.Status)
		}
	}
	if sig == engine.SignalRollback && rolledBackOnce(ro.Status) {
		if err := s.Workflows.StartRollout(ctx, id, true); err != nil {
			return nil, err
		}
		return ro, nil
	}
	if err := engine.CheckRolloutSignal(ro.Status, sig); err != nil {
		return nil, err
	}
	err = s.Workflows.SignalRollout(ctx, id, sig)
	if engine.IsCode(err, engine.ENotFound) {
		return nil, engine.Errorf(engine.EConflict, "rollout %s is %s but its workflow is not running", id, ro.Status)
	}
	return ro, err
}

// rolledBackOnce: the finished statuses a rollback restarts from.
func rolledBackOnce(s engine.RolloutStatus) bool {
	return s == engine.RolloutSucceeded || s == engine.RolloutFailed || s == engine.RolloutCancelled
}

// SignalGroup steers a group; skip names the component to skip.
func (s *Service) SignalGroup(ctx context.Context, id string, sig engine.RolloutSignal, component string) (*engine.RolloutGroup, error) {
	g, err := s.Store.GetRolloutGroup(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := engine.CheckGroupSignal(g.Status, sig); err != nil {
		return nil, err
	}
	if sig == engine.SignalSkip && component != "" && !slices.Contains(g.Components, component) {
		return nil, engine.Errorf(engine.EInvalid, "component: the group upgrades %v, not %q", g.Components, component)
	}
	err = s.Workflows.SignalRolloutGroup(ctx, id, sig, component)
	if engine.IsCode(err, engine.ENotFound) {
		return nil, engine.Errorf(engine.EConflict, "rollout group %s is %s but its workflow is not running", id, g.Status)
	}
	return g, err
}

// List returns rollouts newest first, a page after the cursor.
func (s *Service) List(ctx context.Context, before string, limit int) ([]*engine.Rollout, error) {
	return s.Store.ListRollouts(ctx, before, limit)
}

// ListGroups returns groups newest first, a page after the cursor.
func (s *Service) ListGroups(ctx context.Context, before string, limit int) ([]*engine.RolloutGroup, error) {
	return s.Store.ListRolloutGroups(ctx, before, limit)
}
