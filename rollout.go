package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/web"
)

const rolloutUsage = `usage: hoodcloud rollout COMMAND [flags]

Upgrade rollouts on a running appliance (admin token in HOODCLOUD_ADMIN_TOKEN).
Every command takes --api-url URL and --output text|json.

  create --chain ID --upgrade-id U [PLAN]
        roll out the upgrade the chain's manifest U describes
  create --chain ID --component C --version V --compatibility compatible|breaking
         [--artifact-url URL --artifact-sha256 HEX [--artifact-binary PATH]] [PLAN]
        roll out a release given by hand
  create --group --chain ID --upgrade-id U1 --upgrade-id U2 ... [--failure-policy P] [PLAN]
        roll out several components, in the chain profile's order; P is
        rollback_all (default), partial_ok or manual
    PLAN: [--strategy rolling|canary|all_at_once|at_height] [--batch-size N]
          [--canary-size N] [--failure-threshold N] [--health-wait D]
          [--target-height H] [--gate CEL]... [--gate-failure pause|rollback]
  list [--groups] [--limit N] [--before ID]
        rollouts (or groups), newest first
  status [--watch] [--interval D] ID
        a rollout and its batches, or a group (rg_…) and its rollouts;
        --watch redraws it as it changes until it is finished
  pause ID | resume ID | cancel ID | rollback ID
        steer a rollout, or a group (rg_…)
  approve ID      a breaking upgrade's canary passed: go on with the rest
  force ID        carry on past the failure threshold
  skip [--component C] GROUP_ID
        leave a component out of a group (default: the one in flight)
`

// rollout runs the rollout commands of an operator.
func rollout(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, rolloutUsage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "create":
		return rolloutCreate(ctx, rest, env, stdout, stderr)
	case "list":
		return rolloutList(ctx, rest, env, stdout, stderr)
	case "status":
		return rolloutStatus(ctx, rest, env, stdout, stderr)
	}
	if sc, ok := rolloutSignalCommands[cmd]; ok {
		return rolloutSignal(ctx, cmd, sc, rest, env, stdout, stderr)
	}
	return configErrorf("rollout: unknown command %q\n%s", cmd, rolloutUsage)
}

// onlineCommand is a command against the running appliance: its flags
// and how it calls the API.
type onlineCommand struct {
	name   string
	fs     *flag.FlagSet
	apiURL *string
	output *string
	env    func(string) string
}

func newOnlineCommand(name string, env func(string) string, stderr io.Writer) *onlineCommand {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &onlineCommand{name: name, fs: fs, env: env,
		apiURL: fs.String("api-url", defaultAPIURL, "the appliance's HTTP address"), output: outputFlag(fs)}
}

// checkOutput refuses an --output other than text or json.
func (c *onlineCommand) checkOutput() error {
	return checkOneOf("output", *c.output, "text", "json")
}

func (c *onlineCommand) json() bool { return *c.output == "json" }

// call sends body (none when nil) as JSON and decodes the answer into out.
func (c *onlineCommand) call(ctx context.Context, method, path string, body, out any) error {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
	}
	return adminRequest(ctx, c.env, c.name, method, *c.apiURL, path, raw, out)
}

// repeatedFlag is a flag given once per value; unlike stringList it never
// splits a value, as a CEL gate may hold commas.
type repeatedFlag []string

func (l *repeatedFlag) String() string     { return strings.Join(*l, " ") }
func (l *repeatedFlag) Set(v string) error { *l = append(*l, v); return nil }

// rolloutCreateFlags are the flags of rollout create.
type rolloutCreateFlags struct {
	chain, failurePolicy                  string
	group                                 bool
	upgradeIDs, gates                     repeatedFlag
	component, version, compatibility     string
	artifactURL, artifactSHA256, artifact string
	plan                                  web.RolloutPlanRequest
	healthWait                            time.Duration
}

func (f *rolloutCreateFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.chain, "chain", "", "the chain profile whose nodes are upgraded (required)")
	fs.BoolVar(&f.group, "group", false, "create a group: one rollout per --upgrade-id, in the profile's component order")
	fs.StringVar(&f.failurePolicy, "failure-policy", "", "with --group, when a component fails: rollback_all (default), partial_ok or manual")
	fs.Var(&f.upgradeIDs, "upgrade-id", "the chain's upgrade manifest to roll out (repeat with --group)")
	fs.StringVar(&f.component, "component", "", "manual: the component to upgrade")
	fs.StringVar(&f.version, "version", "", "manual: the release's version")
	fs.StringVar(&f.compatibility, "compatibility", "", "manual: compatible or breaking (reads the previous release's chain data or not)")
	fs.StringVar(&f.artifactURL, "artifact-url", "", "manual: where the release's artifact is downloaded from")
	fs.StringVar(&f.artifactSHA256, "artifact-sha256", "", "manual: the artifact's sha256, lowercase hex")
	fs.StringVar(&f.artifact, "artifact-binary", "", "manual: the program's path inside a .tar.gz artifact")
	fs.StringVar(&f.plan.Strategy, "strategy", "", "rolling (default), canary, all_at_once or at_height")
	fs.IntVar(&f.plan.BatchSize, "batch-size", 0, "nodes per batch (default 1)")
	fs.IntVar(&f.plan.CanarySize, "canary-size", 0, "nodes of a canary's first batch (default 1)")
	fs.IntVar(&f.plan.FailureThreshold, "failure-threshold", 0, "failed nodes that stop the rollout (default 1)")
	fs.DurationVar(&f.healthWait, "health-wait", 0, "how long each node's health is validated after its upgrade, e.g. 2m (default 5m)")
	fs.Int64Var(&f.plan.TargetHeight, "target-height", 0, "the chain height the at_height strategy switches at")
	fs.Var(&f.gates, "gate", "a CEL condition each upgraded node must meet after every batch (repeatable)")
	fs.StringVar(&f.plan.GateFailure, "gate-failure", "", "what a failing gate does: pause (default) or rollback")
}

// manualFlags names the manual-mode flags set on the command line.
func manualFlags(fs *flag.FlagSet) []string {
	var out []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "component", "version", "compatibility", "artifact-url", "artifact-sha256", "artifact-binary":
			out = append(out, "--"+f.Name)
		}
	})
	return out
}

// check refuses flags that do not make one rollout or one group.
func (f *rolloutCreateFlags) check(fs *flag.FlagSet) error {
	manual := manualFlags(fs)
	switch {
	case f.chain == "":
		return configErrorf("rollout create: --chain is required")
	case f.plan.BatchSize < 0 || f.plan.CanarySize < 0 || f.plan.FailureThreshold < 0 || f.plan.TargetHeight < 0 || f.healthWait < 0:
		return configErrorf("rollout create: --batch-size, --canary-size, --failure-threshold, --target-height and --health-wait must not be negative")
	case f.group && len(f.upgradeIDs) == 0:
		return configErrorf("rollout create --group: give --upgrade-id once per component")
	case f.group && len(manual) > 0:
		return configErrorf("rollout create --group: components come from --upgrade-id manifests, not %s (create a manual upgrade on its own)", strings.Join(manual, ", "))
	case f.group:
		return nil
	case f.failurePolicy != "":
		return configErrorf("rollout create: --failure-policy is for --group")
	case len(f.upgradeIDs) > 1:
		return configErrorf("rollout create: one --upgrade-id, or several with --group")
	case len(f.upgradeIDs) == 1 && len(manual) > 0:
		return configErrorf("rollout create: the manifest of --upgrade-id gives the release: leave out %s", strings.Join(manual, ", "))
	case len(f.upgradeIDs) == 0 && len(manual) == 0:
		return configErrorf("rollout create: give --upgrade-id, or --component, --version and --compatibility")
	case len(f.upgradeIDs) == 0 && (f.component == "" || f.version == "" || f.compatibility == ""):
		return configErrorf("rollout create: a manual upgrade needs --component, --version and --compatibility")
	}
	return nil
}

func (f *rolloutCreateFlags) upgrade() web.UpgradeRequest {
	if len(f.upgradeIDs) == 1 {
		return web.UpgradeRequest{UpgradeID: f.upgradeIDs[0]}
	}
	u := web.UpgradeRequest{Component: f.component, Version: f.version, Compatibility: f.compatibility}
	if f.artifactURL != "" || f.artifactSHA256 != "" || f.artifact != "" {
		u.Artifact = &web.RolloutArtifactJSON{URL: f.artifactURL, SHA256: f.artifactSHA256, Binary: f.artifact}
	}
	return u
}

func rolloutCreate(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	c := newOnlineCommand("rollout create", env, stderr)
	var f rolloutCreateFlags
	f.bind(c.fs)
	if err := c.fs.Parse(args); err != nil {
		return errUsage
	}
	if c.fs.NArg() != 0 {
		return configErrorf("rollout create: takes flags only, not %q", c.fs.Arg(0))
	}
	if err := f.check(c.fs); err != nil {
		return err
	}
	if err := c.checkOutput(); err != nil {
		return err
	}
	plan := f.plan
	if plan.Gates = f.gates; f.healthWait != 0 {
		plan.HealthWait = f.healthWait.String()
	}
	if f.group {
		return createRolloutGroup(ctx, c, &f, plan, stdout)
	}
	var ro web.RolloutJSON
	if err := c.call(ctx, http.MethodPost, "/api/v1/rollouts", web.NewCreateRolloutRequest(f.chain, f.upgrade(), plan), &ro); err != nil {
		return err
	}
	if c.json() {
		return printJSON(stdout, ro)
	}
	fmt.Fprintf(stdout, "rollout %s created: %s to %s on %s, %s\nfollow it: hoodcloud rollout status --watch %s\n",
		ro.ID, ro.Component, ro.TargetVersion, ro.ChainProfileID, describePlan(ro), ro.ID)
	return nil
}

func createRolloutGroup(ctx context.Context, c *onlineCommand, f *rolloutCreateFlags, plan web.RolloutPlanRequest, stdout io.Writer) error {
	var us []web.UpgradeRequest
	for _, id := range f.upgradeIDs {
		us = append(us, web.UpgradeRequest{UpgradeID: id})
	}
	var v web.RolloutGroupViewJSON
	body := web.NewCreateRolloutGroupRequest(f.chain, f.failurePolicy, us, plan)
	if err := c.call(ctx, http.MethodPost, "/api/v1/rollout-groups", body, &v); err != nil {
		return err
	}
	if c.json() {
		return printJSON(stdout, v)
	}
	var steps []string
	for _, ro := range v.Rollouts {
		steps = append(steps, ro.Component+" to "+ro.TargetVersion)
	}
	fmt.Fprintf(stdout, "rollout group %s created on %s: %s (failure policy %s)\nfollow it: hoodcloud rollout status --watch %s\n",
		v.Group.ID, v.Group.ChainProfileID, strings.Join(steps, ", then "), v.Group.FailurePolicy, v.Group.ID)
	return nil
}

func rolloutList(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	c := newOnlineCommand("rollout list", env, stderr)
	groups := c.fs.Bool("groups", false, "list rollout groups instead of rollouts")
	limit := c.fs.Int("limit", 0, "at most this many (1 to 200; default 50)")
	before := c.fs.String("before", "", "the page after this id (the next cursor of the previous page)")
	if err := c.fs.Parse(args); err != nil {
		return errUsage
	}
	if c.fs.NArg() != 0 {
		return configErrorf("rollout list: takes flags only, not %q", c.fs.Arg(0))
	}
	if err := c.checkOutput(); err != nil {
		return err
	}
	q := url.Values{}
	if *limit != 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	if *before != "" {
		q.Set("before", *before)
	}
	if *groups {
		return listRolloutGroups(ctx, c, q, stdout)
	}
	var page web.RolloutsJSON
	if err := c.call(ctx, http.MethodGet, withQuery("/api/v1/rollouts", q), nil, &page); err != nil {
		return err
	}
	if c.json() {
		return printJSON(stdout, page)
	}
	writeRolloutTable(stdout, page.Rollouts)
	printNextPage(stdout, "rollout list", page.Next)
	return nil
}

func listRolloutGroups(ctx context.Context, c *onlineCommand, q url.Values, stdout io.Writer) error {
	var page web.RolloutGroupsJSON
	if err := c.call(ctx, http.MethodGet, withQuery("/api/v1/rollout-groups", q), nil, &page); err != nil {
		return err
	}
	if c.json() {
		return printJSON(stdout, page)
	}
	writeGroupTable(stdout, page.Groups)
	printNextPage(stdout, "rollout list --groups", page.Next)
	return nil
}

func withQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

func printNextPage(w io.Writer, command, next string) {
	if next != "" {
		fmt.Fprintf(w, "more: hoodcloud %s --before %s\n", command, next)
	}
}

// isGroupID tells a group's id from a rollout's by the prefix the engine
// gives it.
func isGroupID(id string) bool { return strings.HasPrefix(id, "rg_") }

// rolloutPath is the API path of a rollout or group.
func rolloutPath(id string) string {
	if isGroupID(id) {
		return "/api/v1/rollout-groups/" + url.PathEscape(id)
	}
	return "/api/v1/rollouts/" + url.PathEscape(id)
}

// rolloutSignalCommand is a command that sends a signal: its name in the
// API and what takes it.
type rolloutSignalCommand struct {
	signal          string
	rollout, group  bool
	whatItDoes      string
	componentOption bool
}

var rolloutSignalCommands = map[string]rolloutSignalCommand{
	"pause":    {signal: "pause", rollout: true, group: true, whatItDoes: "pauses after the batch in flight"},
	"resume":   {signal: "resume", rollout: true, group: true, whatItDoes: "goes on"},
	"cancel":   {signal: "cancel", rollout: true, group: true, whatItDoes: "stops, leaving upgraded nodes as they are"},
	"rollback": {signal: "rollback", rollout: true, group: true, whatItDoes: "puts upgraded nodes back on their previous release"},
	"approve":  {signal: "approve-canary", rollout: true, whatItDoes: "goes on past its canary"},
	"force":    {signal: "force", rollout: true, whatItDoes: "carries on past its failure threshold"},
	"skip":     {signal: "skip", group: true, whatItDoes: "leaves the component out", componentOption: true},
}

func rolloutSignal(ctx context.Context, cmd string, sc rolloutSignalCommand, args []string, env func(string) string, stdout, stderr io.Writer) error {
	c := newOnlineCommand("rollout "+cmd, env, stderr)
	var component *string
	if sc.componentOption {
		component = c.fs.String("component", "", "the component to skip (default: the one in flight)")
	}
	id, err := parseAround(c.fs, args)
	if err != nil {
		return errUsage
	}
	if err := checkSignalTarget(cmd, sc, id); err != nil {
		return err
	}
	if err := c.checkOutput(); err != nil {
		return err
	}
	var body any
	if component != nil && *component != "" {
		body = web.SkipRequest{Component: *component}
	}
	path := rolloutPath(id) + "/" + sc.signal
	var was struct {
		Status engine.RolloutStatus `json:"status"`
	}
	var raw json.RawMessage
	if err := c.call(ctx, http.MethodPost, path, body, &raw); err != nil {
		return err
	}
	if c.json() {
		return printJSON(stdout, raw)
	}
	json.Unmarshal(raw, &was)
	what := "rollout"
	if isGroupID(id) {
		what = "rollout group"
	}
	fmt.Fprintf(stdout, "%s %s: %s sent (it was %s); it %s\n", what, id, cmd, was.Status, sc.whatItDoes)
	return nil
}

// checkSignalTarget refuses a missing id and one of the wrong kind.
func checkSignalTarget(cmd string, sc rolloutSignalCommand, id string) error {
	switch {
	case id == "" && sc.group && !sc.rollout:
		return configErrorf("rollout %s: want exactly one rollout group ID", cmd)
	case id == "":
		return configErrorf("rollout %s: want exactly one rollout or rollout group ID", cmd)
	case isGroupID(id) && !sc.group:
		return configErrorf("rollout %s: %s is a rollout group; %s is for rollouts", cmd, id, cmd)
	case !isGroupID(id) && !sc.rollout:
		return configErrorf("rollout %s: %s is no rollout group ID (rg_…); %s is for groups", cmd, id, cmd)
	}
	return nil
}
