package engine

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"
	"unicode/utf8"
)

// DeadLetterStatus is where a dead-lettered payment event is.
type DeadLetterStatus string

const (
	// DeadLetterDead: the consumer gave the event up; a critical incident
	// is open until an operator redrives it.
	DeadLetterDead DeadLetterStatus = "dead"
	// DeadLetterRedriven: an operator redrove it and the payment was
	// processed.
	DeadLetterRedriven DeadLetterStatus = "redriven"
	// DeadLetterResolved: the same event came again and was processed
	// without a redrive.
	DeadLetterResolved DeadLetterStatus = "resolved"
)

// Valid reports whether s is one of the statuses.
func (s DeadLetterStatus) Valid() bool {
	return s == DeadLetterDead || s == DeadLetterRedriven || s == DeadLetterResolved
}

// PaymentDeadLetter is a payment.completed delivery the consumer gave up
// on: its last allowed delivery failed, or it can never be processed
// (malformed, or paying for what cannot be had). It is money, so it is
// kept, with a critical incident, until an operator acts.
type PaymentDeadLetter struct {
	ID        string
	Subject   string
	MessageID string // the publisher's message id; may be empty
	// EventID and PaymentID are the event's, empty when the payload is not
	// a valid payment.completed.
	EventID   string
	PaymentID string
	Payload   []byte // as received
	// Error is why the last attempt failed, as safe to show as an API
	// error message.
	Error       string
	Deliveries  int // attempts so far, redrives included
	FirstSeenAt time.Time
	LastSeenAt  time.Time
	Status      DeadLetterStatus
	RedrivenAt  time.Time // zero unless redriven
	RedrivenBy  string    // who redrove it (a user or API key id)
	Version     int64
}

// PaymentDeadLetterStore keeps dead-lettered payment events. Safe for
// concurrent use.
type PaymentDeadLetterStore interface {
	// RecordPaymentDeadLetter stores l, dead, with Version 1. When a letter
	// with l's ID exists (the same event given up again, or recorded again
	// after a crash before the ack) it records the new failure on that one
	// instead: l's Error, the later LastSeenAt, the larger Deliveries, and
	// status dead; the rest stays as first recorded. It returns the stored
	// letter and whether this call made it dead (new, or no longer dead
	// before). l is left unchanged.
	RecordPaymentDeadLetter(ctx context.Context, l *PaymentDeadLetter) (stored *PaymentDeadLetter, madeDead bool, err error)
	// GetPaymentDeadLetter returns ENotFound if missing.
	GetPaymentDeadLetter(ctx context.Context, id string) (*PaymentDeadLetter, error)
	// ListPaymentDeadLetters returns the letters in status (any status when
	// empty), first seen newest first (ties by ID descending), at most limit
	// (all when limit <= 0).
	ListPaymentDeadLetters(ctx context.Context, status DeadLetterStatus, limit int) ([]*PaymentDeadLetter, error)
	// UpdatePaymentDeadLetter writes l if its version is the stored one,
	// then bumps it. Returns ENotFound or EConflict.
	UpdatePaymentDeadLetter(ctx context.Context, l *PaymentDeadLetter) error
}

// PaymentDeadLetterIncidentKey is the dedupe key of the critical incident
// a dead letter opens, with no node (the payment has none yet).
func PaymentDeadLetterIncidentKey(id string) string { return "payment-dead-letter:" + id }

// paymentDeadLetterID names the letter of a delivery so that giving the
// same event up again finds it: from the event id when the payload is a
// payment.completed, else from the message id, else from the payload.
func paymentDeadLetterID(m *Message, e *PaymentCompletedEvent) string {
	switch {
	case e != nil:
		return paymentEventDeadLetterID(e.EventID)
	case m.ID != "":
		return "pdl_" + derivedHex("payment-dead-letter-message", m.Subject, m.ID)
	}
	sum := sha256.Sum256(m.Data)
	return "pdl_" + derivedHex("payment-dead-letter-payload", m.Subject, string(sum[:]))
}

func paymentEventDeadLetterID(eventID string) string {
	return "pdl_" + derivedHex("payment-dead-letter-event", eventID)
}

// maxDeadLetterError bounds the error kept on a letter and its incident.
const maxDeadLetterError = 1000

// deadLetterError is what a letter says of cause: a domain error's
// message, never an internal error's details (they are logged).
func deadLetterError(cause error) string {
	msg := ErrorMessage(cause)
	if len(msg) <= maxDeadLetterError {
		return msg
	}
	cut := maxDeadLetterError
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}

// deadLetterIncident is the critical incident of l.
func deadLetterIncident(l *PaymentDeadLetter) IncidentSpec {
	what := "a malformed payment.completed"
	if l.EventID != "" {
		what = fmt.Sprintf("payment.completed %q (payment %s)", l.EventID, l.PaymentID)
	}
	return IncidentSpec{
		DedupeKey: PaymentDeadLetterIncidentKey(l.ID),
		Severity:  SeverityCritical,
		Summary: fmt.Sprintf("%s was given up after %d deliveries: %s. Fix the cause, then redrive dead letter %s",
			what, l.Deliveries, l.Error, l.ID),
	}
}

// deadLetter records m as a dead letter and opens its critical incident;
// both are idempotent, so a failure is retried by delivering m again.
func (c *PaymentConsumer) deadLetter(ctx context.Context, m *Message, e *PaymentCompletedEvent, cause error) error {
	now := c.cfg.Now().UTC()
	l := &PaymentDeadLetter{
		ID: paymentDeadLetterID(m, e), Subject: m.Subject, MessageID: m.ID, Payload: m.Data,
		Error: deadLetterError(cause), Deliveries: max(m.Deliveries, 1),
		FirstSeenAt: now, LastSeenAt: now, Status: DeadLetterDead,
	}
	if e != nil {
		l.EventID, l.PaymentID = e.EventID, e.PaymentID
	}
	stored, madeDead, err := c.cfg.Store.RecordPaymentDeadLetter(ctx, l)
	if err != nil {
		return fmt.Errorf("record dead letter %s: %w", l.ID, err)
	}
	if madeDead && c.cfg.OnDeadLetter != nil {
		c.cfg.OnDeadLetter(stored)
	}
	if _, _, err := RaiseIncident(ctx, c.cfg.Store, deadLetterIncident(stored), now); err != nil {
		return err
	}
	c.log.Error("payment.completed dead-lettered: an operator must fix the cause and redrive it",
		"dead_letter_id", stored.ID, "msg_id", m.ID, "event_id", stored.EventID, "payment_id", stored.PaymentID,
		"deliveries", stored.Deliveries, "reason", stored.Error)
	return nil
}

// giveUp dead-letters m: AckDrop once the letter and its incident are
// stored, AckRetry until then, so the event is never dropped unrecorded.
func (c *PaymentConsumer) giveUp(ctx context.Context, m *Message, e *PaymentCompletedEvent, cause error) Ack {
	if err := c.deadLetter(ctx, m, e, cause); err != nil {
		c.log.Error("cannot dead-letter payment.completed; it will be delivered again", "msg_id", m.ID, "err", err)
		return AckRetry
	}
	return AckDrop
}

// resolveDeadLetter closes the dead letter of e, if one is dead, now that
// e was processed without a redrive: the incident first, so a failure
// between the two leaves a dead letter that a redrive closes.
func (c *PaymentConsumer) resolveDeadLetter(ctx context.Context, e *PaymentCompletedEvent) {
	l, err := c.cfg.Store.GetPaymentDeadLetter(ctx, paymentEventDeadLetterID(e.EventID))
	if IsCode(err, ENotFound) {
		return
	}
	if err == nil && l.Status == DeadLetterDead {
		err = c.closeDeadLetter(ctx, l, DeadLetterResolved, "")
	}
	if err != nil {
		c.log.Warn("payment processed, but its dead letter is not closed: redrive it to close it",
			"event_id", e.EventID, "err", err)
	}
}

// closeDeadLetter resolves l's incident, then moves l to status; a
// redrive names who did it.
func (c *PaymentConsumer) closeDeadLetter(ctx context.Context, l *PaymentDeadLetter, status DeadLetterStatus, by string) error {
	now := c.cfg.Now().UTC()
	if _, err := ResolveIncident(ctx, c.cfg.Store, "", PaymentDeadLetterIncidentKey(l.ID), now); err != nil {
		return err
	}
	l.Status = status
	if status == DeadLetterRedriven {
		l.RedrivenAt, l.RedrivenBy = now, by
	}
	if err := c.cfg.Store.UpdatePaymentDeadLetter(ctx, l); err != nil {
		return fmt.Errorf("close dead letter %s: %w", l.ID, err)
	}
	return nil
}
