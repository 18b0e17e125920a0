package postgres

import (
	"bytes"
	"context"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
)

const enrollmentTokenColumns = `hash, node_id, expires_at, used_at, key_fingerprint, incarnation, created_at`

func scanEnrollmentToken(row pgx.Row) (*engine.EnrollmentToken, error) {
	var t engine.EnrollmentToken
	err := row.Scan(&t.Hash, &t.NodeID, at(&t.ExpiresAt), at(&t.UsedAt), &t.KeyFingerprint, &t.Incarnation, at(&t.CreatedAt))
	return &t, err
}

func (s *Store) CreateEnrollmentToken(ctx context.Context, t *engine.EnrollmentToken) error {
	defer s.observe("create_enrollment_token")()
	_, err := s.pool.Exec(ctx, `INSERT INTO enrollment_tokens (`+enrollmentTokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		t.Hash, t.NodeID, t.ExpiresAt, optTime(t.UsedAt), t.KeyFingerprint, t.Incarnation, t.CreatedAt)
	return translate(err, "enrollment token")
}

// ConsumeEnrollmentToken is one conditional UPDATE, so of two concurrent
// consumers exactly one matches the row; a repeat by the same key, a loser
// or a bad token pays for the second look that decides.
func (s *Store) ConsumeEnrollmentToken(ctx context.Context, hash, keyFingerprint []byte, now time.Time) (*engine.EnrollmentToken, error) {
	defer s.observe("consume_enrollment_token")()
	t, err := scanEnrollmentToken(s.pool.QueryRow(ctx, `UPDATE enrollment_tokens SET used_at = $2, key_fingerprint = $3
		WHERE hash = $1 AND used_at IS NULL AND expires_at > $2
		RETURNING `+enrollmentTokenColumns, hash, now, keyFingerprint))
	if err == nil {
		return t, nil
	}
	if !isNoRows(err) {
		return nil, translate(err, "enrollment token")
	}
	t, err = scanEnrollmentToken(s.pool.QueryRow(ctx, `SELECT `+enrollmentTokenColumns+` FROM enrollment_tokens
		WHERE hash = $1`, hash))
	switch {
	case err != nil:
		return nil, translate(err, "enrollment token")
	case !now.Before(t.ExpiresAt):
		return nil, engine.Errorf(engine.EForbidden, "the enrollment token has expired")
	case len(keyFingerprint) == 0 || !bytes.Equal(t.KeyFingerprint, keyFingerprint):
		return nil, engine.Errorf(engine.EConflict, "the enrollment token was already used")
	default:
		return t, nil // the same key again: a repeated enrolment
	}
}

func (s *Store) PutAgentRegistration(ctx context.Context, r *engine.AgentRegistration) error {
	defer s.observe("put_agent_registration")()
	_, err := s.pool.Exec(ctx, `INSERT INTO agent_registrations (node_id, cert_serial, previous_cert_serial, agent_version, incarnation, enrolled_at, revoked_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (node_id) DO UPDATE SET cert_serial = excluded.cert_serial, previous_cert_serial = excluded.previous_cert_serial,
			agent_version = excluded.agent_version, incarnation = excluded.incarnation, enrolled_at = excluded.enrolled_at,
			revoked_at = excluded.revoked_at`,
		r.NodeID, r.CertSerial, r.PreviousCertSerial, r.AgentVersion, r.Incarnation, r.EnrolledAt, optTime(r.RevokedAt))
	return translate(err, "agent registration")
}

func (s *Store) GetAgentRegistration(ctx context.Context, nodeID string) (*engine.AgentRegistration, error) {
	defer s.observe("get_agent_registration")()
	var r engine.AgentRegistration
	err := s.pool.QueryRow(ctx, `SELECT node_id, cert_serial, previous_cert_serial, agent_version, incarnation, enrolled_at, revoked_at
		FROM agent_registrations WHERE node_id = $1`, nodeID).
		Scan(&r.NodeID, &r.CertSerial, &r.PreviousCertSerial, &r.AgentVersion, &r.Incarnation, at(&r.EnrolledAt), at(&r.RevokedAt))
	if err != nil {
		return nil, translate(err, "agent registration")
	}
	return &r, nil
}

func (s *Store) RevokeAgentRegistration(ctx context.Context, nodeID string, revokedAt time.Time) error {
	defer s.observe("revoke_agent_registration")()
	tag, err := s.pool.Exec(ctx, `UPDATE agent_registrations SET revoked_at = $2 WHERE node_id = $1`, nodeID, revokedAt)
	if err != nil {
		return translate(err, "agent registration")
	}
	if tag.RowsAffected() == 0 {
		return engine.Errorf(engine.ENotFound, "agent registration not found")
	}
	return nil
}
