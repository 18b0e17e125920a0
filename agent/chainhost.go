package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	templates "github.com/hoodcloud/hoodcloud/engine/recipe"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// Where the agent keeps its own files in the chain data dir.
var (
	portsFile   = filepath.Join(hostDir, "ports.json")
	binDir      = filepath.Join(hostDir, "bin")
	downloadDir = filepath.Join(hostDir, "downloads")
)

// initStepTimeout bounds one init step, so a step that hangs cannot hold
// the agent's command queue for ever.
const initStepTimeout = 15 * time.Minute

// chainHost makes a recipe concrete in one chain data dir, the same way
// for every runtime: ports, artifacts, templates, init steps, files.
type chainHost struct {
	dir     string // the chain data dir on the host, absolute
	dataDir string // the chain data dir as the chain sees it: dir, or a container's mount point
	images  bool   // components are container images: nothing downloaded, args go to the image
	runStep stepRunner
	// checkRendered, when set, refuses a rendered component the runtime
	// cannot run; it is called before any init step.
	checkRendered func(*agentv1.Component) error
	// beforeInit, when set, runs before the init steps: a runtime whose
	// steps run as the chain's user hands it the files (keys included).
	beforeInit func(root *os.Root) error
	client     *http.Client
	logger     *slog.Logger

	// applied is the configuration last configured or restored, with
	// upgrades since (adopt), and ports its allocated ports: what an
	// upgrade renders its release over. The runtime's methods run one at
	// a time, so they need no lock.
	applied *agentv1.ConfigurePayload
	ports   map[string]int
}

// stepRunner runs init step s of rendered component c, its output to out.
type stepRunner func(ctx context.Context, c *agentv1.Component, s *agentv1.InitStep, out io.Writer) error

// recipe is a configuration made concrete on the host.
type recipe struct {
	components []*agentv1.Component  // rendered; Args[0] is the program unless images
	templates  []*agentv1.ConfigFile // the components' template files, rendered
	kept       []*agentv1.ConfigFile // those written only when absent, before the init steps
	result     *agentv1.ConfigureResult
}

// newHostChain is a chainHost whose chain runs on the host itself.
func newHostChain(dir string, logger *slog.Logger) *chainHost {
	h := &chainHost{dir: absDir(dir), client: &http.Client{}, logger: logger}
	h.dataDir = h.dir
	h.runStep = execStep(h.dir)
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	return h
}

func absDir(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

// configure does what CONFIGURE asks of the host, in order: ports,
// artifacts, templates rendered, init steps, genesis, template files,
// config files. Every step is idempotent, so a re-sent CONFIGURE keeps
// the ports, downloads nothing installed and runs no init step twice.
func (h *chainHost) configure(ctx context.Context, p *agentv1.ConfigurePayload, progress ProgressFunc) (*recipe, error) {
	root, err := h.openChecked(p)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	ports, err := allocatePorts(root, p.GetPorts())
	if err != nil {
		return nil, err
	}
	if !h.images {
		if err := h.installArtifacts(ctx, root, p.GetComponents(), progress); err != nil {
			return nil, err
		}
	}
	rc, err := h.render(p, ports)
	if err != nil {
		return nil, err
	}
	if err := writeAbsent(root, rc.kept); err != nil {
		return nil, err
	}
	if h.beforeInit != nil {
		if err := h.beforeInit(root); err != nil {
			return nil, err
		}
	}
	if err := h.runInitSteps(ctx, root, rc.components, progress); err != nil {
		return nil, err
	}
	if err := h.writeGenesis(ctx, root, p.GetGenesis(), progress); err != nil {
		return nil, err
	}
	for _, f := range rc.templates {
		if err := writeInRoot(root, f.GetPath(), f.GetContent(), os.FileMode(f.GetMode())); err != nil {
			return nil, fmt.Errorf("template file %q: %w", f.GetPath(), err)
		}
	}
	if err := writeConfigFiles(h.dir, p.GetFiles(), progress); err != nil {
		return nil, err
	}
	h.applied, h.ports = p, ports
	progress(Progress{Percent: 100, Message: "configured"})
	return rc, nil
}

// writeAbsent writes each file that does not exist yet.
func writeAbsent(root *os.Root, files []*agentv1.ConfigFile) error {
	for _, f := range files {
		exists, err := created(root, f.GetPath())
		if err != nil {
			return fmt.Errorf("template file %q: %w", f.GetPath(), err)
		}
		if exists {
			continue
		}
		if err := writeInRoot(root, f.GetPath(), f.GetContent(), os.FileMode(f.GetMode())); err != nil {
			return fmt.Errorf("template file %q: %w", f.GetPath(), err)
		}
	}
	return nil
}

// restore makes p concrete again from what configure left on the host,
// touching nothing.
func (h *chainHost) restore(p *agentv1.ConfigurePayload) (*recipe, error) {
	root, err := h.openChecked(p)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	ports, err := loadPorts(root)
	if err != nil {
		return nil, err
	}
	for _, name := range p.GetPorts() {
		if ports[name] == 0 {
			return nil, permanent(fmt.Sprintf("port %q was never allocated: CONFIGURE again", name))
		}
	}
	rc, err := h.render(p, ports)
	if err != nil {
		return nil, err
	}
	h.applied, h.ports = p, ports
	return rc, nil
}

func (h *chainHost) check(p *agentv1.ConfigurePayload) error {
	if err := checkRecipe(p); err != nil {
		return err
	}
	if h.images {
		return nil
	}
	return checkArtifacts(p.GetComponents())
}

// openChecked checks p and opens the chain data dir for it.
func (h *chainHost) openChecked(p *agentv1.ConfigurePayload) (*os.Root, error) {
	if err := h.check(p); err != nil {
		return nil, err
	}
	return h.openRoot()
}

func (h *chainHost) openRoot() (*os.Root, error) {
	if err := os.MkdirAll(h.dir, 0o700); err != nil {
		return nil, fmt.Errorf("chain data dir: %w", err)
	}
	root, err := os.OpenRoot(h.dir)
	if err != nil {
		return nil, fmt.Errorf("chain data dir: %w", err)
	}
	return root, nil
}

// programs maps each component installed on the host to its program.
func (h *chainHost) programs(p *agentv1.ConfigurePayload) map[string]string {
	out := map[string]string{}
	for _, c := range p.GetComponents() {
		if prog := h.program(c); prog != "" {
			out[c.GetName()] = prog
		}
	}
	return out
}

// program is the absolute path of c's installed program; "" for a
// component that installs nothing on the host (no artifact, or an image).
func (h *chainHost) program(c *agentv1.Component) string {
	if h.images || c.GetArtifact().GetUrl() == "" {
		return ""
	}
	return filepath.Join(h.dir, installDir(c), binaryName(c))
}

// render renders every template of p over the host's recipe data.
func (h *chainHost) render(p *agentv1.ConfigurePayload, ports map[string]int) (*recipe, error) {
	d := recipeData(p, h.dataDir, ports)
	d.Programs = h.programs(p)
	rc := &recipe{result: &agentv1.ConfigureResult{Ports: map[string]uint32{}, ArtifactSha256: map[string]string{}}}
	for _, name := range p.GetPorts() {
		rc.result.Ports[name] = uint32(ports[name])
	}
	for _, c := range p.GetComponents() {
		if a := c.GetArtifact(); a.GetUrl() != "" && a.GetSha256() != "" {
			rc.result.ArtifactSha256[c.GetName()] = strings.ToLower(a.GetSha256())
		}
		r, err := h.renderRun(c, d)
		if err != nil {
			return nil, err
		}
		rc.components = append(rc.components, r)
	}
	var err error
	if rc.templates, rc.kept, err = renderTemplates(p.GetComponents(), d); err != nil {
		return nil, err
	}
	return rc, nil
}

// renderRun renders c over d as the runtime runs it.
func (h *chainHost) renderRun(c *agentv1.Component, d *templates.Data) (*agentv1.Component, error) {
	r, err := renderComponent(c, d, d.Programs[c.GetName()])
	if err != nil {
		return nil, err
	}
	if h.checkRendered != nil {
		if err := h.checkRendered(r); err != nil {
			return nil, err
		}
	}
	if !h.images {
		r.Artifact = nil // installed: the program is on the host now
	}
	return r, nil
}

// allocatePorts gives each name a free port once, kept in portsFile: a
// name allocated before keeps its port. The new ones are held open
// together while allocated, so no two get the same port.
func allocatePorts(root *os.Root, names []string) (map[string]int, error) {
	ports, err := loadPorts(root)
	if err != nil {
		return nil, err
	}
	taken := map[int]bool{}
	for _, p := range ports {
		taken[p] = true
	}
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	changed := false
	for _, name := range names {
		if ports[name] != 0 {
			continue
		}
		for ports[name] == 0 {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, fmt.Errorf("allocate port %q: %w", name, err)
			}
			held = append(held, l)
			if p := l.Addr().(*net.TCPAddr).Port; !taken[p] && claimPort(p, root.Name()) {
				ports[name], taken[p], changed = p, true, true
			}
		}
	}
	if !changed {
		return ports, nil
	}
	b, err := json.Marshal(ports)
	if err != nil {
		return nil, err
	}
	if err := writeInRoot(root, portsFile, b, 0o600); err != nil {
		return nil, fmt.Errorf("save the allocated ports: %w", err)
	}
	return ports, nil
}

// loadPorts reads portsFile; none yet is an empty map.
func loadPorts(root *os.Root) (map[string]int, error) {
	ports := map[string]int{}
	b, err := root.ReadFile(portsFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ports, nil
	case err != nil:
		return nil, fmt.Errorf("read the allocated ports: %w", err)
	}
	if err := json.Unmarshal(b, &ports); err != nil {
		return nil, fmt.Errorf("read the allocated ports: %w", err)
	}
	return ports, nil
}

// runInitSteps runs each component's init steps in order, skipping a step
// whose creates exists. A failing step is permanent: its error carries
// the last lines of the step's output.
func (h *chainHost) runInitSteps(ctx context.Context, root *os.Root, comps []*agentv1.Component, progress ProgressFunc) error {
	for _, c := range comps {
		for i, s := range c.GetInit() {
			what := fmt.Sprintf("component %q init[%d]", c.GetName(), i)
			if done, err := created(root, s.GetCreates()); err != nil || done {
				if err != nil {
					return permanent(fmt.Sprintf("%s: creates %q: %v", what, s.GetCreates(), err))
				}
				continue
			}
			progress(Progress{Percent: 70, Message: "init " + c.GetName()})
			if err := h.runInitStep(ctx, c, s); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			if done, _ := created(root, s.GetCreates()); !done && s.GetCreates() != "" {
				h.logger.Warn("init step did not create what it names; it runs again at the next CONFIGURE",
					"component", c.GetName(), "step", i, "creates", s.GetCreates())
			}
		}
	}
	return nil
}

func (h *chainHost) runInitStep(ctx context.Context, c *agentv1.Component, s *agentv1.InitStep) error {
	sctx, cancel := context.WithTimeout(ctx, initStepTimeout)
	defer cancel()
	out := &outputTail{max: 4096}
	err := h.runStep(sctx, c, s, out)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return permanent(fmt.Sprintf("%s failed: %v; last output:\n%s", strings.Join(s.GetArgs(), " "), err, out.lastLines(10)))
}

// created reports whether the chain-relative path exists; "" never does.
func created(root *os.Root, path string) (bool, error) {
	if path == "" {
		return false, nil
	}
	_, err := root.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, err
	}
}

// execStep runs init steps on the host: the component's program with the
// step's args, in the chain data dir, with the agent's environment and
// the step's.
func execStep(dir string) stepRunner {
	return func(ctx context.Context, c *agentv1.Component, s *agentv1.InitStep, out io.Writer) error {
		if len(c.GetArgs()) == 0 {
			return errors.New("the component has no program")
		}
		for attempt := 0; ; attempt++ {
			cmd := programCommand(ctx, c.GetArgs()[0], s.GetArgs(), dir, s.GetEnv())
			cmd.Stdout, cmd.Stderr = out, out
			err := cmd.Run()
			// A binary installed a moment ago can still be open for writing
			// in a child forked meanwhile: retry briefly.
			if !errors.Is(err, syscall.ETXTBSY) || attempt == 5 || !sleep(ctx, 50*time.Millisecond) {
				return err
			}
		}
	}
}

// outputTail keeps the last max bytes written to it.
type outputTail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (o *outputTail) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.b = append(o.b, p...)
	if len(o.b) > o.max {
		o.b = slices.Clone(o.b[len(o.b)-o.max:])
	}
	return len(p), nil
}

// lastLines is the last n lines, for an error message.
func (o *outputTail) lastLines(n int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	lines := strings.Split(strings.TrimRight(string(o.b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// writeInRoot replaces path inside root with data through a temporary
// file in the same directory renamed over it, so a reader sees the old
// content or the new, never half; the file ends with exactly mode.
func writeInRoot(root *os.Root, path string, data []byte, mode os.FileMode) error {
	if d := filepath.Dir(path); d != "." {
		if err := root.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-"+randomSuffix())
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer root.Remove(tmp) // after the rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := root.Chmod(tmp, mode); err != nil {
		return err
	}
	return root.Rename(tmp, path)
}

func randomSuffix() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
