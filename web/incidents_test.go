package web_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// raiseIncident opens an incident on nodeID, opened at the given offset
// from now so the order is known, and resolves it when asked.
func (f *nodesFixture) raiseIncident(nodeID, key string, at time.Duration, resolved bool) *engine.Incident {
	f.tb.Helper()
	ctx, opened := context.Background(), time.Now().UTC().Add(at)
	in, _, err := engine.RaiseIncident(ctx, f.store, engine.IncidentSpec{NodeID: nodeID, DedupeKey: key,
		Severity: engine.SeverityCritical, Summary: "node " + nodeID + " " + key}, opened)
	if err != nil {
		f.tb.Fatal(err)
	}
	in.Record(opened, engine.TransitionNotified, "webhook: opened")
	in.DeliveryOf("webhook").Delivered = []engine.IncidentEvent{engine.IncidentOpened}
	in.DeliveryOf("alertmanager").LastError = "alertmanager answered 500"
	if err := f.store.UpdateIncident(ctx, in); err != nil {
		f.tb.Fatal(err)
	}
	if resolved {
		if in, err = engine.ResolveIncident(ctx, f.store, nodeID, key, opened.Add(time.Second)); err != nil {
			f.tb.Fatal(err)
		}
	}
	return in
}

func TestIncidentReadScenarios(t *testing.T) {
	f := newNodesFixture(t)
	_, writeOnly := f.apiKey(f.aliceJWT, engine.ScopeNodesWrite)
	mine, bobs := f.node(f.alice.ID), f.node(f.bob.ID)
	old := f.raiseIncident(mine.ID, "policy:stuck", -3*time.Hour, true)
	cur := f.raiseIncident(mine.ID, "policy:peers", -2*time.Hour, false)
	other := f.raiseIncident(bobs.ID, "policy:stuck", -time.Hour, false)
	list, one := "/api/v1/incidents", "/api/v1/incidents/"
	runNodeScenarios(t, f, []nodeScenario{
		{"a customer lists the incidents of their nodes, newest first", request{method: "GET", path: list, credential: f.aliceJWT}, 200,
			[]string{`"incidents":[{"id":"` + cur.ID, `"id":"` + old.ID, `"state":"resolved"`, `"kind":"opened"`, `"kind":"resolved"`},
			[]string{other.ID, `"deliveries"`, `"notified"`, "next_after"}},
		{"with a nodes:read key", request{method: "GET", path: list, credential: f.aliceReadKey}, 200, []string{cur.ID}, nil},
		{"only the open ones", request{method: "GET", path: list + "?state=open", credential: f.aliceJWT}, 200, []string{cur.ID}, []string{old.ID}},
		{"only the resolved ones", request{method: "GET", path: list + "?state=resolved", credential: f.aliceJWT}, 200, []string{old.ID}, []string{cur.ID}},
		{"a page of one has a cursor", request{method: "GET", path: list + "?limit=1", credential: f.aliceJWT}, 200,
			[]string{cur.ID, `"next_after":"` + cur.ID}, []string{old.ID}},
		{"the next page", request{method: "GET", path: list + "?limit=1&after=" + cur.ID, credential: f.aliceJWT}, 200,
			[]string{old.ID}, []string{cur.ID}},
		{"a cursor of another tenant's incident is refused", request{method: "GET", path: list + "?after=" + other.ID, credential: f.aliceJWT}, 400, []string{`"code":"invalid"`}, nil},
		{"an unknown cursor is refused", request{method: "GET", path: list + "?after=inc_nope", credential: f.aliceJWT}, 400, nil, nil},
		{"an unknown state is refused", request{method: "GET", path: list + "?state=flapping", credential: f.aliceJWT}, 400, []string{"open or resolved"}, nil},
		{"a bad limit is refused", request{method: "GET", path: list + "?limit=0", credential: f.aliceJWT}, 400, []string{"limit"}, nil},
		{"list without nodes:read", request{method: "GET", path: list, credential: writeOnly}, 403, []string{"nodes:read"}, nil},
		{"list without a credential", request{method: "GET", path: list}, 401, nil, nil},
		{"an administrator lists every incident with the notifiers' state", request{method: "GET", path: list, credential: f.rootJWT}, 200,
			[]string{other.ID, cur.ID, old.ID, `"deliveries":[{"notifier":"webhook","delivered":["opened"]`, `"last_error":"alertmanager answered 500"`, `"kind":"notified"`}, nil},

		{"get own", request{method: "GET", path: one + cur.ID, credential: f.aliceJWT}, 200,
			[]string{`"id":"` + cur.ID, `"node_id":"` + mine.ID, `"dedupe_key":"policy:peers"`, `"severity":"critical"`, `"state":"open"`}, []string{`"deliveries"`}},
		{"get another tenant's is 404", request{method: "GET", path: one + other.ID, credential: f.aliceJWT}, 404, []string{`"code":"not_found"`}, nil},
		{"get unknown is 404", request{method: "GET", path: one + "inc_nope", credential: f.aliceJWT}, 404, nil, nil},
		{"get without nodes:read", request{method: "GET", path: one + cur.ID, credential: writeOnly}, 403, nil, nil},
		{"an administrator gets any", request{method: "GET", path: one + other.ID, credential: f.rootJWT}, 200, []string{other.ID, `"deliveries"`}, nil},
	})
}

func TestIncidentAcknowledgeScenarios(t *testing.T) {
	f := newNodesFixture(t)
	_, writeOnly := f.apiKey(f.aliceJWT, engine.ScopeNodesWrite)
	mine := f.node(f.alice.ID)
	open := f.raiseIncident(mine.ID, "policy:stuck", -time.Hour, false)
	byToken := f.raiseIncident(mine.ID, "policy:peers", -time.Hour, false)
	gone := f.raiseIncident(mine.ID, "policy:disk", -time.Hour, true)
	ack := func(in *engine.Incident) string { return "/api/v1/incidents/" + url.PathEscape(in.ID) + "/acknowledge" }
	runNodeScenarios(t, f, []nodeScenario{
		{"the owner cannot acknowledge", request{method: "POST", path: ack(open), credential: f.aliceJWT}, 403, []string{"admin"}, nil},
		{"nor with nodes:write", request{method: "POST", path: ack(open), credential: writeOnly}, 403, nil, nil},
		{"without a credential", request{method: "POST", path: ack(open)}, 401, nil, nil},
		{"an administrator acknowledges", request{method: "POST", path: ack(open), credential: f.rootJWT}, 200,
			[]string{`"acknowledged_by":"` + f.root.ID, `"acknowledged_at"`, `"kind":"acknowledged","note":"by ` + f.root.ID}, nil},
		{"again is the same acknowledgement", request{method: "POST", path: ack(open), credential: bootstrapToken}, 200,
			[]string{`"acknowledged_by":"` + f.root.ID}, []string{`"acknowledged_by":"bootstrap"`}},
		{"the bootstrap administrator is named so", request{method: "POST", path: ack(byToken), credential: bootstrapToken}, 200,
			[]string{`"acknowledged_by":"bootstrap"`}, nil},
		{"a resolved incident nobody acknowledged is a conflict", request{method: "POST", path: ack(gone), credential: f.rootJWT}, 409, []string{"resolved"}, nil},
		{"unknown is 404", request{method: "POST", path: "/api/v1/incidents/inc_nope/acknowledge", credential: f.rootJWT}, 404, nil, nil},
		{"the owner sees who acknowledged", request{method: "GET", path: "/api/v1/incidents/" + open.ID, credential: f.aliceJWT}, 200,
			[]string{`"acknowledged_by":"` + f.root.ID, `"kind":"acknowledged"`}, nil},
	})
	got, err := f.store.GetIncident(context.Background(), open.ID)
	if err != nil || got.AcknowledgedBy != f.root.ID || got.NotifyAt.IsZero() {
		t.Fatalf("stored incident %+v, %v: want acknowledged by root and due for notification", got, err)
	}
}
