package postgres

import (
	"context"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
)

const inputColumns = `subscription_id, name, type, value, ciphertext, status, created_at, updated_at`

func scanInput(row pgx.Row) (*engine.ProvisioningInput, error) {
	var in engine.ProvisioningInput
	err := row.Scan(&in.SubscriptionID, &in.Name, &in.Type, &in.Value, &in.Ciphertext, &in.Status,
		at(&in.CreatedAt), at(&in.UpdatedAt))
	return &in, err
}

func (s *Store) PutInput(ctx context.Context, in *engine.ProvisioningInput) error {
	defer s.observe("put_input")()
	_, err := s.pool.Exec(ctx, `INSERT INTO provisioning_inputs (`+inputColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (subscription_id, name) DO UPDATE SET type = excluded.type, value = excluded.value,
			ciphertext = excluded.ciphertext, status = excluded.status, created_at = excluded.created_at,
			updated_at = excluded.updated_at`,
		in.SubscriptionID, in.Name, in.Type, in.Value, in.Ciphertext, in.Status, in.CreatedAt, in.UpdatedAt)
	return translate(err, "provisioning input")
}

func (s *Store) ListInputs(ctx context.Context, subscriptionID string) ([]*engine.ProvisioningInput, error) {
	defer s.observe("list_inputs")()
	rows, err := s.pool.Query(ctx, `SELECT `+inputColumns+` FROM provisioning_inputs
		WHERE subscription_id = $1 ORDER BY name`, subscriptionID)
	return collect(rows, err, "provisioning input", scanInput)
}

func (s *Store) MarkInputsApplied(ctx context.Context, subscriptionID string, appliedAt time.Time) error {
	defer s.observe("mark_inputs_applied")()
	_, err := s.pool.Exec(ctx, `UPDATE provisioning_inputs SET status = $2, updated_at = $3 WHERE subscription_id = $1`,
		subscriptionID, engine.InputApplied, appliedAt)
	return translate(err, "provisioning input")
}
