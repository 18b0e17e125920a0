package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// SubscriptionsStore is the part of the Store the subscription use-cases need.
type SubscriptionsStore interface {
	SubscriptionStore
	NodeStore
	InputStore
}

// InputRule is how a customer may supply one provisioning input of a chain
// profile, as the chain profile declares it.
type InputRule struct {
	Type InputType
	// Supplied is false for secrets the appliance or the chain generates:
	// nobody may supply those.
	Supplied bool
	// Check validates a text or proof value; its errors name the input,
	// never the value.
	Check func(value string) error
	// CheckKey validates the opened plaintext of a user-provided secret
	// against its key type and format (nil: any non-empty secret); it
	// only reads plain, and its errors name the input, never the key.
	CheckKey func(plain []byte) error
}

// SubscriptionsConfig is what the subscription use-cases need. Store and
// Catalog are required.
type SubscriptionsConfig struct {
	Store     SubscriptionsStore
	Workflows Workflows // cancelling an active subscription terminates its node
	// Catalog places nodes, dates expiries and names the inputs of the
	// chain profiles.
	Catalog Catalog
	// SealedBoxKeys open user-provided secrets (keys.BootMaterial's),
	// following rotations. Without them secrets cannot be submitted.
	SealedBoxKeys SealedBoxKeys
	// Events announce a waiting payment again once the inputs it waits
	// for are supplied; without them such a payment waits for mark-paid.
	Events Events
	Now    func() time.Time
}

// SealedBoxKeys are the keys customers seal user-provided secrets to
// (keys.SealedBoxKeys, in the format keys.SealedBoxFormat describes).
// Safe for concurrent use.
type SealedBoxKeys interface {
	// Open opens a sealed box made to the current key or to one still in
	// its grace period, and returns the plaintext, which the caller zeroes
	// with Zero. Returns EInvalid for anything that is malformed,
	// truncated, tampered with, sealed to another key, or longer than
	// MaxSealedBoxBytes; the error never shows any of the content.
	Open(sealed []byte) ([]byte, error)
}

// MaxSealedBoxBytes bounds a sealed box: a secret of at most 16 KiB (key
// material is small) and the largest overhead of the accepted formats, an
// ephemeral public key (32 bytes), a nonce (24) and a Poly1305 tag (16).
// (crypto_box_seal's derives its nonce: 48 bytes.)
const MaxSealedBoxBytes = 16<<10 + 32 + 24 + 16

// Subscriptions holds the customer's use-cases of subscriptions and their
// provisioning inputs. Every one acts for a principal and sees only that
// user's subscriptions: somebody else's is ENotFound, as if missing.
// Safe for concurrent use.
type Subscriptions struct {
	cfg SubscriptionsConfig
}

// NewSubscriptions checks cfg; it does no I/O.
func NewSubscriptions(cfg SubscriptionsConfig) (*Subscriptions, error) {
	if cfg.Store == nil || cfg.Catalog == nil {
		return nil, errors.New("subscriptions: store and catalog are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Subscriptions{cfg: cfg}, nil
}

func (u *Subscriptions) now() time.Time { return u.cfg.Now().UTC() }

// SubscribeRequest is what a customer buys: a node type of a chain profile
// for a duration.
type SubscribeRequest struct {
	ChainProfileID, NodeType, Duration string
}

// Bounds on the read-decide-write loops against racing writers.
const (
	maxCreateAttempts = 3
	maxCancelAttempts = 3
)

// Subscribe returns the caller's pending_payment subscription for the same
// purchase with created false, or creates one, pending_payment, with no
// payment and a placeholder expiry (recomputed at activation). Of
// concurrent identical requests exactly one creates; the others return it.
// Returns EForbidden for the bootstrap administrator, EInvalid naming an
// unknown chain profile, node type or duration.
func (u *Subscriptions) Subscribe(ctx context.Context, p *Principal, req SubscribeRequest) (s *Subscription, created bool, err error) {
	if err := requireUser(p); err != nil {
		return nil, false, err
	}
	key := SubscriptionKey{UserID: p.UserID, ChainProfileID: req.ChainProfileID, NodeType: req.NodeType, Duration: req.Duration}
	for range maxCreateAttempts {
		s, err = u.cfg.Store.FindPendingSubscription(ctx, key)
		if err == nil {
			return s, false, nil
		}
		if !IsCode(err, ENotFound) {
			return nil, false, fmt.Errorf("find pending subscription: %w", err)
		}
		if s, err = u.newSubscription(key); err != nil {
			return nil, false, err
		}
		err = u.cfg.Store.CreateSubscription(ctx, s)
		if err == nil {
			return s, true, nil
		}
		if !IsCode(err, EConflict) {
			return nil, false, fmt.Errorf("create subscription: %w", err)
		}
		// Somebody created the same pending subscription meanwhile: find it.
	}
	return nil, false, Errorf(EConflict, "the subscription changed while being created; retry")
}

// newSubscription validates the purchase against the chain profiles.
func (u *Subscriptions) newSubscription(key SubscriptionKey) (*Subscription, error) {
	if key.ChainProfileID == "" || key.NodeType == "" || key.Duration == "" {
		return nil, Errorf(EInvalid, "chain_profile_id, node_type and duration are required")
	}
	pl, err := u.cfg.Catalog.Placement(key.ChainProfileID, key.NodeType, key.Duration)
	if err != nil {
		return nil, err
	}
	now := u.now()
	expires, err := u.cfg.Catalog.Expiry(key.Duration, now)
	if err != nil {
		return nil, err
	}
	return &Subscription{
		ID: NewID("sub"), UserID: key.UserID, ChainProfileID: key.ChainProfileID, NodeType: key.NodeType,
		Duration: key.Duration, Provider: pl.Provider, Region: pl.Region, InstanceType: pl.InstanceType,
		Status: SubscriptionPendingPayment, ExpiresAt: expires, CreatedAt: now, UpdatedAt: now,
	}, nil
}

// List returns the caller's subscriptions, newest first.
func (u *Subscriptions) List(ctx context.Context, p *Principal) ([]*Subscription, error) {
	if err := requireUser(p); err != nil {
		return nil, err
	}
	return u.cfg.Store.ListSubscriptions(ctx, p.UserID)
}

// Get returns the caller's subscription id; ENotFound if it is missing or
// somebody else's.
func (u *Subscriptions) Get(ctx context.Context, p *Principal, id string) (*Subscription, error) {
	if err := requireUser(p); err != nil {
		return nil, err
	}
	s, err := u.cfg.Store.GetSubscription(ctx, id)
	if IsCode(err, ENotFound) || (err == nil && s.UserID != p.UserID) {
		return nil, Errorf(ENotFound, "subscription %s not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read subscription %s: %w", id, err)
	}
	return s, nil
}

// Cancel cancels the caller's subscription. A pending one simply ends; an
// active one has its node terminated first, so a failure to start the
// termination leaves the subscription active and the request can be
// repeated (StartTerminate is idempotent). Returns ENotFound, EConflict if
// it is already cancelled or expired, EUnavailable if the termination
// cannot start.
func (u *Subscriptions) Cancel(ctx context.Context, p *Principal, id string) (*Subscription, error) {
	for range maxCancelAttempts {
		s, err := u.Get(ctx, p, id)
		if err != nil {
			return nil, err
		}
		if !s.Status.CanBecome(SubscriptionCancelled) {
			return nil, Errorf(EConflict, "subscription %s is %s and cannot be cancelled", id, s.Status)
		}
		if s.Status == SubscriptionActive {
			if err := u.terminateNode(ctx, s.ID); err != nil {
				return nil, err
			}
		}
		s.Status, s.UpdatedAt = SubscriptionCancelled, u.now()
		err = u.cfg.Store.UpdateSubscription(ctx, s)
		if err == nil {
			return s, nil
		}
		if !IsCode(err, EConflict) {
			return nil, fmt.Errorf("cancel subscription %s: %w", id, err)
		}
		// Changed meanwhile (e.g. activated): decide again on the new state.
	}
	return nil, Errorf(EConflict, "subscription %s keeps changing; retry", id)
}

// EndWithNode is the rule of the paid term: a subscription lives with its
// node, so terminating the node (by its owner or an administrator) ends
// an active subscription as cancelled; the rest of its term is not
// provisioned again. Anything else is left as it is. Returns the error of
// the Store; a racing writer is met by reading again.
func (u *Subscriptions) EndWithNode(ctx context.Context, subscriptionID string) error {
	for range maxCancelAttempts {
		s, err := u.cfg.Store.GetSubscription(ctx, subscriptionID)
		if IsCode(err, ENotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read subscription %s: %w", subscriptionID, err)
		}
		if s.Status != SubscriptionActive {
			return nil
		}
		s.Status, s.UpdatedAt = SubscriptionCancelled, u.now()
		err = u.cfg.Store.UpdateSubscription(ctx, s)
		if !IsCode(err, EConflict) {
			return err
		}
	}
	return Errorf(EConflict, "subscription %s keeps changing; retry", subscriptionID)
}

// terminateNode starts the termination of the subscription's node, if it
// has one that is not already going away.
func (u *Subscriptions) terminateNode(ctx context.Context, subscriptionID string) error {
	n, err := u.cfg.Store.GetNodeBySubscription(ctx, subscriptionID)
	if IsCode(err, ENotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read node of subscription %s: %w", subscriptionID, err)
	}
	if n.State == NodeTerminating || n.State == NodeTerminated {
		return nil
	}
	if u.cfg.Workflows == nil {
		return Errorf(EUnavailable, "the workflow engine is not configured; the node cannot be terminated")
	}
	if err := u.cfg.Workflows.StartTerminate(ctx, n.ID, "subscription cancelled"); err != nil {
		return fmt.Errorf("terminate node %s: %w", n.ID, err)
	}
	return nil
}

// requireUser refuses the bootstrap administrator, who owns nothing.
func requireUser(p *Principal) error {
	if p == nil || p.Bootstrap() {
		return Errorf(EForbidden, "subscriptions belong to a user, not the bootstrap administrator")
	}
	return nil
}
