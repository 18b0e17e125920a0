package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/jackc/pgx/v5"

	"github.com/hoodcloud/hoodcloud/internal/certkey"
)

var _ certmagic.Storage = (*CertStorage)(nil)

// CertStorage is certmagic.Storage in the database (tables of migration
// 0002), so every instance serves the same certificates and only one of
// them talks to the ACME CA for a name at a time.
//
// A lock is a row with an owner and an expiry, taken when absent or
// expired, renewed while held, and deleted by its owner only: instances
// coordinate without sharing a connection, and a crashed holder's lock
// lapses after its lease. Times are the database's, so instances' clocks
// need not agree.
type CertStorage struct {
	*certkey.Leases // Lock, Unlock, Close
	store           *Store
}

// leaseRecords keeps the locks' leases in certmagic_locks.
type leaseRecords struct{ store *Store }

// NewCertStorage returns the certificate storage on s; it does no I/O and
// works once s is open. Close it before s: it renews held locks in the
// background.
// Options (certkey.WithLockLease) tune the locks.
func NewCertStorage(s *Store, opts ...certkey.LeaseOption) *CertStorage {
	return &CertStorage{store: s, Leases: certkey.NewLeases(leaseRecords{s}, opts...)}
}

// Store creates or replaces the value at key.
func (c *CertStorage) Store(ctx context.Context, key string, value []byte) error {
	if err := certkey.Check(key); err != nil {
		return err
	}
	defer c.store.observe("cert_store")()
	_, err := c.store.pool.Exec(ctx, `INSERT INTO certmagic_data (key, value, modified) VALUES ($1, $2, now())
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, modified = excluded.modified`, key, value)
	return certError(err, "store", key)
}

// Load returns the value at key, or an fs.ErrNotExist error.
func (c *CertStorage) Load(ctx context.Context, key string) ([]byte, error) {
	defer c.store.observe("cert_load")()
	value := []byte{}
	err := c.store.pool.QueryRow(ctx, `SELECT value FROM certmagic_data WHERE key = $1`, key).Scan(&value)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, certkey.NotExist("load", key)
	}
	return value, certError(err, "load", key)
}

// Delete removes key and, when it is a directory, every key below it.
func (c *CertStorage) Delete(ctx context.Context, key string) error {
	if key == "" {
		return nil
	}
	defer c.store.observe("cert_delete")()
	_, err := c.store.pool.Exec(ctx, `DELETE FROM certmagic_data WHERE key = $1 OR key LIKE $2`, key, underPattern(key))
	return certError(err, "delete", key)
}

// Exists reports whether key is a file or a directory.
func (c *CertStorage) Exists(ctx context.Context, key string) bool {
	_, err := c.Stat(ctx, key)
	return err == nil
}

// List returns the entries of dir: every file and directory below it when
// recursive, otherwise its direct children. A dir with nothing below it is
// an fs.ErrNotExist error.
func (c *CertStorage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	defer c.store.observe("cert_list")()
	rows, err := c.store.pool.Query(ctx, `SELECT key FROM certmagic_data WHERE key LIKE $1 ORDER BY key`, underPattern(dir))
	if err != nil {
		return nil, certError(err, "list", dir)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, certError(err, "list", dir)
	}
	if len(keys) == 0 {
		return nil, certkey.NotExist("list", dir)
	}
	return certkey.List(dir, keys, recursive), nil
}

// Stat describes key: a file with its size and time, or a directory.
func (c *CertStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	defer c.store.observe("cert_stat")()
	info := certmagic.KeyInfo{Key: key, IsTerminal: true}
	err := c.store.pool.QueryRow(ctx, `SELECT octet_length(value), modified FROM certmagic_data WHERE key = $1`, key).
		Scan(&info.Size, &info.Modified)
	if err == nil || !errors.Is(err, pgx.ErrNoRows) {
		return info, certError(err, "stat", key)
	}
	var dir bool
	if key != "" {
		err = c.store.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM certmagic_data WHERE key LIKE $1)`, underPattern(key)).Scan(&dir)
		if err != nil {
			return certmagic.KeyInfo{}, certError(err, "stat", key)
		}
	}
	if !dir {
		return certmagic.KeyInfo{}, certkey.NotExist("stat", key)
	}
	return certmagic.KeyInfo{Key: key}, nil
}

// underPattern is the LIKE pattern of every key below dir, its wildcards
// escaped (LIKE's default escape is the backslash).
func underPattern(dir string) string {
	esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return esc.Replace(certkey.Under(dir)) + "%"
}

func certError(err error, op, key string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s certificate data %s: %w", op, key, translate(err, "certificate data"))
}

// Take inserts owner's lease, or overwrites an expired one: one statement,
// so two instances racing cannot both win.
func (r leaseRecords) Take(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	defer r.store.observe("cert_lock")()
	tag, err := r.store.pool.Exec(ctx, `INSERT INTO certmagic_locks (name, owner, expires_at)
		VALUES ($1, $2, now() + $3 * interval '1 millisecond')
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
		WHERE certmagic_locks.expires_at < now()`, name, owner, ttl.Milliseconds())
	if err != nil {
		return false, translate(err, "certificate lock")
	}
	return tag.RowsAffected() == 1, nil
}

// Renew extends owner's lease; false once it is no longer owner's.
func (r leaseRecords) Renew(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	defer r.store.observe("cert_lock_renew")()
	tag, err := r.store.pool.Exec(ctx, `UPDATE certmagic_locks SET expires_at = now() + $3 * interval '1 millisecond'
		WHERE name = $1 AND owner = $2`, name, owner, ttl.Milliseconds())
	if err != nil {
		return false, translate(err, "certificate lock")
	}
	return tag.RowsAffected() == 1, nil
}

// Release deletes name's lease if owner holds it.
func (r leaseRecords) Release(ctx context.Context, name, owner string) error {
	defer r.store.observe("cert_unlock")()
	_, err := r.store.pool.Exec(ctx, `DELETE FROM certmagic_locks WHERE name = $1 AND owner = $2`, name, owner)
	return translate(err, "certificate lock")
}
