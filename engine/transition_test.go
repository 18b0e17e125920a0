package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// announcer is an engine.Events that records announcements; any other
// call panics on the nil embedded interface.
type announcer struct {
	engine.Events

	mu   sync.Mutex
	sent []announcement
	err  error
}

type announcement struct {
	subject string
	body    engine.NodeStateChanged
}

func (a *announcer) Announce(_ context.Context, subject string, data []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	var body engine.NodeStateChanged
	if err := json.Unmarshal(data, &body); err != nil {
		return err
	}
	a.sent = append(a.sent, announcement{subject, body})
	return nil
}

func (a *announcer) announcements() []announcement {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]announcement(nil), a.sent...)
}

var transitionAt = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func transition(nodes *nodeFake, events *announcer, to engine.NodeState) (*engine.Node, error) {
	return engine.TransitionNode(context.Background(), nodes, events, "n1", to, "because", transitionAt)
}

func TestTransitionNodeStoresAndAnnounces(t *testing.T) {
	nodes := newNodeFake(engine.Node{ID: "n1", State: engine.NodeRunning})
	events := &announcer{}

	n, err := transition(nodes, events, engine.NodeDegraded)
	if err != nil {
		t.Fatal(err)
	}
	if n.State != engine.NodeDegraded || n.Version != 2 {
		t.Errorf("returned node in %s at version %d, want degraded at 2", n.State, n.Version)
	}
	log := nodes.changes()
	if len(log) != 1 || log[0].From != engine.NodeRunning || log[0].To != engine.NodeDegraded ||
		log[0].Reason != "because" || !log[0].At.Equal(transitionAt) {
		t.Errorf("state log %+v, want one running→degraded entry with the reason and time", log)
	}
	want := announcement{engine.NodeStateChangedSubject("n1"), engine.NodeStateChanged{
		NodeID: "n1", From: engine.NodeRunning, To: engine.NodeDegraded, Reason: "because", At: transitionAt,
	}}
	if got := events.announcements(); len(got) != 1 || got[0] != want {
		t.Errorf("announced %+v, want %+v", got, want)
	}
}

func TestTransitionNodeAnnouncementBody(t *testing.T) {
	body, err := json.Marshal(engine.NodeStateChanged{NodeID: "n1", From: "running", To: "failed", Reason: "r", At: transitionAt})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"node_id":"n1","from":"running","to":"failed","reason":"r","at":"2026-11-23T12:00:00Z"}`
	if string(body) != want {
		t.Errorf("body %s, want %s", body, want)
	}
}

func TestTransitionNodeToItsStateIsANoOp(t *testing.T) {
	nodes := newNodeFake(engine.Node{ID: "n1", State: engine.NodeRunning, Version: 7})
	events := &announcer{}

	n, err := transition(nodes, events, engine.NodeRunning)
	if err != nil {
		t.Fatal(err)
	}
	if n.State != engine.NodeRunning || n.Version != 7 {
		t.Errorf("returned %s at version %d, want the node unchanged", n.State, n.Version)
	}
	if len(nodes.changes()) != 0 || len(events.announcements()) != 0 {
		t.Errorf("a no-op logged %v and announced %v", nodes.changes(), events.announcements())
	}
}

func TestTransitionNodeRefuses(t *testing.T) {
	tests := []struct {
		name     string
		from, to engine.NodeState
		code     engine.Code
		message  string
	}{
		{"forbidden move", engine.NodeTerminated, engine.NodeRunning, engine.EInvalid, "from terminated to running"},
		{"unknown state", engine.NodeRunning, "exploded", engine.EInvalid, `"exploded"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes := newNodeFake(engine.Node{ID: "n1", State: tt.from})
			events := &announcer{}
			n, err := transition(nodes, events, tt.to)
			if !engine.IsCode(err, tt.code) || !strings.Contains(engine.ErrorMessage(err), tt.message) {
				t.Errorf("err = %v, want %s naming %s", err, tt.code, tt.message)
			}
			if n != nil || len(nodes.changes()) != 0 || len(events.announcements()) != 0 {
				t.Errorf("a refused move returned %v, logged %v, announced %v", n, nodes.changes(), events.announcements())
			}
		})
	}
}

func TestTransitionNodeMissing(t *testing.T) {
	_, err := transition(newNodeFake(), &announcer{}, engine.NodeRunning)
	if !engine.IsCode(err, engine.ENotFound) {
		t.Errorf("err = %v, want ENotFound", err)
	}
}

func TestTransitionNodeRetriesAfterAConcurrentWrite(t *testing.T) {
	nodes := newNodeFake(engine.Node{ID: "n1", State: engine.NodeRunning})
	races := 2
	nodes.beforeChange = func(f *nodeFake) {
		if races > 0 {
			races--
			f.bump("n1")
		}
	}

	n, err := transition(nodes, &announcer{}, engine.NodeMaintenance)
	if err != nil {
		t.Fatal(err)
	}
	if n.State != engine.NodeMaintenance || len(nodes.changes()) != 1 {
		t.Errorf("node in %s with log %v, want maintenance after one change", n.State, nodes.changes())
	}
}

func TestTransitionNodeGivesUpAfterConflictingAttempts(t *testing.T) {
	nodes := newNodeFake(engine.Node{ID: "n1", State: engine.NodeRunning})
	nodes.beforeChange = func(f *nodeFake) { f.bump("n1") }

	_, err := transition(nodes, &announcer{}, engine.NodeMaintenance)
	if !engine.IsCode(err, engine.EConflict) {
		t.Errorf("err = %v, want EConflict", err)
	}
}

func TestTransitionNodeAcceptsARacerThatGotThereFirst(t *testing.T) {
	nodes := newNodeFake(engine.Node{ID: "n1", State: engine.NodeTerminating})
	nodes.beforeChange = func(f *nodeFake) {
		n := f.nodes["n1"]
		n.State, n.Version = engine.NodeTerminated, n.Version+1
		f.nodes["n1"] = n
		f.beforeChange = nil
	}
	events := &announcer{}

	n, err := transition(nodes, events, engine.NodeTerminated)
	if err != nil || n.State != engine.NodeTerminated {
		t.Errorf("TransitionNode = %v, %v; want the node terminated and no error", n, err)
	}
	if len(events.announcements()) != 0 {
		t.Errorf("announced %v, want nothing: the other writer made the change", events.announcements())
	}
}

func TestTransitionNodeConcurrentCallersChangeOnce(t *testing.T) {
	nodes := newNodeFake(engine.Node{ID: "n1", State: engine.NodeRunning})
	events := &announcer{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := transition(nodes, events, engine.NodeDegraded); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := len(nodes.changes()); got != 1 {
		t.Errorf("%d state log entries, want 1", got)
	}
	if got := len(events.announcements()); got != 1 {
		t.Errorf("%d announcements, want 1", got)
	}
}

func TestTransitionNodeFailedAnnouncementKeepsTheChange(t *testing.T) {
	nodes := newNodeFake(engine.Node{ID: "n1", State: engine.NodeProvisioning})
	events := &announcer{err: engine.Errorf(engine.EUnavailable, "bus down")}

	n, err := transition(nodes, events, engine.NodeFailed)
	if !errors.Is(err, engine.ErrNotAnnounced) || !engine.IsCode(err, engine.EUnavailable) {
		t.Errorf("err = %v, want ErrNotAnnounced wrapping EUnavailable", err)
	}
	if n == nil || n.State != engine.NodeFailed || len(nodes.changes()) != 1 {
		t.Errorf("returned %v with log %v, want the stored failed node", n, nodes.changes())
	}
}
