package postgres

import (
	"context"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
)

const signingLeaseColumns = `node_id, key_name, holder_node_id, holder_incarnation, epoch, granted_at, released_at,
	release_reason, version`

func scanSigningLease(row pgx.Row) (*engine.SigningLease, error) {
	var l engine.SigningLease
	err := row.Scan(&l.NodeID, &l.KeyName, &l.Holder.NodeID, &l.Holder.Incarnation, &l.Epoch, at(&l.GrantedAt),
		at(&l.ReleasedAt), &l.ReleaseReason, &l.Version)
	return &l, err
}

func (s *Store) GrantSigningLease(ctx context.Context, g engine.LeaseGrant) (*engine.SigningLease, error) {
	defer s.observe("grant_signing_lease")()
	return s.applyLeaseRule(ctx, g.NodeID, g.KeyName, func(cur *engine.SigningLease) (*engine.SigningLease, error) {
		return engine.NextLease(cur, g)
	})
}

func (s *Store) ReleaseSigningLease(ctx context.Context, nodeID, keyName string, holder engine.LeaseHolder, epoch uint64, reason string, now time.Time) (*engine.SigningLease, error) {
	defer s.observe("release_signing_lease")()
	r := engine.LeaseRelease{NodeID: nodeID, KeyName: keyName, Holder: holder, Epoch: epoch, Reason: reason, Now: now}
	return s.applyLeaseRule(ctx, nodeID, keyName, func(cur *engine.SigningLease) (*engine.SigningLease, error) {
		return engine.ReleaseLease(cur, r)
	})
}

// applyLeaseRule runs rule on the stored lease, locked FOR UPDATE so
// concurrent writers of one key take turns, and writes what it returns. A
// key's first lease has no row to lock: of two first writers one inserts,
// and the other, finding the row there, runs the rule again on it.
func (s *Store) applyLeaseRule(ctx context.Context, nodeID, keyName string, rule func(*engine.SigningLease) (*engine.SigningLease, error)) (*engine.SigningLease, error) {
	for range 3 {
		out, raced, err := s.applyLeaseRuleOnce(ctx, nodeID, keyName, rule)
		if err != nil {
			return nil, translate(err, "signing lease")
		}
		if !raced {
			return out, nil
		}
	}
	return nil, engine.Errorf(engine.EConflict, "the signing lease of key %s of node %s was changed concurrently; retry", keyName, nodeID)
}

func (s *Store) applyLeaseRuleOnce(ctx context.Context, nodeID, keyName string, rule func(*engine.SigningLease) (*engine.SigningLease, error)) (out *engine.SigningLease, raced bool, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := scanSigningLease(tx.QueryRow(ctx, `SELECT `+signingLeaseColumns+` FROM signing_leases
			WHERE node_id = $1 AND key_name = $2 FOR UPDATE`, nodeID, keyName))
		if isNoRows(err) {
			cur, err = nil, nil
		}
		if err != nil {
			return err
		}
		if out, err = rule(cur); err != nil || out == cur {
			return err
		}
		raced, err = writeSigningLease(ctx, tx, cur, out)
		return err
	})
	return out, raced, err
}

// writeSigningLease inserts next, or replaces cur with it; raced reports
// that another writer inserted the key's first lease meanwhile.
func writeSigningLease(ctx context.Context, tx pgx.Tx, cur, next *engine.SigningLease) (raced bool, err error) {
	if cur == nil {
		tag, err := tx.Exec(ctx, `INSERT INTO signing_leases (`+signingLeaseColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
			next.NodeID, next.KeyName, next.Holder.NodeID, next.Holder.Incarnation, next.Epoch, next.GrantedAt,
			optTime(next.ReleasedAt), next.ReleaseReason, next.Version)
		return err == nil && tag.RowsAffected() == 0, err
	}
	_, err = tx.Exec(ctx, `UPDATE signing_leases SET holder_node_id = $3, holder_incarnation = $4, epoch = $5,
			granted_at = $6, released_at = $7, release_reason = $8, version = $9
		WHERE node_id = $1 AND key_name = $2`,
		next.NodeID, next.KeyName, next.Holder.NodeID, next.Holder.Incarnation, next.Epoch, next.GrantedAt,
		optTime(next.ReleasedAt), next.ReleaseReason, next.Version)
	return false, err
}

func (s *Store) GetSigningLease(ctx context.Context, nodeID, keyName string) (*engine.SigningLease, error) {
	defer s.observe("get_signing_lease")()
	l, err := scanSigningLease(s.pool.QueryRow(ctx, `SELECT `+signingLeaseColumns+` FROM signing_leases
		WHERE node_id = $1 AND key_name = $2`, nodeID, keyName))
	if err != nil {
		return nil, translate(err, "signing lease")
	}
	return l, nil
}

func (s *Store) ListSigningLeases(ctx context.Context, nodeID string) ([]*engine.SigningLease, error) {
	defer s.observe("list_signing_leases")()
	rows, err := s.pool.Query(ctx, `SELECT `+signingLeaseColumns+` FROM signing_leases WHERE node_id = $1
		ORDER BY key_name`, nodeID)
	return collect(rows, err, "signing lease", scanSigningLease)
}

func (s *Store) ListAllSigningLeases(ctx context.Context, limit int) ([]*engine.SigningLease, error) {
	defer s.observe("list_all_signing_leases")()
	rows, err := s.pool.Query(ctx, `SELECT `+signingLeaseColumns+` FROM signing_leases
		ORDER BY node_id, key_name LIMIT $1`, noLimit(limit))
	return collect(rows, err, "signing lease", scanSigningLease)
}

func (s *Store) DeleteSigningLeases(ctx context.Context, nodeID string) error {
	defer s.observe("delete_signing_leases")()
	_, err := s.pool.Exec(ctx, `DELETE FROM signing_leases WHERE node_id = $1`, nodeID)
	return translate(err, "signing lease")
}
