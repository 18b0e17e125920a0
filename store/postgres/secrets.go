package postgres

import (
	"context"
	"strings"
)

// PutSecret upserts the blob; values are ciphertext before they get here.
func (s *Store) PutSecret(ctx context.Context, name string, ciphertext []byte) error {
	defer s.observe("put_secret")()
	_, err := s.pool.Exec(ctx, `INSERT INTO secrets (name, ciphertext) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET ciphertext = excluded.ciphertext`, name, nonNilBytes(ciphertext))
	return translate(err, "secret")
}

func (s *Store) GetSecret(ctx context.Context, name string) ([]byte, error) {
	defer s.observe("get_secret")()
	var b []byte
	if err := s.pool.QueryRow(ctx, `SELECT ciphertext FROM secrets WHERE name = $1`, name).Scan(&b); err != nil {
		return nil, translate(err, "secret")
	}
	return b, nil
}

func (s *Store) DeleteSecret(ctx context.Context, name string) error {
	defer s.observe("delete_secret")()
	_, err := s.pool.Exec(ctx, `DELETE FROM secrets WHERE name = $1`, name)
	return translate(err, "secret")
}

// ListSecrets matches the prefix with LIKE, its wildcards escaped, so the
// primary key's index serves it (the column is COLLATE "C").
func (s *Store) ListSecrets(ctx context.Context, prefix string) ([]string, error) {
	defer s.observe("list_secrets")()
	rows, err := s.pool.Query(ctx, `SELECT name FROM secrets WHERE name LIKE $1 ORDER BY name`, likePrefix(prefix))
	if err != nil {
		return nil, translate(err, "secret")
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, translate(err, "secret")
		}
		names = append(names, n)
	}
	return names, translate(rows.Err(), "secret")
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

func likePrefix(prefix string) string { return likeEscaper.Replace(prefix) + "%" }
