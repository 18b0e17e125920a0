package engine

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// redriveTimeout bounds one redrive, which goes on when its caller leaves:
// a payment half processed is left for the next one to finish.
const redriveTimeout = 2 * time.Minute

// PaymentDeadLetters are the operator's use-cases of dead-lettered payment
// events: read them, and redrive one once its cause is fixed. Safe for
// concurrent use.
//
// A redrive runs the letter's payload through the consumer's own
// processing, in the request, rather than publishing it again: the stream
// would drop a republished event id within its duplicate window, and the
// operator learns at once whether it went through. Activation stays
// exactly once because every step is the consumer's idempotent one (the
// inbox, versioned activation, provisioning started once per subscription);
// redrives of this instance also run one at a time, so a repeated redrive
// finds the first one's verdict.
type PaymentDeadLetters struct {
	c  *PaymentConsumer
	mu sync.Mutex // one redrive at a time
}

// DeadLetters returns the use-cases of the letters c gives up.
func (c *PaymentConsumer) DeadLetters() *PaymentDeadLetters { return &PaymentDeadLetters{c: c} }

// List returns the letters in status (any when empty), newest first, at
// most limit. Returns EInvalid for an unknown status.
func (d *PaymentDeadLetters) List(ctx context.Context, status DeadLetterStatus, limit int) ([]*PaymentDeadLetter, error) {
	if status != "" && !status.Valid() {
		return nil, Errorf(EInvalid, "status must be one of dead, redriven, resolved")
	}
	return d.c.cfg.Store.ListPaymentDeadLetters(ctx, status, limit)
}

// Get returns the letter, or ENotFound.
func (d *PaymentDeadLetters) Get(ctx context.Context, id string) (*PaymentDeadLetter, error) {
	return d.c.cfg.Store.GetPaymentDeadLetter(ctx, id)
}

// Redrive processes a dead letter's payload again, for by (who asks).
// On success the letter is redriven and its incident resolved. It returns
// the letter as it then is, with EConflict when it was not dead (nothing
// was done) or when processing still fails (it stays dead, with the new
// error and one more delivery); ENotFound when missing.
func (d *PaymentDeadLetters) Redrive(ctx context.Context, id, by string) (*PaymentDeadLetter, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redriveTimeout)
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	l, err := d.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if l.Status != DeadLetterDead {
		return l, Errorf(EConflict, "payment dead letter %s is %s, not dead: there is nothing to redrive", id, l.Status)
	}
	if err := d.c.reprocess(ctx, l); err != nil {
		return d.stillDead(ctx, l, err)
	}
	return d.redriven(ctx, l, by)
}

// reprocess runs l's payload through the consumer's processing.
func (c *PaymentConsumer) reprocess(ctx context.Context, l *PaymentDeadLetter) error {
	e, err := DecodePaymentCompleted(l.Payload)
	if err != nil {
		return err
	}
	log := c.log.With("event_id", e.EventID, "payment_id", e.PaymentID, "dead_letter_id", l.ID)
	if err := c.process(ctx, e, log); err != nil {
		log.Warn("redriven payment.completed failed again", "err", err)
		return err
	}
	return nil
}

// stillDead records a failed redrive on l and reports it.
func (d *PaymentDeadLetters) stillDead(ctx context.Context, l *PaymentDeadLetter, cause error) (*PaymentDeadLetter, error) {
	l.Error, l.LastSeenAt, l.Deliveries = deadLetterError(cause), d.c.cfg.Now().UTC(), l.Deliveries+1
	if err := d.c.cfg.Store.UpdatePaymentDeadLetter(ctx, l); err != nil {
		return nil, fmt.Errorf("record the failed redrive of %s: %w", l.ID, err)
	}
	return l, Errorf(EConflict, "the payment still fails (%s): dead letter %s stays dead", l.Error, l.ID)
}

// redriven closes l as redriven by by. A letter another writer closed
// meanwhile (the event came again, or a redrive elsewhere) is returned
// as it is: the payment went through either way.
func (d *PaymentDeadLetters) redriven(ctx context.Context, l *PaymentDeadLetter, by string) (*PaymentDeadLetter, error) {
	for range transitionAttempts {
		err := d.c.closeDeadLetter(ctx, l, DeadLetterRedriven, by)
		if !IsCode(err, EConflict) {
			if err != nil {
				return nil, err
			}
			d.c.log.Info("dead letter redriven", "dead_letter_id", l.ID, "event_id", l.EventID, "by", by)
			return l, nil
		}
		if l, err = d.Get(ctx, l.ID); err != nil {
			return nil, err
		}
		if l.Status != DeadLetterDead {
			return l, nil
		}
	}
	return nil, Errorf(EConflict, "dead letter %s kept changing while being closed; redrive it again", l.ID)
}
