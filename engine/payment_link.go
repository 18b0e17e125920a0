package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
)

// maxLinkedSubscriptions bounds the subscriptions one payment pays for.
const maxLinkedSubscriptions = 50

// LinkPaymentRequest is POST /api/v1/payments: the payment a customer is
// about to make at the provider and the pending subscriptions it pays for.
type LinkPaymentRequest struct {
	ExternalID      string
	AmountCents     int64
	Currency        string
	SubscriptionIDs []string
}

// PaymentLinker is the part of the Store LinkPayment needs.
type PaymentLinker interface {
	SubscriptionStore
	PaymentStore
}

// LinkPayment records a pending payment for the caller's pending_payment
// subscriptions and links them to it, so payment.completed activates them
// (path 1). Returns EInvalid for bad input, ENotFound for a subscription
// that is missing or somebody else's, EConflict for one that is not
// pending_payment or already linked to another payment, or when the
// external id is taken. Repeating the same request returns the payment
// with created false.
func LinkPayment(ctx context.Context, st PaymentLinker, p *Principal, req LinkPaymentRequest, now time.Time) (pay *Payment, created bool, err error) {
	if p == nil || p.Bootstrap() {
		return nil, false, Errorf(EForbidden, "payments are made by a user, not the bootstrap administrator")
	}
	if err := req.normalize(); err != nil {
		return nil, false, err
	}
	id := PaymentIDFor(req.ExternalID)
	subs, err := linkableSubscriptions(ctx, st, p.UserID, id, req.SubscriptionIDs)
	if err != nil {
		return nil, false, err
	}
	pay = &Payment{
		ID: id, UserID: p.UserID, ExternalID: req.ExternalID, AmountCents: req.AmountCents,
		Currency: req.Currency, Status: PaymentPending, SubscriptionIDs: req.SubscriptionIDs, CreatedAt: now.UTC(),
	}
	created = true
	if err := st.CreatePayment(ctx, pay); err != nil {
		if pay, err = samePayment(ctx, st, pay, err); err != nil {
			return nil, false, err
		}
		created = false
	}
	// Linking again after a repeat finishes a request that stopped halfway.
	if err := linkSubscriptions(ctx, st, subs, id, now); err != nil {
		return nil, false, err
	}
	return pay, created, nil
}

func (r *LinkPaymentRequest) normalize() error {
	r.ExternalID = strings.TrimSpace(r.ExternalID)
	r.Currency = strings.ToUpper(strings.TrimSpace(r.Currency))
	switch {
	case r.ExternalID == "" || len(r.ExternalID) > 200 || strings.IndexFunc(r.ExternalID, unicode.IsControl) >= 0:
		return Errorf(EInvalid, "external_id is required: at most 200 printable characters")
	case r.AmountCents <= 0:
		return Errorf(EInvalid, "amount_cents must be a positive number of cents")
	case len(r.Currency) != 3 || strings.Trim(r.Currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "":
		return Errorf(EInvalid, "currency must be a three-letter ISO 4217 code, such as EUR")
	case len(r.SubscriptionIDs) == 0 || len(r.SubscriptionIDs) > maxLinkedSubscriptions:
		return Errorf(EInvalid, "subscription_ids must name 1 to %d subscriptions", maxLinkedSubscriptions)
	}
	seen := make(map[string]bool, len(r.SubscriptionIDs))
	for _, id := range r.SubscriptionIDs {
		if id == "" || seen[id] {
			return Errorf(EInvalid, "subscription_ids must be distinct and non-empty")
		}
		seen[id] = true
	}
	return nil
}

// linkableSubscriptions reads every subscription before anything is
// written, so a bad one fails the request without a half-made link.
func linkableSubscriptions(ctx context.Context, st SubscriptionStore, userID, paymentID string, ids []string) ([]*Subscription, error) {
	subs := make([]*Subscription, 0, len(ids))
	for _, id := range ids {
		s, err := st.GetSubscription(ctx, id)
		if IsCode(err, ENotFound) || (err == nil && s.UserID != userID) {
			return nil, Errorf(ENotFound, "subscription %s not found", id)
		}
		if err != nil {
			return nil, fmt.Errorf("read subscription %s: %w", id, err)
		}
		if s.Status != SubscriptionPendingPayment {
			return nil, Errorf(EConflict, "subscription %s is %s, not pending_payment", id, s.Status)
		}
		if s.PaymentID != "" && s.PaymentID != paymentID {
			return nil, Errorf(EConflict, "subscription %s is already linked to payment %s", id, s.PaymentID)
		}
		subs = append(subs, s)
	}
	return subs, nil
}

func linkSubscriptions(ctx context.Context, st SubscriptionStore, subs []*Subscription, paymentID string, now time.Time) error {
	for _, s := range subs {
		if s.PaymentID == paymentID {
			continue
		}
		s.PaymentID, s.UpdatedAt = paymentID, now.UTC()
		if err := st.UpdateSubscription(ctx, s); err != nil {
			return fmt.Errorf("link subscription %s: %w", s.ID, err)
		}
	}
	return nil
}

// samePayment answers a CreatePayment conflict: the caller's own identical
// request repeated is no error, anything else is.
func samePayment(ctx context.Context, st PaymentStore, want *Payment, createErr error) (*Payment, error) {
	if !IsCode(createErr, EConflict) {
		return nil, fmt.Errorf("create payment: %w", createErr)
	}
	got, err := st.GetPayment(ctx, want.ID)
	if err != nil || got.UserID != want.UserID || got.AmountCents != want.AmountCents ||
		got.Currency != want.Currency || !slices.Equal(got.SubscriptionIDs, want.SubscriptionIDs) {
		return nil, Errorf(EConflict, "external_id %s is already used by another payment", want.ExternalID)
	}
	return got, nil
}
