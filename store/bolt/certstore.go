package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/caddyserver/certmagic"
	"go.etcd.io/bbolt"

	"github.com/hoodcloud/hoodcloud/internal/certkey"
)

var _ certmagic.Storage = (*CertStorage)(nil)

// Buckets of the certificate storage, created on first write so that a file
// without certificates needs no migration.
var (
	bCertFiles = []byte("certmagic_files") // key → modified (unix ns, 8 bytes) ‖ value
	bCertLocks = []byte("certmagic_locks") // name → expiry (unix ns, 8 bytes) ‖ owner
)

// CertStorage is certmagic.Storage in the Store's bbolt file, so the
// appliance keeps its certificates and ACME account with the rest of its
// state and backs them up together.
//
// One bbolt file is opened by one process, but several CertStorage values
// may share it: a lock is a record with an owner and an expiry, renewed
// while held, so a holder that never unlocks (a crash mid-issuance, before
// the process restarts) is taken over once its lease lapses.
type CertStorage struct {
	*certkey.Leases // Lock, Unlock, Close
	store           *Store
}

// leaseRecords keeps the locks' leases in their own bucket.
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
	rec := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(value)), uint64(time.Now().UnixNano()))
	rec = append(rec, value...)
	return c.store.update(ctx, func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bCertFiles)
		if err != nil {
			return fmt.Errorf("store certificate data %s: %w", key, err)
		}
		return b.Put([]byte(key), rec)
	})
}

// Load returns the value at key, or an fs.ErrNotExist error.
func (c *CertStorage) Load(ctx context.Context, key string) (value []byte, err error) {
	err = c.store.view(ctx, func(tx *bbolt.Tx) error {
		rec := certRecord(certFiles(tx), key)
		if len(rec) < 8 {
			return certkey.NotExist("load", key)
		}
		value = bytes.Clone(rec[8:])
		if value == nil {
			value = []byte{}
		}
		return nil
	})
	return value, err
}

// Delete removes key and, when it is a directory, every key below it.
func (c *CertStorage) Delete(ctx context.Context, key string) error {
	return c.store.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bCertFiles)
		if b == nil || key == "" {
			return nil
		}
		doomed := append(certKeysUnder(b, key), key)
		for _, k := range doomed {
			if err := b.Delete([]byte(k)); err != nil {
				return fmt.Errorf("delete certificate data %s: %w", k, err)
			}
		}
		return nil
	})
}

// Exists reports whether key is a file or a directory.
func (c *CertStorage) Exists(ctx context.Context, key string) bool {
	_, err := c.Stat(ctx, key)
	return err == nil
}

// List returns the entries of dir: every file and directory below it when
// recursive, otherwise its direct children. A dir with nothing below it is
// an fs.ErrNotExist error.
func (c *CertStorage) List(ctx context.Context, dir string, recursive bool) (entries []string, err error) {
	err = c.store.view(ctx, func(tx *bbolt.Tx) error {
		under := certKeysUnder(certFiles(tx), dir)
		if len(under) == 0 {
			return certkey.NotExist("list", dir)
		}
		entries = certkey.List(dir, under, recursive)
		return nil
	})
	return entries, err
}

// Stat describes key: a file with its size and time, or a directory.
func (c *CertStorage) Stat(ctx context.Context, key string) (info certmagic.KeyInfo, err error) {
	err = c.store.view(ctx, func(tx *bbolt.Tx) error {
		b := certFiles(tx)
		if rec := certRecord(b, key); len(rec) >= 8 {
			info = certmagic.KeyInfo{
				Key: key, IsTerminal: true, Size: int64(len(rec) - 8),
				Modified: time.Unix(0, int64(binary.BigEndian.Uint64(rec))),
			}
			return nil
		}
		if key != "" && hasCertKeysUnder(b, key) {
			info = certmagic.KeyInfo{Key: key}
			return nil
		}
		return certkey.NotExist("stat", key)
	})
	return info, err
}

// certFiles is the files bucket, nil before the first Store.
func certFiles(tx *bbolt.Tx) *bbolt.Bucket { return tx.Bucket(bCertFiles) }

// certRecord returns the record at key, nil if missing.
func certRecord(b *bbolt.Bucket, key string) []byte {
	if b == nil {
		return nil
	}
	return b.Get([]byte(key))
}

// certKeysUnder returns the keys below dir ("" is the root), sorted.
func certKeysUnder(b *bbolt.Bucket, dir string) []string {
	if b == nil {
		return nil
	}
	var out []string
	p := []byte(certkey.Under(dir))
	cur := b.Cursor()
	for k, _ := cur.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = cur.Next() {
		out = append(out, string(k))
	}
	return out
}

func hasCertKeysUnder(b *bbolt.Bucket, dir string) bool {
	if b == nil {
		return false
	}
	p := []byte(certkey.Under(dir))
	k, _ := b.Cursor().Seek(p)
	return k != nil && bytes.HasPrefix(k, p)
}

// Take writes owner's lease on name unless another unexpired one is there.
func (r leaseRecords) Take(ctx context.Context, name, owner string, ttl time.Duration) (taken bool, err error) {
	err = r.store.update(ctx, func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bCertLocks)
		if err != nil {
			return err
		}
		now := time.Now()
		if rec := b.Get([]byte(name)); len(rec) >= 8 && leaseExpiry(rec).After(now) {
			return nil
		}
		taken = true
		return b.Put([]byte(name), leaseRecord(owner, now.Add(ttl)))
	})
	return taken, err
}

// Renew extends owner's lease; false once the lease is no longer owner's.
func (r leaseRecords) Renew(ctx context.Context, name, owner string, ttl time.Duration) (still bool, err error) {
	err = r.store.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bCertLocks)
		if b == nil || !ownedBy(b.Get([]byte(name)), owner) {
			return nil
		}
		still = true
		return b.Put([]byte(name), leaseRecord(owner, time.Now().Add(ttl)))
	})
	return still, err
}

// Release deletes name's lease if owner holds it.
func (r leaseRecords) Release(ctx context.Context, name, owner string) error {
	return r.store.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bCertLocks)
		if b == nil || !ownedBy(b.Get([]byte(name)), owner) {
			return nil
		}
		return b.Delete([]byte(name))
	})
}

func leaseRecord(owner string, expiry time.Time) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(expiry.UnixNano())), owner...)
}

func leaseExpiry(rec []byte) time.Time { return time.Unix(0, int64(binary.BigEndian.Uint64(rec))) }

func ownedBy(rec []byte, owner string) bool { return len(rec) >= 8 && string(rec[8:]) == owner }
