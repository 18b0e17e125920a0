package engine_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/store/bolt"
)

func TestADeposedLeaderStopsExpiringAtTheFirstRefusedWrite(t *testing.T) {
	ctx := context.Background()
	store := bolt.New(filepath.Join(t.TempDir(), "hoodcloud.db"))
	if err := store.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, id := range []string{"sub_a", "sub_b", "sub_c"} {
		s := &engine.Subscription{ID: id, UserID: "u1", ChainProfileID: "c", NodeType: "full", Duration: "1m",
			Status: engine.SubscriptionActive, ExpiresAt: now.Add(-time.Minute), CreatedAt: now.Add(-time.Hour)}
		if err := store.CreateSubscription(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	old, err := store.AdvanceLeaderEpoch(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.AdvanceLeaderEpoch(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	attempts := 0
	fenced := engine.ObserveFencedWrites(engine.WithLeaderEpoch(ctx, old), func(error) { attempts++ })

	n, err := engine.ExpireSubscriptions(fenced, store, store, &terminations{}, now, 100)
	if n != 0 || !errors.Is(err, engine.ErrStaleLeader) || attempts != 1 {
		t.Fatalf("expired %d after %d fenced writes, err %v; want none after one, refused as a stale leader", n, attempts, err)
	}
	for _, id := range []string{"sub_a", "sub_b", "sub_c"} {
		if s, err := store.GetSubscription(ctx, id); err != nil || s.Status != engine.SubscriptionActive {
			t.Errorf("%s = %v, %v; want still active for the new leader", id, s.Status, err)
		}
	}
}
