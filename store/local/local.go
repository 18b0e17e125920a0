// Package local is the default engine.Provisioner: a node's "host" is a
// directory on the appliance's own machine, and its ops-agent a child
// process of the appliance, supervised and restarted when it crashes.
// Hosts outlive the appliance process: Open adopts them again.
package local

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// ProviderName is the engine.Host.Provider of the hosts this adapter makes.
const ProviderName = "local"

// TokenEnv is the environment variable that hands the agent its enrolment
// token, so that the token never shows on a command line.
const TokenEnv = "HOODCLOUD_AGENT_TOKEN"

// Config configures the provisioner.
type Config struct {
	// Dir holds one directory per host, named by node id, e.g.
	// <data-dir>/hosts. Required; created 0700 by Open.
	Dir string
	// Installation identifies this appliance installation (the
	// engine.LabelInstallation label): ListHosts shows only its hosts.
	// Required.
	Installation string
	// AgentBinary is the ops-agent, run as `<AgentBinary> --gateway …`;
	// default AgentBinaryName beside Binary.
	AgentBinary string
	// Binary is the hoodcloud binary, run as `<Binary> agent …` only when
	// AgentBinary does not exist (with a warning); default the running
	// executable.
	Binary string
	// Runtime is the agent's --runtime; default "process".
	Runtime string
	// AgentArgs are more agent flags, after those the provisioner sets
	// (e.g. "--heartbeat-interval=5s").
	AgentArgs []string
	// Env is added to the agents' environment (KEY=value), which is the
	// appliance's own without its HOODCLOUD_* settings.
	Env []string
	// StopTimeout is how long an agent has to exit after SIGTERM before
	// its process group is killed; default 15s (the agent gives its chain
	// 10s).
	StopTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before restarting an agent
	// that exited; defaults 1s and 1m. A run longer than StableAfter
	// (default 30s) resets the backoff.
	MinBackoff, MaxBackoff, StableAfter time.Duration
	Logger                              *slog.Logger // default discards
	// Inspect opens without starting any agent: for operator commands that
	// only list or destroy hosts while the appliance is stopped.
	Inspect bool
}

// Provisioner runs each node's ops-agent as a local process.
type Provisioner struct {
	cfg Config
	log *slog.Logger

	agentCmd []string // the agent's executable, and the arguments before its flags

	mu     sync.Mutex
	agents map[string]*agentProc  // by node id: the supervised agents
	locks  map[string]*sync.Mutex // by node id: serialises create and destroy
	closed bool
}

var _ engine.Provisioner = (*Provisioner)(nil)

// safeID is what we accept as a node or installation id: it names a
// directory, so no separators and no dot first.
var safeID = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_.-]{0,126}[A-Za-z0-9])?$`)

// New checks cfg and fills its defaults. It touches no host directory.
func New(cfg Config) (*Provisioner, error) {
	if cfg.Dir == "" {
		return nil, engine.Errorf(engine.EInvalid, "local provisioner: a hosts directory is required")
	}
	if !safeID.MatchString(cfg.Installation) {
		return nil, engine.Errorf(engine.EInvalid, "local provisioner: the installation id %q is not valid", cfg.Installation)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("local provisioner: hosts dir: %w", err)
	}
	cfg.Dir = dir
	if cfg.Binary == "" {
		if cfg.Binary, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("local provisioner: find own binary: %w", err)
		}
	}
	if cfg.AgentBinary == "" {
		cfg.AgentBinary = filepath.Join(filepath.Dir(cfg.Binary), AgentBinaryName)
	}
	cfg = withDefaults(cfg)
	p := &Provisioner{cfg: cfg, log: cfg.Logger, agents: map[string]*agentProc{}, locks: map[string]*sync.Mutex{}}
	p.agentCmd = p.agentCommand()
	return p, nil
}

// AgentBinaryName is the ops-agent's executable, looked for beside Binary.
const AgentBinaryName = "hoodcloud-agent"

// agentCommand is what runs an agent: the ops-agent binary, or the
// hoodcloud binary's agent alias when there is none, which costs every
// host the memory of the whole appliance.
func (p *Provisioner) agentCommand() []string {
	if isExecutable(p.cfg.AgentBinary) {
		return []string{p.cfg.AgentBinary}
	}
	if p.cfg.Inspect {
		return nil // starts no agent
	}
	p.log.Warn("no ops-agent binary; local hosts run the appliance binary as their agent instead",
		"agent_binary", p.cfg.AgentBinary, "binary", p.cfg.Binary)
	return []string{p.cfg.Binary, "agent"}
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

func withDefaults(cfg Config) Config {
	if cfg.Runtime == "" {
		cfg.Runtime = "process"
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 15 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.StableAfter <= 0 {
		cfg.StableAfter = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// Open makes the hosts directory, finishes creations and destructions an
// appliance crash cut short, and starts the agents of the existing hosts
// again. They enrolled before, so they need no token.
func (p *Provisioner) Open(ctx context.Context) error {
	if err := os.MkdirAll(p.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("open local provisioner: %w", err)
	}
	if err := p.removeLeftovers(); err != nil {
		return fmt.Errorf("open local provisioner: %w", err)
	}
	recs, err := p.ownRecords()
	if err != nil {
		return fmt.Errorf("open local provisioner: %w", err)
	}
	for _, rec := range recs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("open local provisioner: %w", err)
		}
		if !p.cfg.Inspect {
			p.adopt(rec)
		}
	}
	return nil
}

// adopt supervises the agent of an existing host, unless it is going away.
func (p *Provisioner) adopt(rec hostRecord) {
	id := rec.hostID()
	unlock := p.lockHost(id)
	defer unlock()
	dir := p.hostDir(id)
	if isDestroying(dir) || p.supervised(id) {
		return
	}
	stopOrphan(dir, p.cfg.StopTimeout)
	if err := p.supervise(rec, pendingToken(dir)); err != nil {
		p.log.Warn("local host not adopted", "host", id, "err", err)
		return
	}
	p.log.Info("local host adopted", "host", id)
}

func (p *Provisioner) supervised(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.agents[id] != nil
}

// Close stops every agent (and its chain) and keeps the host directories,
// for Open to adopt them again. Further calls fail with EUnavailable.
func (p *Provisioner) Close() error {
	p.mu.Lock()
	p.closed = true
	agents := p.agents
	p.agents = map[string]*agentProc{}
	p.mu.Unlock()
	for _, a := range agents {
		a.Stop()
	}
	for _, a := range agents {
		<-a.done
	}
	return nil
}

var errClosed = engine.Errorf(engine.EUnavailable, "the local provisioner is closed")

func (p *Provisioner) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// CreateHost implements engine.Provisioner: it makes the host directory
// and starts its agent with the enrolment token, or returns the node's
// existing host (starting its agent if none runs).
func (p *Provisioner) CreateHost(ctx context.Context, spec engine.HostSpec) (engine.Host, error) {
	if err := checkSpec(spec); err != nil {
		return engine.Host{}, err
	}
	if p.isClosed() {
		return engine.Host{}, errClosed
	}
	id := hostID(spec.NodeID, spec.Incarnation)
	unlock := p.lockHost(id)
	defer unlock()
	rec, err := p.ownRecord(id)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		rec, err = p.createHostDir(spec)
	case err == nil && isDestroying(p.hostDir(id)):
		return engine.Host{}, engine.Errorf(engine.EUnavailable, "the local host %s of node %s is being destroyed; retry when it is gone", id, spec.NodeID)
	}
	if err != nil {
		return engine.Host{}, fmt.Errorf("create host of node %s: %w", spec.NodeID, err)
	}
	token := spec.Bootstrap.EnrollmentToken
	if err := keepToken(p.hostDir(id), token); err != nil {
		return engine.Host{}, fmt.Errorf("create host of node %s: %w", spec.NodeID, err)
	}
	if err := p.supervise(rec, token); err != nil {
		return engine.Host{}, fmt.Errorf("create host of node %s: %w", spec.NodeID, err)
	}
	return p.hostOf(rec), nil
}

// keepToken stores the token of a host whose agent has not enrolled yet.
func keepToken(dir, token string) error {
	if enrolled(dir) {
		return nil
	}
	if err := os.WriteFile(filepath.Join(dir, tokenFile), []byte(token), 0o600); err != nil {
		return errors.New("keep the enrolment token: cannot write it") // never the token itself
	}
	return nil
}

// pendingToken is the kept token of a host whose agent has not enrolled;
// once it has, the token is spent and removed.
func pendingToken(dir string) string {
	path := filepath.Join(dir, tokenFile)
	if enrolled(dir) {
		os.Remove(path)
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}

func enrolled(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, agentCertFile))
	return err == nil
}

func checkSpec(spec engine.HostSpec) error {
	b := spec.Bootstrap
	switch {
	case spec.Provider != "" && spec.Provider != ProviderName:
		return engine.Errorf(engine.EInvalid, "the local provisioner cannot create a %q host", spec.Provider)
	case !safeID.MatchString(spec.NodeID):
		return engine.Errorf(engine.EInvalid, "node id %q cannot name a local host", spec.NodeID)
	case !engine.ValidIncarnation(spec.Incarnation):
		return engine.Errorf(engine.EInvalid, "host incarnation %q is not 1 to 16 lower-case letters and digits", spec.Incarnation)
	case !validHostPort(b.GatewayAddr):
		return engine.Errorf(engine.EInvalid, "the bootstrap's gateway address is not host:port")
	case !validCA(b.CACertPEM):
		return engine.Errorf(engine.EInvalid, "the bootstrap's ca is not a pem certificate")
	case b.EnrollmentToken == "":
		return engine.Errorf(engine.EInvalid, "the bootstrap has no enrolment token")
	}
	return nil
}

func validHostPort(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	return err == nil && host != "" && port != ""
}

// validCA reports whether caPEM holds a certificate the agent can parse.
func validCA(caPEM []byte) bool {
	block, _ := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return false
	}
	_, err := x509.ParseCertificate(block.Bytes)
	return err == nil
}

// createHostDir makes the node's host directory, or finds the one a racing
// call made.
func (p *Provisioner) createHostDir(spec engine.HostSpec) (hostRecord, error) {
	rec := hostRecord{
		NodeID: spec.NodeID, Incarnation: spec.Incarnation, Labels: p.labels(spec),
		GatewayAddr: spec.Bootstrap.GatewayAddr, CreatedAt: time.Now().UTC().Truncate(time.Second),
	}
	if err := os.MkdirAll(p.cfg.Dir, 0o700); err != nil {
		return rec, fmt.Errorf("make hosts dir: %w", err)
	}
	err := p.assembleHostDir(rec, spec.Bootstrap.CACertPEM)
	if errors.Is(err, fs.ErrExist) {
		return p.ownRecord(rec.hostID())
	}
	if err == nil {
		p.log.Info("local host created", "node_id", spec.NodeID, "dir", p.hostDir(rec.hostID()))
	}
	return rec, err
}

// labels are the spec's labels with HoodCloud's own over them.
func (p *Provisioner) labels(spec engine.HostSpec) map[string]string {
	l := make(map[string]string, len(spec.Labels)+3)
	for k, v := range spec.Labels {
		l[k] = v
	}
	l[engine.LabelNodeID] = spec.NodeID
	l[engine.LabelManaged] = engine.LabelManagedValue
	l[engine.LabelInstallation] = p.cfg.Installation
	if spec.Incarnation != "" {
		l[engine.LabelIncarnation] = spec.Incarnation
	}
	return l
}

// ownRecord reads the record of host id: fs.ErrNotExist if there is no
// host directory, EConflict if there is one HoodCloud's labels do not claim
// for this installation.
func (p *Provisioner) ownRecord(id string) (hostRecord, error) {
	dir := p.hostDir(id)
	rec, err := readRecord(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !dirExists(dir):
		return rec, fs.ErrNotExist
	case err != nil || !p.owns(rec) || rec.hostID() != id:
		return rec, engine.Errorf(engine.EConflict, "%s exists without this installation's labels for host %s", dir, id)
	}
	return rec, nil
}

func (p *Provisioner) owns(rec hostRecord) bool {
	return rec.Labels[engine.LabelManaged] == engine.LabelManagedValue &&
		rec.Labels[engine.LabelInstallation] == p.cfg.Installation
}

// supervise starts supervising the host's agent, if nobody does yet.
// token is "" for an agent that enrolled before.
func (p *Provisioner) supervise(rec hostRecord, token string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errClosed
	}
	id := rec.hostID()
	if p.agents[id] != nil {
		return nil
	}
	dir := p.hostDir(id)
	a := newAgentProc(p.cfg, rec.NodeID, dir, p.agentArgs(rec, dir), p.agentEnv(token))
	p.agents[id] = a
	go a.supervise()
	return nil
}

// portClaimsDir, in the hosts' directory, is where their agents record the
// ports they give chains (a dot-directory: no host).
const portClaimsDir = ".port-claims"

func (p *Provisioner) agentArgs(rec hostRecord, dir string) []string {
	args := append(slices.Clone(p.agentCmd),
		"--gateway", rec.GatewayAddr,
		"--node-id", rec.NodeID,
		"--ca-file", filepath.Join(dir, caFile),
		"--data-dir", filepath.Join(dir, agentDataDir),
		"--runtime", p.cfg.Runtime,
		// The hosts share this machine: their chains' ports are recorded
		// in one place, which goes with the provisioner's directory.
		"--port-claims-dir", filepath.Join(p.cfg.Dir, portClaimsDir),
	)
	return append(args, p.cfg.AgentArgs...)
}

// agentEnv is the appliance's environment without its own settings, which
// may hold secrets the agent has no business with, plus Env and the token.
func (p *Provisioner) agentEnv(token string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOODCLOUD_") {
			env = append(env, kv)
		}
	}
	env = append(env, p.cfg.Env...)
	if token != "" {
		env = append(env, TokenEnv+"="+token)
	}
	return env
}

// DestroyHost implements engine.Provisioner: it stops the agent and its
// process group, then removes the host directory. It returns once the
// host is gone.
func (p *Provisioner) DestroyHost(ctx context.Context, h engine.Host) error {
	if h.ProviderID == "" {
		return nil
	}
	id, err := hostIDOf(h)
	if err != nil {
		return err
	}
	unlock := p.lockHost(id)
	defer unlock()
	dir := p.hostDir(id)
	if err := markDestroying(dir); err != nil {
		return fmt.Errorf("destroy host %s: %w", id, err)
	}
	if err := p.stopAgent(ctx, id); err != nil {
		return fmt.Errorf("destroy host %s: %w", id, err)
	}
	if err := p.removeHostDir(id); err != nil {
		return fmt.Errorf("destroy host %s: %w", id, err)
	}
	p.log.InfoContext(ctx, "local host destroyed", "host", id)
	return nil
}

// stopAgent stops the host's supervised agent, or an orphan nobody
// supervises, and waits until it is gone or ctx ends.
func (p *Provisioner) stopAgent(ctx context.Context, id string) error {
	p.mu.Lock()
	a := p.agents[id]
	delete(p.agents, id)
	p.mu.Unlock()
	if a == nil {
		stopOrphan(p.hostDir(id), p.cfg.StopTimeout)
		return nil
	}
	a.Stop()
	select {
	case <-a.done:
		return nil
	case <-ctx.Done():
		return engine.Errorf(engine.EUnavailable, "gave up waiting for the agent of host %s to stop: %v", id, ctx.Err())
	}
}

// DescribeHost implements engine.Provisioner: the phase comes from the
// agent process (running, restarting, or not supervised).
func (p *Provisioner) DescribeHost(ctx context.Context, h engine.Host) (engine.HostStatus, error) {
	id, err := hostIDOf(h)
	if err != nil {
		return engine.HostStatus{}, err
	}
	rec, err := p.ownRecord(id)
	if errors.Is(err, fs.ErrNotExist) {
		return engine.HostStatus{}, engine.Errorf(engine.ENotFound, "local host %s does not exist", id)
	}
	if err != nil {
		return engine.HostStatus{}, fmt.Errorf("describe host %s: %w", id, err)
	}
	return engine.HostStatus{Host: p.hostOf(rec), Phase: p.phase(id), NodeID: rec.NodeID, CreatedAt: rec.CreatedAt}, nil
}

func (p *Provisioner) phase(id string) engine.HostPhase {
	if isDestroying(p.hostDir(id)) {
		return engine.HostDeleting
	}
	p.mu.Lock()
	a := p.agents[id]
	p.mu.Unlock()
	switch {
	case a == nil:
		return engine.HostStopped
	case a.running():
		return engine.HostRunning
	default:
		return engine.HostStarting // waiting to restart a crashed agent
	}
}

// ListHosts implements engine.Provisioner from the host records on disk.
func (p *Provisioner) ListHosts(ctx context.Context) ([]engine.ManagedHost, error) {
	recs, err := p.ownRecords()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	hosts := make([]engine.ManagedHost, 0, len(recs))
	for _, rec := range recs {
		hosts = append(hosts, engine.ManagedHost{Host: p.hostOf(rec), NodeID: rec.Labels[engine.LabelNodeID], CreatedAt: rec.CreatedAt})
	}
	return hosts, nil
}

// ownRecords reads the records of this installation's hosts; directories
// without a readable record are skipped (and logged).
func (p *Provisioner) ownRecords() ([]hostRecord, error) {
	entries, err := os.ReadDir(p.cfg.Dir)
	if err != nil {
		return nil, err
	}
	var recs []hostRecord
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		rec, err := readRecord(filepath.Join(p.cfg.Dir, e.Name()))
		if err != nil {
			p.log.Warn("local host dir without a readable record skipped", "dir", e.Name(), "err", err)
			continue
		}
		if p.owns(rec) && rec.hostID() == e.Name() {
			recs = append(recs, rec)
		}
	}
	return recs, nil
}

func (p *Provisioner) hostOf(rec hostRecord) engine.Host {
	id := rec.hostID()
	return engine.Host{Provider: ProviderName, ProviderID: id, Address: p.hostDir(id)}
}

// hostID names a local host, and its directory: the node id, then
// "@incarnation" for every host of the node but its first.
func hostID(nodeID, incarnation string) string {
	if incarnation == "" {
		return nodeID
	}
	return nodeID + "@" + incarnation
}

// hostIDOf checks that h is a local host and returns its id.
func hostIDOf(h engine.Host) (string, error) {
	if h.Provider != "" && h.Provider != ProviderName {
		return "", engine.Errorf(engine.EInvalid, "host %s is a %q host, not a local one", h.ProviderID, h.Provider)
	}
	nodeID, inc, _ := strings.Cut(h.ProviderID, "@")
	if !safeID.MatchString(nodeID) || !engine.ValidIncarnation(inc) || strings.HasSuffix(h.ProviderID, "@") {
		return "", engine.Errorf(engine.EInvalid, "%q is not a local host id", h.ProviderID)
	}
	return h.ProviderID, nil
}

// lockHost serialises the creation, adoption and destruction of one host.
func (p *Provisioner) lockHost(id string) (unlock func()) {
	p.mu.Lock()
	l := p.locks[id]
	if l == nil {
		l = &sync.Mutex{}
		p.locks[id] = l
	}
	p.mu.Unlock()
	l.Lock()
	return l.Unlock
}
