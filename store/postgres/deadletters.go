package postgres

import (
	"context"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
)

const deadLetterColumns = `id, subject, message_id, event_id, payment_id, payload, error, deliveries,
	first_seen_at, last_seen_at, status, redriven_at, redriven_by, version`

func scanDeadLetter(row pgx.Row) (*engine.PaymentDeadLetter, error) {
	var l engine.PaymentDeadLetter
	err := row.Scan(&l.ID, &l.Subject, &l.MessageID, &l.EventID, &l.PaymentID, &l.Payload, &l.Error, &l.Deliveries,
		at(&l.FirstSeenAt), at(&l.LastSeenAt), &l.Status, at(&l.RedrivenAt), &l.RedrivenBy, &l.Version)
	return &l, err
}

// RecordPaymentDeadLetter upserts under the row lock of an existing
// letter, so whether this call made it dead is known: a new row comes
// back at version 1, an existing one had its status read under the lock.
func (s *Store) RecordPaymentDeadLetter(ctx context.Context, l *engine.PaymentDeadLetter) (stored *engine.PaymentDeadLetter, madeDead bool, err error) {
	defer s.observe("record_payment_dead_letter")()
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var prev engine.DeadLetterStatus
		err := tx.QueryRow(ctx, `SELECT status FROM payment_dead_letters WHERE id = $1 FOR UPDATE`, l.ID).Scan(&prev)
		if err != nil && !isNoRows(err) {
			return err
		}
		stored, err = scanDeadLetter(tx.QueryRow(ctx, `INSERT INTO payment_dead_letters (`+deadLetterColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'dead', $11, $12, 1)
			ON CONFLICT (id) DO UPDATE SET error = EXCLUDED.error,
				last_seen_at = GREATEST(payment_dead_letters.last_seen_at, EXCLUDED.last_seen_at),
				deliveries = GREATEST(payment_dead_letters.deliveries, EXCLUDED.deliveries),
				status = 'dead', version = payment_dead_letters.version + 1
			RETURNING `+deadLetterColumns,
			l.ID, l.Subject, l.MessageID, l.EventID, l.PaymentID, nonNilBytes(l.Payload), l.Error, l.Deliveries,
			l.FirstSeenAt, l.LastSeenAt, optTime(l.RedrivenAt), l.RedrivenBy))
		madeDead = stored.Version == 1 || (prev != "" && prev != engine.DeadLetterDead)
		return err
	})
	if err != nil {
		return nil, false, translate(err, "payment dead letter")
	}
	return stored, madeDead, nil
}

func (s *Store) GetPaymentDeadLetter(ctx context.Context, id string) (*engine.PaymentDeadLetter, error) {
	defer s.observe("get_payment_dead_letter")()
	l, err := scanDeadLetter(s.pool.QueryRow(ctx, `SELECT `+deadLetterColumns+` FROM payment_dead_letters WHERE id = $1`, id))
	if err != nil {
		return nil, translate(err, "payment dead letter")
	}
	return l, nil
}

func (s *Store) ListPaymentDeadLetters(ctx context.Context, status engine.DeadLetterStatus, limit int) ([]*engine.PaymentDeadLetter, error) {
	defer s.observe("list_payment_dead_letters")()
	rows, err := s.pool.Query(ctx, `SELECT `+deadLetterColumns+` FROM payment_dead_letters
		WHERE $1 = '' OR status = $1 ORDER BY first_seen_at DESC, id LIMIT $2`, string(status), noLimit(limit))
	return collect(rows, err, "payment dead letter", scanDeadLetter)
}

func (s *Store) UpdatePaymentDeadLetter(ctx context.Context, l *engine.PaymentDeadLetter) error {
	defer s.observe("update_payment_dead_letter")()
	return s.updateVersioned(ctx, "payment_dead_letters", "payment dead letter", l.ID, &l.Version,
		`UPDATE payment_dead_letters SET subject = $3, message_id = $4, event_id = $5, payment_id = $6, payload = $7,
			error = $8, deliveries = $9, first_seen_at = $10, last_seen_at = $11, status = $12, redriven_at = $13,
			redriven_by = $14, version = version + 1
		WHERE id = $1 AND version = $2`,
		l.Subject, l.MessageID, l.EventID, l.PaymentID, nonNilBytes(l.Payload), l.Error, l.Deliveries,
		l.FirstSeenAt, l.LastSeenAt, l.Status, optTime(l.RedrivenAt), l.RedrivenBy)
}
