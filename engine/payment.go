package engine

import (
	"context"
	"time"
)

// PaymentStatus is where a payment is.
type PaymentStatus string

const (
	PaymentPending   PaymentStatus = "pending"
	PaymentCompleted PaymentStatus = "completed"
	PaymentFailed    PaymentStatus = "failed"
)

// Payment links money received to the subscriptions it pays for.
type Payment struct {
	ID              string
	UserID          string
	ExternalID      string // the payment provider's reference; unique when set
	AmountCents     int64
	Currency        string
	Status          PaymentStatus
	SubscriptionIDs []string
	CreatedAt       time.Time
	CompletedAt     time.Time
	Version         int64
}

// PaymentEvent is an entry of the payment inbox: one per event id, so a
// payment.completed message delivered many times activates once, even after
// the cache forgot it.
type PaymentEvent struct {
	EventID     string
	PaymentID   string
	ReceivedAt  time.Time
	ProcessedAt time.Time // zero while processing is unfinished
}

// PaymentStore keeps payments and the payment inbox. Safe for concurrent use.
type PaymentStore interface {
	// CreatePayment returns EConflict if the ID or the external id is taken.
	CreatePayment(ctx context.Context, p *Payment) error
	// GetPayment returns ENotFound if missing.
	GetPayment(ctx context.Context, id string) (*Payment, error)
	// UpdatePayment writes p if the version matches, then bumps it.
	// Returns ENotFound or EConflict.
	UpdatePayment(ctx context.Context, p *Payment) error

	// RecordPaymentEvent inserts e into the inbox. Returns EConflict with the
	// stored entry left untouched if the event id is already there.
	RecordPaymentEvent(ctx context.Context, e *PaymentEvent) error
	// GetPaymentEvent returns ENotFound if the event id is not in the inbox.
	GetPaymentEvent(ctx context.Context, eventID string) (*PaymentEvent, error)
	// MarkPaymentEventProcessed sets ProcessedAt. Returns ENotFound if missing.
	MarkPaymentEventProcessed(ctx context.Context, eventID string, at time.Time) error
}
