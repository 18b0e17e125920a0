package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/mock"
)

// raceStore is a SubscriptionsStore in which another writer always wins:
// the first lookup misses, creating conflicts, the second lookup finds the
// other writer's subscription. Only the methods the use-cases call here
// are implemented.
type raceStore struct {
	engine.SubscriptionsStore
	theirs  *engine.Subscription
	lookups int
	updates int
	stale   int // how many updates answer EConflict before one succeeds
}

func (s *raceStore) FindPendingSubscription(context.Context, engine.SubscriptionKey) (*engine.Subscription, error) {
	s.lookups++
	if s.lookups == 1 {
		return nil, engine.Errorf(engine.ENotFound, "none")
	}
	return s.theirs, nil
}

func (s *raceStore) CreateSubscription(context.Context, *engine.Subscription) error {
	return engine.Errorf(engine.EConflict, "a pending subscription with this key exists")
}

func (s *raceStore) GetSubscription(context.Context, string) (*engine.Subscription, error) {
	c := *s.theirs
	return &c, nil
}

func (s *raceStore) UpdateSubscription(_ context.Context, sub *engine.Subscription) error {
	s.updates++
	if s.updates <= s.stale {
		return engine.Errorf(engine.EConflict, "stale version")
	}
	s.theirs = sub
	return nil
}

func newSubscriptions(t *testing.T, st engine.SubscriptionsStore) *engine.Subscriptions {
	t.Helper()
	u, err := engine.NewSubscriptions(engine.SubscriptionsConfig{
		Store: st,
		Catalog: &mock.Catalog{
			PlacementFn: func(string, string, string) (engine.Placement, error) {
				return engine.Placement{Provider: "local", Region: "here", InstanceType: "small"}, nil
			},
			ExpiryFn: func(_ string, from time.Time) (time.Time, error) { return from.AddDate(0, 1, 0), nil },
			InputFn: func(string, string, string) (engine.InputRule, error) {
				return engine.InputRule{}, engine.Errorf(engine.EInvalid, "no inputs")
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSubscribeLosingTheRaceReturnsTheWinner(t *testing.T) {
	theirs := &engine.Subscription{ID: "sub_theirs", UserID: "user_1", Status: engine.SubscriptionPendingPayment}
	st := &raceStore{theirs: theirs}
	s, created, err := newSubscriptions(t, st).Subscribe(context.Background(), &engine.Principal{UserID: "user_1"},
		engine.SubscribeRequest{ChainProfileID: "c", NodeType: "full", Duration: "1m"})
	if err != nil || created || s.ID != "sub_theirs" {
		t.Fatalf("got %v, created %v, %v; want sub_theirs, not created", s, created, err)
	}
}

func TestCancelRetriesAStaleVersion(t *testing.T) {
	st := &raceStore{theirs: &engine.Subscription{ID: "sub_1", UserID: "user_1", Status: engine.SubscriptionPendingPayment}, stale: 1}
	s, err := newSubscriptions(t, st).Cancel(context.Background(), &engine.Principal{UserID: "user_1"}, "sub_1")
	if err != nil || s.Status != engine.SubscriptionCancelled || st.updates != 2 {
		t.Fatalf("got %v, %v after %d updates; want cancelled after 2", s, err, st.updates)
	}
}

func TestSubscriptionsBelongToUsers(t *testing.T) {
	u := newSubscriptions(t, &raceStore{theirs: &engine.Subscription{ID: "sub_1", UserID: "user_1"}})
	ctx := context.Background()
	if _, _, err := u.Subscribe(ctx, &engine.Principal{Scopes: []string{engine.ScopeAdmin}}, engine.SubscribeRequest{}); !engine.IsCode(err, engine.EForbidden) {
		t.Errorf("bootstrap subscribe: %v, want forbidden", err)
	}
	if _, err := u.Get(ctx, &engine.Principal{UserID: "user_2"}, "sub_1"); !engine.IsCode(err, engine.ENotFound) {
		t.Errorf("another user's get: %v, want not found", err)
	}
	if _, err := u.Cancel(ctx, &engine.Principal{UserID: "user_2"}, "sub_1"); !engine.IsCode(err, engine.ENotFound) {
		t.Errorf("another user's cancel: %v, want not found", err)
	}
}

func TestNewSubscriptionsNeedsItsPorts(t *testing.T) {
	if _, err := engine.NewSubscriptions(engine.SubscriptionsConfig{}); err == nil {
		t.Fatal("an empty config was accepted")
	}
}
