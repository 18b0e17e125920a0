package web

import (
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/rollouts"
)

// The rollout API's bodies. They are exported so that `hoodcloud rollout`
// sends and reads exactly what the appliance takes and answers.

// RolloutArtifactJSON names a release's artifact.
type RolloutArtifactJSON struct {
	URL    string `json:"url,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Binary is the program's path inside a .tar.gz artifact.
	Binary string `json:"binary,omitempty"`
}

// RolloutConfigChangeJSON is a file an upgrade writes in the chain data
// dir. Mode is octal permission bits as a string, e.g. "0600" (the default).
type RolloutConfigChangeJSON struct {
	Path     string `json:"path"`
	Template string `json:"template"`
	Mode     string `json:"mode,omitempty"`
}

// UpgradeRequest is what one rollout installs: an upgrade_id (auto mode:
// the chain's upgrade manifest gives the rest), or the manual fields.
type UpgradeRequest struct {
	UpgradeID     string                    `json:"upgrade_id,omitempty"`
	Component     string                    `json:"component,omitempty"`
	Version       string                    `json:"version,omitempty"`
	Artifact      *RolloutArtifactJSON      `json:"artifact,omitempty"`
	Args          []string                  `json:"args,omitempty"`
	Compatibility string                    `json:"compatibility,omitempty"`
	ConfigChanges []RolloutConfigChangeJSON `json:"config_changes,omitempty"`
}

// RolloutPlanRequest is how to roll out; zero fields take the defaults.
// HealthWait is a Go duration such as "2m". (Request bodies repeat these
// fields rather than embed the struct: the decoder would name a bad
// field by the Go type's name.)
type RolloutPlanRequest struct {
	TargetHeight     int64    `json:"target_height,omitempty"`
	Strategy         string   `json:"strategy,omitempty"`
	BatchSize        int      `json:"batch_size,omitempty"`
	CanarySize       int      `json:"canary_size,omitempty"`
	FailureThreshold int      `json:"failure_threshold,omitempty"`
	HealthWait       string   `json:"health_wait,omitempty"`
	Gates            []string `json:"gates,omitempty"`
	GateFailure      string   `json:"gate_failure,omitempty"`
}

// CreateRolloutRequest is the body of POST /api/v1/rollouts: an upgrade
// and a plan.
type CreateRolloutRequest struct {
	ChainProfileID string `json:"chain_profile_id"`

	UpgradeID     string                    `json:"upgrade_id,omitempty"`
	Component     string                    `json:"component,omitempty"`
	Version       string                    `json:"version,omitempty"`
	Artifact      *RolloutArtifactJSON      `json:"artifact,omitempty"`
	Args          []string                  `json:"args,omitempty"`
	Compatibility string                    `json:"compatibility,omitempty"`
	ConfigChanges []RolloutConfigChangeJSON `json:"config_changes,omitempty"`

	TargetHeight     int64    `json:"target_height,omitempty"`
	Strategy         string   `json:"strategy,omitempty"`
	BatchSize        int      `json:"batch_size,omitempty"`
	CanarySize       int      `json:"canary_size,omitempty"`
	FailureThreshold int      `json:"failure_threshold,omitempty"`
	HealthWait       string   `json:"health_wait,omitempty"`
	Gates            []string `json:"gates,omitempty"`
	GateFailure      string   `json:"gate_failure,omitempty"`
}

// NewCreateRolloutRequest puts an upgrade and a plan in one body.
func NewCreateRolloutRequest(chainProfileID string, u UpgradeRequest, p RolloutPlanRequest) CreateRolloutRequest {
	return CreateRolloutRequest{
		ChainProfileID: chainProfileID, UpgradeID: u.UpgradeID, Component: u.Component, Version: u.Version,
		Artifact: u.Artifact, Args: u.Args, Compatibility: u.Compatibility, ConfigChanges: u.ConfigChanges,
		TargetHeight: p.TargetHeight, Strategy: p.Strategy, BatchSize: p.BatchSize, CanarySize: p.CanarySize,
		FailureThreshold: p.FailureThreshold, HealthWait: p.HealthWait, Gates: p.Gates, GateFailure: p.GateFailure,
	}
}

func (r CreateRolloutRequest) upgrade() UpgradeRequest {
	return UpgradeRequest{UpgradeID: r.UpgradeID, Component: r.Component, Version: r.Version, Artifact: r.Artifact,
		Args: r.Args, Compatibility: r.Compatibility, ConfigChanges: r.ConfigChanges}
}

func (r CreateRolloutRequest) plan() RolloutPlanRequest {
	return RolloutPlanRequest{TargetHeight: r.TargetHeight, Strategy: r.Strategy, BatchSize: r.BatchSize, CanarySize: r.CanarySize,
		FailureThreshold: r.FailureThreshold, HealthWait: r.HealthWait, Gates: r.Gates, GateFailure: r.GateFailure}
}

// CreateRolloutGroupRequest is the body of POST /api/v1/rollout-groups:
// one upgrade per component, the plan applied to each.
type CreateRolloutGroupRequest struct {
	ChainProfileID string           `json:"chain_profile_id"`
	Upgrades       []UpgradeRequest `json:"upgrades"`
	FailurePolicy  string           `json:"failure_policy,omitempty"`

	TargetHeight     int64    `json:"target_height,omitempty"`
	Strategy         string   `json:"strategy,omitempty"`
	BatchSize        int      `json:"batch_size,omitempty"`
	CanarySize       int      `json:"canary_size,omitempty"`
	FailureThreshold int      `json:"failure_threshold,omitempty"`
	HealthWait       string   `json:"health_wait,omitempty"`
	Gates            []string `json:"gates,omitempty"`
	GateFailure      string   `json:"gate_failure,omitempty"`
}

// NewCreateRolloutGroupRequest puts the upgrades and a plan in one body.
func NewCreateRolloutGroupRequest(chainProfileID, failurePolicy string, us []UpgradeRequest, p RolloutPlanRequest) CreateRolloutGroupRequest {
	return CreateRolloutGroupRequest{
		ChainProfileID: chainProfileID, Upgrades: us, FailurePolicy: failurePolicy,
		TargetHeight: p.TargetHeight, Strategy: p.Strategy, BatchSize: p.BatchSize, CanarySize: p.CanarySize,
		FailureThreshold: p.FailureThreshold, HealthWait: p.HealthWait, Gates: p.Gates, GateFailure: p.GateFailure,
	}
}

func (r CreateRolloutGroupRequest) plan() RolloutPlanRequest {
	return RolloutPlanRequest{TargetHeight: r.TargetHeight, Strategy: r.Strategy, BatchSize: r.BatchSize, CanarySize: r.CanarySize,
		FailureThreshold: r.FailureThreshold, HealthWait: r.HealthWait, Gates: r.Gates, GateFailure: r.GateFailure}
}

// RolloutUpgradeJSON is what a rollout installs.
type RolloutUpgradeJSON struct {
	UpgradeID     string                    `json:"upgrade_id,omitempty"`
	Version       string                    `json:"version"`
	Artifact      *RolloutArtifactJSON      `json:"artifact,omitempty"`
	Args          []string                  `json:"args,omitempty"`
	Compatibility string                    `json:"compatibility"`
	TargetHeight  int64                     `json:"target_height,omitempty"`
	ConfigChanges []RolloutConfigChangeJSON `json:"config_changes,omitempty"`
}

// RolloutPlanJSON is how a rollout goes about it beyond its strategy.
type RolloutPlanJSON struct {
	HealthWait  string   `json:"health_wait"`
	Gates       []string `json:"gates"`
	GateFailure string   `json:"gate_failure"`
}

// RolloutJSON is a rollout on the API.
type RolloutJSON struct {
	ID               string               `json:"id"`
	GroupID          string               `json:"group_id,omitempty"`
	ChainProfileID   string               `json:"chain_profile_id"`
	Component        string               `json:"component"`
	TargetVersion    string               `json:"target_version"`
	Strategy         string               `json:"strategy"`
	BatchSize        int                  `json:"batch_size"`
	CanarySize       int                  `json:"canary_size"`
	FailureThreshold int                  `json:"failure_threshold"`
	Status           engine.RolloutStatus `json:"status"`
	CurrentBatch     int                  `json:"current_batch"`
	Batches          int                  `json:"batches"`
	Succeeded        int                  `json:"succeeded"`
	Failed           int                  `json:"failed"`
	ManifestHash     string               `json:"manifest_hash,omitempty"`
	Upgrade          RolloutUpgradeJSON   `json:"upgrade"`
	Plan             RolloutPlanJSON      `json:"plan"`
	Message          string               `json:"message,omitempty"`
	Forced           bool                 `json:"forced"`
	CreatedBy        string               `json:"created_by"`
	CreatedAt        time.Time            `json:"created_at"`
	UpdatedAt        time.Time            `json:"updated_at"`
}

// RolloutNodeJSON is one node's part in a rollout.
type RolloutNodeJSON struct {
	NodeID          string               `json:"node_id"`
	Status          engine.RolloutStatus `json:"status"`
	PreviousVersion string               `json:"previous_version,omitempty"`
	NewVersion      string               `json:"new_version,omitempty"`
	SwitchHeight    int64                `json:"switch_height,omitempty"`
	Error           string               `json:"error,omitempty"`
	UpdatedAt       time.Time            `json:"updated_at,omitzero"`
}

// RolloutBatchJSON is the nodes of one batch.
type RolloutBatchJSON struct {
	Index int               `json:"index"`
	Nodes []RolloutNodeJSON `json:"nodes"`
}

// RolloutViewJSON is a rollout with its nodes batch by batch.
type RolloutViewJSON struct {
	Rollout RolloutJSON        `json:"rollout"`
	Batches []RolloutBatchJSON `json:"batches"`
}

// RolloutsJSON is a page of rollouts; Next is the before cursor of the
// next page, absent on the last.
type RolloutsJSON struct {
	Rollouts []RolloutJSON `json:"rollouts"`
	Next     string        `json:"next,omitempty"`
}

// RolloutGroupJSON is a rollout group on the API.
type RolloutGroupJSON struct {
	ID             string               `json:"id"`
	ChainProfileID string               `json:"chain_profile_id"`
	Components     []string             `json:"components"`
	RolloutIDs     []string             `json:"rollout_ids"`
	FailurePolicy  string               `json:"failure_policy"`
	Status         engine.RolloutStatus `json:"status"`
	Current        int                  `json:"current"`
	Skipped        []string             `json:"skipped"`
	Message        string               `json:"message,omitempty"`
	CreatedBy      string               `json:"created_by"`
	CreatedAt      time.Time            `json:"created_at"`
	UpdatedAt      time.Time            `json:"updated_at"`
}

// RolloutGroupViewJSON is a group with its rollouts in order.
type RolloutGroupViewJSON struct {
	Group    RolloutGroupJSON `json:"group"`
	Rollouts []RolloutJSON    `json:"rollouts"`
}

// RolloutGroupsJSON is a page of groups, like RolloutsJSON.
type RolloutGroupsJSON struct {
	Groups []RolloutGroupJSON `json:"rollout_groups"`
	Next   string             `json:"next,omitempty"`
}

// SkipRequest is the optional body of a group's skip: the component to
// skip; none skips the one being rolled out.
type SkipRequest struct {
	Component string `json:"component,omitempty"`
}

// octalMode is permission bits written the way chmod takes them.
var octalMode = regexp.MustCompile(`^0?[0-7]{3}$`)

// toUpgrade reads an upgrade request; field prefixes a field's name in
// errors ("" or "upgrades[1].").
func toUpgrade(u UpgradeRequest, field string) (rollouts.Upgrade, error) {
	out := rollouts.Upgrade{UpgradeID: u.UpgradeID, Component: u.Component, Compatibility: u.Compatibility,
		Release: engine.Release{Version: u.Version, Args: u.Args}}
	if a := u.Artifact; a != nil {
		out.Release.URL, out.Release.SHA256, out.Release.Binary = a.URL, a.SHA256, a.Binary
	}
	for i, cc := range u.ConfigChanges {
		mode, err := parseMode(cc.Mode)
		if err != nil {
			return out, engine.Errorf(engine.EInvalid, "%sconfig_changes[%d].mode: %v", field, i, err)
		}
		out.ConfigChanges = append(out.ConfigChanges, engine.ConfigChange{Path: cc.Path, Template: cc.Template, Mode: mode})
	}
	return out, nil
}

func parseMode(s string) (uint32, error) {
	if s == "" {
		return 0, nil
	}
	if !octalMode.MatchString(s) {
		return 0, fmt.Errorf("must be octal permission bits as a string, such as \"0600\", got %q", s)
	}
	m, _ := strconv.ParseUint(s, 8, 32)
	return uint32(m), nil
}

// toPlan reads a plan request; a bad health_wait is named.
func toPlan(p RolloutPlanRequest) (rollouts.Plan, error) {
	out := rollouts.Plan{Strategy: p.Strategy, BatchSize: p.BatchSize, CanarySize: p.CanarySize,
		FailureThreshold: p.FailureThreshold, Gates: p.Gates, GateFailure: p.GateFailure}
	if p.HealthWait != "" {
		d, err := time.ParseDuration(p.HealthWait)
		if err != nil {
			return out, engine.Errorf(engine.EInvalid, "health_wait: must be a duration such as \"2m\" or \"90s\", got %q", p.HealthWait)
		}
		out.HealthWait = d
	}
	return out, nil
}

// toRolloutJSON is the rollout as the API answers it.
func toRolloutJSON(r *engine.Rollout) RolloutJSON {
	return RolloutJSON{
		ID: r.ID, GroupID: r.GroupID, ChainProfileID: r.ChainProfileID, Component: r.Component,
		TargetVersion: r.TargetVersion, Strategy: r.Strategy, BatchSize: r.BatchSize, CanarySize: r.CanarySize,
		FailureThreshold: r.FailureThreshold, Status: r.Status, CurrentBatch: r.CurrentBatch, Batches: r.Batches,
		Succeeded: r.Succeeded, Failed: r.Failed, ManifestHash: r.ManifestHash, Upgrade: toRolloutUpgradeJSON(r.Spec),
		Plan:    RolloutPlanJSON{HealthWait: r.Plan.HealthWait.String(), Gates: nonNil(r.Plan.Gates), GateFailure: r.Plan.GateFailure},
		Message: r.Message, Forced: r.Forced, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

func toRolloutUpgradeJSON(s engine.UpgradeSpec) RolloutUpgradeJSON {
	out := RolloutUpgradeJSON{UpgradeID: s.UpgradeID, Version: s.Release.Version, Args: s.Release.Args,
		Compatibility: s.Compatibility, TargetHeight: s.TargetHeight}
	if rel := s.Release; rel.URL != "" || rel.SHA256 != "" || rel.Binary != "" {
		out.Artifact = &RolloutArtifactJSON{URL: rel.URL, SHA256: rel.SHA256, Binary: rel.Binary}
	}
	for _, cc := range s.ConfigChanges {
		mode := ""
		if cc.Mode != 0 {
			mode = fmt.Sprintf("%04o", cc.Mode)
		}
		out.ConfigChanges = append(out.ConfigChanges, RolloutConfigChangeJSON{Path: cc.Path, Template: cc.Template, Mode: mode})
	}
	return out
}

// toRolloutViewJSON groups the rollout's nodes by batch, in batch order
// (the store lists them so).
func toRolloutViewJSON(v *rollouts.View) RolloutViewJSON {
	out := RolloutViewJSON{Rollout: toRolloutJSON(v.Rollout), Batches: []RolloutBatchJSON{}}
	for _, n := range v.Nodes {
		if last := len(out.Batches) - 1; last < 0 || out.Batches[last].Index != n.BatchIndex {
			out.Batches = append(out.Batches, RolloutBatchJSON{Index: n.BatchIndex})
		}
		b := &out.Batches[len(out.Batches)-1]
		b.Nodes = append(b.Nodes, RolloutNodeJSON{
			NodeID: n.NodeID, Status: n.Status, PreviousVersion: n.PreviousVersion, NewVersion: n.NewVersion,
			SwitchHeight: n.SwitchHeight, Error: n.Error, UpdatedAt: n.UpdatedAt,
		})
	}
	return out
}

func toRolloutGroupJSON(g *engine.RolloutGroup) RolloutGroupJSON {
	return RolloutGroupJSON{
		ID: g.ID, ChainProfileID: g.ChainProfileID, Components: nonNil(g.Components), RolloutIDs: nonNil(g.Rollouts),
		FailurePolicy: g.FailurePolicy, Status: g.Status, Current: g.Current, Skipped: nonNil(g.Skipped),
		Message: g.Message, CreatedBy: g.CreatedBy, CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt,
	}
}

func toRolloutGroupViewJSON(g *engine.RolloutGroup, ros []*engine.Rollout) RolloutGroupViewJSON {
	out := RolloutGroupViewJSON{Group: toRolloutGroupJSON(g), Rollouts: make([]RolloutJSON, 0, len(ros))}
	for _, r := range ros {
		out.Rollouts = append(out.Rollouts, toRolloutJSON(r))
	}
	return out
}
