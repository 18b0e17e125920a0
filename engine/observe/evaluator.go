package observe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// Config is what the evaluator reads and writes.
type Config struct {
	Nodes     engine.NodeStore
	Incidents engine.IncidentStore
	Commands  engine.CommandStore
	Cache     engine.Cache // the command queue, for remediation
	Statuses  engine.AgentStatusLister
	Events    engine.Events
	// Policy returns the compiled policy of a chain profile; nil (or a nil
	// result) means the default rules.
	Policy func(chainProfileID string) *Policy
	Logger *slog.Logger
	Now    func() time.Time // default time.Now

	// HeartbeatInterval is how often agents report (missed_heartbeats).
	HeartbeatInterval time.Duration
	// StuckAfter is how long a height may stand still before the node is
	// stuck (stuck_after). Default 5 minutes.
	StuckAfter time.Duration
	// Confirmations is how many consecutive cycles must give a verdict
	// before it changes the node: a flapping metric does not flap the node.
	// Default 3.
	Confirmations int
	// Remediate sends one RESTART per incident of a rule with a remedy;
	// EscalateAfter later, a node still failing that rule gets a critical
	// incident. Default for EscalateAfter: StuckAfter.
	Remediate     bool
	EscalateAfter time.Duration
	// BatchSize is how many nodes one read of the heartbeats covers. Default 500.
	BatchSize int
}

// Evaluator judges every watched node once per Cycle. It is leader-only
// work: its memory (height progress, pending verdicts) starts empty in a
// new leader, which then waits Confirmations cycles before changing
// anything. Safe for one Cycle at a time.
type Evaluator struct {
	cfg     Config
	breaker *breaker

	mu    sync.Mutex
	nodes map[string]*watch
	epoch int64 // the leader epoch of the last cycle: a new one forgets all
}

// watch is what the evaluator remembers of a node between cycles.
type watch struct {
	since     time.Time // when this evaluator began watching the node
	height    uint64
	grewAt    time.Time // when height last grew, or the watch began
	pending   Verdict   // the latest verdict and how many cycles in a row gave it
	pendRule  string
	streak    int
	confirmed Verdict // the verdict acted on last; "" until one is
	rule      string
	seen      bool // in the current cycle
}

// watchedStates are the states the evaluator owns; any other belongs to a
// workflow (provisioning, maintenance, terminating) or is final.
var watchedStates = []engine.NodeState{engine.NodeSyncing, engine.NodeRunning, engine.NodeDegraded}

// nodeIDPattern is what a node id must look like before it is used in a
// cache key: ids are ours, so anything else is refused, not escaped.
var nodeIDPattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// NewEvaluator fills in defaults.
func NewEvaluator(cfg Config) *Evaluator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 30 * time.Second
	}
	if cfg.StuckAfter <= 0 {
		cfg.StuckAfter = 5 * time.Minute
	}
	if cfg.Confirmations <= 0 {
		cfg.Confirmations = 3
	}
	if cfg.EscalateAfter <= 0 {
		cfg.EscalateAfter = cfg.StuckAfter
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	return &Evaluator{
		cfg:     cfg,
		breaker: &breaker{threshold: 3, cooldown: 30 * time.Second, now: cfg.Now},
		nodes:   map[string]*watch{},
	}
}

// Stats is what one cycle did.
type Stats struct {
	Nodes       int
	Verdicts    map[Verdict]int
	Transitions int
	Opened      int // incidents
	Resolved    int
	Restarts    int
	Unread      int // nodes judged unknown because heartbeats could not be read
}

// Cycle judges every watched node once. Errors on one node are logged and
// do not stop the others; a fenced write (a newer leader took over) ends
// the cycle at once.
func (e *Evaluator) Cycle(ctx context.Context) (Stats, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Stats{Verdicts: map[Verdict]int{}}
	if epoch, ok := engine.LeaderEpochFrom(ctx); ok && epoch != e.epoch {
		// Leading again after another instance did: what it changed is
		// not in our memory, so start over (confirmations included).
		e.nodes, e.epoch = map[string]*watch{}, epoch
	}
	for _, w := range e.nodes {
		w.seen = false
	}
	for _, state := range watchedStates {
		after := ""
		for {
			batch, err := e.cfg.Nodes.ListNodesByState(ctx, state, after, e.cfg.BatchSize)
			if err != nil {
				return st, fmt.Errorf("list %s nodes: %w", state, err)
			}
			if err := e.judgeBatch(ctx, batch, &st); err != nil {
				return st, err
			}
			if len(batch) < e.cfg.BatchSize {
				break
			}
			after = batch[len(batch)-1].ID
		}
	}
	for id, w := range e.nodes {
		if w.seen {
			continue
		}
		// Left the watched states (terminated, or taken by a workflow):
		// its policy incidents are no longer ours to keep open.
		if w.confirmed.Bad() {
			if err := e.resolveOthers(ctx, id, Result{Verdict: VerdictUnknown}, e.cfg.Now(), &st); err != nil {
				e.cfg.Logger.Warn("resolving the incidents of a node no longer watched", "node", id, "err", err)
				continue
			}
		}
		delete(e.nodes, id)
	}
	return st, nil
}

func (e *Evaluator) judgeBatch(ctx context.Context, batch []*engine.Node, st *Stats) error {
	batch = e.validNodes(batch)
	if len(batch) == 0 {
		return nil
	}
	statuses, readErr := e.readStatuses(ctx, batch)
	now := e.cfg.Now()
	for _, n := range batch {
		st.Nodes++
		if readErr != nil {
			// Unknown, not critical: the cache is down, not the node.
			st.Unread++
			st.Verdicts[VerdictUnknown]++
			e.watchOf(n, now).seen = true
			continue
		}
		res := e.policy(n).Evaluate(e.facts(n, statuses[n.ID], now))
		st.Verdicts[res.Verdict]++
		for _, err := range res.Errors {
			e.cfg.Logger.Debug("health rule failed", "node", n.ID, "err", err)
		}
		if err := e.act(ctx, n, res, now, st); err != nil {
			if errors.Is(err, engine.ErrStaleLeader) {
				return err
			}
			e.cfg.Logger.Warn("acting on a health verdict", "node", n.ID, "verdict", res.Verdict, "err", err)
		}
	}
	return nil
}

func (e *Evaluator) validNodes(batch []*engine.Node) []*engine.Node {
	out := batch[:0:0]
	for _, n := range batch {
		if nodeIDPattern.MatchString(n.ID) {
			out = append(out, n)
		} else {
			e.cfg.Logger.Warn("node id refused by the health evaluator", "len", len(n.ID))
		}
	}
	return out
}

func (e *Evaluator) readStatuses(ctx context.Context, batch []*engine.Node) (map[string]*engine.AgentStatus, error) {
	ids := make([]string, len(batch))
	for i, n := range batch {
		ids[i] = n.ID
	}
	var statuses map[string]*engine.AgentStatus
	err := e.breaker.do(func() error {
		var err error
		statuses, err = e.cfg.Statuses.GetAgentStatuses(ctx, ids)
		return err
	})
	if err != nil && err != errOpen {
		e.cfg.Logger.Warn("reading heartbeats", "err", err)
	}
	return statuses, err
}

func (e *Evaluator) policy(n *engine.Node) *Policy {
	if e.cfg.Policy != nil {
		if p := e.cfg.Policy(n.ChainProfileID); p != nil {
			return p
		}
	}
	return defaultPolicy
}

var defaultPolicy = func() *Policy {
	p, err := Compile(nil)
	if err != nil {
		panic(err) // the defaults are constant and tested
	}
	return p
}()

func (e *Evaluator) watchOf(n *engine.Node, now time.Time) *watch {
	w, ok := e.nodes[n.ID]
	if !ok {
		w = &watch{since: now, grewAt: now}
		e.nodes[n.ID] = w
	}
	return w
}

// facts gathers what the rules see of n.
func (e *Evaluator) facts(n *engine.Node, s *engine.AgentStatus, now time.Time) *Facts {
	w := e.watchOf(n, now)
	w.seen = true
	f := &Facts{State: n.State, StuckAfter: e.cfg.StuckAfter}
	// Silence is counted from the latest sign of life, but never from
	// before this evaluator began watching: after an appliance restart (or a
	// new leader) agents get their reconnect time before they count as
	// silent.
	last := n.LastSeenAt
	if last.IsZero() {
		last = n.UpdatedAt
	}
	if last.Before(w.since) {
		last = w.since
	}
	if s != nil {
		f.HasHeartbeat = true
		f.Health, f.Syncing, f.Height, f.Highest = s.Health, s.Syncing, s.BlockHeight, s.HighestBlock
		f.Peers, f.Sampled, f.Metrics = int64(s.Peers), !s.MetricsAt.IsZero(), s.Metrics
		for _, c := range s.Components {
			f.CrashLoop = f.CrashLoop || c.CrashLoop
		}
		if s.ReportedAt.After(last) {
			last = s.ReportedAt
		}
		if s.BlockHeight > w.height {
			w.height, w.grewAt = s.BlockHeight, now
		}
	}
	f.HeartbeatAge = max(now.Sub(last), 0)
	f.MissedHeartbeats = int64(f.HeartbeatAge / e.cfg.HeartbeatInterval)
	f.StalledFor = now.Sub(w.grewAt)
	return f
}

// act confirms the verdict over consecutive cycles, then moves the node and
// its incidents to match, and remedies a rule that has a remedy.
func (e *Evaluator) act(ctx context.Context, n *engine.Node, res Result, now time.Time, st *Stats) error {
	w := e.nodes[n.ID]
	if res.Verdict == VerdictUnknown {
		w.pending, w.streak = "", 0
		return nil
	}
	rule := res.Rule.Name
	if res.Verdict == w.pending && rule == w.pendRule {
		w.streak++
	} else {
		w.pending, w.pendRule, w.streak = res.Verdict, rule, 1
		e.cfg.Logger.Debug("health verdict", "node", n.ID, "verdict", res.Verdict, "rule", rule)
	}
	if w.streak < e.cfg.Confirmations {
		return nil
	}
	if res.Verdict != w.confirmed || rule != w.rule || n.State != stateOf[res.Verdict] {
		owned, err := e.confirm(ctx, n, res, now, st)
		if err != nil || !owned {
			return err
		}
		w.confirmed, w.rule = res.Verdict, rule
	}
	if res.Verdict.Bad() && res.Rule.Remedy == RemedyRestart && e.cfg.Remediate {
		return e.remedy(ctx, n, res.Rule, now, st)
	}
	return nil
}

// stateOf is the state a confirmed verdict puts a node in.
var stateOf = map[Verdict]engine.NodeState{
	VerdictCritical: engine.NodeDegraded, VerdictDegraded: engine.NodeDegraded,
	VerdictSyncing: engine.NodeSyncing, VerdictOK: engine.NodeRunning,
}

// confirm applies a newly confirmed verdict: the node's state, then its
// policy incidents (the rule's opened, any other's resolved). It reports
// false, changing nothing, when a workflow took the node over since it
// was listed.
func (e *Evaluator) confirm(ctx context.Context, n *engine.Node, res Result, now time.Time, st *Stats) (bool, error) {
	if to := stateOf[res.Verdict]; n.State != to {
		reason := fmt.Sprintf("health: %s (%s)", res.Rule.Name, res.Verdict)
		_, err := engine.TransitionNodeFrom(ctx, e.cfg.Nodes, e.cfg.Events, n.ID, watchedStates, to, reason, now)
		switch {
		case err == nil, errors.Is(err, engine.ErrNotAnnounced):
			st.Transitions++
			e.cfg.Logger.Info("node state from health", "node", n.ID, "from", n.State, "to", to, "rule", res.Rule.Name)
		case engine.IsCode(err, engine.EConflict) && !errors.Is(err, engine.ErrStaleLeader):
			return false, nil
		default:
			return false, err
		}
	}
	if err := e.resolveOthers(ctx, n.ID, res, now, st); err != nil {
		return false, err
	}
	if !res.Verdict.Bad() {
		return true, nil
	}
	sev := engine.SeverityWarning
	if res.Verdict == VerdictCritical {
		sev = engine.SeverityCritical
	}
	spec := engine.IncidentSpec{NodeID: n.ID, DedupeKey: incidentKey(res.Rule.Name), Severity: sev, Summary: res.Rule.Summary}
	_, opened, err := engine.RaiseIncident(ctx, e.cfg.Incidents, spec, now)
	if opened {
		st.Opened++
	}
	return err == nil, err
}

// resolveOthers resolves the node's open policy incidents but the one of
// the verdict's own rule, if it is bad.
func (e *Evaluator) resolveOthers(ctx context.Context, nodeID string, res Result, now time.Time, st *Stats) error {
	all, err := e.cfg.Incidents.ListIncidents(ctx, nodeID)
	if err != nil {
		return fmt.Errorf("list incidents of node %s: %w", nodeID, err)
	}
	for _, in := range all {
		if !in.Open() || !strings.HasPrefix(in.DedupeKey, policyKeyPrefix) {
			continue
		}
		if res.Verdict.Bad() && res.Rule != nil && ruleOfKey(in.DedupeKey) == res.Rule.Name {
			continue
		}
		if _, err := engine.ResolveIncident(ctx, e.cfg.Incidents, nodeID, in.DedupeKey, now); err != nil {
			return err
		}
		st.Resolved++
	}
	return nil
}

// remedy sends one RESTART per incident of the rule (its id derives from
// the incident's, so a new leader does not send another), and escalates
// to a critical incident when the node still fails the rule EscalateAfter
// later.
func (e *Evaluator) remedy(ctx context.Context, n *engine.Node, r *Rule, now time.Time, st *Stats) error {
	in, err := e.cfg.Incidents.FindOpenIncident(ctx, n.ID, incidentKey(r.Name))
	if err != nil {
		return fmt.Errorf("find the incident to remedy: %w", err)
	}
	id := "cmd_restart_" + in.ID
	c, err := e.cfg.Commands.GetCommand(ctx, id)
	if engine.IsCode(err, engine.ENotFound) {
		c = &engine.Command{ID: id, NodeID: n.ID, Type: engine.CommandRestart, CreatedAt: now.UTC().Truncate(time.Microsecond)}
		err = engine.EnqueueCommand(ctx, e.cfg.Commands, e.cfg.Cache, c)
		if err == nil {
			st.Restarts++
			e.cfg.Logger.Info("restarting a node to remedy its health", "node", n.ID, "rule", r.Name, "incident", in.ID)
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("restart node %s: %w", n.ID, err)
	}
	if c.Status == engine.CommandQueued {
		// Recorded, but its queueing may have failed (the Cache was down):
		// queueing is idempotent, so queue it again until it is taken.
		if err := e.cfg.Cache.EnqueueCommand(ctx, n.ID, c.ID); err != nil {
			e.cfg.Logger.Warn("queueing a restart again", "node", n.ID, "err", err)
		}
	}
	if now.Sub(c.CreatedAt) < e.cfg.EscalateAfter {
		return nil
	}
	spec := engine.IncidentSpec{
		NodeID: n.ID, DedupeKey: incidentKey(r.Name + "-escalated"), Severity: engine.SeverityCritical,
		Summary: fmt.Sprintf("%s, and a restart did not help", r.Summary),
	}
	_, opened, err := engine.RaiseIncident(ctx, e.cfg.Incidents, spec, now)
	if opened {
		st.Opened++
	}
	return err
}

// policyKeyPrefix marks the incidents the evaluator owns.
const policyKeyPrefix = "policy:"

func incidentKey(rule string) string { return policyKeyPrefix + rule }

// ruleOfKey is the rule an incident key names; an escalation belongs to
// its rule.
func ruleOfKey(key string) string {
	return strings.TrimSuffix(strings.TrimPrefix(key, policyKeyPrefix), "-escalated")
}
