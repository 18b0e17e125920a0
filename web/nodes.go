package web

import (
	"cmp"
	"context"
	"net"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
)

// Node list paging: a page holds defaultNodePage nodes unless the caller
// asks for up to maxNodePage.
const (
	defaultNodePage = 50
	maxNodePage     = 500
	// maxIDBytes bounds ids taken from the URL: longer ones name nothing.
	maxIDBytes = 200
)

// terminateReason is what the workflow records for a customer's request.
const terminateReason = "requested by user"

// routeNodes registers the node routes and the staging mark-paid. They
// need a Store; the workflows and the bus are checked per request, so a
// server without them answers 501 rather than 404.
func (s *Server) routeNodes(_, authed *gin.RouterGroup) {
	if s.cfg.Store == nil {
		return
	}
	read, write, admin := requireScope(engine.ScopeNodesRead), requireScope(engine.ScopeNodesWrite), requireScope(engine.ScopeAdmin)
	authed.GET("/nodes", read, s.listNodes)
	authed.GET("/nodes/:id", read, s.getNode)
	authed.POST("/nodes/:id/terminate", write, s.terminateNode)
	authed.POST("/nodes/:id/migrate", admin, s.migrateNode)
	authed.POST("/payments/:id/mark-paid", admin, s.markPaid)
}

type nodeHostJSON struct {
	Provider     string `json:"provider"`
	Region       string `json:"region"`
	InstanceType string `json:"instance_type"`
	Address      string `json:"address,omitempty"` // administrators only
}

type nodeAgentJSON struct {
	Version    string    `json:"version,omitempty"`
	LastSeenAt time.Time `json:"last_seen_at,omitzero"`
	// From the latest heartbeat; absent once the agent has gone quiet.
	Health      string `json:"health,omitempty"`
	Syncing     *bool  `json:"syncing,omitempty"`
	BlockHeight uint64 `json:"block_height,omitempty"`
	Peers       int    `json:"peers,omitempty"`
}

type nodeCommandJSON struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Status string `json:"status"`
}

// nodeEndpointJSON is a service of the node (its RPC, say) on the port
// its host allocated.
type nodeEndpointJSON struct {
	Port    int    `json:"port"`
	Address string `json:"address,omitempty"` // host:port, administrators only
}

type nodeJSON struct {
	ID             string `json:"id"`
	SubscriptionID string `json:"subscription_id"`
	ChainProfileID string `json:"chain_profile_id"`
	NodeType       string `json:"node_type"`
	State          string `json:"state"`
	// Why the node is in its state (e.g. the failed step of a provision);
	// on the single-node page only.
	StateReason string        `json:"state_reason,omitempty"`
	Host        nodeHostJSON  `json:"host"`
	Agent       nodeAgentJSON `json:"agent"`
	// The chain's programs as the latest heartbeat saw them.
	Components []engine.ComponentStatus `json:"components,omitempty"`
	// By the chain profile's names for them, e.g. "rpc".
	Endpoints map[string]nodeEndpointJSON `json:"endpoints,omitempty"`
	Command   *nodeCommandJSON            `json:"command,omitempty"` // the one the agent is running
	// Who may sign with each of the node's keys; on the single-node page.
	SigningLeases []signingLeaseJSON `json:"signing_leases,omitempty"`
	// The node's last migration, step by step; absent if it never moved.
	LastMigration *engine.MigrationRecord `json:"last_migration,omitempty"`
	CreatedAt     time.Time               `json:"created_at"`
	UpdatedAt     time.Time               `json:"updated_at"`
}

type nodesJSON struct {
	Nodes []nodeJSON `json:"nodes"`
	// NextAfter is the cursor of the next page; absent on the last one.
	NextAfter string `json:"next_after,omitempty"`
}

// commandTypeNames are the agent protocol's command names, lower case.
var commandTypeNames = map[engine.CommandType]string{
	engine.CommandConfigure:       "configure",
	engine.CommandStart:           "start",
	engine.CommandStop:            "stop",
	engine.CommandRestart:         "restart",
	engine.CommandCaptureKey:      "capture_key",
	engine.CommandUpgrade:         "upgrade",
	engine.CommandDeliverKeys:     "deliver_keys",
	engine.CommandSnapshot:        "snapshot",
	engine.CommandRestoreSnapshot: "restore_snapshot",
}

func commandTypeName(t engine.CommandType) string {
	if name, ok := commandTypeNames[t]; ok {
		return name
	}
	return "unknown"
}

// toNodeJSON describes n; the host address is shown to administrators
// only, since customers reach their node through the control plane.
func toNodeJSON(n *engine.Node, running *engine.Command, admin bool) nodeJSON {
	out := nodeJSON{
		ID: n.ID, SubscriptionID: n.SubscriptionID, ChainProfileID: n.ChainProfileID, NodeType: n.NodeType,
		State: string(n.State), CreatedAt: n.CreatedAt, UpdatedAt: n.UpdatedAt,
		Host:  nodeHostJSON{Provider: n.Host.Provider, Region: n.Host.Region, InstanceType: n.Host.InstanceType},
		Agent: nodeAgentJSON{Version: n.AgentVersion, LastSeenAt: n.LastSeenAt},
	}
	if admin {
		out.Host.Address = n.Host.Address
	}
	if running != nil {
		out.Command = &nodeCommandJSON{ID: running.ID, Type: commandTypeName(running.Type), Status: string(running.Status)}
	}
	return out
}

// describeNode is n as the caller may see it, with its running command:
// the oldest one handed to the agent and not finished.
func (s *Server) describeNode(ctx context.Context, p *engine.Principal, n *engine.Node) (nodeJSON, error) {
	cmds, err := s.cfg.Store.ListCommandsByNode(ctx, n.ID, engine.CommandDelivered, engine.CommandAcknowledged)
	if err != nil {
		return nodeJSON{}, err
	}
	var running *engine.Command
	if len(cmds) > 0 {
		running = cmds[0]
	}
	out := toNodeJSON(n, running, p.Can(engine.ScopeAdmin))
	out.Endpoints = s.endpoints(n, p.Can(engine.ScopeAdmin))
	if st := s.agentStatus(ctx, n.ID); st != nil {
		out.Components = st.Components
		out.Agent.Health, out.Agent.BlockHeight, out.Agent.Peers = string(st.Health), st.BlockHeight, st.Peers
		if !st.MetricsAt.IsZero() {
			out.Agent.Syncing = &st.Syncing
		}
	}
	return out, nil
}

// endpoints are the ports of n its chain profile names as services; the
// host's address with each is for administrators.
func (s *Server) endpoints(n *engine.Node, admin bool) map[string]nodeEndpointJSON {
	if s.cfg.Chains == nil || len(n.Runtime.Ports) == 0 {
		return nil
	}
	p, err := s.cfg.Chains.Get(n.ChainProfileID)
	if err != nil {
		return nil
	}
	out := map[string]nodeEndpointJSON{}
	for _, name := range p.Endpoints {
		port, ok := n.Runtime.Ports[name]
		if !ok {
			continue
		}
		e := nodeEndpointJSON{Port: port}
		if admin && n.Host.Address != "" {
			e.Address = net.JoinHostPort(endpointHost(n.Host), strconv.Itoa(port))
		}
		out[name] = e
	}
	return out
}

// endpointHost is where a node's services listen: its host's address,
// or the loopback address for a local host (whose address is a directory).
func endpointHost(h engine.Host) string {
	if h.Provider == "local" {
		return "127.0.0.1"
	}
	return h.Address
}

// agentStatus is the node agent's latest heartbeat, nil when there is none
// (or the cache keeps none): a node page never fails for want of it.
func (s *Server) agentStatus(ctx context.Context, nodeID string) *engine.AgentStatus {
	statuses, ok := s.cfg.Cache.(engine.AgentStatusCache)
	if !ok {
		return nil
	}
	st, err := statuses.GetAgentStatus(ctx, nodeID)
	if err != nil {
		return nil
	}
	return st
}

// pageParams reads ?after= and ?limit=; a bad value is EInvalid.
func pageParams(c *gin.Context) (after string, limit int, err error) {
	after, limit = c.Query("after"), defaultNodePage
	if len(after) > maxIDBytes || !utf8.ValidString(after) {
		return "", 0, engine.Errorf(engine.EInvalid, "after must be a node id")
	}
	if raw, ok := c.GetQuery("limit"); ok {
		limit, err = strconv.Atoi(raw)
		if err != nil || limit < 1 || limit > maxNodePage {
			return "", 0, engine.Errorf(engine.EInvalid, "limit must be an integer from 1 to %d", maxNodePage)
		}
	}
	return after, limit, nil
}

// listNodes pages through the caller's nodes by id. It asks for one more
// than the page to know whether another page follows.
func (s *Server) listNodes(c *gin.Context) {
	after, limit, err := pageParams(c)
	if err != nil {
		writeError(c, err)
		return
	}
	ctx, p := c.Request.Context(), principal(c)
	nodes, err := s.cfg.Store.ListNodesByOwner(ctx, p.UserID, after, limit+1)
	if err != nil {
		writeError(c, err)
		return
	}
	out := nodesJSON{Nodes: make([]nodeJSON, 0, min(len(nodes), limit))}
	if len(nodes) > limit {
		nodes = nodes[:limit]
		out.NextAfter = nodes[limit-1].ID
	}
	for _, n := range nodes {
		j, err := s.describeNode(ctx, p, n)
		if err != nil {
			writeError(c, err)
			return
		}
		out.Nodes = append(out.Nodes, j)
	}
	c.JSON(http.StatusOK, out)
}

// visibleNode is the node named in the URL if the caller owns it or is an
// administrator; anything else is ENotFound, so ids of other tenants'
// nodes cannot be probed.
func (s *Server) visibleNode(c *gin.Context) (*engine.Node, error) {
	id, p := c.Param("id"), principal(c)
	if len(id) > maxIDBytes || !utf8.ValidString(id) {
		return nil, errNoNode
	}
	n, err := s.cfg.Store.GetNode(c.Request.Context(), id)
	switch {
	case engine.IsCode(err, engine.ENotFound):
		return nil, errNoNode
	case err != nil:
		return nil, err
	case n.OwnerID != p.UserID && !p.Can(engine.ScopeAdmin):
		return nil, errNoNode
	}
	return n, nil
}

// errNoNode is the one answer for a missing node and another tenant's, so
// the two cannot be told apart.
var errNoNode = engine.Errorf(engine.ENotFound, "no such node")

func (s *Server) getNode(c *gin.Context) {
	n, err := s.visibleNode(c)
	if err != nil {
		writeError(c, err)
		return
	}
	s.answerNode(c, http.StatusOK, n)
}

func (s *Server) answerNode(c *gin.Context, status int, n *engine.Node) {
	j, err := s.describeNode(c.Request.Context(), principal(c), n)
	if err != nil {
		writeError(c, err)
		return
	}
	if j.StateReason, err = s.stateReason(c.Request.Context(), n); err != nil {
		writeError(c, err)
		return
	}
	leases, err := s.cfg.Store.ListSigningLeases(c.Request.Context(), n.ID)
	if err != nil {
		writeError(c, err)
		return
	}
	j.SigningLeases = leasesJSON(leases)
	if n.LastMigration.ID != "" {
		j.LastMigration = &n.LastMigration
	}
	c.JSON(status, j)
}

// stateReason is the reason of the node's latest state change.
func (s *Server) stateReason(ctx context.Context, n *engine.Node) (string, error) {
	changes, err := s.cfg.Store.ListNodeStateLog(ctx, n.ID, n.UpdatedAt.Add(-time.Hour), time.Now().Add(time.Minute))
	if err != nil || len(changes) == 0 {
		return "", err
	}
	last := changes[len(changes)-1]
	if last.To != n.State {
		return "", nil
	}
	return last.Reason, nil
}

// leaving reports, as EConflict, a node already being taken away: neither
// a second termination nor a migration makes sense for it.
func leaving(n *engine.Node) error {
	if n.State == engine.NodeTerminating || n.State == engine.NodeTerminated {
		return engine.Errorf(engine.EConflict, "node %s is already %s", n.ID, n.State)
	}
	return nil
}

// terminateNode starts the termination workflow and answers 202 with the
// node as it was: the workflow moves its state. Terminating a node ends
// its subscription (engine.Subscriptions.EndWithNode); a repeat of a
// request that stopped between the two finishes the second.
func (s *Server) terminateNode(c *gin.Context) {
	if s.cfg.Workflows == nil {
		writeError(c, engine.Errorf(engine.EUnsupported, "the workflow engine is not configured"))
		return
	}
	n, err := s.visibleNode(c)
	if err != nil {
		writeError(c, err)
		return
	}
	if err := leaving(n); err != nil {
		writeError(c, cmp.Or(s.endSubscription(c, n), err))
		return
	}
	if err := s.cfg.Workflows.StartTerminate(c.Request.Context(), n.ID, terminateReason); err != nil {
		writeError(c, err)
		return
	}
	if err := s.endSubscription(c, n); err != nil {
		writeError(c, err)
		return
	}
	s.answerNode(c, http.StatusAccepted, n)
}

// endSubscription ends the subscription of a node being terminated.
func (s *Server) endSubscription(c *gin.Context, n *engine.Node) error {
	if s.cfg.Subscriptions == nil {
		return nil
	}
	return s.cfg.Subscriptions.EndWithNode(c.Request.Context(), n.SubscriptionID)
}

// migrateNode starts moving the node to a new host (administrators only)
// and answers 202 with the node as it was.
func (s *Server) migrateNode(c *gin.Context) {
	if s.cfg.Workflows == nil {
		writeError(c, engine.Errorf(engine.EUnsupported, "the workflow engine is not configured"))
		return
	}
	n, err := s.visibleNode(c)
	if err == nil {
		err = leaving(n)
	}
	if err == nil {
		err = s.cfg.Workflows.StartMigrate(c.Request.Context(), n.ID)
	}
	if err != nil {
		writeError(c, err)
		return
	}
	s.answerNode(c, http.StatusAccepted, n)
}
