package postgres

import (
	"context"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
)

const paymentColumns = `id, user_id, external_id, amount_cents, currency, status, subscription_ids,
	created_at, completed_at, version, status_reason, activated_subscription_ids`

func scanPayment(row pgx.Row) (*engine.Payment, error) {
	var p engine.Payment
	err := row.Scan(&p.ID, &p.UserID, str(&p.ExternalID), &p.AmountCents, &p.Currency, &p.Status,
		&p.SubscriptionIDs, at(&p.CreatedAt), at(&p.CompletedAt), &p.Version, &p.StatusReason, &p.ActivatedIDs)
	p.SubscriptionIDs, p.ActivatedIDs = nilIfEmpty(p.SubscriptionIDs), nilIfEmpty(p.ActivatedIDs)
	return &p, err
}

func (s *Store) CreatePayment(ctx context.Context, p *engine.Payment) error {
	defer s.observe("create_payment")()
	_, err := s.pool.Exec(ctx, `INSERT INTO payments (`+paymentColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $11)`,
		p.ID, p.UserID, optText(p.ExternalID), p.AmountCents, p.Currency, p.Status, list(p.SubscriptionIDs),
		p.CreatedAt, optTime(p.CompletedAt), p.StatusReason, list(p.ActivatedIDs))
	if err != nil {
		return translate(err, "payment")
	}
	p.Version = 1
	return nil
}

func (s *Store) GetPayment(ctx context.Context, id string) (*engine.Payment, error) {
	defer s.observe("get_payment")()
	p, err := scanPayment(s.pool.QueryRow(ctx, `SELECT `+paymentColumns+` FROM payments WHERE id = $1`, id))
	if err != nil {
		return nil, translate(err, "payment")
	}
	return p, nil
}

func (s *Store) UpdatePayment(ctx context.Context, p *engine.Payment) error {
	defer s.observe("update_payment")()
	return s.updateVersioned(ctx, "payments", "payment", p.ID, &p.Version,
		`UPDATE payments SET user_id = $3, external_id = $4, amount_cents = $5, currency = $6, status = $7,
			subscription_ids = $8, created_at = $9, completed_at = $10, status_reason = $11,
			activated_subscription_ids = $12, version = version + 1
		WHERE id = $1 AND version = $2`,
		p.UserID, optText(p.ExternalID), p.AmountCents, p.Currency, p.Status, list(p.SubscriptionIDs),
		p.CreatedAt, optTime(p.CompletedAt), p.StatusReason, list(p.ActivatedIDs))
}

// RecordPaymentEvent never overwrites: the inbox's first entry wins.
func (s *Store) RecordPaymentEvent(ctx context.Context, e *engine.PaymentEvent) error {
	defer s.observe("record_payment_event")()
	_, err := s.pool.Exec(ctx, `INSERT INTO payment_events (event_id, payment_id, received_at, processed_at)
		VALUES ($1, $2, $3, $4)`, e.EventID, e.PaymentID, e.ReceivedAt, optTime(e.ProcessedAt))
	return translate(err, "payment event")
}

func (s *Store) GetPaymentEvent(ctx context.Context, eventID string) (*engine.PaymentEvent, error) {
	defer s.observe("get_payment_event")()
	var e engine.PaymentEvent
	err := s.pool.QueryRow(ctx, `SELECT event_id, payment_id, received_at, processed_at FROM payment_events
		WHERE event_id = $1`, eventID).Scan(&e.EventID, &e.PaymentID, at(&e.ReceivedAt), at(&e.ProcessedAt))
	if err != nil {
		return nil, translate(err, "payment event")
	}
	return &e, nil
}

func (s *Store) MarkPaymentEventProcessed(ctx context.Context, eventID string, processedAt time.Time) error {
	defer s.observe("mark_payment_event_processed")()
	tag, err := s.pool.Exec(ctx, `UPDATE payment_events SET processed_at = $2 WHERE event_id = $1`, eventID, processedAt)
	if err != nil {
		return translate(err, "payment event")
	}
	if tag.RowsAffected() == 0 {
		return engine.Errorf(engine.ENotFound, "payment event not found")
	}
	return nil
}
