package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// Upgrade installs the new version's artifact, if any, beside the old one
// and rewrites the component's unit for it, restarting the unit (at the
// target height, if any) if it was active; a unit not active UpgradeCheck
// after its start is stopped, its old unit put back and started again.
func (r *SystemdRuntime) Upgrade(ctx context.Context, p *agentv1.UpgradePayload, height ChainHeight, progress ProgressFunc) (*agentv1.UpgradeOutcome, error) {
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
	old, err := r.component(rel.old.GetName())
	if err != nil {
		return nil, err
	}
	return runUpgrade(ctx, r.upgradeSteps(ctx, old, rel, progress), at, rel.next.GetVersion(), progress)
}

func (r *SystemdRuntime) component(name string) (*agentv1.Component, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i := findComponent(r.components, name); i >= 0 {
		return r.components[i], nil
	}
	return nil, permanent(fmt.Sprintf("no component %q is configured", name))
}

// upgradeSteps switches from old (rendered) to rel. What the agent writes
// is handed to the chain's user, as at CONFIGURE.
func (r *SystemdRuntime) upgradeSteps(ctx context.Context, old *agentv1.Component, rel *release, progress ProgressFunc) []upgradeStep {
	unit := r.unit(old)
	files := &configWrite{dir: r.cfg.Dir, files: rel.files}
	var oldUnit []byte
	active := r.active(ctx, unit)
	systemctl := func(verb string) func(context.Context) error {
		if !active {
			return nil
		}
		return func(ctx context.Context) error {
			_, err := r.cfg.Commander.Run(ctx, "systemctl", verb, unit)
			return err
		}
	}
	return []upgradeStep{
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_BACKUP_CURRENT_STATE, do: func(ctx context.Context) (err error) {
			if oldUnit, err = os.ReadFile(filepath.Join(r.cfg.UnitDir, unit)); err != nil {
				return fmt.Errorf("back up unit %s: %w", unit, err)
			}
			return files.backup(ctx)
		}},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_ACQUIRE_ARTIFACT, do: func(ctx context.Context) error {
			if err := r.host.acquire(ctx, rel.next, actionProgress(progress, agentv1.UpgradeAction_UPGRADE_ACTION_ACQUIRE_ARTIFACT)); err != nil {
				return err
			}
			return giveToUser(r.cfg.Dir, r.cfg.User)
		}},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_VERIFY_ARTIFACT, do: func(context.Context) error { return r.host.verify(rel) }},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_STOP_NODE, do: systemctl("stop"), undo: systemctl("start")},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_INSTALL_ARTIFACT,
			do: func(context.Context) error { return r.install(rel.run, rel.next, nil) },
			undo: func(ctx context.Context) error {
				if err := r.install(old, rel.old, oldUnit); err != nil {
					return err
				}
				_, err := r.cfg.Commander.Run(ctx, "systemctl", "daemon-reload")
				return err
			}},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_WRITE_CONFIGS,
			do: func(ctx context.Context) error {
				if err := files.write(ctx); err != nil {
					return err
				}
				return giveToUser(r.cfg.Dir, r.cfg.User)
			},
			undo: files.restore},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_RELOAD_DAEMON, do: func(ctx context.Context) error {
			_, err := r.cfg.Commander.Run(ctx, "systemctl", "daemon-reload")
			return err
		}},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_START_NODE, do: r.startChecked(active, unit), undo: systemctl("stop")},
	}
}

// install writes c's unit (or content, when given) and records c
// (rendered) and configured (unrendered) as the component of its name.
func (r *SystemdRuntime) install(c, configured *agentv1.Component, content []byte) error {
	var err error
	if content != nil {
		err = r.writeUnitFile(r.unit(c), content)
	} else {
		err = r.writeUnit(c)
	}
	if err != nil {
		return err
	}
	r.host.adopt(configured)
	r.mu.Lock()
	defer r.mu.Unlock()
	comps := append([]*agentv1.Component(nil), r.components...)
	comps[findComponent(comps, c.GetName())] = c
	r.components = comps
	return nil
}

func (r *SystemdRuntime) active(ctx context.Context, unit string) bool {
	out, _ := r.cfg.Commander.Run(ctx, "systemctl", "is-active", unit)
	return strings.TrimSpace(string(out)) == "active"
}

// startChecked starts unit and requires it active UpgradeCheck later;
// nil when the unit was not active before the upgrade.
func (r *SystemdRuntime) startChecked(active bool, unit string) func(context.Context) error {
	if !active {
		return nil
	}
	return func(ctx context.Context) error {
		if _, err := r.cfg.Commander.Run(ctx, "systemctl", "start", unit); err != nil {
			return err
		}
		if !sleep(ctx, r.cfg.UpgradeCheck) {
			return ctx.Err()
		}
		if !r.active(ctx, unit) {
			return permanent(unit + " is not active after the upgrade")
		}
		return nil
	}
}

// Upgrade pulls the new image and, if the container was running, replaces
// it (at the target height, if any) with one of the new image; a
// container not running UpgradeCheck later is removed and one of the old
// image started again.
func (r *DockerRuntime) Upgrade(ctx context.Context, p *agentv1.UpgradePayload, height ChainHeight, progress ProgressFunc) (*agentv1.UpgradeOutcome, error) {
	comps, err := r.configured()
	if err != nil {
		return nil, err
	}
	rel, err := r.host.release(p)
	if err != nil {
		return nil, err
	}
	if rel == nil { // at that version already
		return &agentv1.UpgradeOutcome{InstalledVersion: p.GetVersion()}, nil
	}
	image, err := dockerImage(rel.run)
	if err != nil {
		return nil, err
	}
	at := switchPoint{target: p.GetTargetHeight(), height: height}
	if err := at.check(ctx); err != nil {
		return nil, err
	}
	i := findComponent(comps, rel.old.GetName())
	if i < 0 {
		return nil, permanent(fmt.Sprintf("no component %q is configured", rel.old.GetName()))
	}
	old := comps[i]
	return runUpgrade(ctx, r.upgradeSteps(ctx, old, rel, image), at, rel.next.GetVersion(), progress)
}

// upgradeSteps switches from old (rendered) to rel.
func (r *DockerRuntime) upgradeSteps(ctx context.Context, old *agentv1.Component, rel *release, image string) []upgradeStep {
	files := &configWrite{dir: r.cfg.Dir, files: rel.files}
	running := r.running(ctx, old)
	ifRunning := onlyWhen(running)
	return []upgradeStep{
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_BACKUP_CURRENT_STATE, do: files.backup},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_ACQUIRE_ARTIFACT, do: func(ctx context.Context) error {
			_, err := r.cfg.Commander.Run(ctx, "docker", "pull", image)
			return err
		}},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_VERIFY_ARTIFACT}, // a digest in the reference is verified by the pull
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_STOP_NODE,
			do: ifRunning(func(ctx context.Context) error {
				_, err := r.cfg.Commander.Run(ctx, "docker", "stop", "--time", "120", r.container(old))
				return err
			}),
			undo: ifRunning(func(ctx context.Context) error { return r.runContainer(ctx, old) })},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_INSTALL_ARTIFACT,
			do:   func(context.Context) error { r.setComponent(rel.run, rel.next); return nil },
			undo: func(context.Context) error { r.setComponent(old, rel.old); return nil }},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_WRITE_CONFIGS, do: files.write, undo: files.restore},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_RELOAD_DAEMON}, // nothing to reload
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_START_NODE,
			do:   ifRunning(func(ctx context.Context) error { return r.startChecked(ctx, rel.run) }),
			undo: ifRunning(func(ctx context.Context) error { return r.removeContainer(ctx, rel.run) })},
	}
}

// startChecked runs c's container and requires it running UpgradeCheck
// later.
func (r *DockerRuntime) startChecked(ctx context.Context, c *agentv1.Component) error {
	if err := r.runContainer(ctx, c); err != nil {
		return err
	}
	if !sleep(ctx, r.cfg.UpgradeCheck) {
		return ctx.Err()
	}
	if !r.running(ctx, c) {
		return permanent(r.container(c) + " is not running after the upgrade")
	}
	return nil
}

func (r *DockerRuntime) removeContainer(ctx context.Context, c *agentv1.Component) error {
	_, err := r.cfg.Commander.Run(ctx, "docker", "rm", "-f", r.container(c))
	return err
}

func (r *DockerRuntime) running(ctx context.Context, c *agentv1.Component) bool {
	out, err := r.cfg.Commander.Run(ctx, "docker", "inspect", "--format", "{{.State.Running}}", r.container(c))
	return err == nil && strings.TrimSpace(string(out)) == "true"
}

// setComponent runs c (rendered) in place of the component of its name,
// and records configured (unrendered) as applied.
func (r *DockerRuntime) setComponent(c, configured *agentv1.Component) {
	r.host.adopt(configured)
	r.mu.Lock()
	defer r.mu.Unlock()
	comps := append([]*agentv1.Component(nil), r.components...)
	comps[findComponent(comps, c.GetName())] = c
	r.components = comps
}
