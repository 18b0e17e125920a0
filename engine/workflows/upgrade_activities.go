package workflows

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
)

// UpgradePlan is what SendUpgradeCommand asks the agent to install.
type UpgradePlan struct {
	RolloutID     string
	Component     string
	Target        engine.Release
	Previous      engine.Release
	ConfigChanges []engine.ConfigChange `json:",omitempty"`
	TargetHeight  int64                 `json:",omitempty"`
}

// NodePrecheck is what PreCheckNode found: the release the node runs now
// and the state to return it to.
type NodePrecheck struct {
	Current  engine.Release
	State    engine.NodeState
	AtTarget bool
}

// UpgradeReport is how the upgrade command ended, for RecordNodeUpgrade.
type UpgradeReport struct {
	Input    UpgradeNodeInput
	Previous NodePrecheck
	Started  time.Time
	Error    string `json:",omitempty"`
}

// UpgradeDone is what RecordNodeUpgrade made of the report.
type UpgradeDone struct {
	At    time.Time // when the new release was recorded
	Error string    `json:",omitempty"`
}

// HealthCheck asks WaitForHealthValidation about a node upgraded at Since.
type HealthCheck struct {
	NodeID string
	Since  time.Time
	Wait   time.Duration
}

// NodeMark records one node's outcome in a rollout.
type NodeMark struct {
	RolloutID string
	NodeID    string
	Batch     int
	Status    engine.RolloutStatus
	Error     string `json:",omitempty"`
	Rollback  bool   `json:",omitempty"`
}

// PhaseEvent announces a phase of a node's upgrade.
type PhaseEvent struct {
	NodeID, RolloutID, Component, From, To, Phase string
}

// upgradeStates are the states a node may be upgraded from.
var upgradeStates = []engine.NodeState{engine.NodeRunning, engine.NodeSyncing, engine.NodeDegraded}

// PreCheckNode checks the node may be upgraded (it exists, runs, and its
// subscription is active), marks it upgrading in the rollout and returns
// the release it runs now. A node back in maintenance for this upgrade
// (a retried workflow) passes.
func (a *Activities) PreCheckNode(ctx context.Context, in UpgradeNodeInput) (NodePrecheck, error) {
	n, p, err := a.nodeAndProfile(ctx, in.NodeID)
	if err != nil {
		return NodePrecheck{}, err
	}
	if !slices.Contains(upgradeStates, n.State) {
		// maintenance included: another workflow (a migration) holds it.
		return NodePrecheck{}, permanent(engine.EConflict, "node %s is %s", n.ID, n.State)
	}
	sub, err := a.Store.GetSubscription(ctx, n.SubscriptionID)
	if err != nil {
		return NodePrecheck{}, classify(fmt.Errorf("read subscription %s: %w", n.SubscriptionID, err))
	}
	if sub.Status != engine.SubscriptionActive {
		return NodePrecheck{}, permanent(engine.EConflict, "subscription %s is %s", sub.ID, sub.Status)
	}
	cur, ok := CurrentRelease(n, p, in.Component)
	if !ok {
		return NodePrecheck{}, permanent(engine.EInvalid, "chain %s has no component %q", p.ID, in.Component)
	}
	pre := NodePrecheck{Current: cur, State: n.State, AtTarget: cur.Version == in.Target.Version}
	mark := &engine.RolloutNode{RolloutID: in.RolloutID, NodeID: n.ID, BatchIndex: in.Batch}
	return pre, a.updateRolloutNode(ctx, mark, func(rn *engine.RolloutNode) {
		rn.Status = engine.RolloutRunning
		if !in.Rollback {
			rn.PreviousVersion, rn.Previous = cur.Version, cur
		}
	})
}

// CurrentRelease is the release of the node's component: the one its last
// upgrade installed, else the chain profile's, pinned to the digest the
// host reported.
func CurrentRelease(n *engine.Node, p *profile.ChainProfile, component string) (engine.Release, bool) {
	if r, ok := n.Runtime.Releases[component]; ok {
		return r, true
	}
	i := slices.IndexFunc(p.Components, func(c profile.Component) bool { return c.Name == component })
	if i < 0 {
		return engine.Release{}, false
	}
	c := p.Components[i]
	r := engine.Release{Version: c.Version, URL: c.URL, SHA256: c.SHA256, Binary: c.Binary}
	if sha := n.Runtime.Artifacts[component]; sha != "" {
		r.SHA256 = sha
	}
	return r, true
}

func (a *Activities) nodeAndProfile(ctx context.Context, nodeID string) (*engine.Node, *profile.ChainProfile, error) {
	n, err := a.Store.GetNode(ctx, nodeID)
	if err != nil {
		return nil, nil, classify(fmt.Errorf("read node %s: %w", nodeID, err))
	}
	p, err := a.Chains(n.ChainProfileID)
	if err != nil {
		return nil, nil, classify(err)
	}
	return n, p, nil
}

// SendUpgradeCommand queues UPGRADE and waits for the agent to
// acknowledge it.
func (a *Activities) SendUpgradeCommand(ctx context.Context, req CommandRequest) error {
	if req.Upgrade == nil {
		return permanent(engine.EInvalid, "an upgrade request names no upgrade")
	}
	n, p, err := a.nodeAndProfile(ctx, req.NodeID)
	if err != nil {
		return err
	}
	payload, err := a.upgradePayload(n, p, req.Upgrade)
	if err != nil {
		return classify(err)
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	return a.sendAndAwaitAck(ctx, req, engine.CommandUpgrade, b)
}

// upgradePayload is the protocol's UpgradePayload in its JSON form.
type upgradePayload struct {
	Component       string           `json:"component"`
	Version         string           `json:"version"`
	Artifact        *configArtifact  `json:"artifact,omitempty"`
	PreviousVersion string           `json:"previous_version,omitempty"`
	RolloutID       string           `json:"rollout_id,omitempty"`
	Args            []string         `json:"args,omitempty"`
	TargetHeight    int64            `json:"target_height,omitempty"`
	ConfigTemplates []configTemplate `json:"config_templates,omitempty"`
	Binary          string           `json:"binary,omitempty"`
}

// upgradePayload builds the agent's instructions. A simulated node gets
// the version alone (its command line names it); a program on the
// appliance's PATH ("path:cometbft") is found and pinned by its digest.
func (a *Activities) upgradePayload(n *engine.Node, p *profile.ChainProfile, u *UpgradePlan) (*upgradePayload, error) {
	out := &upgradePayload{Component: u.Component, Version: u.Target.Version, PreviousVersion: u.Previous.Version,
		RolloutID: u.RolloutID, TargetHeight: u.TargetHeight, Binary: u.Target.Binary}
	for _, c := range u.ConfigChanges {
		out.ConfigTemplates = append(out.ConfigTemplates, configTemplate{Path: c.Path, Template: c.Template, Mode: c.Mode})
	}
	if a.simulated(n, p) {
		return out, nil
	}
	out.Args = u.Target.Args
	art, err := a.resolveArtifact(u.Target)
	if err != nil {
		return nil, err
	}
	out.Artifact = art
	return out, nil
}

// resolveArtifact is the release's artifact as the agent downloads it.
func (a *Activities) resolveArtifact(r engine.Release) (*configArtifact, error) {
	program, local := strings.CutPrefix(r.URL, "path:")
	switch {
	case r.URL == "":
		return nil, nil
	case !local:
		return &configArtifact{URL: r.URL, SHA256: r.SHA256}, nil
	case a.Simulation == nil || a.Simulation.Artifacts == nil:
		return nil, engine.Errorf(engine.EUnsupported, "release %s runs %s from the appliance's PATH: only the local provisioner can", r.Version, program)
	}
	url, sha, err := a.Simulation.Artifacts.Find(program)
	if err != nil {
		return nil, fmt.Errorf("find %s for release %s: %w", program, r.Version, err)
	}
	if r.SHA256 != "" && !strings.EqualFold(r.SHA256, sha) {
		// The host has it installed under the recorded digest (a
		// rollback): the PATH's file is not what it ran.
		return &configArtifact{URL: url, SHA256: strings.ToLower(r.SHA256)}, nil
	}
	return &configArtifact{URL: url, SHA256: sha}, nil
}

// upgradeOutcome is the protocol's UpgradeOutcome in its JSON form.
type upgradeOutcome struct {
	Failed           string `json:"failed,omitempty"`
	RolledBack       bool   `json:"rolled_back,omitempty"`
	RollbackFailed   bool   `json:"rollback_failed,omitempty"`
	InstalledVersion string `json:"installed_version,omitempty"`
	SwitchHeight     int64  `json:"switch_height,omitempty,string"`
}

// RecordNodeUpgrade keeps how the upgrade command ended on the node and in
// the rollout. Upgraded: the new release is the node's (a migration
// installs it) and the node syncs. Rolled back by the agent: the node goes
// back to the state it was in. A failed rollback leaves the host in an
// unknown state: the node is degraded and a critical incident opened.
func (a *Activities) RecordNodeUpgrade(ctx context.Context, r UpgradeReport) (UpgradeDone, error) {
	in := r.Input
	c, err := a.upgradeCommand(ctx, in.NodeID, r.Started)
	if err != nil {
		return UpgradeDone{}, err
	}
	var out upgradeOutcome
	if c != nil && len(c.Result) > 0 {
		_ = json.Unmarshal(c.Result, &out) // a result we cannot read tells nothing more than the error
	}
	rec := &engine.UpgradeRecord{RolloutID: in.RolloutID, Component: in.Component, From: r.Previous.Current.Version,
		To: in.Target.Version, Outcome: "succeeded", Error: r.Error, At: a.now()}
	switch {
	case r.Error == "":
	case c != nil && !c.Status.Finished():
		// The wait gave up while the agent still works: what the host
		// runs is not known.
		rec.Outcome = "unknown"
	case out.RollbackFailed:
		rec.Outcome = "failed_rollback"
	case out.RolledBack:
		rec.Outcome = "rolled_back"
	default:
		rec.Outcome = "failed"
	}
	if err := a.updateNode(ctx, in.NodeID, func(n *engine.Node) bool {
		n.Runtime.LastUpgrade = rec
		if rec.Outcome == "succeeded" {
			a.installRelease(n, in)
		}
		return true
	}); err != nil {
		return UpgradeDone{}, err
	}
	if err := a.updateRolloutNode(ctx, &engine.RolloutNode{RolloutID: in.RolloutID, NodeID: in.NodeID, BatchIndex: in.Batch}, func(rn *engine.RolloutNode) {
		rn.SwitchHeight = out.SwitchHeight
		if rec.Outcome == "succeeded" && !in.Rollback {
			rn.NewVersion = in.Target.Version
		}
	}); err != nil {
		return UpgradeDone{}, err
	}
	return UpgradeDone{At: rec.At, Error: rec.Outcome + ": " + r.Error}, a.settleNode(ctx, in, r, rec)
}

// installRelease makes the upgraded release the node's. A release back at
// the chain profile's is no longer recorded; one run from the appliance's
// PATH is recorded as the file it found, which a later CONFIGURE installs.
func (a *Activities) installRelease(n *engine.Node, in UpgradeNodeInput) {
	rel := in.Target
	p, err := a.Chains(n.ChainProfileID)
	if err == nil && len(p.Components) > 0 && p.Components[0].Name == in.Component {
		n.BinaryVersion = rel.Version
	}
	if err == nil && isProfileRelease(p, in.Component, rel) {
		delete(n.Runtime.Releases, in.Component)
	} else {
		if art, err := a.resolveArtifact(rel); err == nil && art != nil {
			rel.URL, rel.SHA256 = art.URL, art.SHA256
		}
		if n.Runtime.Releases == nil {
			n.Runtime.Releases = map[string]engine.Release{}
		}
		n.Runtime.Releases[in.Component] = rel
	}
	if rel.SHA256 != "" {
		if n.Runtime.Artifacts == nil {
			n.Runtime.Artifacts = map[string]string{}
		}
		n.Runtime.Artifacts[in.Component] = strings.ToLower(rel.SHA256)
	}
}

// isProfileRelease reports whether rel is the profile's own release of the
// component (a rollback to it).
func isProfileRelease(p *profile.ChainProfile, component string, rel engine.Release) bool {
	i := slices.IndexFunc(p.Components, func(c profile.Component) bool { return c.Name == component })
	return i >= 0 && p.Components[i].Version == rel.Version && p.Components[i].URL == rel.URL && len(rel.Args) == 0
}

// settleNode moves the node out of maintenance after its upgrade command.
func (a *Activities) settleNode(ctx context.Context, in UpgradeNodeInput, r UpgradeReport, rec *engine.UpgradeRecord) error {
	switch rec.Outcome {
	case "succeeded":
		return a.transition(ctx, in.NodeID, engine.NodeSyncing, "upgraded "+in.Component+" to "+in.Target.Version)
	case "failed_rollback", "unknown":
		if err := a.transition(ctx, in.NodeID, engine.NodeDegraded, "upgrade "+rec.Outcome); err != nil {
			return err
		}
		what := "failed and could not be rolled back"
		if rec.Outcome == "unknown" {
			what = "did not finish in time: the host may run either release"
		}
		return a.OpenIncident(ctx, IncidentRequest{NodeID: in.NodeID, DedupeKey: "upgrade-" + strings.ReplaceAll(rec.Outcome, "_", "-"),
			Severity: engine.SeverityCritical, Summary: summary("upgrade of "+in.Component+" to "+in.Target.Version+" "+what, fmt.Errorf("%s", r.Error))})
	default:
		return a.transition(ctx, in.NodeID, r.Previous.State, "upgrade to "+in.Target.Version+" "+rec.Outcome)
	}
}

// upgradeCommand is the node's latest UPGRADE created since the upgrade
// began, nil if none.
func (a *Activities) upgradeCommand(ctx context.Context, nodeID string, since time.Time) (*engine.Command, error) {
	cs, err := a.Store.ListCommandsByNode(ctx, nodeID)
	if err != nil {
		return nil, classify(fmt.Errorf("list commands of node %s: %w", nodeID, err))
	}
	for i := len(cs) - 1; i >= 0; i-- {
		if cs[i].Type == engine.CommandUpgrade && !cs[i].CreatedAt.Before(since.Add(-time.Second)) {
			return cs[i], nil
		}
	}
	return nil, nil
}

// WaitForHealthValidation waits until the node shows, after Since: a
// heartbeat, app health not critical, no crash loop, and its height grown
// past the first height reported after the upgrade (sync not stalled). It
// fails when Wait runs out first, saying which check did not pass.
func (a *Activities) WaitForHealthValidation(ctx context.Context, h HealthCheck) error {
	if a.Statuses == nil {
		return nil // nothing to judge by: the rollout's gates still apply
	}
	deadline := a.now().Add(h.Wait)
	var first uint64
	why := "no heartbeat since the upgrade"
	for {
		s, err := a.Statuses.GetAgentStatus(ctx, h.NodeID)
		if err != nil && !engine.IsCode(err, engine.ENotFound) {
			return fmt.Errorf("read status of node %s: %w", h.NodeID, err)
		}
		if s != nil && s.ReportedAt.After(h.Since) {
			if first == 0 {
				first = s.BlockHeight
			}
			if why = unhealthy(s, first); why == "" {
				return nil
			}
		}
		if a.now().After(deadline) {
			return permanent(engine.EUnavailable, "node %s not healthy within %s: %s", h.NodeID, h.Wait, why)
		}
		heartbeat(ctx, why)
		if err := sleep(ctx, a.timing().Poll); err != nil {
			return err
		}
	}
}

// unhealthy says what keeps a node from passing health validation, "" if
// nothing does.
func unhealthy(s *engine.AgentStatus, first uint64) string {
	for _, c := range s.Components {
		if c.CrashLoop {
			return "component " + c.Name + " is crash looping"
		}
	}
	switch {
	case s.Health == engine.AppHealthCritical:
		return "app health is critical: " + s.HealthMessage
	case s.BlockHeight <= first:
		return fmt.Sprintf("height %d has not grown since the upgrade", s.BlockHeight)
	}
	return ""
}

// MarkNodeUpgrade records the node's outcome in the rollout.
func (a *Activities) MarkNodeUpgrade(ctx context.Context, m NodeMark) error {
	return a.updateRolloutNode(ctx, &engine.RolloutNode{RolloutID: m.RolloutID, NodeID: m.NodeID, BatchIndex: m.Batch}, func(rn *engine.RolloutNode) {
		rn.Status, rn.Error = m.Status, m.Error
		if m.Rollback && m.Status == engine.RolloutFailed && !strings.HasPrefix(m.Error, "rollback: ") {
			rn.Error = "rollback: " + m.Error // counted as a failed rollback
		}
	})
}

// updateRolloutNode applies change to the node's record in the rollout
// (blank when it has none) and writes it.
func (a *Activities) updateRolloutNode(ctx context.Context, blank *engine.RolloutNode, change func(*engine.RolloutNode)) error {
	rn, err := a.rolloutNode(ctx, blank.RolloutID, blank.BatchIndex, blank.NodeID)
	if err != nil {
		return err
	}
	if rn == nil {
		rn = blank
	}
	change(rn)
	rn.UpdatedAt = a.now()
	if err := a.Store.PutRolloutNodes(ctx, []*engine.RolloutNode{rn}); err != nil {
		return classify(fmt.Errorf("record node %s in rollout %s: %w", rn.NodeID, rn.RolloutID, err))
	}
	return nil
}

func (a *Activities) rolloutNode(ctx context.Context, rolloutID string, batch int, nodeID string) (*engine.RolloutNode, error) {
	ns, err := a.Store.ListRolloutNodes(ctx, rolloutID, batch)
	if err != nil {
		return nil, classify(fmt.Errorf("list nodes of rollout %s: %w", rolloutID, err))
	}
	for _, rn := range ns {
		if rn.NodeID == nodeID {
			return rn, nil
		}
	}
	return nil, nil
}

// PublishUpgradePhase announces the phase on events.node.{id}.upgrade_phase_changed,
// and the start and end of the upgrade on their own subjects.
func (a *Activities) PublishUpgradePhase(ctx context.Context, e PhaseEvent) error {
	ev := engine.NodeUpgradeEvent{NodeID: e.NodeID, RolloutID: e.RolloutID, Component: e.Component, From: e.From, To: e.To, Phase: e.Phase, At: a.now()}
	subjects := []string{"upgrade_phase_changed"}
	switch e.Phase {
	case phaseMaintenance:
		subjects = append(subjects, "upgrade_started")
	case phaseDone, phaseFailed:
		subjects = append(subjects, "upgrade_completed")
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	for _, s := range subjects {
		id := fmt.Sprintf("%s/%s/%s/%s", e.RolloutID, e.NodeID, e.Phase, s)
		if err := a.Events.Publish(ctx, engine.NodeUpgradeEventSubject(e.NodeID, s), id, b); err != nil {
			return fmt.Errorf("publish %s of node %s: %w", s, e.NodeID, err)
		}
	}
	return nil
}
