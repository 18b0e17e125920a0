package agent

import (
	"context"
	"fmt"
	"time"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// Upgrade runs the component at the new version: its artifact, if any, is
// installed beside the old one, its process stopped (at the target height,
// if any), the new command line installed and, if the chain was running,
// started and watched for UpgradeCheck; a new version that exits in that
// time is stopped and the old one started again.
func (r *ProcessRuntime) Upgrade(ctx context.Context, p *agentv1.UpgradePayload, height ChainHeight, progress ProgressFunc) (*agentv1.UpgradeOutcome, error) {
	rel, err := r.host.release(p)
	if err != nil {
		return nil, err
	}
	if rel == nil { // at that version already
		return &agentv1.UpgradeOutcome{InstalledVersion: p.GetVersion()}, nil
	}
	at := switchPoint{target: p.GetTargetHeight(), height: height}
	if err := at.check(ctx); err != nil {
		return nil, err
	}
	r.mu.Lock()
	running := r.running != nil
	i := findComponent(r.components, rel.old.GetName())
	r.mu.Unlock()
	if i < 0 {
		return nil, permanent(fmt.Sprintf("no component %q is configured", rel.old.GetName()))
	}
	old := r.components[i]
	return runUpgrade(ctx, r.upgradeSteps(old, rel, running, progress), at, rel.next.GetVersion(), progress)
}

// upgradeSteps switches from old (rendered) to rel.
func (r *ProcessRuntime) upgradeSteps(old *agentv1.Component, rel *release, running bool, progress ProgressFunc) []upgradeStep {
	files := &configWrite{dir: r.cfg.Dir, files: rel.files}
	name := old.GetName()
	ifRunning := onlyWhen(running)
	return []upgradeStep{
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_BACKUP_CURRENT_STATE, do: files.backup},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_ACQUIRE_ARTIFACT, do: func(ctx context.Context) error {
			return r.host.acquire(ctx, rel.next, actionProgress(progress, agentv1.UpgradeAction_UPGRADE_ACTION_ACQUIRE_ARTIFACT))
		}},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_VERIFY_ARTIFACT, do: func(context.Context) error { return r.host.verify(rel) }},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_STOP_NODE,
			do:   ifRunning(func(ctx context.Context) error { return r.stopComponent(ctx, name) }),
			undo: ifRunning(func(context.Context) error { r.startComponent(name); return nil })},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_INSTALL_ARTIFACT,
			do:   func(context.Context) error { r.setComponent(rel.run, rel.next); return nil },
			undo: func(context.Context) error { r.setComponent(old, rel.old); return nil }},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_WRITE_CONFIGS, do: files.write, undo: files.restore},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_RELOAD_DAEMON}, // no daemon to reload
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_START_NODE,
			do:   ifRunning(func(ctx context.Context) error { return r.awaitSteady(ctx, r.startComponent(name)) }),
			undo: ifRunning(func(ctx context.Context) error { return r.stopComponent(ctx, name) })},
	}
}

// setComponent runs c (rendered) in place of the configured component of
// its name, and records configured (unrendered) as applied.
func (r *ProcessRuntime) setComponent(c, configured *agentv1.Component) {
	r.host.adopt(configured)
	r.mu.Lock()
	defer r.mu.Unlock()
	comps := append([]*agentv1.Component(nil), r.components...)
	if i := findComponent(comps, c.GetName()); i >= 0 {
		comps[i] = c
	}
	r.components = comps
}

// stopComponent stops the process of one component, leaving its slot
// empty for startComponent.
func (r *ProcessRuntime) stopComponent(ctx context.Context, name string) error {
	r.mu.Lock()
	var s *supervised
	for i, x := range r.running {
		if x != nil && x.comp.GetName() == name {
			s, r.running[i] = x, nil
			break
		}
	}
	r.mu.Unlock()
	return s.halt(ctx)
}

// startComponent runs the configured component of that name in the first
// empty slot.
func (r *ProcessRuntime) startComponent(name string) *supervised {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.supervise(r.components[findComponent(r.components, name)])
	for i, x := range r.running {
		if x == nil {
			r.running[i] = s
			return s
		}
	}
	r.running = append(r.running, s)
	return s
}

// awaitSteady waits UpgradeCheck for s to run without exiting once.
func (r *ProcessRuntime) awaitSteady(ctx context.Context, s *supervised) error {
	deadline := time.Now().Add(r.cfg.UpgradeCheck)
	for {
		alive, restarts, last := s.state()
		if restarts > 0 || (!alive && last != "") {
			return permanent(fmt.Sprintf("%s %s did not stay up: %s", s.comp.GetName(), s.comp.GetVersion(), last))
		}
		if time.Now().After(deadline) {
			if !alive {
				return permanent(fmt.Sprintf("%s %s did not start", s.comp.GetName(), s.comp.GetVersion()))
			}
			return nil
		}
		if !sleep(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
}
