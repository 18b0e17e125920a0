package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

var (
	leaseT0   = time.Date(2031, 5, 4, 10, 0, 0, 0, time.UTC)
	firstHost = engine.LeaseHolder{NodeID: "node_a"}
	newHost   = engine.LeaseHolder{NodeID: "node_a", Incarnation: "m1f"}
)

func leaseAt(sec int) time.Time { return leaseT0.Add(time.Duration(sec) * time.Second) }

func grantTo(h engine.LeaseHolder, sec int) engine.LeaseGrant {
	return engine.LeaseGrant{NodeID: "node_a", KeyName: "priv_validator_key", Holder: h, Gap: time.Minute, Now: leaseAt(sec)}
}

func releaseBy(h engine.LeaseHolder, epoch uint64, sec int) engine.LeaseRelease {
	return engine.LeaseRelease{NodeID: "node_a", KeyName: "priv_validator_key", Holder: h, Epoch: epoch, Reason: "stopped", Now: leaseAt(sec)}
}

// heldBy is a lease held by h at epoch since sec.
func heldBy(h engine.LeaseHolder, epoch uint64, sec int) *engine.SigningLease {
	return &engine.SigningLease{NodeID: "node_a", KeyName: "priv_validator_key", Holder: h, Epoch: epoch, GrantedAt: leaseAt(sec), Version: int64(epoch)}
}

// released is heldBy released at sec.
func released(l *engine.SigningLease, sec int) *engine.SigningLease {
	l.ReleasedAt, l.ReleaseReason, l.Version = leaseAt(sec), "stopped", l.Version+1
	return l
}

func TestGrantingASigningLease(t *testing.T) {
	tests := []struct {
		name    string
		cur     *engine.SigningLease
		grant   engine.LeaseGrant
		want    *engine.SigningLease // nil: the stored lease is unchanged
		code    engine.Code
		message string // part of the error
	}{
		{name: "the first grant has epoch 1", grant: grantTo(firstHost, 0), want: heldBy(firstHost, 1, 0)},
		{name: "the holder asking again changes nothing", cur: heldBy(firstHost, 1, 0), grant: grantTo(firstHost, 5)},
		{name: "another host is refused while the key is held", cur: heldBy(firstHost, 1, 0), grant: grantTo(newHost, 5),
			code: engine.EConflict, message: "held by the first host of node node_a since 2031-05-04T10:00:00Z"},
		{name: "within the gap after a release the key is refused, saying when it may be granted",
			cur: released(heldBy(firstHost, 1, 0), 100), grant: grantTo(newHost, 159),
			code: engine.EConflict, message: "may be granted from 2031-05-04T10:02:40Z"},
		{name: "after the gap the new holder gets the next epoch",
			cur: released(heldBy(firstHost, 1, 0), 100), grant: grantTo(newHost, 160),
			want: &engine.SigningLease{NodeID: "node_a", KeyName: "priv_validator_key", Holder: newHost, Epoch: 2, GrantedAt: leaseAt(160), Version: 3}},
		{name: "the released holder itself waits for the gap too",
			cur: released(heldBy(firstHost, 1, 0), 100), grant: grantTo(firstHost, 100),
			code: engine.EConflict, message: "may be granted from"},
		{name: "the released holder itself gets the next epoch after the gap",
			cur: released(heldBy(firstHost, 1, 0), 100), grant: grantTo(firstHost, 200),
			want: &engine.SigningLease{NodeID: "node_a", KeyName: "priv_validator_key", Holder: firstHost, Epoch: 2, GrantedAt: leaseAt(200), Version: 3}},
		{name: "a host of another node is invalid", grant: engine.LeaseGrant{NodeID: "node_a", KeyName: "k",
			Holder: engine.LeaseHolder{NodeID: "node_b"}, Now: leaseAt(0)}, code: engine.EInvalid},
		{name: "a bad incarnation is invalid", grant: engine.LeaseGrant{NodeID: "node_a", KeyName: "k",
			Holder: engine.LeaseHolder{NodeID: "node_a", Incarnation: "Not/Valid"}, Now: leaseAt(0)}, code: engine.EInvalid},
		{name: "a grant without a key is invalid", grant: engine.LeaseGrant{NodeID: "node_a", Holder: firstHost, Now: leaseAt(0)}, code: engine.EInvalid},
		{name: "a grant without a time is invalid", grant: engine.LeaseGrant{NodeID: "node_a", KeyName: "k", Holder: firstHost}, code: engine.EInvalid},
		{name: "a negative gap is invalid", grant: engine.LeaseGrant{NodeID: "node_a", KeyName: "k", Holder: firstHost, Gap: -1, Now: leaseAt(0)}, code: engine.EInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := engine.NextLease(tc.cur, tc.grant)
			checkLeaseRule(t, tc.cur, got, err, tc.want, tc.code, tc.message)
		})
	}
}

func TestReleasingASigningLease(t *testing.T) {
	tests := []struct {
		name    string
		cur     *engine.SigningLease
		release engine.LeaseRelease
		want    *engine.SigningLease // nil: the stored lease is unchanged
		code    engine.Code
		message string
	}{
		{name: "the holder releases at its epoch", cur: heldBy(newHost, 2, 0), release: releaseBy(newHost, 2, 30),
			want: released(heldBy(newHost, 2, 0), 30)},
		{name: "releasing twice changes nothing", cur: released(heldBy(newHost, 2, 0), 30), release: releaseBy(newHost, 2, 90)},
		{name: "a stale epoch is refused", cur: heldBy(newHost, 3, 0), release: releaseBy(newHost, 2, 30),
			code: engine.EConflict, message: "epoch 2 is stale"},
		{name: "a host that is not the holder is refused", cur: heldBy(newHost, 2, 0), release: releaseBy(firstHost, 2, 30),
			code: engine.EConflict, message: "held by host m1f of node node_a, not by the first host of node node_a"},
		{name: "the former holder cannot release the lease granted after it", cur: heldBy(newHost, 2, 0), release: releaseBy(firstHost, 1, 90),
			code: engine.EConflict},
		{name: "a key never leased is not found", release: releaseBy(firstHost, 1, 0), code: engine.ENotFound, message: "priv_validator_key of node node_a"},
		{name: "a release without a reason is invalid", cur: heldBy(newHost, 2, 0),
			release: engine.LeaseRelease{NodeID: "node_a", KeyName: "priv_validator_key", Holder: newHost, Epoch: 2, Now: leaseAt(1)}, code: engine.EInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := engine.ReleaseLease(tc.cur, tc.release)
			checkLeaseRule(t, tc.cur, got, err, tc.want, tc.code, tc.message)
		})
	}
}

// checkLeaseRule fails unless a rule applied to cur gave want (nil: cur
// itself, nothing to write) or an error with code and message.
func checkLeaseRule(t *testing.T, cur, got *engine.SigningLease, err error, want *engine.SigningLease, code engine.Code, message string) {
	t.Helper()
	switch {
	case code != "":
		if engine.ErrorCode(err) != code || !strings.Contains(engine.ErrorMessage(err), message) {
			t.Fatalf("error = %v; want code %s containing %q", err, code, message)
		}
	case err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want == nil && got != cur:
		t.Fatalf("got %+v; want the stored lease itself, nothing to write", got)
	case want != nil && *got != *want:
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestLeaseTimesAreKeptAsStoresKeepThem(t *testing.T) {
	g := grantTo(firstHost, 0)
	g.Now = time.Date(2031, 5, 4, 12, 0, 0, 123456789, time.FixedZone("CEST", 2*3600))
	l, err := engine.NextLease(nil, g)
	if err != nil {
		t.Fatal(err)
	}
	if l.GrantedAt.Location() != time.UTC || l.GrantedAt.Nanosecond() != 123456000 || !l.GrantedAt.Equal(g.Now.Truncate(time.Microsecond)) {
		t.Errorf("GrantedAt = %v; want UTC at microseconds", l.GrantedAt)
	}
}
