package bolt

import (
	"bytes"
	"context"

	"go.etcd.io/bbolt"

	"github.com/hoodcloud/hoodcloud/engine"
)

// Buckets of dead-lettered payment events: by id, and by first seen.
var (
	bDeadLetters       = []byte("payment_dead_letters")
	bDeadLettersByTime = []byte("payment_dead_letters_by_first_seen")
)

var deadLetters = kind[engine.PaymentDeadLetter]{
	name: "payment dead letter", bucket: bDeadLetters,
	key:     func(l *engine.PaymentDeadLetter) []byte { return key(l.ID) },
	version: func(l *engine.PaymentDeadLetter) *int64 { return &l.Version },
	indexes: func(l *engine.PaymentDeadLetter) []index {
		return []index{{bucket: bDeadLettersByTime, key: key(newestFirst(l.FirstSeenAt), l.ID)}}
	},
}

func (s *Store) RecordPaymentDeadLetter(ctx context.Context, l *engine.PaymentDeadLetter) (stored *engine.PaymentDeadLetter, madeDead bool, err error) {
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		old, err := deadLetters.get(tx, key(l.ID))
		if engine.IsCode(err, engine.ENotFound) {
			rec := *l
			rec.Payload, rec.Status, rec.Version = bytes.Clone(l.Payload), engine.DeadLetterDead, 1
			stored, madeDead = &rec, true
			return deadLetters.insert(tx, &rec)
		}
		if err != nil {
			return err
		}
		next := *old
		next.Error, next.Status, next.Version = l.Error, engine.DeadLetterDead, old.Version+1
		next.Deliveries = max(old.Deliveries, l.Deliveries)
		if l.LastSeenAt.After(old.LastSeenAt) {
			next.LastSeenAt = l.LastSeenAt
		}
		stored, madeDead = &next, old.Status != engine.DeadLetterDead
		return deadLetters.write(tx, old, &next)
	})
	if err != nil {
		return nil, false, err
	}
	return stored, madeDead, nil
}

func (s *Store) GetPaymentDeadLetter(ctx context.Context, id string) (*engine.PaymentDeadLetter, error) {
	return getOne(ctx, s, deadLetters, key(id))
}

// ListPaymentDeadLetters scans them all when filtering by status: dead
// letters are few, and kept small by operators.
func (s *Store) ListPaymentDeadLetters(ctx context.Context, status engine.DeadLetterStatus, limit int) (ls []*engine.PaymentDeadLetter, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		scan(tx.Bucket(bDeadLettersByTime), nil, nil, func(_, id []byte) bool {
			var l *engine.PaymentDeadLetter
			if l, err = deadLetters.get(tx, id); err != nil {
				return false
			}
			if status == "" || l.Status == status {
				ls = append(ls, l)
			}
			return limit <= 0 || len(ls) < limit
		})
		return err
	})
	return ls, err
}

func (s *Store) UpdatePaymentDeadLetter(ctx context.Context, l *engine.PaymentDeadLetter) error {
	return replaceVersioned(ctx, s, deadLetters, l, nil)
}
