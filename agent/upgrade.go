package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/protobuf/proto"
)

// rollbackTimeout bounds the compensation of a failed upgrade, which runs
// even when the agent is shutting down.
const rollbackTimeout = 2 * time.Minute

// upgradeStep is one action of an upgrade and how to undo it; a nil do or
// undo does nothing (the action has no work on this runtime).
type upgradeStep struct {
	action agentv1.UpgradeAction
	do     func(context.Context) error
	undo   func(context.Context) error
}

// runUpgrade runs the steps in order, reporting each as progress. Before
// STOP_NODE it waits for the switch point, so nothing is switched until the
// chain is there. When a step fails, it and every completed step are
// undone in reverse; the outcome records how far the upgrade went and
// whether the node is as it was.
func runUpgrade(ctx context.Context, steps []upgradeStep, at switchPoint, version string, progress ProgressFunc) (*agentv1.UpgradeOutcome, error) {
	out := &agentv1.UpgradeOutcome{}
	for i, s := range steps {
		progress(Progress{Percent: float64(i) * 100 / float64(len(steps)), Message: actionName(s.action)})
		if s.action == agentv1.UpgradeAction_UPGRADE_ACTION_STOP_NODE {
			h, err := at.await(ctx, version, stepProgress(progress, i, len(steps)))
			if err != nil {
				return out, failUpgrade(ctx, out, steps[:i], s.action, version, err)
			}
			out.SwitchHeight = h
		}
		if s.do == nil {
			out.Completed = append(out.Completed, s.action)
			continue
		}
		if err := s.do(ctx); err != nil {
			return out, failUpgrade(ctx, out, steps[:i+1], s.action, version, err)
		}
		out.Completed = append(out.Completed, s.action)
	}
	out.InstalledVersion = version
	progress(Progress{Percent: 100, Message: "upgraded to " + version})
	return out, nil
}

// stepProgress reports a step's own progress (0 to 100) inside step i's
// share of the n steps' percent.
func stepProgress(progress ProgressFunc, i, n int) ProgressFunc {
	return func(p Progress) {
		p.Percent = (float64(i) + min(max(p.Percent, 0), 100)/100) * 100 / float64(n)
		progress(p)
	}
}

// actionProgress is stepProgress for the step of action a, for steps that
// report their own progress (a download): every runtime runs every action
// once, in the order of their numbers.
func actionProgress(progress ProgressFunc, a agentv1.UpgradeAction) ProgressFunc {
	return stepProgress(progress, int(a)-1, len(agentv1.UpgradeAction_name)-1)
}

// failUpgrade undoes done in reverse and returns the error to report: a
// failed rollback needs a person, so it is never retryable.
func failUpgrade(ctx context.Context, out *agentv1.UpgradeOutcome, done []upgradeStep, failed agentv1.UpgradeAction, version string, cause error) error {
	out.Failed = failed
	msg := fmt.Sprintf("upgrade to %s failed at %s: %v", version, actionName(failed), cause)
	if err := compensate(ctx, done); err != nil {
		out.RollbackFailed = true
		return permanent(msg + "; rollback failed: " + err.Error())
	}
	out.RolledBack = true
	var ce *commandError
	if errors.As(cause, &ce) && !ce.retryable {
		return permanent(msg + "; rolled back")
	}
	return errors.New(msg + "; rolled back")
}

func compensate(ctx context.Context, done []upgradeStep) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	for i := len(done) - 1; i >= 0; i-- {
		if done[i].undo == nil {
			continue
		}
		if err := done[i].undo(ctx); err != nil {
			return fmt.Errorf("undo %s: %w", actionName(done[i].action), err)
		}
	}
	return nil
}

// actionName is the action in lower case without its prefix: "stop_node".
func actionName(a agentv1.UpgradeAction) string {
	return strings.ToLower(strings.TrimPrefix(a.String(), "UPGRADE_ACTION_"))
}

// upgradedComponent is c at the payload's version. It returns nil, nil
// when c is at that version already, and a permanent error when the
// payload does not fit c. A component that gains an artifact runs the
// installed program instead of args[0]; the payload's config templates
// join c's templates (replacing those of the same path), so the saved
// component says what the host holds.
func upgradedComponent(c *agentv1.Component, p *agentv1.UpgradePayload) (*agentv1.Component, error) {
	switch {
	case p.GetVersion() == "":
		return nil, permanent("the upgrade names no version")
	case p.GetPreviousVersion() != "" && p.GetPreviousVersion() != c.GetVersion():
		return nil, permanent(fmt.Sprintf("component %q runs %q, not %q", c.GetName(), c.GetVersion(), p.GetPreviousVersion()))
	case p.GetVersion() == c.GetVersion():
		return nil, nil
	}
	next := proto.CloneOf(c)
	next.Version = p.GetVersion()
	next.Args = withVersion(c.GetArgs(), c.GetVersion(), p.GetVersion())
	if c.GetArtifact().GetUrl() == "" && p.GetArtifact().GetUrl() != "" && len(next.Args) > 0 {
		next.Args = next.Args[1:]
	}
	if len(p.GetArgs()) > 0 {
		next.Args = slices.Clone(p.GetArgs())
	}
	if p.GetArtifact().GetUrl() != "" || p.GetArtifact().GetSha256() != "" {
		next.Artifact = proto.CloneOf(p.GetArtifact())
		next.Binary = p.GetBinary()
	}
	next.Templates = withTemplates(c.GetTemplates(), p.GetConfigTemplates())
	if slices.Equal(next.Args, c.GetArgs()) && proto.Equal(next.GetArtifact(), c.GetArtifact()) {
		return nil, permanent(fmt.Sprintf("nothing in component %q names version %q: the upgrade needs args or an artifact", c.GetName(), c.GetVersion()))
	}
	return next, nil
}

// withTemplates is ts with each of added in place of the one of its path,
// or after them.
func withTemplates(ts, added []*agentv1.TemplateFile) []*agentv1.TemplateFile {
	out := slices.Clone(ts)
	for _, a := range added {
		i := slices.IndexFunc(out, func(t *agentv1.TemplateFile) bool { return t.GetPath() == a.GetPath() })
		if i < 0 {
			out = append(out, proto.CloneOf(a))
		} else {
			out[i] = proto.CloneOf(a)
		}
	}
	return out
}

// withVersion replaces old by next in each argument that is old, ends in
// "="+old, or has old as a path element.
func withVersion(args []string, old, next string) []string {
	out := slices.Clone(args)
	if old == "" {
		return out
	}
	for i, a := range out {
		switch {
		case a == old:
			out[i] = next
		case strings.HasSuffix(a, "="+old):
			out[i] = strings.TrimSuffix(a, old) + next
		case strings.Contains(a, "/"):
			parts := strings.Split(a, "/")
			for j, p := range parts {
				if p == old {
					parts[j] = next
				}
			}
			out[i] = strings.Join(parts, "/")
		}
	}
	return out
}

// findComponent returns the index of the component named name, or -1.
func findComponent(comps []*agentv1.Component, name string) int {
	return slices.IndexFunc(comps, func(c *agentv1.Component) bool { return c.GetName() == name })
}

// verifyProgram checks the SHA-256 of the program a command line runs in
// dir; an empty want checks nothing.
func verifyProgram(dir string, args []string, want string) error {
	if want == "" {
		return nil
	}
	path := args[0]
	switch {
	case !strings.Contains(path, "/"):
		found, err := exec.LookPath(path)
		if err != nil {
			return permanent(fmt.Sprintf("program %q not found", path))
		}
		path = found
	case !filepath.IsAbs(path):
		path = filepath.Join(dir, path)
	}
	got, err := fileSHA256(path)
	if err != nil {
		return fmt.Errorf("verify %s: %w", path, err)
	}
	if got != strings.ToLower(want) {
		return permanent(fmt.Sprintf("program %s has SHA-256 %s, want %s", path, got, want))
	}
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// fileBackup is a config file as it was before an upgrade replaced it.
type fileBackup struct {
	path    string
	content []byte
	mode    fs.FileMode
	existed bool
}

// backupFiles reads the files an upgrade is about to write, inside dir.
func backupFiles(dir string, files []*agentv1.ConfigFile) ([]fileBackup, error) {
	if len(files) == 0 {
		return nil, nil
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("chain data dir: %w", err)
	}
	defer root.Close()
	var out []fileBackup
	for _, f := range files {
		if err := ValidateKeyPath(f.GetPath()); err != nil {
			return nil, permanent(fmt.Sprintf("config file %q: %v", f.GetPath(), err))
		}
		b := fileBackup{path: f.GetPath()}
		fi, err := root.Stat(f.GetPath())
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("back up %q: %w", f.GetPath(), err)
		default:
			if b.content, err = root.ReadFile(f.GetPath()); err != nil {
				return nil, fmt.Errorf("back up %q: %w", f.GetPath(), err)
			}
			b.mode, b.existed = fi.Mode().Perm(), true
		}
		out = append(out, b)
	}
	return out, nil
}

// restoreFiles puts backed-up files back and removes those that were new.
func restoreFiles(dir string, backups []fileBackup) error {
	if len(backups) == 0 {
		return nil
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("chain data dir: %w", err)
	}
	defer root.Close()
	for _, b := range backups {
		if !b.existed {
			if err := root.Remove(b.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove %q: %w", b.path, err)
			}
			continue
		}
		if err := root.WriteFile(b.path, b.content, b.mode); err != nil {
			return fmt.Errorf("restore %q: %w", b.path, err)
		}
		if err := root.Chmod(b.path, b.mode); err != nil {
			return fmt.Errorf("restore %q: %w", b.path, err)
		}
	}
	return nil
}

// onlyWhen returns a filter that keeps a step's action when cond holds and
// makes it nil (nothing to do) otherwise: stopping and restarting a chain
// matter only if it runs.
func onlyWhen(cond bool) func(func(context.Context) error) func(context.Context) error {
	return func(f func(context.Context) error) func(context.Context) error {
		if !cond {
			return nil
		}
		return f
	}
}

// configWrite is an upgrade's config files: backed up, written, and put
// back when the upgrade is undone.
type configWrite struct {
	dir     string
	files   []*agentv1.ConfigFile
	backups []fileBackup
}

func (w *configWrite) backup(context.Context) (err error) {
	w.backups, err = backupFiles(w.dir, w.files)
	return err
}

// write writes the files, each ending with its mode: one that existed
// keeps its owner (the chain's user may own it) but not its old mode.
func (w *configWrite) write(context.Context) error {
	if err := writeConfigFiles(w.dir, w.files, func(Progress) {}); err != nil || len(w.files) == 0 {
		return err
	}
	root, err := os.OpenRoot(w.dir)
	if err != nil {
		return fmt.Errorf("chain data dir: %w", err)
	}
	defer root.Close()
	for _, f := range w.files {
		if err := root.Chmod(f.GetPath(), configMode(f)); err != nil {
			return fmt.Errorf("config file %q: %w", f.GetPath(), err)
		}
	}
	return nil
}

func (w *configWrite) restore(context.Context) error { return restoreFiles(w.dir, w.backups) }
