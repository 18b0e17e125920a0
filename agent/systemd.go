package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// Commander runs a host command (systemctl, docker) and returns its
// combined output: the runtimes' only contact with the host, so tests can
// check the exact argument lists.
type Commander interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// ExecCommander runs commands for real.
type ExecCommander struct{}

var _ Commander = ExecCommander{}

func (ExecCommander) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

var (
	componentName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	envName       = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// checkComponentNames refuses names that cannot safely become unit or
// container names, and environment that cannot safely be written.
func checkComponentNames(p *agentv1.ConfigurePayload) error {
	for _, c := range p.GetComponents() {
		if !componentName.MatchString(c.GetName()) {
			return permanent(fmt.Sprintf("component name %q is not [a-z0-9_-]", c.GetName()))
		}
		if err := checkEnv(c.GetName(), c.GetEnv()); err != nil {
			return err
		}
	}
	return nil
}

func checkEnv(component string, env map[string]string) error {
	for k, v := range env {
		if !envName.MatchString(k) || strings.ContainsAny(v, "\n\r\x00") {
			return permanent(fmt.Sprintf("component %q: environment variable %q is not allowed", component, k))
		}
	}
	return nil
}

// SystemdConfig configures the systemd runtime.
type SystemdConfig struct {
	Dir        string    // chain data dir; required
	UnitDir    string    // default /etc/systemd/system
	UnitPrefix string    // default "hoodcloud-"
	User       string    // the unprivileged account the chain runs as; default "hoodcloud-chain"
	Commander  Commander // default ExecCommander
	// UpgradeCheck is how long after an upgrade's start the unit must be
	// active for the upgrade to count; default 5s.
	UpgradeCheck time.Duration
}

// SystemdRuntime runs each component as a hardened systemd service. A
// component with an artifact runs its installed binary (ExecStart is its
// path and the rendered args); one without runs args[0], an absolute path.
type SystemdRuntime struct {
	cfg        SystemdConfig
	host       *chainHost
	mu         sync.Mutex
	units      []string
	components []*agentv1.Component // rendered
}

var _ Runtime = (*SystemdRuntime)(nil)

func NewSystemdRuntime(cfg SystemdConfig) *SystemdRuntime {
	if cfg.UnitDir == "" {
		cfg.UnitDir = "/etc/systemd/system"
	}
	if cfg.UnitPrefix == "" {
		cfg.UnitPrefix = "hoodcloud-"
	}
	if cfg.User == "" {
		cfg.User = "hoodcloud-chain"
	}
	if cfg.Commander == nil {
		cfg.Commander = ExecCommander{}
	}
	if cfg.UpgradeCheck <= 0 {
		cfg.UpgradeCheck = 5 * time.Second
	}
	host := newHostChain(cfg.Dir, nil)
	host.checkRendered = checkProgramPath
	cfg.Dir = host.dir
	return &SystemdRuntime{cfg: cfg, host: host}
}

// Configure makes the recipe concrete in Dir (init steps run the binary
// directly), writes one unit per component, then reloads systemd. The
// units are enabled by START and disabled by STOP, never here: a host that
// boots starts only a chain the control plane last told to run (a signer
// must not come back on its own).
func (r *SystemdRuntime) Configure(ctx context.Context, p *agentv1.ConfigurePayload, progress ProgressFunc) (*agentv1.ConfigureResult, error) {
	rc, err := r.host.configure(ctx, p, progress)
	if err != nil {
		return nil, err
	}
	if err := giveToUser(r.cfg.Dir, r.cfg.User); err != nil {
		return nil, err
	}
	var units []string
	for _, c := range rc.components {
		if err := r.writeUnit(c); err != nil {
			return nil, err
		}
		units = append(units, r.unit(c))
	}
	if _, err := r.cfg.Commander.Run(ctx, "systemctl", "daemon-reload"); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.units, r.components = units, rc.components
	r.mu.Unlock()
	return rc.result, nil
}

// Restore takes back the units of a configuration applied before.
func (r *SystemdRuntime) Restore(p *agentv1.ConfigurePayload) error {
	rc, err := r.host.restore(p)
	if err != nil {
		return err
	}
	var units []string
	for _, c := range rc.components {
		units = append(units, r.unit(c))
	}
	r.mu.Lock()
	r.units, r.components = units, rc.components
	r.mu.Unlock()
	return nil
}

func checkProgramPath(c *agentv1.Component) error {
	if len(c.GetArgs()) == 0 || !filepath.IsAbs(c.GetArgs()[0]) {
		return permanent(fmt.Sprintf("component %q: systemd needs an absolute program path", c.GetName()))
	}
	return nil
}

func (r *SystemdRuntime) unit(c *agentv1.Component) string {
	return r.cfg.UnitPrefix + c.GetName() + ".service"
}

// writeUnit writes the component's unit, readable by systemd (0644).
func (r *SystemdRuntime) writeUnit(c *agentv1.Component) error {
	unit := r.unit(c)
	return r.writeUnitFile(unit, []byte(SystemdUnit(c, r.cfg.Dir, r.cfg.User)))
}

func (r *SystemdRuntime) writeUnitFile(unit string, content []byte) error {
	path := filepath.Join(r.cfg.UnitDir, unit)
	if err := writeFileAtomic(path, content); err != nil {
		return fmt.Errorf("write unit %s: %w", unit, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		return fmt.Errorf("write unit %s: %w", unit, err)
	}
	return nil
}

func (r *SystemdRuntime) configured() ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.units) == 0 {
		return nil, permanent("not configured")
	}
	return r.units, nil
}

// systemctl runs verb on the units, in order or reversed.
func (r *SystemdRuntime) systemctl(ctx context.Context, verb string, reverse bool) error {
	units, err := r.configured()
	if err != nil {
		return err
	}
	ordered := append([]string(nil), units...)
	if reverse {
		for i, j := 0, len(ordered)-1; i < j; i, j = i+1, j-1 {
			ordered[i], ordered[j] = ordered[j], ordered[i]
		}
	}
	for _, u := range ordered {
		if _, err := r.cfg.Commander.Run(ctx, "systemctl", verb, u); err != nil {
			return err
		}
	}
	return nil
}

// Start hands the chain's files to its user first: keys delivered since
// CONFIGURE were written by the agent.
func (r *SystemdRuntime) Start(ctx context.Context) error {
	if err := giveToUser(r.cfg.Dir, r.cfg.User); err != nil {
		return err
	}
	if err := r.systemctl(ctx, "enable", false); err != nil {
		return err
	}
	return r.systemctl(ctx, "start", false)
}

// Stop stops the units and disables them, so a reboot leaves them stopped.
func (r *SystemdRuntime) Stop(ctx context.Context) error {
	if err := r.systemctl(ctx, "stop", true); err != nil {
		return err
	}
	return r.systemctl(ctx, "disable", true)
}
func (r *SystemdRuntime) Restart(ctx context.Context) error {
	return r.systemctl(ctx, "restart", false)
}

// Status asks systemctl is-active for every unit.
func (r *SystemdRuntime) Status(ctx context.Context) (RuntimeStatus, error) {
	r.mu.Lock()
	units, comps := r.units, r.components
	r.mu.Unlock()
	if len(units) == 0 {
		return RuntimeStatus{}, nil
	}
	st := RuntimeStatus{Configured: true, Running: true}
	for i, u := range units {
		out, _ := r.cfg.Commander.Run(ctx, "systemctl", "show", u, "--property=ActiveState,SubState,NRestarts,Result")
		cs := unitStatus(u, parseUnitProperties(out))
		cs.Name, cs.Version = comps[i].GetName(), comps[i].GetVersion()
		st.add(cs)
	}
	return st, nil
}

// crashLoopRestarts is how many automatic restarts of a unit still
// waiting to come up again make a crash loop.
const crashLoopRestarts = 3

// unitStatus reads a unit's state as systemctl show gives it: systemd
// restarts a failed unit itself (Restart=on-failure), so a unit waiting to
// be restarted again after several restarts, or one systemd gave up on,
// is in a crash loop.
func unitStatus(unit string, p map[string]string) *agentv1.ComponentStatus {
	restarts, _ := strconv.Atoi(p["NRestarts"])
	cs := &agentv1.ComponentStatus{Running: p["ActiveState"] == "active" && p["SubState"] == "running", Restarts: uint32(max(restarts, 0))}
	if cs.Running {
		return cs
	}
	cs.LastExit = fmt.Sprintf("%s is %s (%s)", unit, p["ActiveState"], p["SubState"])
	if r := p["Result"]; r != "" && r != "success" {
		cs.LastExit += ", last result " + r
	}
	cs.CrashLoop = p["Result"] == "start-limit-hit" || (p["SubState"] == "auto-restart" && restarts >= crashLoopRestarts)
	return cs
}

// parseUnitProperties reads systemctl show's "Key=value" lines.
func parseUnitProperties(out []byte) map[string]string {
	p := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			p[k] = v
		}
	}
	return p
}

// SystemdUnit is the unit file of a component: an unprivileged user, a
// read-only system, writes only to the chain data dir, no capabilities.
func SystemdUnit(c *agentv1.Component, dir, user string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by the HoodCloud agent; changes are overwritten.\n")
	fmt.Fprintf(&b, "[Unit]\nDescription=HoodCloud chain component %s %s\n", c.GetName(), c.GetVersion())
	b.WriteString("After=network-online.target\nWants=network-online.target\n\n[Service]\nType=simple\n")
	fmt.Fprintf(&b, "User=%s\nGroup=%s\nWorkingDirectory=%s\n", user, user, systemdQuote(dir))
	args := make([]string, len(c.GetArgs()))
	for i, a := range c.GetArgs() {
		args[i] = systemdQuote(a)
	}
	fmt.Fprintf(&b, "ExecStart=%s\n", strings.Join(args, " "))
	keys := make([]string, 0, len(c.GetEnv()))
	for k := range c.GetEnv() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "Environment=%s\n", systemdQuote(k+"="+c.GetEnv()[k]))
	}
	b.WriteString(`Restart=on-failure
RestartSec=5s
TimeoutStopSec=120s
LimitNOFILE=65536
UMask=0077
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
`)
	fmt.Fprintf(&b, "ReadWritePaths=%s\n\n[Install]\nWantedBy=multi-user.target\n", systemdQuote(dir))
	return b.String()
}

// systemdQuote makes s one word of a unit file: specifiers (%) and
// variable expansion ($) are escaped, and words with blanks or quotes are
// double-quoted.
func systemdQuote(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	s = strings.ReplaceAll(s, "$", "$$")
	if s != "" && !strings.ContainsAny(s, " \t\"'\\;") {
		return s
	}
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return `"` + s + `"`
}
