package enginetest

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

func stIncident(nodeID, dedupe string, opened time.Time) *engine.Incident {
	return &engine.Incident{
		ID: engine.NewID("inc"), NodeID: nodeID, DedupeKey: dedupe, Severity: engine.SeverityWarning,
		Summary: "node is behind", OpenedAt: opened,
	}
}

func testStoreIncidents(t *testing.T, s engine.Store, _ StoreOpener) {
	t.Run("OpenThenGetAndFind", func(t *testing.T) {
		i := stIncident(engine.NewID("node"), "lagging", stAt(0))
		stOK(t, s.OpenIncident(t.Context(), i))
		if i.Version != 1 {
			t.Fatalf("Version after open = %d, want 1", i.Version)
		}
		got, err := s.GetIncident(t.Context(), i.ID)
		stOK(t, err)
		stSame(t, got, i)
		got, err = s.FindOpenIncident(t.Context(), i.NodeID, i.DedupeKey)
		stOK(t, err)
		stSame(t, got, i)
	})
	t.Run("UnknownIncidentIsNotFound", func(t *testing.T) {
		_, err := s.GetIncident(t.Context(), "inc_missing")
		stCode(t, err, engine.ENotFound)
		_, err = s.FindOpenIncident(t.Context(), "node_missing", "lagging")
		stCode(t, err, engine.ENotFound)
		stCode(t, s.UpdateIncident(t.Context(), stIncident("node_missing", "x", stAt(0))), engine.ENotFound)
	})
	t.Run("OneOpenIncidentPerNodeAndKeyUntilResolved", func(t *testing.T) {
		node := engine.NewID("node")
		i := stIncident(node, "disk", stAt(0))
		stOK(t, s.OpenIncident(t.Context(), i))
		stCode(t, s.OpenIncident(t.Context(), stIncident(node, "disk", stAt(1))), engine.EConflict)
		sameID := stIncident(node, "other-key", stAt(1))
		sameID.ID = i.ID
		stCode(t, s.OpenIncident(t.Context(), sameID), engine.EConflict)
		stOK(t, s.OpenIncident(t.Context(), stIncident(engine.NewID("node"), "disk", stAt(1))))

		stale := *i
		i.ResolvedAt, i.NotifiedAt = stAt(60), stAt(61)
		stOK(t, s.UpdateIncident(t.Context(), i))
		if i.Version != 2 {
			t.Fatalf("Version after update = %d, want 2", i.Version)
		}
		stCode(t, s.UpdateIncident(t.Context(), &stale), engine.EConflict)
		_, err := s.FindOpenIncident(t.Context(), node, "disk")
		stCode(t, err, engine.ENotFound)
		again := stIncident(node, "disk", stAt(120))
		stOK(t, s.OpenIncident(t.Context(), again))
		got, err := s.FindOpenIncident(t.Context(), node, "disk")
		stOK(t, err)
		stSame(t, got, again)
	})
	t.Run("ListNewestFirst", func(t *testing.T) {
		node := engine.NewID("node")
		byAt := map[int]*engine.Incident{}
		for _, at := range []int{20, 40, 0} {
			i := stIncident(node, fmt.Sprint("key-", at), stAt(at))
			stOK(t, s.OpenIncident(t.Context(), i))
			byAt[at] = i
		}
		stOK(t, s.OpenIncident(t.Context(), stIncident(engine.NewID("node"), "key", stAt(30))))
		got, err := s.ListIncidents(t.Context(), node)
		stOK(t, err)
		stSame(t, got, []*engine.Incident{byAt[40], byAt[20], byAt[0]})
	})
}

func testStoreUptime(t *testing.T, s engine.Store, reopen StoreOpener) {
	hour := func(h int) time.Time {
		return time.Date(2031, 5, 4, 0, 0, 0, 0, time.UTC).Add(time.Duration(h) * time.Hour)
	}
	bucket := func(node string, h int, up int64) *engine.UptimeBucket {
		return &engine.UptimeBucket{NodeID: node, Hour: hour(h), UpSeconds: up, DownSeconds: 3600 - up, Complete: true}
	}
	t.Run("PutReplacesAndListIsHalfOpenOldestFirst", func(t *testing.T) {
		node := engine.NewID("node")
		b0, b1, b2, b3 := bucket(node, 0, 3600), bucket(node, 1, 3000), bucket(node, 2, 10), bucket(node, 3, 0)
		stOK(t, s.PutUptimeBuckets(t.Context(), []*engine.UptimeBucket{b3, b1, b0, bucket(node, 2, 1)}))
		stOK(t, s.PutUptimeBuckets(t.Context(), []*engine.UptimeBucket{b2, bucket(engine.NewID("node"), 1, 5)}))
		got, err := s.ListUptimeBuckets(t.Context(), node, hour(1), hour(3))
		stOK(t, err)
		stSame(t, got, []*engine.UptimeBucket{b1, b2})
		got, err = s.ListUptimeBuckets(t.Context(), node, hour(-10), hour(10))
		stOK(t, err)
		stSame(t, got, []*engine.UptimeBucket{b0, b1, b2, b3})
	})
	t.Run("MarkRecompute", func(t *testing.T) {
		node := engine.NewID("node")
		b := bucket(node, 5, 100)
		stOK(t, s.PutUptimeBuckets(t.Context(), []*engine.UptimeBucket{b}))
		stOK(t, s.MarkUptimeRecompute(t.Context(), node, hour(5)))
		got, err := s.ListUptimeBuckets(t.Context(), node, hour(5), hour(6))
		stOK(t, err)
		b.Recompute = true
		stSame(t, got, []*engine.UptimeBucket{b})
		stCode(t, s.MarkUptimeRecompute(t.Context(), node, hour(6)), engine.ENotFound)
	})
	t.Run("RecomputeNodesListsFlaggedNodesOnceInPages", func(t *testing.T) {
		s := openStore(t, reopen)
		ids := stSorted([]string{engine.NewID("node"), engine.NewID("node"), engine.NewID("node"), engine.NewID("node")})
		a, b, c, d := ids[0], ids[1], ids[2], ids[3]
		stOK(t, s.PutUptimeBuckets(t.Context(), []*engine.UptimeBucket{
			bucket(a, 0, 1), bucket(a, 1, 1), bucket(b, 0, 1), bucket(c, 0, 1), bucket(c, 1, 1), bucket(d, 0, 1),
		}))
		for _, m := range []struct {
			node string
			h    int
		}{{a, 0}, {a, 1}, {c, 1}, {d, 0}} {
			stOK(t, s.MarkUptimeRecompute(t.Context(), m.node, hour(m.h)))
		}
		got, err := s.ListUptimeRecomputeNodes(t.Context(), "", 2)
		stOK(t, err)
		stSameIDs(t, got, []string{a, c})
		got, err = s.ListUptimeRecomputeNodes(t.Context(), c, 2)
		stOK(t, err)
		stSameIDs(t, got, []string{d})

		// Recomputed (put back unflagged) or purged, a bucket leaves the list.
		stOK(t, s.PutUptimeBuckets(t.Context(), []*engine.UptimeBucket{bucket(c, 1, 2)}))
		_, err = s.DeleteUptimeBucketsBefore(t.Context(), hour(1))
		stOK(t, err)
		got, err = s.ListUptimeRecomputeNodes(t.Context(), "", 0)
		stOK(t, err)
		stSameIDs(t, got, []string{a})
	})
	t.Run("DeleteBeforePurgesAcrossNodesAndCounts", func(t *testing.T) {
		s := openStore(t, reopen)
		a, b := engine.NewID("node"), engine.NewID("node")
		stOK(t, s.PutUptimeBuckets(t.Context(), []*engine.UptimeBucket{
			bucket(a, 0, 1), bucket(a, 1, 1), bucket(a, 2, 1), bucket(b, 0, 1), bucket(b, 3, 1),
		}))
		n, err := s.DeleteUptimeBucketsBefore(t.Context(), hour(2))
		stOK(t, err)
		if n != 3 {
			t.Fatalf("deleted %d buckets, want 3", n)
		}
		got, err := s.ListUptimeBuckets(t.Context(), a, hour(-1), hour(10))
		stOK(t, err)
		stSame(t, got, []*engine.UptimeBucket{bucket(a, 2, 1)})
		got, err = s.ListUptimeBuckets(t.Context(), b, hour(-1), hour(10))
		stOK(t, err)
		stSame(t, got, []*engine.UptimeBucket{bucket(b, 3, 1)})
	})
}

func testStoreLeader(t *testing.T, s engine.Store, _ StoreOpener) {
	t.Run("EpochStartsAtZeroAndEveryAdvanceIsUnique", func(t *testing.T) {
		epoch, holder, err := s.LeaderEpoch(t.Context())
		stOK(t, err)
		if epoch != 0 || holder != "" {
			t.Fatalf("fresh store epoch %d held by %q, want 0 and nobody", epoch, holder)
		}
		first, err := s.AdvanceLeaderEpoch(t.Context(), "a")
		stOK(t, err)
		if first != 1 {
			t.Fatalf("first epoch = %d, want 1", first)
		}
		epochs := make([]int64, 6)
		errs := stRace(len(epochs), func(i int) error {
			var err error
			epochs[i], err = s.AdvanceLeaderEpoch(t.Context(), fmt.Sprint("racer-", i))
			return err
		})
		for _, err := range errs {
			stOK(t, err)
		}
		sort.Slice(epochs, func(i, j int) bool { return epochs[i] < epochs[j] })
		for i, e := range epochs {
			if e != int64(i+2) {
				t.Fatalf("concurrent epochs = %v, want 2..7 each once", epochs)
			}
		}
		last, err := s.AdvanceLeaderEpoch(t.Context(), "b")
		stOK(t, err)
		epoch, holder, err = s.LeaderEpoch(t.Context())
		stOK(t, err)
		if epoch != last || last != 8 || holder != "b" {
			t.Fatalf("epoch %d held by %q, want 8 held by b", epoch, holder)
		}
	})
}

func testStoreSecrets(t *testing.T, s engine.Store, _ StoreOpener) {
	t.Run("PutReplaceGetDeleteList", func(t *testing.T) {
		names, err := s.ListSecrets(t.Context(), "")
		stOK(t, err)
		stSameIDs(t, names, nil)
		for _, name := range []string{"keyring/b", "keyring/a", "other/x", "keyring/c"} {
			stOK(t, s.PutSecret(t.Context(), name, []byte("ct-"+name)))
		}
		stOK(t, s.PutSecret(t.Context(), "keyring/a", []byte("rotated")))
		got, err := s.GetSecret(t.Context(), "keyring/a")
		stOK(t, err)
		if string(got) != "rotated" {
			t.Fatalf("secret = %q, want the replacement", got)
		}
		stOK(t, s.DeleteSecret(t.Context(), "keyring/c"))
		stOK(t, s.DeleteSecret(t.Context(), "keyring/c"))
		_, err = s.GetSecret(t.Context(), "keyring/c")
		stCode(t, err, engine.ENotFound)
		names, err = s.ListSecrets(t.Context(), "keyring/")
		stOK(t, err)
		stSameIDs(t, names, []string{"keyring/a", "keyring/b"})
		names, err = s.ListSecrets(t.Context(), "")
		stOK(t, err)
		stSameIDs(t, names, []string{"keyring/a", "keyring/b", "other/x"})
	})
}

func testStoreTimesAndAliasing(t *testing.T, s engine.Store, _ StoreOpener) {
	t.Run("TimesComeBackInUTCAtMicrosecondPrecision", func(t *testing.T) {
		zone := time.FixedZone("IST", 5*3600+1800)
		n := stNode("user_t", "c", engine.NodeRunning)
		n.CreatedAt = time.Date(2031, 5, 4, 15, 50, 30, 654321000, zone)
		n.UpdatedAt = n.CreatedAt.Add(time.Microsecond)
		n.Runtime.LastUpgrade = &engine.UpgradeRecord{RolloutID: "ro_t", Outcome: "succeeded", At: n.UpdatedAt}
		stOK(t, s.CreateNode(t.Context(), n))
		got, err := s.GetNode(t.Context(), n.ID)
		stOK(t, err)
		if !got.CreatedAt.Equal(n.CreatedAt) || !got.UpdatedAt.Equal(n.UpdatedAt) || !got.LastSeenAt.IsZero() {
			t.Fatalf("times came back as %v, %v, %v; want %v, %v and zero", got.CreatedAt, got.UpdatedAt, got.LastSeenAt, n.CreatedAt, n.UpdatedAt)
		}
		if !got.Runtime.LastUpgrade.At.Equal(n.UpdatedAt) {
			t.Fatalf("last upgrade at %v, want %v", got.Runtime.LastUpgrade.At, n.UpdatedAt)
		}
		stUTC(t, got.CreatedAt, got.UpdatedAt, got.Runtime.LastUpgrade.At)
	})
	t.Run("ChangingInputsAfterWritingDoesNotChangeTheStore", func(t *testing.T) {
		k := stAPIKey("user_x", stAt(0))
		u := stUser()
		k.UserID = u.ID
		stOK(t, s.CreateUser(t.Context(), u))
		stOK(t, s.CreateAPIKey(t.Context(), k))
		want := *k
		want.Scopes = append([]string(nil), k.Scopes...)
		k.Scopes[0], k.Name = "admin", "changed"
		got, err := s.GetAPIKeyByHash(t.Context(), want.Hash)
		stOK(t, err)
		stSame(t, got, &want)
	})
	t.Run("ChangingReturnedRecordsDoesNotChangeTheStore", func(t *testing.T) {
		p := stPayment("user_y")
		stOK(t, s.CreatePayment(t.Context(), p))
		got, err := s.GetPayment(t.Context(), p.ID)
		stOK(t, err)
		got.SubscriptionIDs[0], got.Status = "sub_changed", engine.PaymentUnderpaid
		again, err := s.GetPayment(t.Context(), p.ID)
		stOK(t, err)
		stSame(t, again, p)

		c := stCommand("node_y", engine.CommandQueued, stAt(0))
		stOK(t, s.CreateCommand(t.Context(), c))
		list, err := s.ListCommandsByNode(t.Context(), c.NodeID)
		stOK(t, err)
		list[0].Payload[0], list[0].Status = 'X', engine.CommandFailed
		back, err := s.GetCommand(t.Context(), c.ID)
		stOK(t, err)
		stSame(t, back, c)

		stOK(t, s.PutSecret(t.Context(), "alias/s", []byte("abc")))
		blob, err := s.GetSecret(t.Context(), "alias/s")
		stOK(t, err)
		blob[0] = 'X'
		if blob, _ = s.GetSecret(t.Context(), "alias/s"); string(blob) != "abc" {
			t.Fatalf("secret = %q after changing a returned copy", blob)
		}
	})
}
