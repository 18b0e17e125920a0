package engine

import "time"

// What each state counts as, for uptime. Uptime measures what the customer
// gets from the node over the time it exists:
//   - running and syncing are up: a syncing node serves, only not caught up
//     yet (after a start, a restore or a migration);
//   - provisioning is up within the grace period from the node's creation
//     (the setup the customer ordered), down after it, and down when a
//     failed node is provisioned again;
//   - degraded, failed and maintenance are down. Maintenance is planned
//     (a migration, say), but the node does not serve during it, and the
//     customer pays for a node that serves;
//   - terminating and terminated count as neither, like the time before
//     creation: the customer asked for the node to go, so the percentage is
//     over the time it was meant to run.
type uptimeClass int

const (
	countsNeither uptimeClass = iota
	countsUp
	countsDown
	countsUpInGrace // provisioning: up until the grace from creation ends
)

func uptimeClassOf(s NodeState) uptimeClass {
	switch s {
	case NodeRunning, NodeSyncing:
		return countsUp
	case NodeProvisioning:
		return countsUpInGrace
	case NodeTerminating, NodeTerminated:
		return countsNeither
	default: // degraded, failed, maintenance, and any state this code does not know
		return countsDown
	}
}

// NodeHistory is what a node's uptime is computed from: when it was created
// and its state log.
type NodeHistory struct {
	NodeID  string
	Created time.Time
	// Log is the node's state log from its creation, oldest first. A node
	// is provisioning until its first entry, unless that entry says from
	// what it moved.
	Log []*NodeStateChange
}

// Terminated returns when the node was terminated, if it was.
func (h NodeHistory) Terminated() (time.Time, bool) {
	if n := len(h.Log); n > 0 && h.Log[n-1].To == NodeTerminated {
		return h.Log[n-1].At, true
	}
	return time.Time{}, false
}

// Bucket computes the node's uptime during hour (a whole UTC hour) as of
// now, with grace the provisioning grace period. Time before the node was
// created, after now, or in a state that counts as neither is neither up
// nor down. The bucket is complete once the hour has ended; the current
// hour counts up to now.
func (h NodeHistory) Bucket(hour, now time.Time, grace time.Duration) *UptimeBucket {
	end := hour.Add(time.Hour)
	b := &UptimeBucket{NodeID: h.NodeID, Hour: hour, Complete: !end.After(now)}
	lo, hi := latest(hour, h.Created), earliest(end, now)
	graceEnd := h.Created.Add(grace)
	var up, down time.Duration
	for _, s := range h.spans() {
		from, to := latest(s.from, lo), earliest(s.to, hi)
		if !to.After(from) {
			continue
		}
		switch uptimeClassOf(s.state) {
		case countsUp:
			up += to.Sub(from)
		case countsDown:
			down += to.Sub(from)
		case countsUpInGrace:
			inGrace := max(0, earliest(to, graceEnd).Sub(from))
			up, down = up+inGrace, down+to.Sub(from)-inGrace
		}
	}
	b.UpSeconds, b.DownSeconds = wholeSeconds(up, down)
	return b
}

// stateSpan is a stretch of time [from, to) the node spent in one state.
type stateSpan struct {
	from, to time.Time
	state    NodeState
}

// forever ends the span of the current state.
var forever = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// spans cuts the node's life, from creation on, at each logged change.
// An entry stamped before the one preceding it (clocks of two writers)
// takes effect at the later time, so spans never overlap.
func (h NodeHistory) spans() []stateSpan {
	state := NodeProvisioning
	if len(h.Log) > 0 && h.Log[0].From != "" {
		state = h.Log[0].From
	}
	spans := make([]stateSpan, 0, len(h.Log)+1)
	from := h.Created
	for _, c := range h.Log {
		if c.At.After(from) {
			spans = append(spans, stateSpan{from: from, to: c.At, state: state})
			from = c.At
		}
		state = c.To
	}
	return append(spans, stateSpan{from: from, to: forever, state: state})
}

// wholeSeconds rounds both durations to seconds so that up+down is their
// rounded sum: an hour the node spent entirely is 3600 seconds exactly.
func wholeSeconds(up, down time.Duration) (int64, int64) {
	total, u := (up + down).Round(time.Second), up.Round(time.Second)
	u = min(u, total)
	return int64(u / time.Second), int64((total - u) / time.Second)
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
