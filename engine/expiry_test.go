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

type terminations struct {
	nodes []string
	fail  map[string]bool
}

func (t *terminations) StartProvision(context.Context, string) error               { return nil }
func (t *terminations) StartMigrate(context.Context, string) error                 { return nil }
func (t *terminations) ConfirmSignerStopped(context.Context, string, string) error { return nil }
func (t *terminations) StartTerminate(_ context.Context, nodeID, _ string) error {
	if t.fail[nodeID] {
		return engine.Errorf(engine.EUnavailable, "workflow engine down")
	}
	t.nodes = append(t.nodes, nodeID)
	return nil
}

func TestExpireSubscriptions(t *testing.T) {
	ctx := context.Background()
	store := bolt.New(filepath.Join(t.TempDir(), "hoodcloud.db"))
	if err := store.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	active := func(id string, expires time.Time, withNode bool) {
		s := &engine.Subscription{ID: id, UserID: "u1", ChainProfileID: "c", NodeType: "full", Duration: "1m",
			Status: engine.SubscriptionActive, ExpiresAt: expires, CreatedAt: now.Add(-time.Hour)}
		if err := store.CreateSubscription(ctx, s); err != nil {
			t.Fatal(err)
		}
		if withNode {
			n := &engine.Node{ID: "node_" + id, SubscriptionID: id, OwnerID: "u1", ChainProfileID: "c", NodeType: "full",
				State: engine.NodeRunning, CreatedAt: now.Add(-time.Hour)}
			if err := store.CreateNode(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
	}
	active("due", now.Add(-time.Minute), true)
	active("due-no-node", now.Add(-time.Minute), false)
	active("stuck", now.Add(-time.Minute), true)
	active("later", now.Add(time.Hour), true)

	wf := &terminations{fail: map[string]bool{"node_stuck": true}}
	n, err := engine.ExpireSubscriptions(ctx, store, store, wf, now, 100)
	if n != 2 || !engine.IsCode(err, engine.EUnavailable) {
		t.Fatalf("expired %d, err %v; want 2 and the failure of the stuck one", n, err)
	}
	if len(wf.nodes) != 1 || wf.nodes[0] != "node_due" {
		t.Fatalf("terminated %v, want only node_due", wf.nodes)
	}
	for id, want := range map[string]engine.SubscriptionStatus{
		"due": engine.SubscriptionExpired, "due-no-node": engine.SubscriptionExpired,
		"stuck": engine.SubscriptionActive, "later": engine.SubscriptionActive,
	} {
		s, err := store.GetSubscription(ctx, id)
		if err != nil || s.Status != want {
			t.Errorf("%s = %v, %v; want %s", id, s.Status, err, want)
		}
	}

	wf.fail = nil // the engine is back: the next run finishes the job
	if n, err := engine.ExpireSubscriptions(ctx, store, store, wf, now, 100); n != 1 || err != nil {
		t.Fatalf("second run expired %d, %v; want the stuck one", n, err)
	}
	if _, err := engine.ExpireSubscriptions(ctx, failingSubs{store}, store, wf, now, 100); err == nil {
		t.Fatal("a store failure must be returned")
	}
}

type failingSubs struct{ engine.Store }

func (failingSubs) ListSubscriptionsExpiringBefore(context.Context, time.Time, int) ([]*engine.Subscription, error) {
	return nil, errors.New("disk on fire")
}
