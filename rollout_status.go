package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/web"
)

// rolloutSnapshot is a rollout or a group as `rollout status` shows it.
type rolloutSnapshot struct {
	view     any // web.RolloutViewJSON or web.RolloutGroupViewJSON
	text     string
	finished bool
}

// render is the snapshot as printed: text, or one line of JSON.
func (s rolloutSnapshot) render(asJSON bool) string {
	if !asJSON {
		return s.text
	}
	b, _ := json.Marshal(s.view)
	return string(b) + "\n"
}

func rolloutStatus(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	c := newOnlineCommand("rollout status", env, stderr)
	watch := c.fs.Bool("watch", false, "redraw as it changes, until it is finished")
	interval := c.fs.Duration("interval", 2*time.Second, "how often --watch asks the appliance")
	id, err := parseAround(c.fs, args)
	if err != nil {
		return errUsage
	}
	switch {
	case id == "":
		return configErrorf("rollout status: want exactly one rollout or rollout group ID")
	case *interval < 100*time.Millisecond:
		return configErrorf("rollout status: --interval must be at least 100ms, got %s", *interval)
	}
	if err := c.checkOutput(); err != nil {
		return err
	}
	fetch := func(ctx context.Context) (rolloutSnapshot, error) { return fetchRolloutSnapshot(ctx, c, id) }
	if !*watch {
		s, err := fetch(ctx)
		if err != nil {
			return err
		}
		if c.json() {
			return printJSON(stdout, s.view)
		}
		_, err = io.WriteString(stdout, s.text)
		return err
	}
	return watchRollout(ctx, fetch, *interval, c.json(), stdout)
}

// watchRollout prints the snapshot each time it changes, until it is
// finished or the operator interrupts. On a terminal the text view is
// redrawn in place; elsewhere each change follows the last.
func watchRollout(ctx context.Context, fetch func(context.Context) (rolloutSnapshot, error), interval time.Duration, asJSON bool, w io.Writer) error {
	redraw := !asJSON && isTerminal(w)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	last := ""
	for {
		s, err := fetch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if out := s.render(asJSON); out != last {
			if redraw {
				io.WriteString(w, "\x1b[H\x1b[2J")
			} else if last != "" && !asJSON {
				io.WriteString(w, "\n")
			}
			io.WriteString(w, out)
			last = out
		}
		if s.finished {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// isTerminal reports whether w is a terminal, where redrawing in place
// makes a live view.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func fetchRolloutSnapshot(ctx context.Context, c *onlineCommand, id string) (rolloutSnapshot, error) {
	if isGroupID(id) {
		var v web.RolloutGroupViewJSON
		if err := c.call(ctx, http.MethodGet, rolloutPath(id), nil, &v); err != nil {
			return rolloutSnapshot{}, err
		}
		return rolloutSnapshot{view: v, text: describeRolloutGroup(v), finished: v.Group.Status.Finished()}, nil
	}
	var v web.RolloutViewJSON
	if err := c.call(ctx, http.MethodGet, rolloutPath(id), nil, &v); err != nil {
		return rolloutSnapshot{}, err
	}
	return rolloutSnapshot{view: v, text: describeRollout(v), finished: v.Rollout.Status.Finished()}, nil
}

// describeRollout is the rollout, then a table of its nodes batch by batch.
func describeRollout(v web.RolloutViewJSON) string {
	ro := v.Rollout
	var b bytes.Buffer
	fmt.Fprintf(&b, "rollout %s: %s to %s on %s\n", ro.ID, ro.Component, ro.TargetVersion, ro.ChainProfileID)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  status:\t%s\n", rolloutProgress(ro))
	if ro.Message != "" {
		fmt.Fprintf(tw, "  message:\t%s\n", terminalSafe(ro.Message))
	}
	fmt.Fprintf(tw, "  plan:\t%s\n", describePlan(ro))
	if len(ro.Plan.Gates) > 0 {
		fmt.Fprintf(tw, "  gates:\t%s (failing: %s)\n", terminalSafe(strings.Join(ro.Plan.Gates, "; ")), ro.Plan.GateFailure)
	}
	fmt.Fprintf(tw, "  upgrade:\t%s\n", describeUpgrade(ro))
	if ro.GroupID != "" {
		fmt.Fprintf(tw, "  group:\t%s\n", ro.GroupID)
	}
	fmt.Fprintf(tw, "  created:\t%s by %s, updated %s\n", ro.CreatedAt.Format(time.RFC3339), orDash(ro.CreatedBy), ro.UpdatedAt.Format(time.RFC3339))
	tw.Flush()
	if len(v.Batches) == 0 {
		b.WriteString("\nno nodes yet: the targets are resolved when the rollout starts\n")
		return b.String()
	}
	b.WriteString("\n")
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BATCH\tNODE\tSTATUS\tFROM\tTO\tSWITCHED AT\tERROR")
	for _, batch := range v.Batches {
		for _, n := range batch.Nodes {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", batch.Index, n.NodeID, n.Status, orDash(n.PreviousVersion),
				orDash(n.NewVersion), heightOrDash(n.SwitchHeight), terminalSafe(n.Error))
		}
	}
	tw.Flush()
	return b.String()
}

// rolloutProgress is the status with how far the rollout got.
func rolloutProgress(ro web.RolloutJSON) string {
	s := string(ro.Status)
	if ro.Batches > 0 {
		s += fmt.Sprintf(", batch %d of %d", min(ro.CurrentBatch+1, ro.Batches), ro.Batches)
	}
	s += fmt.Sprintf(", %d succeeded, %d failed", ro.Succeeded, ro.Failed)
	if ro.Forced {
		s += " (forced past the failure threshold)"
	}
	return s
}

// describePlan says how the rollout goes about it.
func describePlan(ro web.RolloutJSON) string {
	s := fmt.Sprintf("%s in batches of %d", ro.Strategy, ro.BatchSize)
	if ro.Strategy == engine.StrategyCanary {
		s += fmt.Sprintf(" after a canary of %d", ro.CanarySize)
	}
	return s + fmt.Sprintf(", stops at %d failed, health wait %s", ro.FailureThreshold, ro.Plan.HealthWait)
}

// describeUpgrade says what is installed and where it comes from.
func describeUpgrade(ro web.RolloutJSON) string {
	u := ro.Upgrade
	s := "by hand"
	if u.UpgradeID != "" {
		s = "manifest " + u.UpgradeID
	}
	s += ", " + u.Compatibility
	if u.Artifact != nil && u.Artifact.URL != "" {
		s += ", from " + u.Artifact.URL
	}
	if u.TargetHeight > 0 {
		s += fmt.Sprintf(", switches at height %d", u.TargetHeight)
	}
	if len(u.ConfigChanges) > 0 {
		var paths []string
		for _, cc := range u.ConfigChanges {
			paths = append(paths, cc.Path)
		}
		s += ", writes " + strings.Join(paths, ", ")
	}
	return terminalSafe(s)
}

// describeRolloutGroup is the group, then a table of its rollouts.
func describeRolloutGroup(v web.RolloutGroupViewJSON) string {
	g := v.Group
	var b bytes.Buffer
	fmt.Fprintf(&b, "rollout group %s on %s\n", g.ID, g.ChainProfileID)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	progress := string(g.Status)
	if len(g.Components) > 0 && !g.Status.Finished() {
		progress += fmt.Sprintf(", component %d of %d", min(g.Current+1, len(g.Components)), len(g.Components))
	}
	fmt.Fprintf(tw, "  status:\t%s\n", progress)
	if g.Message != "" {
		fmt.Fprintf(tw, "  message:\t%s\n", terminalSafe(g.Message))
	}
	fmt.Fprintf(tw, "  on failure:\t%s\n", g.FailurePolicy)
	if len(g.Skipped) > 0 {
		fmt.Fprintf(tw, "  skipped:\t%s\n", strings.Join(g.Skipped, ", "))
	}
	fmt.Fprintf(tw, "  created:\t%s by %s, updated %s\n", g.CreatedAt.Format(time.RFC3339), orDash(g.CreatedBy), g.UpdatedAt.Format(time.RFC3339))
	tw.Flush()
	b.WriteString("\n")
	writeRolloutTable(&b, v.Rollouts)
	return b.String()
}

// writeRolloutTable lists rollouts one a line.
func writeRolloutTable(w io.Writer, ros []web.RolloutJSON) {
	if len(ros) == 0 {
		fmt.Fprintln(w, "no rollouts")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCHAIN\tCOMPONENT\tVERSION\tSTRATEGY\tSTATUS\tBATCH\tOK\tFAILED\tCREATED")
	for _, ro := range ros {
		batch := "-"
		if ro.Batches > 0 {
			batch = fmt.Sprintf("%d/%d", min(ro.CurrentBatch+1, ro.Batches), ro.Batches)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", ro.ID, ro.ChainProfileID, ro.Component, ro.TargetVersion,
			ro.Strategy, ro.Status, batch, ro.Succeeded, ro.Failed, ro.CreatedAt.Format(time.RFC3339))
	}
	tw.Flush()
}

// writeGroupTable lists rollout groups one a line.
func writeGroupTable(w io.Writer, gs []web.RolloutGroupJSON) {
	if len(gs) == 0 {
		fmt.Fprintln(w, "no rollout groups")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCHAIN\tCOMPONENTS\tSTATUS\tON FAILURE\tCREATED")
	for _, g := range gs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", g.ID, g.ChainProfileID, strings.Join(g.Components, ","), g.Status,
			g.FailurePolicy, g.CreatedAt.Format(time.RFC3339))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func heightOrDash(h int64) string {
	if h == 0 {
		return "-"
	}
	return fmt.Sprint(h)
}
