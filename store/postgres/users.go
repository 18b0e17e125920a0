package postgres

import (
	"context"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/jackc/pgx/v5"
)

const userColumns = `id, email, password_hash, admin, created_at, updated_at, version`

func scanUser(row pgx.Row) (*engine.User, error) {
	var u engine.User
	err := row.Scan(&u.ID, &u.Email, &u.PasswordHash, &u.Admin, at(&u.CreatedAt), at(&u.UpdatedAt), &u.Version)
	return &u, err
}

func (s *Store) CreateUser(ctx context.Context, u *engine.User) error {
	defer s.observe("create_user")()
	_, err := s.pool.Exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6, 1)`,
		u.ID, u.Email, u.PasswordHash, u.Admin, u.CreatedAt, u.UpdatedAt)
	if err != nil {
		return translate(err, "user")
	}
	u.Version = 1
	return nil
}

func (s *Store) GetUser(ctx context.Context, id string) (*engine.User, error) {
	defer s.observe("get_user")()
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if err != nil {
		return nil, translate(err, "user")
	}
	return u, nil
}

// GetUserByEmail compares lower case, as the unique index does.
func (s *Store) GetUserByEmail(ctx context.Context, email string) (*engine.User, error) {
	defer s.observe("get_user_by_email")()
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE lower(email) = lower($1)`, email))
	if err != nil {
		return nil, translate(err, "user")
	}
	return u, nil
}

func (s *Store) UpdateUser(ctx context.Context, u *engine.User) error {
	defer s.observe("update_user")()
	return s.updateVersioned(ctx, "users", "user", u.ID, &u.Version,
		`UPDATE users SET email = $3, password_hash = $4, admin = $5, created_at = $6, updated_at = $7,
			version = version + 1
		WHERE id = $1 AND version = $2`,
		u.Email, u.PasswordHash, u.Admin, u.CreatedAt, u.UpdatedAt)
}

func (s *Store) CountUsers(ctx context.Context) (int, error) {
	defer s.observe("count_users")()
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, translate(err, "user")
	}
	return n, nil
}

const apiKeyColumns = `id, user_id, name, prefix, hash, scopes, created_at, expires_at, revoked_at, last_used_at`

func scanAPIKey(row pgx.Row) (*engine.APIKey, error) {
	var k engine.APIKey
	err := row.Scan(&k.ID, &k.UserID, &k.Name, &k.Prefix, &k.Hash, &k.Scopes,
		at(&k.CreatedAt), at(&k.ExpiresAt), at(&k.RevokedAt), at(&k.LastUsedAt))
	k.Scopes = nilIfEmpty(k.Scopes)
	return &k, err
}

// CreateAPIKey relies on the foreign key to users for its ENotFound.
func (s *Store) CreateAPIKey(ctx context.Context, k *engine.APIKey) error {
	defer s.observe("create_api_key")()
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		k.ID, k.UserID, k.Name, k.Prefix, k.Hash, list(k.Scopes),
		k.CreatedAt, optTime(k.ExpiresAt), optTime(k.RevokedAt), optTime(k.LastUsedAt))
	return translate(notFoundIfMissingParent(err, "user"), "API key")
}

func (s *Store) GetAPIKeyByHash(ctx context.Context, hash []byte) (*engine.APIKey, error) {
	defer s.observe("get_api_key_by_hash")()
	k, err := scanAPIKey(s.pool.QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE hash = $1`, hash))
	if err != nil {
		return nil, translate(err, "API key")
	}
	return k, nil
}

func (s *Store) ListAPIKeys(ctx context.Context, userID string) ([]*engine.APIKey, error) {
	defer s.observe("list_api_keys")()
	rows, err := s.pool.Query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE user_id = $1 ORDER BY created_at, id`, userID)
	return collect(rows, err, "API key", scanAPIKey)
}

// RevokeAPIKey keeps the first revocation time: revoking is idempotent.
func (s *Store) RevokeAPIKey(ctx context.Context, userID, keyID string, revokedAt time.Time) error {
	defer s.observe("revoke_api_key")()
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3) WHERE id = $1 AND user_id = $2`,
		keyID, userID, revokedAt)
	if err != nil {
		return translate(err, "API key")
	}
	if tag.RowsAffected() == 0 {
		return engine.Errorf(engine.ENotFound, "API key not found")
	}
	return nil
}
