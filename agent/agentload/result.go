package agentload

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Result summarises the heartbeats due in a window. Latencies are of the
// heartbeats that succeeded, from when each was due until its reply.
type Result struct {
	Agents     int
	Interval   time.Duration // each agent's
	Target     float64       // heartbeats due per second: Agents / Interval
	Elapsed    time.Duration // the window
	Heartbeats int           // that succeeded
	Rate       float64       // succeeded per second of the window
	Errors     int
	ErrorCodes map[string]int // failed heartbeats by gRPC code

	P50, P90, P99, Max time.Duration
	// LagP99 is how late the load generator itself sent (due until sent):
	// when it approaches P99, the generator, not the gateway, is the limit.
	LagP99 time.Duration
	// Connecting counts the heartbeats sent while the agent's connection
	// was not ready, which wait for it to (re)connect; ConnectingP99 is
	// their p99.
	Connecting    int
	ConnectingP99 time.Duration
}

func summarise(window []sample, agents int, interval, elapsed time.Duration) Result {
	r := Result{Agents: agents, Interval: interval, Elapsed: elapsed, ErrorCodes: map[string]int{}}
	if interval > 0 {
		r.Target = float64(agents) / interval.Seconds()
	}
	var lat, lag, connecting []time.Duration
	for _, s := range window {
		lag = append(lag, s.lag)
		if s.code != "" {
			r.Errors++
			r.ErrorCodes[s.code]++
			continue
		}
		lat = append(lat, s.latency)
		if s.connect {
			connecting = append(connecting, s.latency)
		}
	}
	r.Connecting = len(connecting)
	slices.Sort(connecting)
	r.ConnectingP99 = percentile(connecting, 99)
	r.Heartbeats = len(lat)
	if elapsed > 0 {
		r.Rate = float64(r.Heartbeats) / elapsed.Seconds()
	}
	slices.Sort(lat)
	slices.Sort(lag)
	r.P50, r.P90, r.P99 = percentile(lat, 50), percentile(lat, 90), percentile(lat, 99)
	r.LagP99 = percentile(lag, 99)
	if len(lat) > 0 {
		r.Max = lat[len(lat)-1]
	}
	return r
}

// percentile is the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (len(sorted)*p + 99) / 100 // ceil(n·p/100)
	return sorted[max(rank, 1)-1]
}

// Meets reports whether the window ran at the target rate (95% of it
// achieved), without errors and with p99 under goal.
func (r Result) Meets(goal time.Duration) bool {
	return r.Errors == 0 && r.Heartbeats > 0 && r.P99 < goal && r.Rate >= 0.95*r.Target
}

func (r Result) String() string {
	return fmt.Sprintf("%d agents every %s (target %.0f/s): %d heartbeats, %.0f/s, p50 %s p90 %s p99 %s max %s, generator lag p99 %s, %d while connecting (p99 %s), %s",
		r.Agents, r.Interval.Round(time.Millisecond), r.Target, r.Heartbeats, r.Rate,
		ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), ms(r.LagP99), r.Connecting, ms(r.ConnectingP99), r.errorText())
}

func (r Result) errorText() string {
	if r.Errors == 0 {
		return "0 errors"
	}
	var parts []string
	for _, code := range slices.Sorted(maps.Keys(r.ErrorCodes)) {
		parts = append(parts, fmt.Sprintf("%s %d", code, r.ErrorCodes[code]))
	}
	return fmt.Sprintf("%d errors (%s)", r.Errors, strings.Join(parts, ", "))
}

// ms prints a latency in milliseconds with two decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
