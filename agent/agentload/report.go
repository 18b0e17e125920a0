package agentload

import (
	"fmt"
	"io"
	"time"
)

// WriteMarkdown writes the report as tables.
func (r *Report) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "%d agents, each on its own mutual-TLS connection; enrolled and connected in %s; open files limit %d; load average before %s.\n\n",
		r.Agents, r.Enrolment.Round(time.Millisecond), r.OpenFiles, r.LoadAverage)
	fmt.Fprintln(w, "| phase | interval | target | achieved | p50 | p90 | p99 | max | generator lag p99 | errors | gateway CPU | agents' CPU | machine busy (others) | gateway RSS, goroutines | agents' RSS | load avg |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	writePhase(w, r.Steady)
	for _, p := range r.Steps {
		writePhase(w, p)
	}
	if r.Sustained > 0 {
		fmt.Fprintf(w, "\nHighest rate sustained (p99 < %s, no errors, ≥ 95%% of the target achieved): %.0f heartbeats/s.\n", r.Goal, r.Sustained)
	} else {
		fmt.Fprintf(w, "\nNo step met the goal (p99 < %s, no errors, ≥ 95%% of the target achieved).\n", r.Goal)
	}
	if len(r.Storms) > 0 {
		fmt.Fprintln(w, "\n| restart | stopped in | started in | rejoined | last rejoined after | peak rejoins | failed heartbeats | p50 / p99 / max after the restart | gateway CPU after the restart | agents' CPU | load avg |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
		for _, s := range r.Storms {
			writeStorm(w, s, r.Agents)
		}
	}
	fmt.Fprintf(w, "\nThe gateway logged %d lines.\n", r.GatewayLogLines)
	if r.GatewayLogTail != "" {
		fmt.Fprintf(w, "Last lines:\n\n%s\n", r.GatewayLogTail)
	}
}

func writePhase(w io.Writer, p Phase) {
	fmt.Fprintf(w, "| %s | %s | %.0f/s | %.0f/s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f%% (%.0f%%) | %.0f MB, %d | %.0f MB | %s |\n",
		p.Name, p.Interval.Round(time.Millisecond), p.Target, p.Rate, ms(p.P50), ms(p.P90), ms(p.P99), ms(p.Max), ms(p.LagP99),
		p.errorText(), cpuCell(p.Gateway), cpuCell(p.Generator), 100*p.MachineBusy, 100*p.OthersBusy, p.GatewayRSSMB, p.GatewayGoroutines, p.GeneratorRSSMB, p.LoadAverage)
}

func writeStorm(w io.Writer, s Storm, agents int) {
	a := s.AfterRestart
	fmt.Fprintf(w, "| down %s | %s | %s | %d/%d | %s | %d/s | %s | %s / %s / %s | %s | %s | %s |\n",
		s.Down, s.stopped(), s.Start.Round(time.Millisecond), s.Rejoin.Agents, agents, s.Rejoin.Last.Round(time.Millisecond),
		s.Rejoin.PeakPerSecond, s.errorText(), ms(a.P50), ms(a.P99), ms(a.Max), cpuCell(s.Gateway), cpuCell(s.Generator), s.LoadAverage)
}

func cpuCell(c CPUShare) string {
	return fmt.Sprintf("%.0f%% core (%.0f%% machine)", 100*c.Core, 100*c.Machine)
}
