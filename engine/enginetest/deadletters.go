package enginetest

import (
	"fmt"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
)

// RunPaymentDeadLetterStore is the conformance suite of
// engine.PaymentDeadLetterStore, and of the incidents without a node that
// dead letters open. Each test gets a fresh store from open.
func RunPaymentDeadLetterStore(t *testing.T, open StoreOpener) {
	tests := []struct {
		name string
		run  func(t *testing.T, s engine.Store)
	}{
		{"RecordThenGet", testDeadLetterRecordThenGet},
		{"RecordAgainUpdatesTheSameLetter", testDeadLetterRecordAgain},
		{"RecordReopensAClosedLetter", testDeadLetterRecordReopens},
		{"RacingRecordsMakeOneLetter", testDeadLetterRacingRecords},
		{"UnknownLetterIsNotFound", testDeadLetterNotFound},
		{"UpdateIsVersioned", testDeadLetterUpdateIsVersioned},
		{"ListNewestFirstByStatus", testDeadLetterList},
		{"RecordsAreValues", testDeadLetterRecordsAreValues},
		{"IncidentWithoutANode", testIncidentWithoutANode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, openStore(t, open)) })
	}
}

func stDeadLetter(id string, firstSeen int) *engine.PaymentDeadLetter {
	return &engine.PaymentDeadLetter{
		ID: id, Subject: engine.SubjectPaymentCompleted, MessageID: "msg-" + id,
		EventID: "ev-" + id, PaymentID: "pay_" + id, Payload: []byte(`{"event_id":"ev-` + id + `"}`),
		Error: "payment is unknown", Deliveries: 5, FirstSeenAt: stAt(firstSeen), LastSeenAt: stAt(firstSeen),
		Status: engine.DeadLetterDead,
	}
}

// stRecord records l and checks it is returned stored, dead.
func stRecord(t *testing.T, s engine.Store, l *engine.PaymentDeadLetter) (*engine.PaymentDeadLetter, bool) {
	t.Helper()
	stored, madeDead, err := s.RecordPaymentDeadLetter(t.Context(), l)
	stOK(t, err)
	if stored.Status != engine.DeadLetterDead {
		t.Fatalf("recorded letter is %s, want dead", stored.Status)
	}
	got, err := s.GetPaymentDeadLetter(t.Context(), l.ID)
	stOK(t, err)
	stSame(t, got, stored)
	stUTC(t, got.FirstSeenAt, got.LastSeenAt, got.RedrivenAt)
	return stored, madeDead
}

func testDeadLetterRecordThenGet(t *testing.T, s engine.Store) {
	l := stDeadLetter("pdl_a", 0)
	stored, madeDead := stRecord(t, s, l)
	if !madeDead {
		t.Fatal("a new letter was not reported as made dead")
	}
	want := *l
	want.Version = 1
	stSame(t, stored, &want)
	if l.Version != 0 {
		t.Fatalf("the argument's Version became %d: it must be left unchanged", l.Version)
	}

	malformed := &engine.PaymentDeadLetter{ID: "pdl_malformed", Subject: engine.SubjectPaymentCompleted,
		Payload: []byte("not json \x00\xff"), Error: "not valid JSON", Deliveries: 1, FirstSeenAt: stAt(1), LastSeenAt: stAt(1)}
	stored, _ = stRecord(t, s, malformed)
	if string(stored.Payload) != "not json \x00\xff" || stored.EventID != "" || stored.MessageID != "" {
		t.Fatalf("a malformed payload is kept as %+v, want its bytes as received and no event", stored)
	}
}

func testDeadLetterRecordAgain(t *testing.T, s engine.Store) {
	first := stDeadLetter("pdl_again", 0)
	stRecord(t, s, first)
	again := stDeadLetter("pdl_again", 10)
	again.Subject, again.MessageID, again.Payload = "other", "msg-other", []byte(`{"other":true}`)
	again.Error, again.Deliveries = "temporal is down", 7
	stored, madeDead := stRecord(t, s, again)
	if madeDead {
		t.Fatal("recording a dead letter again reported it as made dead")
	}
	want := *first
	want.Error, want.Deliveries, want.LastSeenAt, want.Version = "temporal is down", 7, stAt(10), 2
	stSame(t, stored, &want)

	// A crash before the ack records the same delivery again, later, with
	// fewer deliveries counted by a restarted consumer: nothing goes back.
	late := stDeadLetter("pdl_again", 5)
	late.Deliveries = 3
	stored, _ = stRecord(t, s, late)
	want.Error, want.Version = late.Error, 3
	stSame(t, stored, &want)
	all, err := s.ListPaymentDeadLetters(t.Context(), "", 0)
	stOK(t, err)
	stSameIDs(t, stIDs(all), []string{"pdl_again"})
}

func testDeadLetterRecordReopens(t *testing.T, s engine.Store) {
	for _, closed := range []engine.DeadLetterStatus{engine.DeadLetterRedriven, engine.DeadLetterResolved} {
		l, _ := stRecord(t, s, stDeadLetter("pdl_"+string(closed), 0))
		l.Status, l.RedrivenAt, l.RedrivenBy = closed, stAt(30), "user_root"
		stOK(t, s.UpdatePaymentDeadLetter(t.Context(), l))
		stored, madeDead := stRecord(t, s, stDeadLetter(l.ID, 60))
		if !madeDead {
			t.Fatalf("a %s letter given up again was not reported as made dead", closed)
		}
		if !stored.RedrivenAt.Equal(stAt(30)) || stored.RedrivenBy != "user_root" || !stored.LastSeenAt.Equal(stAt(60)) {
			t.Fatalf("reopened letter = %+v, want its redrive kept and the new failure recorded", stored)
		}
	}
}

func testDeadLetterRacingRecords(t *testing.T, s engine.Store) {
	const n = 8
	made := make([]bool, n)
	errs := stRace(n, func(i int) error {
		l := stDeadLetter("pdl_race", 0)
		l.Deliveries = i + 1
		_, madeDead, err := s.RecordPaymentDeadLetter(t.Context(), l)
		made[i] = madeDead
		return err
	})
	madeCount := 0
	for i, err := range errs {
		stOK(t, err)
		if made[i] {
			madeCount++
		}
	}
	if madeCount != 1 {
		t.Fatalf("%d racing recorders made the letter dead, want exactly 1", madeCount)
	}
	got, err := s.GetPaymentDeadLetter(t.Context(), "pdl_race")
	stOK(t, err)
	if got.Version != n || got.Deliveries != n {
		t.Fatalf("after %d records: version %d, deliveries %d; want both %d", n, got.Version, got.Deliveries, n)
	}
}

func testDeadLetterNotFound(t *testing.T, s engine.Store) {
	_, err := s.GetPaymentDeadLetter(t.Context(), "pdl_missing")
	stCode(t, err, engine.ENotFound)
	missing := stDeadLetter("pdl_missing", 0)
	missing.Version = 1
	stCode(t, s.UpdatePaymentDeadLetter(t.Context(), missing), engine.ENotFound)
	none, err := s.ListPaymentDeadLetters(t.Context(), engine.DeadLetterDead, 10)
	stOK(t, err)
	if len(none) != 0 {
		t.Fatalf("an empty store lists %d letters", len(none))
	}
}

func testDeadLetterUpdateIsVersioned(t *testing.T, s engine.Store) {
	l, _ := stRecord(t, s, stDeadLetter("pdl_v", 0))
	stale := *l
	l.Status, l.RedrivenAt, l.RedrivenBy, l.Deliveries = engine.DeadLetterRedriven, stAt(90), "key_ops", 6
	stOK(t, s.UpdatePaymentDeadLetter(t.Context(), l))
	if l.Version != 2 {
		t.Fatalf("Version after update = %d, want 2", l.Version)
	}
	got, err := s.GetPaymentDeadLetter(t.Context(), l.ID)
	stOK(t, err)
	stSame(t, got, l)
	stale.Status = engine.DeadLetterResolved
	stCode(t, s.UpdatePaymentDeadLetter(t.Context(), &stale), engine.EConflict)
	if stale.Version != 1 {
		t.Fatalf("a failed update changed the argument's Version to %d", stale.Version)
	}
	got, err = s.GetPaymentDeadLetter(t.Context(), l.ID)
	stOK(t, err)
	stSame(t, got, l)
}

func testDeadLetterList(t *testing.T, s engine.Store) {
	byID := map[string]*engine.PaymentDeadLetter{}
	for i, at := range []int{20, 40, 0, 40} {
		l, _ := stRecord(t, s, stDeadLetter(fmt.Sprint("pdl_", i), at))
		byID[l.ID] = l
	}
	closed := byID["pdl_1"]
	closed.Status = engine.DeadLetterRedriven
	stOK(t, s.UpdatePaymentDeadLetter(t.Context(), closed))

	all, err := s.ListPaymentDeadLetters(t.Context(), "", 0)
	stOK(t, err)
	stSame(t, all, []*engine.PaymentDeadLetter{byID["pdl_1"], byID["pdl_3"], byID["pdl_0"], byID["pdl_2"]})
	dead, err := s.ListPaymentDeadLetters(t.Context(), engine.DeadLetterDead, 0)
	stOK(t, err)
	stSameIDs(t, stIDs(dead), []string{"pdl_3", "pdl_0", "pdl_2"})
	firstTwo, err := s.ListPaymentDeadLetters(t.Context(), engine.DeadLetterDead, 2)
	stOK(t, err)
	stSameIDs(t, stIDs(firstTwo), []string{"pdl_3", "pdl_0"})
	redriven, err := s.ListPaymentDeadLetters(t.Context(), engine.DeadLetterRedriven, 0)
	stOK(t, err)
	stSameIDs(t, stIDs(redriven), []string{"pdl_1"})
	resolved, err := s.ListPaymentDeadLetters(t.Context(), engine.DeadLetterResolved, 0)
	stOK(t, err)
	if len(resolved) != 0 {
		t.Fatalf("no letter is resolved, %d listed", len(resolved))
	}
}

func testDeadLetterRecordsAreValues(t *testing.T, s engine.Store) {
	l := stDeadLetter("pdl_alias", 0)
	stored, _ := stRecord(t, s, l)
	l.Payload[0], stored.Payload[1] = 'X', 'Y'
	got, err := s.GetPaymentDeadLetter(t.Context(), l.ID)
	stOK(t, err)
	if string(got.Payload) != `{"event_id":"ev-pdl_alias"}` {
		t.Fatalf("payload changed to %q through a caller's slice", got.Payload)
	}
	got.Payload[0] = 'Z'
	again, err := s.GetPaymentDeadLetter(t.Context(), l.ID)
	stOK(t, err)
	if again.Payload[0] != '{' {
		t.Fatalf("payload changed to %q through a returned slice", again.Payload)
	}
}

// testIncidentWithoutANode: a dead letter's incident belongs to no node.
func testIncidentWithoutANode(t *testing.T, s engine.Store) {
	key := engine.PaymentDeadLetterIncidentKey("pdl_x")
	in, opened, err := engine.RaiseIncident(t.Context(), s, engine.IncidentSpec{DedupeKey: key, Severity: engine.SeverityCritical, Summary: "given up"}, stAt(0))
	stOK(t, err)
	if !opened || in.NodeID != "" {
		t.Fatalf("RaiseIncident = %+v opened %t, want a new incident with no node", in, opened)
	}
	again, opened, err := engine.RaiseIncident(t.Context(), s, engine.IncidentSpec{DedupeKey: key, Severity: engine.SeverityCritical, Summary: "given up"}, stAt(1))
	stOK(t, err)
	if opened || again.ID != in.ID {
		t.Fatalf("raising it again opened %s (opened %t), want the open %s", again.ID, opened, in.ID)
	}
	other, _, err := engine.RaiseIncident(t.Context(), s, engine.IncidentSpec{DedupeKey: engine.PaymentDeadLetterIncidentKey("pdl_y"), Severity: engine.SeverityCritical}, stAt(2))
	stOK(t, err)
	listed, err := s.ListIncidents(t.Context(), "")
	stOK(t, err)
	stSameIDs(t, stIDs(listed), []string{other.ID, in.ID})
	resolved, err := engine.ResolveIncident(t.Context(), s, "", key, stAt(3))
	stOK(t, err)
	if resolved == nil || resolved.ID != in.ID || resolved.Open() {
		t.Fatalf("ResolveIncident = %+v, want %s resolved", resolved, in.ID)
	}
	_, err = s.FindOpenIncident(t.Context(), "", key)
	stCode(t, err, engine.ENotFound)
}
