package agent

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// DockerConfig configures the Docker runtime.
type DockerConfig struct {
	Dir        string    // chain data dir, mounted at /data; required
	NamePrefix string    // default "hoodcloud-"
	Network    string    // default "host": chains need their p2p ports
	User       string    // uid:gid inside the container; empty keeps the image's
	Commander  Commander // default ExecCommander
	// UpgradeCheck is how long after an upgrade's start the container must
	// be running for the upgrade to count; default 5s.
	UpgradeCheck time.Duration
}

// DockerRuntime runs each component as a container. A component's
// artifact URL is its image reference and its sha256, if given, the
// image digest it is pinned to; its rendered args are the container's
// command. Templates see the chain data dir as /data, where it is mounted.
type DockerRuntime struct {
	cfg        DockerConfig
	host       *chainHost
	mu         sync.Mutex
	components []*agentv1.Component // rendered
	ports      map[string]uint32
}

var _ Runtime = (*DockerRuntime)(nil)

var imageDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

// containerDataDir is where the chain data dir is mounted in a container.
const containerDataDir = "/data"

func NewDockerRuntime(cfg DockerConfig) *DockerRuntime {
	if cfg.NamePrefix == "" {
		cfg.NamePrefix = "hoodcloud-"
	}
	if cfg.Network == "" {
		cfg.Network = "host"
	}
	if cfg.Commander == nil {
		cfg.Commander = ExecCommander{}
	}
	if cfg.UpgradeCheck <= 0 {
		cfg.UpgradeCheck = 5 * time.Second
	}
	host := newHostChain(cfg.Dir, nil)
	host.dataDir, host.images = containerDataDir, true
	host.beforeInit = func(root *os.Root) error { return giveToContainerUser(root, cfg.User) }
	cfg.Dir = host.dir
	r := &DockerRuntime{cfg: cfg, host: host}
	host.runStep = r.runInitStep
	return r
}

// checkImages refuses a configuration whose components do not name usable
// images.
func checkImages(p *agentv1.ConfigurePayload) error {
	if len(p.GetComponents()) == 0 {
		return permanent("the configuration names no component")
	}
	if err := checkComponentNames(p); err != nil {
		return err
	}
	for _, c := range p.GetComponents() {
		if _, err := dockerImage(c); err != nil {
			return err
		}
	}
	return nil
}

// Restore takes back the components of a configuration applied before.
func (r *DockerRuntime) Restore(p *agentv1.ConfigurePayload) error {
	if err := checkImages(p); err != nil {
		return err
	}
	rc, err := r.host.restore(p)
	if err != nil {
		return err
	}
	r.set(rc)
	return nil
}

// Configure pulls every image, then makes the recipe concrete in Dir:
// init steps run in one-off containers of the component's image.
func (r *DockerRuntime) Configure(ctx context.Context, p *agentv1.ConfigurePayload, progress ProgressFunc) (*agentv1.ConfigureResult, error) {
	if err := checkImages(p); err != nil {
		return nil, err
	}
	for _, c := range p.GetComponents() {
		image, _ := dockerImage(c)
		if _, err := r.cfg.Commander.Run(ctx, "docker", "pull", image); err != nil {
			return nil, err
		}
	}
	rc, err := r.host.configure(ctx, p, progress)
	if err != nil {
		return nil, err
	}
	r.set(rc)
	return rc.result, nil
}

func (r *DockerRuntime) set(rc *recipe) {
	r.mu.Lock()
	r.components, r.ports = rc.components, rc.result.GetPorts()
	r.mu.Unlock()
}

// runInitStep runs an init step in a one-off container of c's image.
func (r *DockerRuntime) runInitStep(ctx context.Context, c *agentv1.Component, s *agentv1.InitStep, out io.Writer) error {
	args, err := r.InitArgs(c, s)
	if err != nil {
		return err
	}
	b, err := r.cfg.Commander.Run(ctx, "docker", args...)
	out.Write(b)
	return err
}

// InitArgs is the `docker run` argument list of init step s of c.
func (r *DockerRuntime) InitArgs(c *agentv1.Component, s *agentv1.InitStep) ([]string, error) {
	image, err := dockerImage(c)
	if err != nil {
		return nil, err
	}
	args := append([]string{"run", "--rm", "--network", r.cfg.Network}, r.sandbox()...)
	args = append(args, r.userAndEnv(s.GetEnv())...)
	args = append(args, image)
	return append(args, s.GetArgs()...), nil
}

// sandbox are the flags every container of the chain runs with.
func (r *DockerRuntime) sandbox() []string {
	return []string{"--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		"--volume", r.cfg.Dir + ":" + containerDataDir, "--workdir", containerDataDir}
}

func (r *DockerRuntime) userAndEnv(env map[string]string) []string {
	var args []string
	if r.cfg.User != "" {
		args = append(args, "--user", r.cfg.User)
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		args = append(args, "--env", k+"="+env[k])
	}
	return args
}

// dockerImage is the component's image, pinned to its digest when given.
func dockerImage(c *agentv1.Component) (string, error) {
	ref := c.GetArtifact().GetUrl()
	if ref == "" || strings.HasPrefix(ref, "-") || strings.ContainsAny(ref, " \t\n") {
		return "", permanent(fmt.Sprintf("component %q has no usable image reference", c.GetName()))
	}
	if d := c.GetArtifact().GetSha256(); d != "" {
		if !imageDigest.MatchString(d) {
			return "", permanent(fmt.Sprintf("component %q: the image digest is not lowercase hex SHA-256", c.GetName()))
		}
		ref += "@sha256:" + d
	}
	return ref, nil
}

func (r *DockerRuntime) configured() ([]*agentv1.Component, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.components) == 0 {
		return nil, permanent("not configured")
	}
	return r.components, nil
}

func (r *DockerRuntime) container(c *agentv1.Component) string { return r.cfg.NamePrefix + c.GetName() }

// Start replaces each container with a fresh one: the state is in the
// mounted data dir, never in the container.
func (r *DockerRuntime) Start(ctx context.Context) error {
	comps, err := r.configured()
	if err != nil {
		return err
	}
	if err := r.giveFiles(); err != nil { // keys delivered since CONFIGURE
		return err
	}
	for _, c := range comps {
		if err := r.runContainer(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// runContainer replaces the component's container with a fresh one.
func (r *DockerRuntime) runContainer(ctx context.Context, c *agentv1.Component) error {
	_, _ = r.cfg.Commander.Run(ctx, "docker", "rm", "-f", r.container(c))
	args, err := r.RunArgs(c)
	if err != nil {
		return err
	}
	_, err = r.cfg.Commander.Run(ctx, "docker", args...)
	return err
}

// RunArgs is the `docker run` argument list of a component. Off the host
// network, every allocated port is published on 127.0.0.1 at the same
// number, which is what the rendered args name.
func (r *DockerRuntime) RunArgs(c *agentv1.Component) ([]string, error) {
	image, err := dockerImage(c)
	if err != nil {
		return nil, err
	}
	args := []string{"run", "--detach", "--name", r.container(c),
		"--restart", "unless-stopped", "--network", r.cfg.Network}
	args = append(args, r.sandbox()...)
	args = append(args, "--log-opt", "max-size=50m", "--log-opt", "max-file=3")
	args = append(args, r.publish()...)
	args = append(args, r.userAndEnv(c.GetEnv())...)
	args = append(args, image)
	return append(args, c.GetArgs()...), nil
}

func (r *DockerRuntime) publish() []string {
	if r.cfg.Network == "host" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var args []string
	for _, name := range slices.Sorted(maps.Keys(r.ports)) {
		p := strconv.FormatUint(uint64(r.ports[name]), 10)
		args = append(args, "--publish", "127.0.0.1:"+p+":"+p)
	}
	return args
}

// each runs docker verb name for every container, optionally reversed.
func (r *DockerRuntime) each(ctx context.Context, reverse bool, verb ...string) error {
	comps, err := r.configured()
	if err != nil {
		return err
	}
	for i := range comps {
		c := comps[i]
		if reverse {
			c = comps[len(comps)-1-i]
		}
		if _, err := r.cfg.Commander.Run(ctx, "docker", append(verb, r.container(c))...); err != nil {
			return err
		}
	}
	return nil
}

func (r *DockerRuntime) Stop(ctx context.Context) error {
	return r.each(ctx, true, "stop", "--time", "120")
}

func (r *DockerRuntime) Restart(ctx context.Context) error {
	return r.each(ctx, false, "restart", "--time", "120")
}

// Status inspects each container's running flag.
func (r *DockerRuntime) Status(ctx context.Context) (RuntimeStatus, error) {
	comps, err := r.configured()
	if err != nil {
		return RuntimeStatus{}, nil
	}
	st := RuntimeStatus{Configured: true, Running: true}
	for _, c := range comps {
		out, err := r.cfg.Commander.Run(ctx, "docker", "inspect", "--format", containerStateFormat, r.container(c))
		cs := containerStatus(r.container(c), string(out), err)
		cs.Name, cs.Version = c.GetName(), c.GetVersion()
		st.add(cs)
	}
	return st, nil
}

// containerStateFormat asks docker inspect for a container's state, its
// restart count and its last exit code.
const containerStateFormat = "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}"

// containerStatus reads containerStateFormat's answer: docker restarts a
// container that exits (--restart unless-stopped), so one restarting again
// after several restarts is in a crash loop.
func containerStatus(container, out string, err error) *agentv1.ComponentStatus {
	var state string
	var restarts, exit int
	if err != nil {
		return &agentv1.ComponentStatus{LastExit: container + " cannot be inspected"}
	}
	fmt.Sscan(out, &state, &restarts, &exit)
	cs := &agentv1.ComponentStatus{Running: state == "running", Restarts: uint32(max(restarts, 0))}
	if !cs.Running {
		cs.LastExit = fmt.Sprintf("%s is %s, last exit code %d", container, state, exit)
		cs.CrashLoop = state == "restarting" && restarts >= crashLoopRestarts
	}
	return cs
}

// giveFiles hands the chain data dir's files to the containers' user.
func (r *DockerRuntime) giveFiles() error {
	root, err := os.OpenRoot(r.cfg.Dir)
	if err != nil {
		return fmt.Errorf("chain data dir: %w", err)
	}
	defer root.Close()
	return giveToContainerUser(root, r.cfg.User)
}
