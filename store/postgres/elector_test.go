package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
)

// Short timings keep the tests quick; the appliance's defaults are 2 s and 6 s.
const (
	testProbe = 200 * time.Millisecond
	testLease = time.Second
)

// electionDatabase is a migrated database and a Store on it.
func electionDatabase(t *testing.T) (string, *Store) {
	t.Helper()
	dbURL := testenv.PostgresDatabase(t)
	if _, err := NewMigrator(dbURL).Up(t.Context()); err != nil {
		t.Fatalf("migrate up: %v", err)
	}
	s := New(dbURL, nil)
	if err := s.Open(t.Context()); err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return dbURL, s
}

func mustElect(t *testing.T, dbURL string, s *Store, holder string) *Elector {
	t.Helper()
	e := NewElector(ElectorConfig{URL: dbURL, Epochs: s, Holder: holder, Probe: testProbe, Lease: testLease})
	if err := e.Open(t.Context()); err != nil {
		t.Fatalf("open elector %s: %v", holder, err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// waitLeading waits until e leads and returns its epoch and how long it took.
func waitLeading(t *testing.T, e *Elector, within time.Duration) (int64, time.Duration) {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if epoch, ok := e.Leading(); ok {
			return epoch, time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("not leading within %s", within)
	return 0, 0
}

// pause stops e's rounds but keeps its session open, as a SIGSTOP would:
// to the server it is a client idle in its transaction.
func pause(e *Elector) {
	e.stop()
	<-e.done
}

func TestTheFirstElectorLeadsUnderAFreshEpochAndTheSecondStandsBy(t *testing.T) {
	dbURL, s := electionDatabase(t)
	a := mustElect(t, dbURL, s, "a")
	epoch, ok := a.Leading()
	if !ok || epoch != 1 {
		t.Fatalf("first elector Leading = %d, %v; want epoch 1 once Open returns", epoch, ok)
	}
	b := mustElect(t, dbURL, s, "b") // its Open tried the lock once
	if _, ok := b.Leading(); ok {
		t.Fatal("a second elector leads while the first holds the lock")
	}
	if err := b.Ping(t.Context()); err != nil {
		t.Fatalf("a standby's election health = %v, want healthy", err)
	}
	if stored, holder, err := s.LeaderEpoch(t.Context()); err != nil || stored != 1 || holder != "a" {
		t.Fatalf("stored epoch %d held by %q (%v), want 1 held by a", stored, holder, err)
	}
}

func TestAClosedLeaderHandsOverWithinAProbe(t *testing.T) {
	dbURL, s := electionDatabase(t)
	a := mustElect(t, dbURL, s, "a")
	b := mustElect(t, dbURL, s, "b")
	a.Close()
	if _, ok := a.Leading(); ok {
		t.Fatal("a closed elector still leads")
	}
	epoch, took := waitLeading(t, b, 2*testProbe+testenv.Patience/10)
	if epoch != 2 {
		t.Fatalf("the new leader's epoch = %d, want 2", epoch)
	}
	t.Logf("took over %s after an orderly close", took.Round(time.Millisecond))
}

func TestAPausedLeaderLosesTheLockWithinTheLeaseAndStepsDownOnResuming(t *testing.T) {
	dbURL, s := electionDatabase(t)
	a := mustElect(t, dbURL, s, "a")
	b := mustElect(t, dbURL, s, "b")
	old, _ := a.Leading()

	pause(a)
	paused := time.Now()
	epoch, took := waitLeading(t, b, testLease+2*testProbe+testenv.Patience/10)
	t.Logf("took over %s after the leader paused (lease %s, probe %s)", took.Round(time.Millisecond), testLease, testProbe)
	if epoch <= old {
		t.Fatalf("new epoch %d, want above the paused leader's %d", epoch, old)
	}
	if _, ok := a.Leading(); ok { // its lease ends before the server frees the lock
		t.Fatalf("the paused leader still says it leads %s after pausing, beside the new leader", time.Since(paused))
	}

	a.round(context.Background()) // it resumes: its probe finds its session ended
	if _, ok := a.Leading(); ok {
		t.Fatal("the resumed leader leads beside the new one")
	}
	if err := a.Ping(t.Context()); err == nil {
		t.Fatal("the resumed leader's failed probe is not reported")
	}
	a.round(context.Background()) // and stands by on a new session
	if err := a.Ping(t.Context()); err != nil {
		t.Fatalf("the deposed leader's election health after reconnecting = %v", err)
	}
	if _, ok := a.Leading(); ok {
		t.Fatal("the deposed leader took the lock back from the new one")
	}
	if _, ok := b.Leading(); !ok {
		t.Fatal("the new leader lost the lock")
	}
}

func TestTheElectionReportsAnUnreachableDatabase(t *testing.T) {
	dbURL, s := electionDatabase(t)
	a := mustElect(t, dbURL, s, "a")
	pause(a)
	a.session.Close(t.Context()) // the connection drops
	a.round(context.Background())
	if _, ok := a.Leading(); ok {
		t.Fatal("a leader whose probe failed still leads")
	}
	if err := a.Ping(t.Context()); !engine.IsCode(err, engine.EUnavailable) {
		t.Fatalf("election health after a failed probe = %v, want EUnavailable", err)
	}
	unreachable := NewElector(ElectorConfig{URL: "postgres://nobody@127.0.0.1:1/none?connect_timeout=1", Epochs: s, Holder: "x"})
	err := unreachable.Open(t.Context())
	if !engine.IsCode(err, engine.EUnavailable) {
		t.Fatalf("Open on an unreachable database = %v, want EUnavailable", err)
	}
}

func TestALeaseNoLongerThanTwoProbesIsRefused(t *testing.T) {
	e := NewElector(ElectorConfig{URL: "postgres://127.0.0.1/x", Probe: time.Second, Lease: 2 * time.Second})
	if err := e.Open(t.Context()); !engine.IsCode(err, engine.EInvalid) {
		t.Fatalf("Open = %v, want EInvalid", err)
	}
}

func TestTheLeadersOpenTransactionDoesNotHoldBackVacuum(t *testing.T) {
	dbURL, s := electionDatabase(t)
	mustElect(t, dbURL, s, "a")
	var state, xid, xmin string
	testenv.WaitFor(t, "the leader's session idle between probes", func() bool {
		err := s.pool.QueryRow(t.Context(), `SELECT state, coalesce(backend_xid::text, ''), coalesce(backend_xmin::text, '') FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = 'hoodcloud leader election'`).Scan(&state, &xid, &xmin)
		return err == nil && state == "idle in transaction"
	})
	if xid != "" || xmin != "" {
		t.Fatalf("the leader's idle transaction has xid %q and xmin %q; want neither", xid, xmin)
	}
}
