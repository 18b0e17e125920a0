package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// Upgrade rewrites the component's unit for the new version and restarts
// it if it was active; a unit not active UpgradeCheck after its start is
// stopped, its old unit put back and started again.
func (r *SystemdRuntime) Upgrade(ctx context.Context, p *agentv1.UpgradePayload, progress ProgressFunc) (*agentv1.UpgradeOutcome, error) {
	old, err := r.component(p.GetComponent())
	if err != nil {
		return nil, err
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
	if err := checkProgramPath(next); err != nil {
		return nil, err
	}
	return runUpgrade(ctx, r.upgradeSteps(ctx, old, next, p.GetConfigChanges()), next.GetVersion(), progress)
}

func (r *SystemdRuntime) component(name string) (*agentv1.Component, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i := findComponent(r.components, name); i >= 0 {
		return r.components[i], nil
	}
	return nil, permanent(fmt.Sprintf("no component %q is configured", name))
}

func (r *SystemdRuntime) upgradeSteps(ctx context.Context, old, next *agentv1.Component, files []*agentv1.ConfigFile) []upgradeStep {
	unit := r.unit(old)
	var backups []fileBackup
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
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_BACKUP_CURRENT_STATE, do: func(context.Context) (err error) {
			if oldUnit, err = os.ReadFile(filepath.Join(r.cfg.UnitDir, unit)); err != nil {
				return fmt.Errorf("back up unit %s: %w", unit, err)
			}
			backups, err = backupFiles(r.cfg.Dir, files)
			return err
		}},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_ACQUIRE_ARTIFACT}, // the program is on the host
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_VERIFY_ARTIFACT, do: func(context.Context) error {
			return verifyProgram(r.cfg.Dir, next.GetArgs(), next.GetArtifact().GetSha256())
		}},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_STOP_NODE, do: systemctl("stop"), undo: systemctl("start")},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_INSTALL_ARTIFACT,
			do: func(context.Context) error { return r.install(next, nil) },
			undo: func(ctx context.Context) error {
				if err := r.install(old, oldUnit); err != nil {
					return err
				}
				_, err := r.cfg.Commander.Run(ctx, "systemctl", "daemon-reload")
				return err
			}},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_WRITE_CONFIGS,
			do:   func(context.Context) error { return writeConfigFiles(r.cfg.Dir, files, func(Progress) {}) },
			undo: func(context.Context) error { return restoreFiles(r.cfg.Dir, backups) }},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_RELOAD_DAEMON, do: func(ctx context.Context) error {
			_, err := r.cfg.Commander.Run(ctx, "systemctl", "daemon-reload")
			return err
		}},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_START_NODE, do: r.startChecked(active, unit), undo: systemctl("stop")},
	}
}

// install writes c's unit (or content, when given) and records c.
func (r *SystemdRuntime) install(c *agentv1.Component, content []byte) error {
	var err error
	if content != nil {
		err = r.writeUnitFile(r.unit(c), content)
	} else {
		err = r.writeUnit(c)
	}
	if err != nil {
		return err
	}
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
// it with one of the new image; a container not running UpgradeCheck
// later is removed and one of the old image started again.
func (r *DockerRuntime) Upgrade(ctx context.Context, p *agentv1.UpgradePayload, progress ProgressFunc) (*agentv1.UpgradeOutcome, error) {
	comps, err := r.configured()
	if err != nil {
		return nil, err
	}
	i := findComponent(comps, p.GetComponent())
	if i < 0 {
		return nil, permanent(fmt.Sprintf("no component %q is configured", p.GetComponent()))
	}
	old := comps[i]
	next, err := upgradedComponent(old, p)
	if err != nil {
		return nil, err
	}
	if next == nil { // at that version already
		return &agentv1.UpgradeOutcome{InstalledVersion: old.GetVersion()}, nil
	}
	image, err := dockerImage(next)
	if err != nil {
		return nil, err
	}
	return runUpgrade(ctx, r.upgradeSteps(ctx, old, next, image, p.GetConfigChanges()), next.GetVersion(), progress)
}

func (r *DockerRuntime) upgradeSteps(ctx context.Context, old, next *agentv1.Component, image string, files []*agentv1.ConfigFile) []upgradeStep {
	var backups []fileBackup
	running := r.running(ctx, old)
	ifRunning := onlyWhen(running)
	return []upgradeStep{
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_BACKUP_CURRENT_STATE, do: func(context.Context) (err error) {
			backups, err = backupFiles(r.cfg.Dir, files)
			return err
		}},
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
			do:   func(context.Context) error { r.setComponent(next); return nil },
			undo: func(context.Context) error { r.setComponent(old); return nil }},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_WRITE_CONFIGS,
			do:   func(context.Context) error { return writeConfigFiles(r.cfg.Dir, files, func(Progress) {}) },
			undo: func(context.Context) error { return restoreFiles(r.cfg.Dir, backups) }},
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_RELOAD_DAEMON}, // nothing to reload
		{action: agentv1.UpgradeAction_UPGRADE_ACTION_START_NODE,
			do: ifRunning(func(ctx context.Context) error {
				if err := r.runContainer(ctx, next); err != nil {
					return err
				}
				if !sleep(ctx, r.cfg.UpgradeCheck) {
					return ctx.Err()
				}
				if !r.running(ctx, next) {
					return permanent(r.container(next) + " is not running after the upgrade")
				}
				return nil
			}),
			undo: ifRunning(func(ctx context.Context) error {
				_, err := r.cfg.Commander.Run(ctx, "docker", "rm", "-f", r.container(next))
				return err
			})},
	}
}

func (r *DockerRuntime) running(ctx context.Context, c *agentv1.Component) bool {
	out, err := r.cfg.Commander.Run(ctx, "docker", "inspect", "--format", "{{.State.Running}}", r.container(c))
	return err == nil && strings.TrimSpace(string(out)) == "true"
}

func (r *DockerRuntime) setComponent(c *agentv1.Component) {
	r.mu.Lock()
	defer r.mu.Unlock()
	comps := append([]*agentv1.Component(nil), r.components...)
	comps[findComponent(comps, c.GetName())] = c
	r.components = comps
}
