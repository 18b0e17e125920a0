package engine

import (
	"context"
	"time"
)

// PaymentStatus is where a payment is.
type PaymentStatus string

const (
	// PaymentPending: linked, no money reported yet.
	PaymentPending PaymentStatus = "pending"
	// PaymentUnderpaid: money reported that does not cover the price of
	// what it is for, or not in PaymentCurrency; nothing was activated. A
	// later event reporting enough settles it.
	PaymentUnderpaid PaymentStatus = "underpaid"
	// PaymentWaitingForInputs: paid, but a subscription it pays for lacks
	// required inputs; those subscriptions wait, and activate when their
	// owner supplies the inputs.
	PaymentWaitingForInputs PaymentStatus = "waiting_for_inputs"
	// PaymentCompleted: everything it pays for is activated.
	PaymentCompleted PaymentStatus = "completed"
)

// PaymentCurrency is the one currency payments are taken in: chain
// profiles price in euro cents, and an amount in any other currency pays
// for nothing.
const PaymentCurrency = "EUR"

// Payment links money received to the subscriptions it pays for.
type Payment struct {
	ID         string
	UserID     string
	ExternalID string // the payment provider's reference; unique when set
	// AmountCents and Currency are what the customer declared when linking,
	// replaced by what the payment provider reported once an event says.
	AmountCents     int64
	Currency        string
	Status          PaymentStatus
	StatusReason    string   // why it is underpaid or waiting; empty otherwise
	SubscriptionIDs []string // what it pays for
	// ActivatedIDs are the subscriptions it activated so far.
	ActivatedIDs []string
	CreatedAt    time.Time
	CompletedAt  time.Time
	Version      int64
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
