package agent

import (
	"context"
	"fmt"
	"time"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// Upgrade runs the component at the new version: its process is stopped,
// the new command line installed and, if the chain was running, started and
// watched for UpgradeCheck; a new version that exits in that time is
// stopped and the old one started again.
func (r *ProcessRuntime) Upgrade(ctx context.Context, p *agentv1.UpgradePayload, progress ProgressFunc) (*agentv1.UpgradeOutcome, error) {
	r.mu.Lock()
	i := findComponent(r.components, p.GetComponent())
	running := r.running != nil
	var old *agentv1.Component
	if i >= 0 {
		old = r.components[i]
	}
	r.mu.Unlock()
	if old == nil {
		return nil, permanent(fmt.Sprintf("no component %q is configured", p.GetComponent()))
	}
	if p.GetArtifact().GetUrl() != "" {
		return nil, permanent("an upgrade cannot install an artifact yet: CONFIGURE the new version")
	}
	next, err := upgradedComponent(old, p)
	if err != nil {
		return nil, err
	}
	if next == nil { // at that version already
		return &agentv1.UpgradeOutcome{InstalledVersion: old.GetVersion()}, nil
	}
	return runUpgrade(ctx, r.upgradeSteps(old, next, p.GetConfigChanges(), running), next.GetVersion(), progress)
}

func (r *ProcessRuntime) upgradeSteps(old, next *agentv1.Component, files []*agentv1.ConfigFile, running bool) []upgradeStep {
	var backups []fileBackup
	name := old.GetName()
	ifRunning := onlyWhen(running)
	return []upgradeStep{
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_BACKUP_CURRENT_STATE, do: func(context.Context) (err error) {
			backups, err = backupFiles(r.cfg.Dir, files)
			return err
		}},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_ACQUIRE_ARTIFACT}, // the program is on the host
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_VERIFY_ARTIFACT, do: func(context.Context) error {
			return verifyProgram(r.cfg.Dir, next.GetArgs(), next.GetArtifact().GetSha256())
		}},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_STOP_NODE,
			do:   ifRunning(func(ctx context.Context) error { return r.stopComponent(ctx, name) }),
			undo: ifRunning(func(context.Context) error { r.startComponent(name); return nil })},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_INSTALL_ARTIFACT,
			do:   func(context.Context) error { r.setComponent(next); return nil },
			undo: func(context.Context) error { r.setComponent(old); return nil }},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_WRITE_CONFIGS,
			do:   func(context.Context) error { return writeConfigFiles(r.cfg.Dir, files, func(Progress) {}) },
			undo: func(context.Context) error { return restoreFiles(r.cfg.Dir, backups) }},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_RELOAD_DAEMON}, // no daemon to reload
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_START_NODE,
			do:   ifRunning(func(ctx context.Context) error { return r.awaitSteady(ctx, r.startComponent(name)) }),
			undo: ifRunning(func(ctx context.Context) error { return r.stopComponent(ctx, name) })},
	}
}

// setComponent replaces the configured component of c's name.
func (r *ProcessRuntime) setComponent(c *agentv1.Component) {
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
