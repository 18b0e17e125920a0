package enginetest

import (
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// testStoreIncidentPipeline covers what the notification pipeline keeps on
// an incident and the queries it and the API page through.
func testStoreIncidentPipeline(t *testing.T, s engine.Store, reopen StoreOpener) {
	t.Run("PipelineStateRoundTrips", func(t *testing.T) {
		i := stPipelineIncident(engine.NewID("node"), stAt(0))
		stOK(t, s.OpenIncident(t.Context(), i))
		got, err := s.GetIncident(t.Context(), i.ID)
		stOK(t, err)
		stSame(t, got, i)

		i.AcknowledgedAt, i.AcknowledgedBy = stAt(5), "user_ops"
		i.Record(stAt(5), engine.TransitionAcknowledged, "by user_ops")
		d := i.DeliveryOf("webhook")
		d.Delivered, d.Attempts, d.LastError, d.NextAttemptAt = append(d.Delivered, engine.IncidentAcknowledged), 0, "", time.Time{}
		i.DeliveryOf("alertmanager").LastSentAt = stAt(6)
		i.NotifyAt = stAt(60)
		stOK(t, s.UpdateIncident(t.Context(), i))
		got, err = s.GetIncident(t.Context(), i.ID)
		stOK(t, err)
		stSame(t, got, i)
	})
	t.Run("TransitionsAreAppendOnly", func(t *testing.T) {
		i := stPipelineIncident(engine.NewID("node"), stAt(0))
		stOK(t, s.OpenIncident(t.Context(), i))
		want := append([]engine.IncidentTransition(nil), i.Transitions...)

		rewritten := i.Clone()
		rewritten.Transitions[0].Note = "rewritten"
		rewritten.Record(stAt(9), engine.TransitionResolved, "")
		want = append(want, rewritten.Transitions[len(rewritten.Transitions)-1])
		stOK(t, s.UpdateIncident(t.Context(), rewritten))
		stTransitions(t, s, i.ID, want)

		dropped := rewritten.Clone()
		dropped.Transitions = nil
		stOK(t, s.UpdateIncident(t.Context(), dropped))
		stTransitions(t, s, i.ID, want)
	})
	t.Run("ToNotifyIsSoonestFirstUpToTheTime", func(t *testing.T) {
		s := openStore(t, reopen)
		late, soon, now := stDue(t, s, 30), stDue(t, s, 10), stDue(t, s, 20)
		stDue(t, s, 0) // not due: NotifyAt zero
		got, err := s.ListIncidentsToNotify(t.Context(), stAt(20), 0)
		stOK(t, err)
		stSameIDs(t, stIDs(got), []string{soon.ID, now.ID})
		got, err = s.ListIncidentsToNotify(t.Context(), stAt(60), 2)
		stOK(t, err)
		stSameIDs(t, stIDs(got), []string{soon.ID, now.ID})

		soon.NotifyAt = time.Time{} // resolved and told: drops out
		stOK(t, s.UpdateIncident(t.Context(), soon))
		now.NotifyAt = stAt(40) // backed off: moves behind
		stOK(t, s.UpdateIncident(t.Context(), now))
		got, err = s.ListIncidentsToNotify(t.Context(), stAt(60), 0)
		stOK(t, err)
		stSameIDs(t, stIDs(got), []string{late.ID, now.ID})
	})
	t.Run("QueryIsNewestFirstPagedAndFiltered", func(t *testing.T) {
		s := openStore(t, reopen)
		all := stIncidentHistory(t, s, engine.NewID("node"), engine.NewID("node"))
		stSameIDs(t, stIncidentPages(t, s, engine.IncidentQuery{}, 2), stIDs(all))
		stSameIDs(t, stIncidentPages(t, s, engine.IncidentQuery{State: engine.IncidentsOpen}, 1), stIDs(stOpen(all, true)))
		stSameIDs(t, stIncidentPages(t, s, engine.IncidentQuery{State: engine.IncidentsResolved}, 3), stIDs(stOpen(all, false)))
		got, err := s.QueryIncidents(t.Context(), engine.IncidentQuery{})
		stOK(t, err)
		stSame(t, got, all)
	})
	t.Run("QueryOfAnOwnerSeesTheirNodesOnly", func(t *testing.T) {
		s := openStore(t, reopen)
		a1, a2 := stMustNode(t, s, "user_ann", "c", engine.NodeRunning), stMustNode(t, s, "user_ann", "c", engine.NodeRunning)
		bob := stMustNode(t, s, "user_bob", "c", engine.NodeRunning)
		anns := stIncidentHistory(t, s, a1.ID, a2.ID)
		stIncidentHistory(t, s, bob.ID, engine.NewID("node"))
		q := engine.IncidentQuery{OwnerID: "user_ann"}
		stSameIDs(t, stIncidentPages(t, s, q, 2), stIDs(anns))
		q.State = engine.IncidentsOpen
		stSameIDs(t, stIncidentPages(t, s, q, 2), stIDs(stOpen(anns, true)))
		q.State = engine.IncidentsResolved
		stSameIDs(t, stIncidentPages(t, s, q, 1), stIDs(stOpen(anns, false)))
		none, err := s.QueryIncidents(t.Context(), engine.IncidentQuery{OwnerID: "user_nobody"})
		stOK(t, err)
		stSameIDs(t, stIDs(none), nil)
	})
	t.Run("QueryRefusesAnUnknownCursorOrState", func(t *testing.T) {
		_, err := s.QueryIncidents(t.Context(), engine.IncidentQuery{After: "inc_missing", Limit: 5})
		stCode(t, err, engine.EInvalid)
		_, err = s.QueryIncidents(t.Context(), engine.IncidentQuery{State: "flapping"})
		stCode(t, err, engine.EInvalid)
	})
}

// stPipelineIncident is an open incident a notifier is retrying.
func stPipelineIncident(nodeID string, opened time.Time) *engine.Incident {
	i := stIncident(nodeID, "policy:stuck", opened)
	i.NotifyAt = opened.Add(30 * time.Second)
	i.Record(opened, engine.TransitionOpened, i.Summary)
	i.Record(opened.Add(time.Second), engine.TransitionNotified, "alertmanager: opened")
	i.NotifiedAt = opened.Add(time.Second)
	i.Deliveries = []engine.Delivery{
		{Notifier: "alertmanager", Delivered: []engine.IncidentEvent{engine.IncidentOpened}, LastSentAt: opened.Add(time.Second)},
		{Notifier: "webhook", Attempts: 2, NextAttemptAt: opened.Add(30 * time.Second), LastError: "receiver answered 503",
			DeadLettered: []engine.IncidentEvent{engine.IncidentOpened}},
	}
	return i
}

func stTransitions(t *testing.T, s engine.Store, id string, want []engine.IncidentTransition) {
	t.Helper()
	got, err := s.GetIncident(t.Context(), id)
	stOK(t, err)
	stSame(t, got.Transitions, want)
}

// stDue opens an incident due for notification at stAt(sec).
func stDue(t *testing.T, s engine.Store, sec int) *engine.Incident {
	t.Helper()
	i := stIncident(engine.NewID("node"), "k", stAt(0))
	if sec > 0 {
		i.NotifyAt = stAt(sec)
	}
	stOK(t, s.OpenIncident(t.Context(), i))
	return i
}

// stIncidentHistory opens incidents on two nodes, resolves some, and
// returns them newest first; two were opened at the same time, so the ID
// orders them.
func stIncidentHistory(t *testing.T, s engine.Store, node1, node2 string) []*engine.Incident {
	t.Helper()
	var all []*engine.Incident
	for k, at := range []int{50, 40, 40, 30, 20, 10} {
		node := node1
		if k%2 == 1 {
			node = node2
		}
		i := stIncident(node, engine.NewID("key"), stAt(at))
		stOK(t, s.OpenIncident(t.Context(), i))
		if k%3 == 0 {
			i.ResolvedAt = stAt(at + 5)
			stOK(t, s.UpdateIncident(t.Context(), i))
		}
		all = append(all, i)
	}
	if all[1].ID > all[2].ID {
		all[1], all[2] = all[2], all[1]
	}
	return all
}

func stOpen(is []*engine.Incident, open bool) []*engine.Incident {
	var out []*engine.Incident
	for _, i := range is {
		if i.Open() == open {
			out = append(out, i)
		}
	}
	return out
}

// stIncidentPages reads every page of q with pages of size limit.
func stIncidentPages(t *testing.T, s engine.Store, q engine.IncidentQuery, limit int) []string {
	t.Helper()
	var ids []string
	for q.Limit = limit; ; {
		page, err := s.QueryIncidents(t.Context(), q)
		stOK(t, err)
		if len(page) > limit {
			t.Fatalf("page of %d with limit %d", len(page), limit)
		}
		if len(page) == 0 {
			return ids
		}
		ids = append(ids, stIDs(page)...)
		q.After = ids[len(ids)-1]
	}
}
