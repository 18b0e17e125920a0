package bolt

import (
	"context"
	"time"

	"go.etcd.io/bbolt"

	"github.com/hoodcloud/hoodcloud/engine"
)

var users = kind[engine.User]{
	name: "user", bucket: bUsers,
	key:     func(u *engine.User) []byte { return key(u.ID) },
	version: func(u *engine.User) *int64 { return &u.Version },
	indexes: func(u *engine.User) []index {
		return []index{{bucket: bUsersByEmail, key: key(u.Email), unique: "email is taken"}}
	},
}

func (s *Store) CreateUser(ctx context.Context, u *engine.User) error {
	return create(ctx, s, users, u)
}

func (s *Store) GetUser(ctx context.Context, id string) (*engine.User, error) {
	return getOne(ctx, s, users, key(id))
}

func (s *Store) GetUserByEmail(ctx context.Context, email string) (*engine.User, error) {
	return byIndex(ctx, s, users, bUsersByEmail, key(email), "user with this email")
}

func (s *Store) UpdateUser(ctx context.Context, u *engine.User) error {
	return replaceVersioned(ctx, s, users, u, nil)
}

func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		n = tx.Bucket(bUsers).Stats().KeyN
		return nil
	})
	return n, err
}

var apiKeys = kind[engine.APIKey]{
	name: "api key", bucket: bAPIKeys,
	key: func(k *engine.APIKey) []byte { return key(k.ID) },
	indexes: func(k *engine.APIKey) []index {
		return []index{
			{bucket: bAPIKeysByHash, key: k.Hash, unique: "key hash is taken"},
			{bucket: bAPIKeysByUser, key: key(k.UserID, timeKey(k.CreatedAt), k.ID)},
		}
	},
}

func (s *Store) CreateAPIKey(ctx context.Context, k *engine.APIKey) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		if _, err := users.get(tx, key(k.UserID)); err != nil {
			return err
		}
		return apiKeys.insert(tx, k)
	})
}

func (s *Store) GetAPIKeyByHash(ctx context.Context, hash []byte) (*engine.APIKey, error) {
	return byIndex(ctx, s, apiKeys, bAPIKeysByHash, hash, "api key")
}

func (s *Store) ListAPIKeys(ctx context.Context, userID string) (keys []*engine.APIKey, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		keys, err = apiKeys.list(tx, bAPIKeysByUser, prefix(userID), nil, 0)
		return err
	})
	return keys, err
}

func (s *Store) RevokeAPIKey(ctx context.Context, userID, keyID string, at time.Time) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		return apiKeys.change(tx, key(keyID), func(k *engine.APIKey) error {
			if k.UserID != userID {
				return apiKeys.notFound(key(keyID)) // another user's key is nobody's business
			}
			if k.RevokedAt.IsZero() {
				k.RevokedAt = at
			}
			return nil
		})
	})
}

var subscriptions = kind[engine.Subscription]{
	name: "subscription", bucket: bSubs,
	key:     func(s *engine.Subscription) []byte { return key(s.ID) },
	version: func(s *engine.Subscription) *int64 { return &s.Version },
	indexes: subscriptionIndexes,
}

func subscriptionIndexes(s *engine.Subscription) []index {
	ix := []index{{bucket: bSubsByUser, key: key(s.UserID, newestFirst(s.CreatedAt), s.ID)}}
	if s.PaymentID != "" {
		ix = append(ix, index{bucket: bSubsByPayment, key: key(s.PaymentID, s.ID)})
	}
	switch s.Status {
	case engine.SubscriptionPendingPayment:
		ix = append(ix, index{bucket: bSubsPending, key: pendingKey(engine.SubscriptionKey{
			UserID: s.UserID, ChainProfileID: s.ChainProfileID, NodeType: s.NodeType, Duration: s.Duration,
		}), unique: "a pending subscription for this purchase exists"})
	case engine.SubscriptionActive:
		ix = append(ix, index{bucket: bSubsExpiring, key: key(timeKey(s.ExpiresAt), s.ID)})
	}
	return ix
}

func pendingKey(k engine.SubscriptionKey) []byte {
	return key(k.UserID, k.ChainProfileID, k.NodeType, k.Duration)
}

func (s *Store) CreateSubscription(ctx context.Context, sub *engine.Subscription) error {
	return create(ctx, s, subscriptions, sub)
}

func (s *Store) GetSubscription(ctx context.Context, id string) (*engine.Subscription, error) {
	return getOne(ctx, s, subscriptions, key(id))
}

func (s *Store) FindPendingSubscription(ctx context.Context, k engine.SubscriptionKey) (*engine.Subscription, error) {
	return byIndex(ctx, s, subscriptions, bSubsPending, pendingKey(k), "pending subscription")
}

func (s *Store) ListSubscriptions(ctx context.Context, userID string) (subs []*engine.Subscription, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		subs, err = subscriptions.list(tx, bSubsByUser, prefix(userID), nil, 0)
		return err
	})
	return subs, err
}

func (s *Store) ListSubscriptionsByPayment(ctx context.Context, paymentID string) (subs []*engine.Subscription, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		subs, err = subscriptions.list(tx, bSubsByPayment, prefix(paymentID), nil, 0)
		return err
	})
	return subs, err
}

// ListSubscriptionsExpiringBefore returns them soonest first.
func (s *Store) ListSubscriptionsExpiringBefore(ctx context.Context, t time.Time, limit int) (subs []*engine.Subscription, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) (err error) {
		scanRange(tx.Bucket(bSubsExpiring), nil, []byte(timeKey(t)), func(_, id []byte) bool {
			var sub *engine.Subscription
			if sub, err = subscriptions.get(tx, id); err == nil {
				subs = append(subs, sub)
			}
			return err == nil && (limit <= 0 || len(subs) < limit)
		})
		return err
	})
	return subs, err
}

func (s *Store) UpdateSubscription(ctx context.Context, sub *engine.Subscription) error {
	return replaceVersioned(ctx, s, subscriptions, sub, nil)
}

var payments = kind[engine.Payment]{
	name: "payment", bucket: bPayments,
	key:     func(p *engine.Payment) []byte { return key(p.ID) },
	version: func(p *engine.Payment) *int64 { return &p.Version },
	indexes: func(p *engine.Payment) []index {
		if p.ExternalID == "" {
			return nil
		}
		return []index{{bucket: bPaymentsByExt, key: key(p.ExternalID), unique: "external id is taken"}}
	},
}

func (s *Store) CreatePayment(ctx context.Context, p *engine.Payment) error {
	return create(ctx, s, payments, p)
}

func (s *Store) GetPayment(ctx context.Context, id string) (*engine.Payment, error) {
	return getOne(ctx, s, payments, key(id))
}

func (s *Store) UpdatePayment(ctx context.Context, p *engine.Payment) error {
	return replaceVersioned(ctx, s, payments, p, nil)
}

var paymentEvents = kind[engine.PaymentEvent]{
	name: "payment event", bucket: bPaymentEvents,
	key: func(e *engine.PaymentEvent) []byte { return key(e.EventID) },
}

func (s *Store) RecordPaymentEvent(ctx context.Context, e *engine.PaymentEvent) error {
	return s.update(ctx, func(tx *bbolt.Tx) error { return paymentEvents.insert(tx, e) })
}

func (s *Store) GetPaymentEvent(ctx context.Context, eventID string) (*engine.PaymentEvent, error) {
	return getOne(ctx, s, paymentEvents, key(eventID))
}

func (s *Store) MarkPaymentEventProcessed(ctx context.Context, eventID string, at time.Time) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		return paymentEvents.change(tx, key(eventID), func(e *engine.PaymentEvent) error {
			e.ProcessedAt = at
			return nil
		})
	})
}

var chainRefs = kind[engine.ChainProfileRef]{
	name: "chain profile", bucket: bChainRefs,
	key: func(r *engine.ChainProfileRef) []byte { return key(r.ID) },
}

func (s *Store) PutChainProfileRef(ctx context.Context, r *engine.ChainProfileRef) error {
	return s.update(ctx, func(tx *bbolt.Tx) error { return chainRefs.upsert(tx, r) })
}

func (s *Store) GetChainProfileRef(ctx context.Context, id string) (*engine.ChainProfileRef, error) {
	return getOne(ctx, s, chainRefs, key(id))
}

func (s *Store) ListChainProfileRefs(ctx context.Context) (refs []*engine.ChainProfileRef, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		refs, err = chainRefs.own(tx, nil)
		return err
	})
	return refs, err
}
