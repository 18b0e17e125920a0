package enginetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// stLeaseGap is the gap the suite's grants ask for after a release.
const stLeaseGap = time.Minute

// stGrant leases the node's validator key to its host incarnation at now.
func stGrant(nodeID, incarnation string, now time.Time) engine.LeaseGrant {
	return engine.LeaseGrant{NodeID: nodeID, KeyName: "priv_validator_key",
		Holder: engine.LeaseHolder{NodeID: nodeID, Incarnation: incarnation}, Gap: stLeaseGap, Now: now}
}

func stHolder(nodeID, incarnation string) engine.LeaseHolder {
	return engine.LeaseHolder{NodeID: nodeID, Incarnation: incarnation}
}

func testStoreSigningLeases(t *testing.T, s engine.Store, reopen StoreOpener) {
	t.Run("FirstGrantHasEpochOneAndRepeatsChangeNothing", func(t *testing.T) {
		node := engine.NewID("node")
		l, err := s.GrantSigningLease(t.Context(), stGrant(node, "", stAt(0)))
		stOK(t, err)
		want := &engine.SigningLease{NodeID: node, KeyName: "priv_validator_key", Holder: stHolder(node, ""),
			Epoch: 1, GrantedAt: stAt(0), Version: 1}
		stSame(t, l, want)
		again, err := s.GrantSigningLease(t.Context(), stGrant(node, "", stAt(30)))
		stOK(t, err)
		stSame(t, again, want)
		got, err := s.GetSigningLease(t.Context(), node, "priv_validator_key")
		stOK(t, err)
		stSame(t, got, want)
	})
	t.Run("UnknownLeaseIsNotFound", func(t *testing.T) {
		_, err := s.GetSigningLease(t.Context(), "node_missing", "priv_validator_key")
		stCode(t, err, engine.ENotFound)
		_, err = s.ReleaseSigningLease(t.Context(), "node_missing", "priv_validator_key", stHolder("node_missing", ""), 1, "stopped", stAt(0))
		stCode(t, err, engine.ENotFound)
	})
	t.Run("AnotherHostIsRefusedWhileTheKeyIsHeld", func(t *testing.T) {
		node := engine.NewID("node")
		held, err := s.GrantSigningLease(t.Context(), stGrant(node, "", stAt(0)))
		stOK(t, err)
		_, err = s.GrantSigningLease(t.Context(), stGrant(node, "m1", stAt(3600)))
		stCode(t, err, engine.EConflict)
		_, err = s.ReleaseSigningLease(t.Context(), node, "priv_validator_key", stHolder(node, "m1"), 1, "stopped", stAt(3600))
		stCode(t, err, engine.EConflict)
		got, err := s.GetSigningLease(t.Context(), node, "priv_validator_key")
		stOK(t, err)
		stSame(t, got, held)
	})
	t.Run("ReleaseThenGapThenTheNextHolderGetsTheNextEpoch", func(t *testing.T) {
		testLeaseHandOver(t, s)
	})
	t.Run("RacingFirstGrantsToTwoHostsExactlyOneWins", func(t *testing.T) {
		node := engine.NewID("node")
		errs := stRace(2, func(i int) error {
			_, err := s.GrantSigningLease(t.Context(), stGrant(node, fmt.Sprint("m", i), stAt(0)))
			return err
		})
		stOneWinner(t, errs, engine.EConflict)
	})
	t.Run("RacingGrantsOfAReleasedLeaseToTwoHostsExactlyOneWins", func(t *testing.T) {
		node := engine.NewID("node")
		_, err := s.GrantSigningLease(t.Context(), stGrant(node, "", stAt(0)))
		stOK(t, err)
		_, err = s.ReleaseSigningLease(t.Context(), node, "priv_validator_key", stHolder(node, ""), 1, "stopped", stAt(10))
		stOK(t, err)
		errs := stRace(2, func(i int) error {
			_, err := s.GrantSigningLease(t.Context(), stGrant(node, fmt.Sprint("m", i), stAt(100)))
			return err
		})
		stOneWinner(t, errs, engine.EConflict)
		got, err := s.GetSigningLease(t.Context(), node, "priv_validator_key")
		stOK(t, err)
		if got.Epoch != 2 || !got.Held() || got.Version != 3 {
			t.Fatalf("lease after the race = %+v; want epoch 2 held, version 3", got)
		}
	})
	t.Run("RacingRepeatsOfOneHolderAllSucceed", func(t *testing.T) {
		node := engine.NewID("node")
		for i, err := range stRace(4, func(int) error {
			_, err := s.GrantSigningLease(t.Context(), stGrant(node, "m1", stAt(0)))
			return err
		}) {
			if err != nil {
				t.Errorf("grant %d: %v", i, err)
			}
		}
	})
	t.Run("ListByNodeListAllAndDelete", func(t *testing.T) {
		testLeaseLists(t, openStore(t, reopen))
	})
}

// testLeaseHandOver moves a node's key from its first host to host m1.
func testLeaseHandOver(t *testing.T, s engine.Store) {
	node := engine.NewID("node")
	first, next := stHolder(node, ""), stHolder(node, "m1")
	_, err := s.GrantSigningLease(t.Context(), stGrant(node, "", stAt(0)))
	stOK(t, err)
	rel, err := s.ReleaseSigningLease(t.Context(), node, "priv_validator_key", first, 1, "stopped", stAt(100))
	stOK(t, err)
	want := &engine.SigningLease{NodeID: node, KeyName: "priv_validator_key", Holder: first, Epoch: 1,
		GrantedAt: stAt(0), ReleasedAt: stAt(100), ReleaseReason: "stopped", Version: 2}
	stSame(t, rel, want)
	again, err := s.ReleaseSigningLease(t.Context(), node, "priv_validator_key", first, 1, "host_destroyed", stAt(120))
	stOK(t, err)
	stSame(t, again, want) // a repeat changes nothing

	_, err = s.GrantSigningLease(t.Context(), stGrant(node, "m1", stAt(100).Add(stLeaseGap-time.Microsecond)))
	stCode(t, err, engine.EConflict)
	granted, err := s.GrantSigningLease(t.Context(), stGrant(node, "m1", stAt(100).Add(stLeaseGap)))
	stOK(t, err)
	stSame(t, granted, &engine.SigningLease{NodeID: node, KeyName: "priv_validator_key", Holder: next, Epoch: 2,
		GrantedAt: stAt(160), Version: 3})

	_, err = s.ReleaseSigningLease(t.Context(), node, "priv_validator_key", first, 1, "stopped", stAt(200))
	stCode(t, err, engine.EConflict) // the former holder
	_, err = s.ReleaseSigningLease(t.Context(), node, "priv_validator_key", next, 1, "stopped", stAt(200))
	stCode(t, err, engine.EConflict) // a stale epoch
	got, err := s.GetSigningLease(t.Context(), node, "priv_validator_key")
	stOK(t, err)
	stSame(t, got, granted)
}

func testLeaseLists(t *testing.T, s engine.Store) {
	ctx := t.Context()
	a, b := "node_a", "node_b"
	var all []*engine.SigningLease
	for _, g := range []engine.LeaseGrant{
		{NodeID: b, KeyName: "node_key", Holder: stHolder(b, ""), Now: stAt(0)},
		{NodeID: a, KeyName: "priv_validator_key", Holder: stHolder(a, "m1"), Now: stAt(1)},
		{NodeID: a, KeyName: "bls_key", Holder: stHolder(a, "m1"), Now: stAt(2)},
	} {
		l, err := s.GrantSigningLease(ctx, g)
		stOK(t, err)
		all = append(all, l)
	}
	byNode, err := s.ListSigningLeases(ctx, a)
	stOK(t, err)
	stSame(t, byNode, []*engine.SigningLease{all[2], all[1]})
	everything, err := s.ListAllSigningLeases(ctx, 0)
	stOK(t, err)
	stSame(t, everything, []*engine.SigningLease{all[2], all[1], all[0]})
	firstTwo, err := s.ListAllSigningLeases(ctx, 2)
	stOK(t, err)
	stSame(t, firstTwo, []*engine.SigningLease{all[2], all[1]})

	stOK(t, s.DeleteSigningLeases(ctx, a))
	stOK(t, s.DeleteSigningLeases(ctx, "node_without_leases"))
	byNode, err = s.ListSigningLeases(ctx, a)
	stOK(t, err)
	stSame(t, byNode, []*engine.SigningLease{})
	everything, err = s.ListAllSigningLeases(ctx, 0)
	stOK(t, err)
	stSame(t, everything, []*engine.SigningLease{all[0]})
}
