package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"github.com/hoodcloud/hoodcloud/engine"
)

// kind describes how one aggregate is stored: JSON of the engine struct
// under its primary key, and index entries (whose values are that key)
// derived from the record, so writes can move them when the record changes.
type kind[T any] struct {
	name    string           // in error messages, e.g. "user"
	bucket  []byte           // records by primary key
	key     func(*T) []byte  // primary key
	version func(*T) *int64  // nil: not versioned
	indexes func(*T) []index // nil: none
	secret  bool             // the key must not appear in messages (hashes)
}

// index is one entry pointing at a record. A unique index refuses a second
// record with unique as the reason.
type index struct {
	bucket []byte
	key    []byte
	unique string
}

func (k kind[T]) notFound(key []byte) error {
	if k.secret {
		return engine.Errorf(engine.ENotFound, "%s not found", k.name)
	}
	return engine.Errorf(engine.ENotFound, "%s %q not found", k.name, display(key))
}

// get loads the record at key, or ENotFound.
func (k kind[T]) get(tx *bbolt.Tx, key []byte) (*T, error) {
	v := tx.Bucket(k.bucket).Get(key)
	if v == nil {
		return nil, k.notFound(key)
	}
	return decode[T](v)
}

// insert stores a new record; EConflict if its key or a unique index is taken.
func (k kind[T]) insert(tx *bbolt.Tx, rec *T) error {
	key := k.key(rec)
	if tx.Bucket(k.bucket).Get(key) != nil {
		if k.secret {
			return engine.Errorf(engine.EConflict, "%s already exists", k.name)
		}
		return engine.Errorf(engine.EConflict, "%s %q already exists", k.name, display(key))
	}
	return k.write(tx, nil, rec)
}

// write stores rec over old (nil when new), moving its index entries.
func (k kind[T]) write(tx *bbolt.Tx, old, rec *T) error {
	key := k.key(rec)
	if k.indexes != nil {
		if old != nil {
			for _, ix := range k.indexes(old) {
				if err := tx.Bucket(ix.bucket).Delete(ix.key); err != nil {
					return err
				}
			}
		}
		for _, ix := range k.indexes(rec) {
			b := tx.Bucket(ix.bucket)
			if ix.unique != "" && b.Get(ix.key) != nil {
				return engine.Errorf(engine.EConflict, "%s: %s", k.name, ix.unique)
			}
			if err := b.Put(ix.key, key); err != nil {
				return err
			}
		}
	}
	return putJSON(tx.Bucket(k.bucket), key, rec)
}

// upsert creates or replaces the record at rec's key.
func (k kind[T]) upsert(tx *bbolt.Tx, rec *T) error {
	old, err := k.get(tx, k.key(rec))
	if engine.IsCode(err, engine.ENotFound) {
		old, err = nil, nil
	}
	if err != nil {
		return err
	}
	return k.write(tx, old, rec)
}

// change rewrites the stored record at key through fn, indexes included.
func (k kind[T]) change(tx *bbolt.Tx, key []byte, fn func(*T) error) error {
	old, err := k.get(tx, key)
	if err != nil {
		return err
	}
	rec, err := k.get(tx, key) // a second copy, so old keeps the indexes to move
	if err != nil {
		return err
	}
	if err := fn(rec); err != nil {
		return err
	}
	return k.write(tx, old, rec)
}

// create stores rec with Version 1 in one transaction and sets the
// argument's version once committed.
func create[T any](ctx context.Context, s *Store, k kind[T], rec *T) error {
	next := *rec
	*k.version(&next) = 1
	if err := s.update(ctx, func(tx *bbolt.Tx) error { return k.insert(tx, &next) }); err != nil {
		return err
	}
	*k.version(rec) = 1
	return nil
}

// replaceVersioned writes rec if its version is the stored one, then bumps
// it. keep copies fields the update must not change from the stored record.
func replaceVersioned[T any](ctx context.Context, s *Store, k kind[T], rec *T, keep func(stored, next *T)) error {
	next := *rec
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		old, err := k.get(tx, k.key(rec))
		if err != nil {
			return err
		}
		if *k.version(old) != *k.version(rec) {
			return engine.Errorf(engine.EConflict, "%s %q was changed by someone else: reload and retry", k.name, display(k.key(rec)))
		}
		*k.version(&next) = *k.version(rec) + 1
		if keep != nil {
			keep(old, &next)
		}
		return k.write(tx, old, &next)
	})
	if err == nil {
		*k.version(rec) = *k.version(&next)
	}
	return err
}

// getOne reads the record at key.
func getOne[T any](ctx context.Context, s *Store, k kind[T], key []byte) (*T, error) {
	var rec *T
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		rec, err = k.get(tx, key)
		return err
	})
	return rec, err
}

// byIndex reads the record the unique index entry at key points to.
func byIndex[T any](ctx context.Context, s *Store, k kind[T], bucket, key []byte, what string) (*T, error) {
	var rec *T
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		id := tx.Bucket(bucket).Get(key)
		if id == nil {
			return engine.Errorf(engine.ENotFound, "%s not found", what)
		}
		var err error
		rec, err = k.get(tx, id)
		return err
	})
	return rec, err
}

// list reads, in key order, the records of the index entries under prefix
// whose rest sorts after after, at most limit (all when limit <= 0).
func (k kind[T]) list(tx *bbolt.Tx, bucket, prefix, after []byte, limit int) ([]*T, error) {
	var out []*T
	var err error
	scan(tx.Bucket(bucket), prefix, after, func(_, id []byte) bool {
		var rec *T
		if rec, err = k.get(tx, id); err != nil {
			return false
		}
		out = append(out, rec)
		return limit <= 0 || len(out) < limit
	})
	return out, err
}

// own reads the records stored under prefix in the kind's own bucket.
func (k kind[T]) own(tx *bbolt.Tx, prefix []byte) ([]*T, error) {
	var out []*T
	var err error
	scan(tx.Bucket(k.bucket), prefix, nil, func(_, v []byte) bool {
		var rec *T
		if rec, err = decode[T](v); err != nil {
			return false
		}
		out = append(out, rec)
		return true
	})
	return out, err
}

// scan calls fn for each key under prefix, in order, starting after
// prefix+after when after is set, until fn returns false.
func scan(b *bbolt.Bucket, prefix, after []byte, fn func(k, v []byte) bool) {
	c := b.Cursor()
	start := append(append([]byte(nil), prefix...), after...)
	k, v := c.Seek(start)
	if after != nil && bytes.Equal(k, start) {
		k, v = c.Next()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if !fn(k, v) {
			return
		}
	}
}

// scanRange calls fn for each key from <= key < to (to nil: to the end),
// in order, until fn returns false.
func scanRange(b *bbolt.Bucket, from, to []byte, fn func(k, v []byte) bool) {
	c := b.Cursor()
	for k, v := c.Seek(from); k != nil && (to == nil || bytes.Compare(k, to) < 0); k, v = c.Next() {
		if !fn(k, v) {
			return
		}
	}
}

// keysUnder returns a copy of every key under prefix, to delete after the scan.
func keysUnder(b *bbolt.Bucket, prefix []byte) [][]byte {
	var keys [][]byte
	scan(b, prefix, nil, func(k, _ []byte) bool {
		keys = append(keys, bytes.Clone(k))
		return true
	})
	return keys
}

// key joins parts with a zero byte, so "ab"+"c" and "a"+"bc" differ and a
// prefix of whole parts selects exactly their records.
func key(parts ...string) []byte {
	return []byte(strings.Join(parts, "\x00"))
}

// prefix is key(parts...) followed by the separator: everything below them.
func prefix(parts ...string) []byte { return append(key(parts...), 0) }

// display renders a key for messages.
func display(k []byte) string { return strings.ReplaceAll(string(k), "\x00", "/") }

// timeKey orders times as bytes: big-endian microseconds with the sign bit
// flipped so times before 1970 sort first.
func timeKey(t time.Time) string { return string(u64(uint64(t.UnixMicro()) ^ 1<<63)) }

// newestFirst orders times newest first.
func newestFirst(t time.Time) string { return string(u64(^(uint64(t.UnixMicro()) ^ 1<<63))) }

// intKey orders integers (negative ones first) as bytes.
func intKey(n int64) string { return string(u64(uint64(n) ^ 1<<63)) }

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func putJSON(b *bbolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %T: %w", v, err)
	}
	return b.Put(k, data)
}

// decode reads a record, with its times in UTC whatever zone they were
// written in.
func decode[T any](data []byte) (*T, error) {
	rec := new(T)
	if err := json.Unmarshal(data, rec); err != nil {
		return nil, fmt.Errorf("decode %T: %w", rec, err)
	}
	inUTC(reflect.ValueOf(rec).Elem())
	return rec, nil
}

var timeType = reflect.TypeFor[time.Time]()

func inUTC(v reflect.Value) {
	switch {
	case v.Type() == timeType:
		if t := v.Interface().(time.Time); !t.IsZero() {
			v.Set(reflect.ValueOf(t.UTC()))
		}
	case v.Kind() == reflect.Pointer && !v.IsNil():
		inUTC(v.Elem())
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			inUTC(v.Field(i))
		}
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct:
		for i := range v.Len() {
			inUTC(v.Index(i))
		}
	}
}
