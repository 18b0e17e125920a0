package engine

import (
	"context"
	"time"
)

// SubscriptionStatus is where a subscription is in its life.
type SubscriptionStatus string

const (
	SubscriptionPendingPayment SubscriptionStatus = "pending_payment"
	// SubscriptionWaitingForInputs is paid but lacks required inputs: it
	// activates, and its paid term starts, once its owner supplies them.
	SubscriptionWaitingForInputs SubscriptionStatus = "waiting_for_inputs"
	SubscriptionActive           SubscriptionStatus = "active"
	SubscriptionExpired          SubscriptionStatus = "expired"
	SubscriptionCancelled        SubscriptionStatus = "cancelled"
)

// CanBecome reports whether a subscription may move from s to next.
func (s SubscriptionStatus) CanBecome(next SubscriptionStatus) bool {
	switch s {
	case SubscriptionPendingPayment:
		return next == SubscriptionWaitingForInputs || next == SubscriptionActive || next == SubscriptionCancelled
	case SubscriptionWaitingForInputs:
		return next == SubscriptionActive || next == SubscriptionCancelled
	case SubscriptionActive:
		return next == SubscriptionExpired || next == SubscriptionCancelled
	}
	return false
}

// Subscription is a customer's purchase of one node of a chain.
type Subscription struct {
	ID             string
	UserID         string
	ChainProfileID string
	NodeType       string
	Duration       string // as the chain profile names it, e.g. "1m"
	Provider       string
	Region         string
	InstanceType   string
	Status         SubscriptionStatus
	PaymentID      string    // empty until a payment is linked
	ExpiresAt      time.Time // placeholder until activation
	CreatedAt      time.Time
	UpdatedAt      time.Time
	Version        int64
}

// SubscriptionKey identifies the purchase a pending subscription stands for:
// creating the same one twice returns the pending one.
type SubscriptionKey struct {
	UserID, ChainProfileID, NodeType, Duration string
}

// SubscriptionStore keeps subscriptions. Safe for concurrent use.
type SubscriptionStore interface {
	// CreateSubscription stores s with Version 1. Returns EConflict if the ID
	// is taken, or if s is pending and a pending one with the same key exists.
	CreateSubscription(ctx context.Context, s *Subscription) error
	// GetSubscription returns ENotFound if missing.
	GetSubscription(ctx context.Context, id string) (*Subscription, error)
	// FindPendingSubscription returns the pending_payment subscription with
	// key, or ENotFound.
	FindPendingSubscription(ctx context.Context, key SubscriptionKey) (*Subscription, error)
	// ListSubscriptions returns the user's subscriptions, newest first.
	ListSubscriptions(ctx context.Context, userID string) ([]*Subscription, error)
	// ListSubscriptionsByPayment returns the subscriptions linked to paymentID.
	ListSubscriptionsByPayment(ctx context.Context, paymentID string) ([]*Subscription, error)
	// ListSubscriptionsExpiringBefore returns active subscriptions whose
	// ExpiresAt is before t, at most limit.
	ListSubscriptionsExpiringBefore(ctx context.Context, t time.Time, limit int) ([]*Subscription, error)
	// UpdateSubscription writes s if s.Version matches, then bumps it.
	// Returns ENotFound if missing, EConflict if the version is stale: of two
	// writers holding the same version exactly one wins.
	UpdateSubscription(ctx context.Context, s *Subscription) error
}
