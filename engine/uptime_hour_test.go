package engine_test

import (
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// uHour is the hour every case computes: 10:00 to 11:00 UTC.
var uHour = time.Date(2031, 5, 4, 10, 0, 0, 0, time.UTC)

// at is a time relative to uHour, e.g. uAt(20*time.Minute) is 10:20.
func uAt(d time.Duration) time.Time { return uHour.Add(d) }

// change is one state log entry at d from uHour.
func uChange(d time.Duration, from, to engine.NodeState) *engine.NodeStateChange {
	return &engine.NodeStateChange{NodeID: "node_1", From: from, To: to, At: uAt(d)}
}

// created is a node's first log entry: created in state at d from uHour.
func uCreated(d time.Duration, state engine.NodeState) *engine.NodeStateChange {
	return uChange(d, "", state)
}

const (
	uMin   = time.Minute
	uGrace = 10 * time.Minute
)

func TestUptimeBucketOfOneHour(t *testing.T) {
	endOfHour := uAt(time.Hour)
	long := -48 * time.Hour // created long before the hour
	cases := []struct {
		name     string
		created  time.Duration
		log      []*engine.NodeStateChange
		now      time.Time
		up, down int64
		complete bool
	}{
		{name: "running the whole hour", created: long,
			log: []*engine.NodeStateChange{uCreated(long, engine.NodeRunning)},
			now: endOfHour, up: 3600, complete: true},
		{name: "degraded at :20 and back at :35 is down for the quarter between", created: long,
			log: []*engine.NodeStateChange{
				uCreated(long, engine.NodeRunning),
				uChange(20*uMin, engine.NodeRunning, engine.NodeDegraded),
				uChange(35*uMin, engine.NodeDegraded, engine.NodeRunning),
			},
			now: endOfHour, up: 2700, down: 900, complete: true},
		{name: "a state entered hours before carries through the hour without entries", created: long,
			log: []*engine.NodeStateChange{
				uCreated(long, engine.NodeRunning),
				uChange(-3*time.Hour, engine.NodeRunning, engine.NodeDegraded),
			},
			now: uAt(5 * time.Hour), down: 3600, complete: true},
		{name: "syncing counts as up, maintenance and failed as down", created: long,
			log: []*engine.NodeStateChange{
				uCreated(long, engine.NodeSyncing),
				uChange(10*uMin, engine.NodeSyncing, engine.NodeMaintenance),
				uChange(25*uMin, engine.NodeMaintenance, engine.NodeFailed),
				uChange(30*uMin, engine.NodeFailed, engine.NodeMaintenance),
				uChange(40*uMin, engine.NodeMaintenance, engine.NodeSyncing),
			},
			now: endOfHour, up: 1800, down: 1800, complete: true},
		{name: "created mid-hour counts only the time it existed", created: 30 * uMin,
			log: []*engine.NodeStateChange{
				uCreated(30*uMin, engine.NodeProvisioning),
				uChange(33*uMin, engine.NodeProvisioning, engine.NodeRunning),
			},
			now: endOfHour, up: 1800, complete: true},
		{name: "provisioning within the grace counts as up, after it as down", created: 0,
			log: []*engine.NodeStateChange{
				uCreated(0, engine.NodeProvisioning),
				uChange(25*uMin, engine.NodeProvisioning, engine.NodeRunning),
			},
			now: endOfHour, up: 10*60 + 35*60, down: 15 * 60, complete: true},
		{name: "the grace runs from creation across the hour boundary", created: -5 * uMin,
			log: []*engine.NodeStateChange{
				uCreated(-5*uMin, engine.NodeProvisioning),
				uChange(30*uMin, engine.NodeProvisioning, engine.NodeRunning),
			},
			now: endOfHour, up: 5*60 + 30*60, down: 25 * 60, complete: true},
		{name: "provisioning again after a failure gets no grace", created: long,
			log: []*engine.NodeStateChange{
				uCreated(long, engine.NodeRunning),
				uChange(10*uMin, engine.NodeRunning, engine.NodeFailed),
				uChange(20*uMin, engine.NodeFailed, engine.NodeProvisioning),
				uChange(50*uMin, engine.NodeProvisioning, engine.NodeRunning),
			},
			now: endOfHour, up: 1200, down: 2400, complete: true},
		{name: "terminated mid-hour counts up to the termination request", created: long,
			log: []*engine.NodeStateChange{
				uCreated(long, engine.NodeRunning),
				uChange(40*uMin, engine.NodeRunning, engine.NodeTerminating),
				uChange(45*uMin, engine.NodeTerminating, engine.NodeTerminated),
			},
			now: uAt(3 * time.Hour), up: 2400, complete: true},
		{name: "an hour after termination counts nothing", created: long,
			log: []*engine.NodeStateChange{
				uCreated(long, engine.NodeRunning),
				uChange(-90*uMin, engine.NodeRunning, engine.NodeTerminating),
				uChange(-80*uMin, engine.NodeTerminating, engine.NodeTerminated),
			},
			now: uAt(3 * time.Hour), complete: true},
		{name: "an hour before creation counts nothing", created: 2 * time.Hour,
			log: []*engine.NodeStateChange{uCreated(2*time.Hour, engine.NodeRunning)},
			now: uAt(3 * time.Hour), complete: true},
		{name: "the current hour counts up to now and stays incomplete", created: long,
			log: []*engine.NodeStateChange{
				uCreated(long, engine.NodeRunning),
				uChange(20*uMin, engine.NodeRunning, engine.NodeDegraded),
			},
			now: uAt(30 * uMin), up: 1200, down: 600},
		{name: "a change stamped after now does not count yet", created: long,
			log: []*engine.NodeStateChange{
				uCreated(long, engine.NodeRunning),
				uChange(50*uMin, engine.NodeRunning, engine.NodeDegraded),
			},
			now: uAt(40 * uMin), up: 2400},
		{name: "a log that starts late starts from the state its first entry left", created: long,
			log: []*engine.NodeStateChange{uChange(30*uMin, engine.NodeDegraded, engine.NodeRunning)},
			now: endOfHour, up: 1800, down: 1800, complete: true},
		{name: "an entry stamped before its predecessor takes effect after it", created: long,
			log: []*engine.NodeStateChange{
				uCreated(long, engine.NodeRunning),
				uChange(30*uMin, engine.NodeRunning, engine.NodeDegraded),
				uChange(20*uMin, engine.NodeDegraded, engine.NodeRunning),
			},
			now: endOfHour, up: 3600, complete: true},
		{name: "sub-second spans round so that up and down add up to the hour", created: long,
			log: []*engine.NodeStateChange{
				uCreated(long, engine.NodeRunning),
				uChange(10*uMin+200*time.Millisecond, engine.NodeRunning, engine.NodeDegraded),
				uChange(20*uMin+800*time.Millisecond, engine.NodeDegraded, engine.NodeRunning),
			},
			now: endOfHour, up: 2999, down: 601, complete: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := engine.NodeHistory{NodeID: "node_1", Created: uAt(c.created), Log: c.log}
			got := h.Bucket(uHour, c.now, uGrace)
			want := &engine.UptimeBucket{NodeID: "node_1", Hour: uHour, UpSeconds: c.up, DownSeconds: c.down, Complete: c.complete}
			if *got != *want {
				t.Fatalf("bucket = %+v, want %+v", *got, *want)
			}
		})
	}
}

// TestUptimeBucketIsTheSameWhenRecomputed: a bucket depends only on the log,
// the creation and the hour, so recomputing a complete hour later gives the
// same figures, and never a bucket still flagged for recomputation.
func TestUptimeBucketIsTheSameWhenRecomputed(t *testing.T) {
	h := engine.NodeHistory{NodeID: "node_1", Created: uAt(-time.Hour), Log: []*engine.NodeStateChange{
		uCreated(-time.Hour, engine.NodeRunning),
		uChange(20*uMin, engine.NodeRunning, engine.NodeDegraded),
		uChange(35*uMin, engine.NodeDegraded, engine.NodeRunning),
	}}
	first := h.Bucket(uHour, uAt(time.Hour), uGrace)
	later := h.Bucket(uHour, uAt(30*24*time.Hour), uGrace)
	if *first != *later || later.Recompute {
		t.Fatalf("recomputed %+v, first %+v", *later, *first)
	}
}

func TestNodeHistoryTerminated(t *testing.T) {
	live := engine.NodeHistory{Log: []*engine.NodeStateChange{uCreated(0, engine.NodeRunning)}}
	if _, ok := live.Terminated(); ok {
		t.Fatal("a running node reads as terminated")
	}
	gone := engine.NodeHistory{Log: []*engine.NodeStateChange{
		uCreated(0, engine.NodeRunning),
		uChange(5*uMin, engine.NodeRunning, engine.NodeTerminating),
		uChange(7*uMin, engine.NodeTerminating, engine.NodeTerminated),
	}}
	if end, ok := gone.Terminated(); !ok || !end.Equal(uAt(7*uMin)) {
		t.Fatalf("terminated = %v, %v; want %v", end, ok, uAt(7*uMin))
	}
}
