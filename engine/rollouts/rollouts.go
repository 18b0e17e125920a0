// Package rollouts is what operators do with upgrade rollouts: create one
// (from a manifest or by hand), alone or as a group of a chain's
// components, look at it, and steer it with signals. The workflows that
// carry rollouts out are in engine/workflows.
package rollouts

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/observe"
	"github.com/hoodcloud/hoodcloud/engine/profile"
)

// Defaults of a rollout's plan.
const (
	DefaultHealthWait = 5 * time.Minute
	maxHealthWait     = 24 * time.Hour
	maxGates          = 20
	maxBatch          = 10000
)

// Manifest is what an upgrade manifest gives a rollout.
type Manifest struct {
	Component string
	Spec      engine.UpgradeSpec
	Hash      string // sha256 of the manifest's bytes
}

// ManifestLookup finds the manifest of an upgrade of a chain; ENotFound
// when there is none.
type ManifestLookup func(chainID, upgradeID string) (Manifest, error)

// Service creates, reads and steers rollouts.
type Service struct {
	Store     engine.RolloutStore
	Workflows engine.RolloutWorkflows
	Chains    func(id string) (*profile.ChainProfile, error)
	Manifests ManifestLookup
	Now       func() time.Time // default time.Now
}

// Upgrade is what to install: an upgrade id (auto mode: the manifest
// gives the rest), or every field (manual mode).
type Upgrade struct {
	UpgradeID     string
	Component     string
	Release       engine.Release
	Compatibility string
	ConfigChanges []engine.ConfigChange
	TargetHeight  int64
}

// Plan is how to roll it out.
type Plan struct {
	Strategy         string // default rolling
	BatchSize        int    // default 1
	CanarySize       int    // canary only; default 1
	FailureThreshold int    // default 1
	HealthWait       time.Duration
	Gates            []string
	GateFailure      string // pause (default) or rollback
}

// Request creates a standalone rollout.
type Request struct {
	ChainProfileID string
	Upgrade        Upgrade
	Plan           Plan
	CreatedBy      string
}

// GroupRequest creates a rollout per component, run in the chain
// profile's declared order under one failure policy.
type GroupRequest struct {
	ChainProfileID string
	Upgrades       []Upgrade
	Plan           Plan
	FailurePolicy  string // partial_ok, rollback_all (default), manual
	CreatedBy      string
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// Create validates the request, records the rollout and starts it.
func (s *Service) Create(ctx context.Context, req Request) (*engine.Rollout, error) {
	p, err := s.chain(req.ChainProfileID)
	if err != nil {
		return nil, err
	}
	ro, err := s.build(p, req.Upgrade, req.Plan, "")
	if err != nil {
		return nil, err
	}
	ro.CreatedBy = req.CreatedBy
	if err := s.Store.CreateRollout(ctx, ro); err != nil {
		return nil, fmt.Errorf("record rollout: %w", err)
	}
	if err := s.Workflows.StartRollout(ctx, ro.ID, false); err != nil {
		return nil, s.startFailed(ctx, ro, err)
	}
	return ro, nil
}

// CreateGroup validates every component's upgrade, records the group and
// its rollouts, and starts the group.
func (s *Service) CreateGroup(ctx context.Context, req GroupRequest) (*engine.RolloutGroup, []*engine.Rollout, error) {
	p, err := s.chain(req.ChainProfileID)
	if err != nil {
		return nil, nil, err
	}
	policy := req.FailurePolicy
	if policy == "" {
		policy = engine.PolicyRollbackAll
	}
	if !slices.Contains([]string{engine.PolicyPartialOK, engine.PolicyRollbackAll, engine.PolicyManual}, policy) {
		return nil, nil, engine.Errorf(engine.EInvalid, "failure_policy: must be partial_ok, rollback_all or manual, got %q", policy)
	}
	g := &engine.RolloutGroup{ID: engine.NewID("rg"), ChainProfileID: p.ID, FailurePolicy: policy,
		Status: engine.RolloutPending, CreatedBy: req.CreatedBy, CreatedAt: s.now(), UpdatedAt: s.now()}
	ros, err := s.groupRollouts(p, g, req)
	if err != nil {
		return nil, nil, err
	}
	for _, ro := range ros {
		if err := s.Store.CreateRollout(ctx, ro); err != nil {
			return nil, nil, fmt.Errorf("record rollout: %w", err)
		}
		g.Components, g.Rollouts = append(g.Components, ro.Component), append(g.Rollouts, ro.ID)
	}
	if err := s.Store.CreateRolloutGroup(ctx, g); err != nil {
		return nil, nil, fmt.Errorf("record rollout group: %w", err)
	}
	if err := s.Workflows.StartRolloutGroup(ctx, g.ID); err != nil {
		g.Status, g.Message = engine.RolloutFailed, "could not start: "+err.Error()
		_ = s.Store.UpdateRolloutGroup(ctx, g)
		return nil, nil, err
	}
	return g, ros, nil
}

// groupRollouts builds one rollout per upgrade, in the profile's
// component order.
func (s *Service) groupRollouts(p *profile.ChainProfile, g *engine.RolloutGroup, req GroupRequest) ([]*engine.Rollout, error) {
	if len(req.Upgrades) == 0 {
		return nil, engine.Errorf(engine.EInvalid, "upgrades: a group needs at least one component upgrade")
	}
	var ros []*engine.Rollout
	for i, u := range req.Upgrades {
		ro, err := s.build(p, u, req.Plan, g.ID)
		if err != nil {
			return nil, engine.Errorf(engine.EInvalid, "upgrades[%d]: %s", i, engine.ErrorMessage(err))
		}
		if slices.ContainsFunc(ros, func(o *engine.Rollout) bool { return o.Component == ro.Component }) {
			return nil, engine.Errorf(engine.EInvalid, "upgrades[%d]: component %q is upgraded twice", i, ro.Component)
		}
		ro.CreatedBy = req.CreatedBy
		ros = append(ros, ro)
	}
	order := func(c string) int {
		return slices.IndexFunc(p.Components, func(pc profile.Component) bool { return pc.Name == c })
	}
	slices.SortStableFunc(ros, func(a, b *engine.Rollout) int { return order(a.Component) - order(b.Component) })
	return ros, nil
}

func (s *Service) chain(id string) (*profile.ChainProfile, error) {
	if id == "" {
		return nil, engine.Errorf(engine.EInvalid, "chain_profile_id: is required")
	}
	p, err := s.Chains(id)
	if engine.IsCode(err, engine.ENotFound) {
		return nil, engine.Errorf(engine.EInvalid, "chain_profile_id: no chain profile %q", id)
	}
	return p, err
}

// build validates an upgrade and its plan into a pending rollout.
func (s *Service) build(p *profile.ChainProfile, u Upgrade, plan Plan, groupID string) (*engine.Rollout, error) {
	m, err := s.resolve(p, u)
	if err != nil {
		return nil, err
	}
	plan, err = checkPlan(plan, m.Spec)
	if err != nil {
		return nil, err
	}
	now := s.now()
	return &engine.Rollout{
		ID: engine.NewID("ro"), GroupID: groupID, ChainProfileID: p.ID, Component: m.Component,
		TargetVersion: m.Spec.Release.Version, Strategy: plan.Strategy, BatchSize: plan.BatchSize,
		CanarySize: plan.CanarySize, FailureThreshold: plan.FailureThreshold, Status: engine.RolloutPending,
		ManifestHash: m.Hash, Spec: m.Spec, Message: "waiting to start",
		Plan:      engine.RolloutPlan{HealthWait: plan.HealthWait, Gates: plan.Gates, GateFailure: plan.GateFailure},
		CreatedAt: now, UpdatedAt: now,
	}, nil
}

// resolve finds what the upgrade installs: its manifest in auto mode, the
// request in manual mode, checked against the chain profile either way.
func (s *Service) resolve(p *profile.ChainProfile, u Upgrade) (Manifest, error) {
	if u.UpgradeID == "" {
		spec := engine.UpgradeSpec{Release: u.Release, Compatibility: u.Compatibility, ConfigChanges: u.ConfigChanges, TargetHeight: u.TargetHeight}
		if err := profile.CheckUpgrade(p, u.Component, spec); err != nil {
			return Manifest{}, err
		}
		return Manifest{Component: u.Component, Spec: spec}, nil
	}
	if manual := manualFields(u); len(manual) > 0 {
		return Manifest{}, engine.Errorf(engine.EInvalid, "upgrade_id: the manifest gives %s; leave them out or drop upgrade_id", strings.Join(manual, ", "))
	}
	m, err := s.Manifests(p.ID, u.UpgradeID)
	if engine.IsCode(err, engine.ENotFound) {
		return Manifest{}, engine.Errorf(engine.EInvalid, "upgrade_id: %s", engine.ErrorMessage(err))
	}
	if err != nil {
		return Manifest{}, err
	}
	if u.TargetHeight > 0 {
		m.Spec.TargetHeight = u.TargetHeight
	}
	return m, nil
}

// manualFields names the manual-mode fields u sets.
func manualFields(u Upgrade) []string {
	var out []string
	add := func(set bool, name string) {
		if set {
			out = append(out, name)
		}
	}
	add(u.Component != "", "component")
	add(u.Release.Version != "", "version")
	add(u.Release.URL != "" || u.Release.SHA256 != "" || u.Release.Binary != "", "artifact")
	add(len(u.Release.Args) > 0, "args")
	add(u.Compatibility != "", "compatibility")
	add(len(u.ConfigChanges) > 0, "config_changes")
	return out
}

// checkPlan fills the plan's defaults and refuses what cannot work.
func checkPlan(p Plan, spec engine.UpgradeSpec) (Plan, error) {
	if p.Strategy == "" {
		p.Strategy = engine.StrategyRolling
	}
	p.BatchSize, p.CanarySize, p.FailureThreshold = orOne(p.BatchSize), orOne(p.CanarySize), orOne(p.FailureThreshold)
	if p.HealthWait == 0 {
		p.HealthWait = DefaultHealthWait
	}
	if p.GateFailure == "" {
		p.GateFailure = engine.GatePause
	}
	switch {
	case !slices.Contains(engine.Strategies, p.Strategy):
		return p, engine.Errorf(engine.EInvalid, "strategy: must be one of %s, got %q", strings.Join(engine.Strategies, ", "), p.Strategy)
	case p.Strategy == engine.StrategyAtHeight && spec.TargetHeight <= 0:
		return p, engine.Errorf(engine.EInvalid, "target_height: the at_height strategy needs a target height above 0")
	case p.Strategy != engine.StrategyAtHeight && spec.TargetHeight > 0:
		return p, engine.Errorf(engine.EInvalid, "strategy: the upgrade switches at height %d: use at_height", spec.TargetHeight)
	case p.BatchSize < 1 || p.BatchSize > maxBatch:
		return p, engine.Errorf(engine.EInvalid, "batch_size: must be 1 to %d, got %d", maxBatch, p.BatchSize)
	case p.CanarySize < 1 || p.CanarySize > maxBatch:
		return p, engine.Errorf(engine.EInvalid, "canary_size: must be 1 to %d, got %d", maxBatch, p.CanarySize)
	case p.FailureThreshold < 1:
		return p, engine.Errorf(engine.EInvalid, "failure_threshold: must be at least 1, got %d", p.FailureThreshold)
	case p.HealthWait < time.Second || p.HealthWait > maxHealthWait:
		return p, engine.Errorf(engine.EInvalid, "health_wait: must be 1s to %s, got %s", maxHealthWait, p.HealthWait)
	case p.GateFailure != engine.GatePause && p.GateFailure != engine.GateRollback:
		return p, engine.Errorf(engine.EInvalid, "gate_failure: must be pause or rollback, got %q", p.GateFailure)
	case len(p.Gates) > maxGates:
		return p, engine.Errorf(engine.EInvalid, "gates: at most %d, got %d", maxGates, len(p.Gates))
	}
	for i, g := range p.Gates {
		if _, err := observe.CompileGate(g); err != nil {
			return p, engine.Errorf(engine.EInvalid, "gates[%d]: %v", i, err)
		}
	}
	return p, nil
}

func orOne(n int) int {
	if n == 0 {
		return 1
	}
	return n
}

// startFailed marks a rollout that could not start as failed and returns
// why.
func (s *Service) startFailed(ctx context.Context, ro *engine.Rollout, err error) error {
	ro.Status, ro.Message, ro.UpdatedAt = engine.RolloutFailed, "could not start: "+engine.ErrorMessage(err), s.now()
	_ = s.Store.UpdateRollout(ctx, ro)
	return err
}
