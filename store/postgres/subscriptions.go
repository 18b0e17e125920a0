package postgres

import (
	"context"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
)

const subscriptionColumns = `id, user_id, chain_profile_id, node_type, duration, provider, region, instance_type,
	status, payment_id, expires_at, created_at, updated_at, version`

func scanSubscription(row pgx.Row) (*engine.Subscription, error) {
	var s engine.Subscription
	err := row.Scan(&s.ID, &s.UserID, &s.ChainProfileID, &s.NodeType, &s.Duration, &s.Provider, &s.Region,
		&s.InstanceType, &s.Status, str(&s.PaymentID), at(&s.ExpiresAt), at(&s.CreatedAt), at(&s.UpdatedAt), &s.Version)
	return &s, err
}

// CreateSubscription relies on the partial unique index for "one pending
// subscription per purchase".
func (s *Store) CreateSubscription(ctx context.Context, sub *engine.Subscription) error {
	defer s.observe("create_subscription")()
	_, err := s.pool.Exec(ctx, `INSERT INTO subscriptions (`+subscriptionColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1)`,
		sub.ID, sub.UserID, sub.ChainProfileID, sub.NodeType, sub.Duration, sub.Provider, sub.Region,
		sub.InstanceType, sub.Status, optText(sub.PaymentID), optTime(sub.ExpiresAt), sub.CreatedAt, sub.UpdatedAt)
	if err != nil {
		return translate(err, "subscription")
	}
	sub.Version = 1
	return nil
}

func (s *Store) GetSubscription(ctx context.Context, id string) (*engine.Subscription, error) {
	defer s.observe("get_subscription")()
	sub, err := scanSubscription(s.pool.QueryRow(ctx, `SELECT `+subscriptionColumns+` FROM subscriptions WHERE id = $1`, id))
	if err != nil {
		return nil, translate(err, "subscription")
	}
	return sub, nil
}

func (s *Store) FindPendingSubscription(ctx context.Context, key engine.SubscriptionKey) (*engine.Subscription, error) {
	defer s.observe("find_pending_subscription")()
	sub, err := scanSubscription(s.pool.QueryRow(ctx, `SELECT `+subscriptionColumns+` FROM subscriptions
		WHERE user_id = $1 AND chain_profile_id = $2 AND node_type = $3 AND duration = $4 AND status = $5`,
		key.UserID, key.ChainProfileID, key.NodeType, key.Duration, engine.SubscriptionPendingPayment))
	if err != nil {
		return nil, translate(err, "pending subscription")
	}
	return sub, nil
}

func (s *Store) ListSubscriptions(ctx context.Context, userID string) ([]*engine.Subscription, error) {
	defer s.observe("list_subscriptions")()
	rows, err := s.pool.Query(ctx, `SELECT `+subscriptionColumns+` FROM subscriptions
		WHERE user_id = $1 ORDER BY created_at DESC, id DESC`, userID)
	return collect(rows, err, "subscription", scanSubscription)
}

func (s *Store) ListSubscriptionsByPayment(ctx context.Context, paymentID string) ([]*engine.Subscription, error) {
	defer s.observe("list_subscriptions_by_payment")()
	rows, err := s.pool.Query(ctx, `SELECT `+subscriptionColumns+` FROM subscriptions
		WHERE payment_id = $1 ORDER BY created_at, id`, paymentID)
	return collect(rows, err, "subscription", scanSubscription)
}

func (s *Store) ListSubscriptionsExpiringBefore(ctx context.Context, t time.Time, limit int) ([]*engine.Subscription, error) {
	defer s.observe("list_subscriptions_expiring_before")()
	rows, err := s.pool.Query(ctx, `SELECT `+subscriptionColumns+` FROM subscriptions
		WHERE status = $1 AND expires_at < $2 ORDER BY expires_at, id LIMIT $3`,
		engine.SubscriptionActive, t, noLimit(limit))
	return collect(rows, err, "subscription", scanSubscription)
}

func (s *Store) UpdateSubscription(ctx context.Context, sub *engine.Subscription) error {
	defer s.observe("update_subscription")()
	return s.updateVersioned(ctx, "subscriptions", "subscription", sub.ID, &sub.Version,
		`UPDATE subscriptions SET user_id = $3, chain_profile_id = $4, node_type = $5, duration = $6, provider = $7,
			region = $8, instance_type = $9, status = $10, payment_id = $11, expires_at = $12, created_at = $13,
			updated_at = $14, version = version + 1
		WHERE id = $1 AND version = $2`,
		sub.UserID, sub.ChainProfileID, sub.NodeType, sub.Duration, sub.Provider, sub.Region, sub.InstanceType,
		sub.Status, optText(sub.PaymentID), optTime(sub.ExpiresAt), sub.CreatedAt, sub.UpdatedAt)
}
