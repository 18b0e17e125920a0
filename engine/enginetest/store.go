package enginetest

import (
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// StoreOpener returns a fresh store. For RunStore it must be empty; the
// suite closes it through t.Cleanup, so an opener may register its own
// cleanup (dropping a database, say), which then runs after Close.
type StoreOpener func(t *testing.T) engine.Store

// RunStore is the conformance suite of engine.Store. Each aggregate gets a
// fresh store from open; tests inside an aggregate share it and use unique
// IDs, except those that count or list everything, which open their own.
//
// Besides the contract written on each method, every adapter must hold to:
//   - Create… of a versioned record stores Version 1 and sets it on the
//     argument. A successful Update… stores Version+1 and sets it on the
//     argument; a failed one leaves the argument's Version alone.
//   - Records are values: changing a struct after handing it in, or one the
//     store returned (its slices and byte slices included), leaves the
//     stored record as it was.
//   - Times come back time.Equal to what was stored, in UTC, keeping
//     microsecond precision (PostgreSQL keeps no more; the suite only uses
//     times already truncated to the microsecond). Zero times come back zero.
//     Empty and nil slices are interchangeable.
//   - Lists that match nothing return an empty slice, not an error.
//   - CreateNode logs the initial state with Seq 1, From "", To n.State and
//     At n.CreatedAt. TouchNode returns ENotFound for an unknown node.
//   - MarkInputsApplied sets UpdatedAt to at.
//   - ConsumeEnrollmentToken treats a token as expired when now is not
//     before ExpiresAt, and on first use sets UsedAt to now and
//     KeyFingerprint on the token it returns.
func RunStore(t *testing.T, open StoreOpener) {
	for _, a := range storeAggregates {
		t.Run(a.name, func(t *testing.T) { a.run(t, openStore(t, open), open) })
	}
}

// storeAggregate groups the tests of one part of the Store; reopen gives a
// test that needs an empty store its own.
type storeAggregate struct {
	name string
	run  func(t *testing.T, s engine.Store, reopen StoreOpener)
}

var storeAggregates = []storeAggregate{
	{"Users", testStoreUsers},
	{"APIKeys", testStoreAPIKeys},
	{"Subscriptions", testStoreSubscriptions},
	{"Payments", testStorePayments},
	{"PaymentInbox", testStorePaymentInbox},
	{"ChainProfileRefs", testStoreChainProfileRefs},
	{"Nodes", testStoreNodes},
	{"NodeStateLog", testStoreNodeStateLog},
	{"AgentTokensAndRegistrations", testStoreAgents},
	{"Commands", testStoreCommands},
	{"NodeKeys", testStoreNodeKeys},
	{"Inputs", testStoreInputs},
	{"Incidents", testStoreIncidents},
	{"IncidentPipeline", testStoreIncidentPipeline},
	{"UptimeBuckets", testStoreUptime},
	{"Rollouts", testStoreRollouts},
	{"LeaderEpoch", testStoreLeader},
	{"LeaderFence", testStoreLeaderFence},
	{"Secrets", testStoreSecrets},
	{"SigningLeases", testStoreSigningLeases},
	{"TimesAndAliasing", testStoreTimesAndAliasing},
}

// openStore opens a store and closes it when the test ends.
func openStore(t *testing.T, open StoreOpener) engine.Store {
	t.Helper()
	s := open(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("ping fresh store: %v", err)
	}
	return s
}

// stT0 is the suite's clock origin: microsecond precision, with a non-zero
// microsecond part so lost precision shows.
var stT0 = time.Date(2031, 5, 4, 10, 20, 30, 123456000, time.UTC)

// stAt returns stT0 plus sec seconds.
func stAt(sec int) time.Time { return stT0.Add(time.Duration(sec) * time.Second) }

func stOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func stCode(t testing.TB, err error, want engine.Code) {
	t.Helper()
	if got := engine.ErrorCode(err); got != want {
		t.Fatalf("error = %v (code %q), want code %q", err, got, want)
	}
}

// stSame fails unless got and want hold the same values once times are
// compared at microsecond precision in UTC and nil equals empty.
func stSame(t testing.TB, got, want any) {
	t.Helper()
	g, w := stNormal(reflect.ValueOf(got)), stNormal(reflect.ValueOf(want))
	if !reflect.DeepEqual(g.Interface(), w.Interface()) {
		t.Fatalf("records differ\n got: %s\nwant: %s", stShow(got), stShow(want))
	}
}

func stShow(v any) string {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice {
		s := "["
		for i := range rv.Len() {
			s += stShow(rv.Index(i).Interface()) + " "
		}
		return s + "]"
	}
	if rv.Kind() == reflect.Pointer && !rv.IsNil() {
		return fmt.Sprintf("&%+v", rv.Elem().Interface())
	}
	return fmt.Sprintf("%+v", v)
}

var stTimeType = reflect.TypeOf(time.Time{})

// stNormal returns a deep copy of v with times in UTC at microsecond
// precision, zero times as time.Time{} and empty slices as nil.
func stNormal(v reflect.Value) reflect.Value {
	switch {
	case !v.IsValid():
		return v
	case v.Type() == stTimeType:
		tm := v.Interface().(time.Time)
		if tm.IsZero() {
			return reflect.ValueOf(time.Time{})
		}
		return reflect.ValueOf(tm.UTC().Truncate(time.Microsecond))
	}
	out := reflect.New(v.Type()).Elem()
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			p := reflect.New(v.Type().Elem())
			p.Elem().Set(stNormal(v.Elem()))
			out.Set(p)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if out.Field(i).CanSet() {
				out.Field(i).Set(stNormal(v.Field(i)))
			}
		}
	case reflect.Slice:
		if v.Len() > 0 {
			s := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
			for i := range v.Len() {
				s.Index(i).Set(stNormal(v.Index(i)))
			}
			out.Set(s)
		}
	default:
		out.Set(v)
	}
	return out
}

// stUTC fails unless every non-zero time is in UTC.
func stUTC(t testing.TB, times ...time.Time) {
	t.Helper()
	for i, tm := range times {
		if !tm.IsZero() && tm.Location() != time.UTC {
			t.Fatalf("time %d = %v in %v, want UTC", i, tm, tm.Location())
		}
	}
}

// stRace runs n copies of f at once and returns their errors.
func stRace(n int, f func(i int) error) []error {
	errs := make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Go(func() {
			start.Wait()
			errs[i] = f(i)
		})
	}
	start.Done()
	done.Wait()
	return errs
}

// stOneWinner fails unless exactly one error is nil and the rest carry loser.
func stOneWinner(t testing.TB, errs []error, loser engine.Code) {
	t.Helper()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case engine.ErrorCode(err) != loser:
			t.Fatalf("racing writer got %v, want nil or code %q", err, loser)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d racing writers won, want exactly 1", wins, len(errs))
	}
}

// stIDs returns the IDs of records, through the field named ID (or NodeID).
func stIDs[T any](recs []*T) []string {
	ids := make([]string, len(recs))
	for i, r := range recs {
		v := reflect.ValueOf(r).Elem()
		f := v.FieldByName("ID")
		if !f.IsValid() {
			f = v.FieldByName("NodeID")
		}
		ids[i] = f.String()
	}
	return ids
}

func stSameIDs(t testing.TB, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ids = %q, want %q", got, want)
	}
}

func stSorted(ids []string) []string {
	out := append([]string(nil), ids...)
	sort.Strings(out)
	return out
}
