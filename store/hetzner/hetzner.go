// Package hetzner is the Hetzner Cloud adapter of engine.Provisioner, over
// the plain HTTP API (https://docs.hetzner.cloud): one server per node,
// booted by cloud-init into a verified ops-agent that enrols with the
// appliance.
package hetzner

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// ProviderName is the engine.Host.Provider of the hosts this adapter makes.
const ProviderName = "hetzner"

// DefaultBaseURL is the Hetzner Cloud API.
const DefaultBaseURL = "https://api.hetzner.cloud/v1"

// Config configures the adapter. Token is a secret: it is sent only as a
// Bearer header and never logged or put in an error.
type Config struct {
	Token string // Hetzner Cloud API token (read/write). Required.
	// Installation identifies this appliance installation; it labels every
	// server (engine.LabelInstallation) and scopes ListHosts. Required; a
	// valid label value.
	Installation string
	BaseURL      string   // default DefaultBaseURL
	Image        string   // default "ubuntu-24.04"
	SSHKeys      []string // names or ids of SSH keys for root; optional
	// RequestTimeout bounds each API request; default 30s.
	RequestTimeout time.Duration
	// ActionTimeout bounds the wait for a server's creation; default 5m.
	ActionTimeout time.Duration
	// PollInterval is the wait between checks of a creation; default 2s.
	PollInterval time.Duration
	// HTTPClient sends the requests; default a client of its own.
	HTTPClient *http.Client
	Logger     *slog.Logger // default discards
}

// Provisioner creates nodes' hosts as Hetzner Cloud servers.
type Provisioner struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger
}

var _ engine.Provisioner = (*Provisioner)(nil)

// labelValue is what Hetzner accepts as a label value (and what we accept as
// a node or installation id).
var labelValue = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$`)

// New checks cfg and fills its defaults. It does no I/O.
func New(cfg Config) (*Provisioner, error) {
	if cfg.Token == "" {
		return nil, engine.Errorf(engine.EInvalid, "hetzner: an api token is required")
	}
	if !labelValue.MatchString(cfg.Installation) {
		return nil, engine.Errorf(engine.EInvalid, "hetzner: the installation id %q is not a valid label value", cfg.Installation)
	}
	cfg = withDefaults(cfg)
	if u, err := url.Parse(cfg.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, engine.Errorf(engine.EInvalid, "hetzner: the base url is not an http(s) url")
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return &Provisioner{cfg: cfg, client: client, log: cfg.Logger}, nil
}

func withDefaults(cfg Config) Config {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.Image == "" {
		cfg.Image = "ubuntu-24.04"
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.ActionTimeout <= 0 {
		cfg.ActionTimeout = 5 * time.Minute
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// Open checks that the API answers and accepts the token.
func (p *Provisioner) Open(ctx context.Context) error {
	q := url.Values{"label_selector": {p.managedSelector()}, "per_page": {"1"}}
	if err := p.do(ctx, call{method: http.MethodGet, path: "/servers", query: q}, nil); err != nil {
		return fmt.Errorf("open hetzner provisioner: %w", err)
	}
	return nil
}

// Close releases idle connections.
func (p *Provisioner) Close() error {
	p.client.CloseIdleConnections()
	return nil
}

// CreateHost implements engine.Provisioner: it returns the node's existing
// server (waiting for it to finish initializing), or creates one and waits
// for the creation action. A failed creation destroys the half-made server.
func (p *Provisioner) CreateHost(ctx context.Context, spec engine.HostSpec) (engine.Host, error) {
	if err := p.checkSpec(spec); err != nil {
		return engine.Host{}, err
	}
	existing, err := p.findNodeServer(ctx, spec.NodeID, spec.Incarnation)
	if err != nil {
		return engine.Host{}, fmt.Errorf("create host of node %s: %w", spec.NodeID, err)
	}
	if existing != nil {
		p.log.InfoContext(ctx, "hetzner server exists", "node_id", spec.NodeID, "server_id", existing.ID, "status", existing.Status)
		return p.reuse(ctx, spec.NodeID, *existing)
	}
	s, err := p.createServer(ctx, spec)
	if engine.IsCode(err, engine.EConflict) {
		// The name is taken: by a racing attempt of ours (labelled: use
		// it) or by a foreign server (the conflict stands).
		if raced, ferr := p.findNodeServer(ctx, spec.NodeID, spec.Incarnation); ferr == nil && raced != nil {
			return p.reuse(ctx, spec.NodeID, *raced)
		}
	}
	if err != nil {
		return engine.Host{}, fmt.Errorf("create host of node %s: %w", spec.NodeID, err)
	}
	return hostOf(s), nil
}

func (p *Provisioner) checkSpec(spec engine.HostSpec) error {
	switch {
	case spec.Provider != "" && spec.Provider != ProviderName:
		return engine.Errorf(engine.EInvalid, "hetzner cannot create a %q host", spec.Provider)
	case !labelValue.MatchString(spec.NodeID):
		return engine.Errorf(engine.EInvalid, "node id %q is not a valid hetzner label value", spec.NodeID)
	case !engine.ValidIncarnation(spec.Incarnation):
		return engine.Errorf(engine.EInvalid, "host incarnation %q is not 1 to 16 lower-case letters and digits", spec.Incarnation)
	case spec.InstanceType == "":
		return engine.Errorf(engine.EInvalid, "a hetzner host needs an instance type (server type)")
	}
	return nil
}

// findNodeServer returns the oldest server labelled with the node's id and
// incarnation, or nil if there is none.
func (p *Provisioner) findNodeServer(ctx context.Context, nodeID, incarnation string) (*server, error) {
	selector := engine.LabelNodeID + "==" + nodeID + "," + engine.LabelInstallation + "==" + p.cfg.Installation
	if incarnation == "" {
		selector += ",!" + engine.LabelIncarnation // the node's first host
	} else {
		selector += "," + engine.LabelIncarnation + "==" + incarnation
	}
	var r serversResponse
	q := url.Values{"label_selector": {selector}, "sort": {"created:asc"}}
	if err := p.do(ctx, call{method: http.MethodGet, path: "/servers", query: q}, &r); err != nil {
		return nil, fmt.Errorf("look up server: %w", err)
	}
	if len(r.Servers) == 0 {
		return nil, nil
	}
	return &r.Servers[0], nil
}

// createServer posts the server and waits for its creation action.
func (p *Provisioner) createServer(ctx context.Context, spec engine.HostSpec) (server, error) {
	userData, err := cloudInit(spec.NodeID, spec.Bootstrap)
	if err != nil {
		return server{}, err
	}
	req := createServerRequest{
		Name: serverName(spec.NodeID, spec.Incarnation), ServerType: spec.InstanceType, Location: spec.Region,
		Image: p.cfg.Image, Labels: p.labels(spec), UserData: userData, SSHKeys: p.cfg.SSHKeys,
		StartAfterCreate: true,
	}
	var r createServerResponse
	c := call{method: http.MethodPost, path: "/servers", body: req, secrets: []string{spec.Bootstrap.EnrollmentToken}}
	if err := p.do(ctx, c, &r); err != nil {
		return server{}, fmt.Errorf("create server %s: %w", req.Name, err)
	}
	p.log.InfoContext(ctx, "hetzner server created", "node_id", spec.NodeID, "server_id", r.Server.ID, "action_id", r.Action.ID)
	// When we stop watching, the server is kept: the retry finds it by label.
	done, err := p.awaitAction(ctx, r.Action)
	if err != nil {
		return server{}, err
	}
	if done.Status == "error" {
		p.discardFailedServer(ctx, r.Server.ID)
		return server{}, p.actionFailure(done, c.secrets)
	}
	return r.Server, nil
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
	delete(l, engine.LabelIncarnation)
	if spec.Incarnation != "" {
		l[engine.LabelIncarnation] = spec.Incarnation
	}
	return l
}

// awaitAction polls a until it ends and returns it finished ("success" or
// "error"); an error means we stopped watching, not that it failed.
func (p *Provisioner) awaitAction(ctx context.Context, a action) (action, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ActionTimeout)
	defer cancel()
	for a.Status != "success" && a.Status != "error" {
		if err := p.pause(ctx, "server creation"); err != nil {
			return a, err
		}
		var r actionResponse
		if err := p.do(ctx, call{method: http.MethodGet, path: "/actions/" + strconv.FormatInt(a.ID, 10)}, &r); err != nil {
			return a, fmt.Errorf("poll action %d: %w", a.ID, err)
		}
		a = r.Action
	}
	return a, nil
}

// actionFailure is the error of a finished action that failed.
func (p *Provisioner) actionFailure(a action, secrets []string) error {
	code, msg := "unknown", ""
	if a.Error != nil {
		code, msg = a.Error.Code, a.Error.Message
	}
	return engine.Errorf(engine.EUnavailable, "hetzner cloud could not create the server: %s: %s", code, truncate(p.redact(msg, secrets), maxMessageBytes))
}

// reuse returns the node's existing server once initialized. One being
// deleted (by a reaper or a compensation) cannot be reused: the caller
// retries once it is gone.
func (p *Provisioner) reuse(ctx context.Context, nodeID string, s server) (engine.Host, error) {
	if s.Status == "deleting" {
		return engine.Host{}, engine.Errorf(engine.EUnavailable, "server %d of node %s is being deleted; retry when it is gone", s.ID, nodeID)
	}
	h, err := p.awaitInitialized(ctx, s)
	if err != nil {
		return engine.Host{}, fmt.Errorf("create host of node %s: %w", nodeID, err)
	}
	return h, nil
}

// awaitInitialized waits for a server found by label to leave the
// "initializing" status: an earlier attempt may have stopped waiting.
func (p *Provisioner) awaitInitialized(ctx context.Context, s server) (engine.Host, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ActionTimeout)
	defer cancel()
	for id := s.ID; s.Status == "initializing"; {
		if err := p.pause(ctx, "server initialization"); err != nil {
			return engine.Host{}, err
		}
		var err error
		if s, err = p.getServer(ctx, id); err != nil {
			return engine.Host{}, fmt.Errorf("poll server %d: %w", id, err)
		}
	}
	return hostOf(s), nil
}

// pause waits one poll interval, or fails with EUnavailable when ctx ends.
func (p *Provisioner) pause(ctx context.Context, what string) error {
	t := time.NewTimer(p.cfg.PollInterval)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return engine.Errorf(engine.EUnavailable, "gave up waiting for the %s: %v", what, ctx.Err())
	}
}

// discardFailedServer deletes a server whose creation failed, so the next
// attempt starts afresh instead of finding a broken one. The reaper deletes
// it if this fails.
func (p *Provisioner) discardFailedServer(ctx context.Context, id int64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.RequestTimeout)
	defer cancel()
	if err := p.deleteServer(ctx, id); err != nil {
		p.log.WarnContext(ctx, "hetzner server of a failed creation not deleted", "server_id", id, "err", err)
	}
}

// DestroyHost implements engine.Provisioner: it deletes the server and
// returns once Hetzner accepted the deletion.
func (p *Provisioner) DestroyHost(ctx context.Context, h engine.Host) error {
	if h.ProviderID == "" {
		return nil
	}
	id, err := serverID(h)
	if err != nil {
		return err
	}
	if err := p.deleteServer(ctx, id); err != nil {
		return fmt.Errorf("destroy host %d: %w", id, err)
	}
	p.log.InfoContext(ctx, "hetzner server deleted", "server_id", id)
	return nil
}

func (p *Provisioner) deleteServer(ctx context.Context, id int64) error {
	err := p.do(ctx, call{method: http.MethodDelete, path: "/servers/" + strconv.FormatInt(id, 10)}, nil)
	if engine.IsCode(err, engine.ENotFound) {
		return nil
	}
	return err
}

// DescribeHost implements engine.Provisioner.
func (p *Provisioner) DescribeHost(ctx context.Context, h engine.Host) (engine.HostStatus, error) {
	id, err := serverID(h)
	if err != nil {
		return engine.HostStatus{}, err
	}
	s, err := p.getServer(ctx, id)
	if err != nil {
		return engine.HostStatus{}, fmt.Errorf("describe host %d: %w", id, err)
	}
	return engine.HostStatus{Host: hostOf(s), Phase: phaseOf(s.Status), NodeID: s.Labels[engine.LabelNodeID], CreatedAt: s.Created}, nil
}

func (p *Provisioner) getServer(ctx context.Context, id int64) (server, error) {
	var r serverResponse
	err := p.do(ctx, call{method: http.MethodGet, path: "/servers/" + strconv.FormatInt(id, 10)}, &r)
	return r.Server, err
}

// ListHosts implements engine.Provisioner, following every page.
func (p *Provisioner) ListHosts(ctx context.Context) ([]engine.ManagedHost, error) {
	var hosts []engine.ManagedHost
	for page := 1; page > 0; {
		q := url.Values{"label_selector": {p.managedSelector()}, "page": {strconv.Itoa(page)}, "per_page": {"50"}}
		var r serversResponse
		if err := p.do(ctx, call{method: http.MethodGet, path: "/servers", query: q}, &r); err != nil {
			return nil, fmt.Errorf("list hosts (page %d): %w", page, err)
		}
		for _, s := range r.Servers {
			hosts = append(hosts, engine.ManagedHost{Host: hostOf(s), NodeID: s.Labels[engine.LabelNodeID], CreatedAt: s.Created})
		}
		next := r.Meta.Pagination.NextPage
		if next == nil || *next <= page {
			break
		}
		page = *next
	}
	return hosts, nil
}

func (p *Provisioner) managedSelector() string {
	return engine.LabelManaged + "==" + engine.LabelManagedValue + "," + engine.LabelInstallation + "==" + p.cfg.Installation
}

// serverName is the name of the node's host: a hostname (lower case
// letters, digits, dashes), so a node id's underscores become dashes; a
// host other than the node's first ends with its incarnation.
func serverName(nodeID, incarnation string) string {
	if incarnation != "" {
		// Keep the incarnation when the node id is cut to fit 63 bytes.
		base := serverName(nodeID, "")
		return base[:min(len(base), 62-len(incarnation))] + "-" + incarnation
	}
	name := []byte("hc-" + strings.ToLower(nodeID))
	for i, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			name[i] = '-'
		}
	}
	return strings.TrimRight(string(name[:min(len(name), 63)]), "-")
}

func serverID(h engine.Host) (int64, error) {
	if h.Provider != "" && h.Provider != ProviderName {
		return 0, engine.Errorf(engine.EInvalid, "host %s is a %q host, not a hetzner one", h.ProviderID, h.Provider)
	}
	id, err := strconv.ParseInt(h.ProviderID, 10, 64)
	if err != nil || id <= 0 {
		return 0, engine.Errorf(engine.EInvalid, "%q is not a hetzner server id", h.ProviderID)
	}
	return id, nil
}

func hostOf(s server) engine.Host {
	return engine.Host{
		Provider:     ProviderName,
		ProviderID:   strconv.FormatInt(s.ID, 10),
		Address:      addressOf(s.PublicNet),
		Region:       s.Datacenter.Location.Name,
		InstanceType: s.ServerType.Name,
	}
}

// addressOf is the public IPv4, else the first address of the IPv6 /64
// (Hetzner configures ::1 of the network on the server).
func addressOf(n publicNet) string {
	if n.IPv4 != nil && n.IPv4.IP != "" {
		return n.IPv4.IP
	}
	if n.IPv6 != nil && n.IPv6.IP != "" {
		prefix, _, _ := strings.Cut(n.IPv6.IP, "/")
		if strings.HasSuffix(prefix, "::") {
			return prefix + "1"
		}
		return prefix
	}
	return ""
}

func phaseOf(status string) engine.HostPhase {
	switch status {
	case "initializing", "starting", "rebuilding", "migrating":
		return engine.HostStarting
	case "running":
		return engine.HostRunning
	case "off", "stopping":
		return engine.HostStopped
	case "deleting":
		return engine.HostDeleting
	}
	return engine.HostUnknown
}
