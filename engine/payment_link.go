package engine

import (
	"context"
	"errors"
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

// PaymentsStore is the part of the Store the payment use-cases need.
type PaymentsStore interface {
	SubscriptionStore
	PaymentStore
	InputStore
}

// PaymentsConfig is what the payment use-cases need. Store and Catalog
// are required; without Events payments cannot be marked paid.
type PaymentsConfig struct {
	Store   PaymentsStore
	Catalog Catalog // prices and required inputs
	Events  Events
	Now     func() time.Time
}

// Payments holds the use-cases of payments: a customer links and reads
// theirs; an administrator marks one paid. Safe for concurrent use.
type Payments struct {
	cfg PaymentsConfig
}

// NewPayments checks cfg; it does no I/O.
func NewPayments(cfg PaymentsConfig) (*Payments, error) {
	if cfg.Store == nil || cfg.Catalog == nil {
		return nil, errors.New("payments: store and catalog are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Payments{cfg: cfg}, nil
}

// Link records a pending payment for the caller's pending_payment
// subscriptions and links them to it, so payment.completed activates them
// (path 1). The amount must be in PaymentCurrency and cover the current
// price of the subscriptions, and every required input of each must be
// supplied. Returns EInvalid for bad input, a currency other than
// PaymentCurrency or an amount short of the price; ENotFound for a
// subscription that is missing or somebody else's; EConflict for one that
// is not pending_payment, lacks required inputs (the message names them)
// or is already linked to another payment that is not underpaid, or when
// the external id is taken. Repeating the same request returns the
// payment with created false.
func (u *Payments) Link(ctx context.Context, p *Principal, req LinkPaymentRequest) (pay *Payment, created bool, err error) {
	if p == nil || p.Bootstrap() {
		return nil, false, Errorf(EForbidden, "payments are made by a user, not the bootstrap administrator")
	}
	if err := req.normalize(); err != nil {
		return nil, false, err
	}
	id := PaymentIDFor(req.ExternalID)
	subs, err := u.linkableSubscriptions(ctx, p.UserID, id, req.SubscriptionIDs)
	if err != nil {
		return nil, false, err
	}
	if err := u.checkTerms(ctx, req, subs); err != nil {
		return nil, false, err
	}
	now := u.cfg.Now().UTC()
	pay = &Payment{
		ID: id, UserID: p.UserID, ExternalID: req.ExternalID, AmountCents: req.AmountCents,
		Currency: req.Currency, Status: PaymentPending, SubscriptionIDs: req.SubscriptionIDs, CreatedAt: now,
	}
	created = true
	if err := u.cfg.Store.CreatePayment(ctx, pay); err != nil {
		if pay, err = samePayment(ctx, u.cfg.Store, pay, err); err != nil {
			return nil, false, err
		}
		created = false
	}
	// Linking again after a repeat finishes a request that stopped halfway.
	if err := linkSubscriptions(ctx, u.cfg.Store, subs, id, now); err != nil {
		return nil, false, err
	}
	return pay, created, nil
}

// checkTerms refuses a link that could never activate what it pays for.
func (u *Payments) checkTerms(ctx context.Context, req LinkPaymentRequest, subs []*Subscription) error {
	if req.Currency != PaymentCurrency {
		return Errorf(EInvalid, "currency must be %s: prices are in euro cents", PaymentCurrency)
	}
	if err := requireInputs(ctx, u.cfg.Store, u.cfg.Catalog, subs); err != nil {
		return err
	}
	items := make([]purchase, len(subs))
	for i, s := range subs {
		items[i] = s.purchase()
	}
	price, err := priceOf(u.cfg.Catalog, items)
	if err != nil {
		return err
	}
	if req.AmountCents < price {
		return Errorf(EInvalid, "amount_cents %d does not cover the price of the subscriptions: %d %s cents", req.AmountCents, price, PaymentCurrency)
	}
	return nil
}

// Get returns the caller's payment id, or any payment to an administrator
// (underpaid ones are theirs to settle); ENotFound if it is missing or
// somebody else's.
func (u *Payments) Get(ctx context.Context, p *Principal, id string) (*Payment, error) {
	if p == nil {
		return nil, Errorf(ENotFound, "payment %s not found", id)
	}
	pay, err := u.cfg.Store.GetPayment(ctx, id)
	if IsCode(err, ENotFound) || (err == nil && pay.UserID != p.UserID && !p.Can(ScopeAdmin)) {
		return nil, Errorf(ENotFound, "payment %s not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read payment %s: %w", id, err)
	}
	return pay, nil
}

// MarkPaid announces payment id as paid, in the amount declared when it
// was linked, without a payment provider (staging; hoodcloud admin
// mark-paid). Returns ENotFound for an unknown payment, EConflict naming
// the inputs its pending subscriptions lack, EUnsupported without Events.
func (u *Payments) MarkPaid(ctx context.Context, id string) error {
	if u.cfg.Events == nil {
		return Errorf(EUnsupported, "the event bus is not configured")
	}
	pay, err := u.cfg.Store.GetPayment(ctx, id)
	if err != nil {
		return err
	}
	var waiting []*Subscription
	for _, sid := range pay.SubscriptionIDs {
		s, err := u.cfg.Store.GetSubscription(ctx, sid)
		if err != nil {
			return fmt.Errorf("read subscription %s: %w", sid, err)
		}
		if s.Status == SubscriptionPendingPayment {
			waiting = append(waiting, s)
		}
	}
	if err := requireInputs(ctx, u.cfg.Store, u.cfg.Catalog, waiting); err != nil {
		return err
	}
	return MarkPaid(ctx, u.cfg.Events, id)
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
// written, so a bad one fails the request without a half-made link. A
// subscription linked to an underpaid payment may be linked again: that
// money paid for nothing.
func (u *Payments) linkableSubscriptions(ctx context.Context, userID, paymentID string, ids []string) ([]*Subscription, error) {
	subs := make([]*Subscription, 0, len(ids))
	for _, id := range ids {
		s, err := u.cfg.Store.GetSubscription(ctx, id)
		if IsCode(err, ENotFound) || (err == nil && s.UserID != userID) {
			return nil, Errorf(ENotFound, "subscription %s not found", id)
		}
		if err != nil {
			return nil, fmt.Errorf("read subscription %s: %w", id, err)
		}
		if s.Status != SubscriptionPendingPayment {
			return nil, Errorf(EConflict, "subscription %s is %s, not pending_payment", id, s.Status)
		}
		if err := u.relinkable(ctx, s, paymentID); err != nil {
			return nil, err
		}
		subs = append(subs, s)
	}
	return subs, nil
}

func (u *Payments) relinkable(ctx context.Context, s *Subscription, paymentID string) error {
	if s.PaymentID == "" || s.PaymentID == paymentID {
		return nil
	}
	other, err := u.cfg.Store.GetPayment(ctx, s.PaymentID)
	if err == nil && other.Status == PaymentUnderpaid {
		return nil
	}
	if err != nil && !IsCode(err, ENotFound) {
		return fmt.Errorf("read payment %s: %w", s.PaymentID, err)
	}
	return Errorf(EConflict, "subscription %s is already linked to payment %s", s.ID, s.PaymentID)
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
