package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/hoodcloud/hoodcloud/engine"
)

var incidents = kind[engine.Incident]{
	name: "incident", bucket: bIncidents,
	key:     func(i *engine.Incident) []byte { return key(i.ID) },
	version: func(i *engine.Incident) *int64 { return &i.Version },
	indexes: func(i *engine.Incident) []index {
		ix := []index{{bucket: bIncByNode, key: key(i.NodeID, newestFirst(i.OpenedAt), i.ID)}}
		if i.Open() {
			ix = append(ix, index{bucket: bIncOpen, key: key(i.NodeID, i.DedupeKey), unique: "an open incident with this dedupe key exists"})
		}
		return append(ix, incidentPipelineIndexes(i)...)
	},
}

func (s *Store) OpenIncident(ctx context.Context, i *engine.Incident) error {
	return create(ctx, s, incidents, i)
}

func (s *Store) GetIncident(ctx context.Context, id string) (*engine.Incident, error) {
	return getOne(ctx, s, incidents, key(id))
}

func (s *Store) FindOpenIncident(ctx context.Context, nodeID, dedupeKey string) (*engine.Incident, error) {
	return byIndex(ctx, s, incidents, bIncOpen, key(nodeID, dedupeKey), "open incident")
}

func (s *Store) ListIncidents(ctx context.Context, nodeID string) (is []*engine.Incident, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		is, err = incidents.list(tx, bIncByNode, prefix(nodeID), nil, 0)
		return err
	})
	return is, err
}

func (s *Store) UpdateIncident(ctx context.Context, i *engine.Incident) error {
	return replaceVersioned(ctx, s, incidents, i, keepTransitions)
}

var uptime = kind[engine.UptimeBucket]{
	name: "uptime bucket", bucket: bUptime,
	key: func(u *engine.UptimeBucket) []byte { return key(u.NodeID, timeKey(u.Hour)) },
	indexes: func(u *engine.UptimeBucket) []index {
		ix := []index{{bucket: bUptimeByHour, key: key(timeKey(u.Hour), u.NodeID)}}
		if u.Recompute {
			ix = append(ix, index{bucket: bUptimeRecompute, key: key(u.NodeID, timeKey(u.Hour))})
		}
		return ix
	},
}

func (s *Store) PutUptimeBuckets(ctx context.Context, bs []*engine.UptimeBucket) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		for _, b := range bs {
			if err := uptime.upsert(tx, b); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) ListUptimeBuckets(ctx context.Context, nodeID string, from, to time.Time) (bs []*engine.UptimeBucket, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		scanRange(tx.Bucket(bUptime), key(nodeID, timeKey(from)), key(nodeID, timeKey(to)), func(_, v []byte) bool {
			var b *engine.UptimeBucket
			b, err = decode[engine.UptimeBucket](v)
			bs = append(bs, b)
			return err == nil
		})
		return err
	})
	return bs, err
}

func (s *Store) MarkUptimeRecompute(ctx context.Context, nodeID string, hour time.Time) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		return uptime.change(tx, key(nodeID, timeKey(hour)), func(b *engine.UptimeBucket) error {
			b.Recompute = true
			return nil
		})
	})
}

// DeleteUptimeBucketsBefore walks the by-hour index from the oldest hour,
// so it reads only what it deletes.
func (s *Store) DeleteUptimeBucketsBefore(ctx context.Context, t time.Time) (n int, err error) {
	end := []byte(timeKey(t))
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		byHour, records, flagged := tx.Bucket(bUptimeByHour), tx.Bucket(bUptime), tx.Bucket(bUptimeRecompute)
		var old [][2][]byte
		scanRange(byHour, nil, end, func(k, id []byte) bool {
			old = append(old, [2][]byte{bytes.Clone(k), bytes.Clone(id)})
			return true
		})
		for _, o := range old {
			if err := byHour.Delete(o[0]); err != nil {
				return err
			}
			if err := records.Delete(o[1]); err != nil {
				return err
			}
			if err := flagged.Delete(o[1]); err != nil {
				return err
			}
		}
		n = len(old)
		return nil
	})
	return n, err
}

// leaderEpoch is the single leader record in the meta bucket.
type leaderEpoch struct {
	Epoch  int64
	Holder string
}

var leaderKey = []byte("leader")

func (s *Store) AdvanceLeaderEpoch(ctx context.Context, holder string) (epoch int64, err error) {
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		cur, err := readLeader(tx)
		if err != nil {
			return err
		}
		epoch = cur.Epoch + 1
		return putJSON(tx.Bucket(bMeta), leaderKey, leaderEpoch{Epoch: epoch, Holder: holder})
	})
	return epoch, err
}

func (s *Store) LeaderEpoch(ctx context.Context) (epoch int64, holder string, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		cur, err := readLeader(tx)
		epoch, holder = cur.Epoch, cur.Holder
		return err
	})
	return epoch, holder, err
}

func readLeader(tx *bbolt.Tx) (leaderEpoch, error) {
	var cur leaderEpoch
	if v := tx.Bucket(bMeta).Get(leaderKey); v != nil {
		if err := json.Unmarshal(v, &cur); err != nil {
			return cur, fmt.Errorf("decode leader epoch: %w", err)
		}
	}
	return cur, nil
}

func (s *Store) PutSecret(ctx context.Context, name string, ciphertext []byte) error {
	return s.update(ctx, func(tx *bbolt.Tx) error { return tx.Bucket(bSecrets).Put([]byte(name), ciphertext) })
}

func (s *Store) GetSecret(ctx context.Context, name string) (blob []byte, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bSecrets).Get([]byte(name))
		if v == nil {
			return engine.Errorf(engine.ENotFound, "secret %q not found", name)
		}
		blob = bytes.Clone(v) // bbolt's memory is only valid inside the transaction
		return nil
	})
	return blob, err
}

func (s *Store) DeleteSecret(ctx context.Context, name string) error {
	return s.update(ctx, func(tx *bbolt.Tx) error { return tx.Bucket(bSecrets).Delete([]byte(name)) })
}

func (s *Store) ListSecrets(ctx context.Context, prefix string) (names []string, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		scan(tx.Bucket(bSecrets), []byte(prefix), nil, func(k, _ []byte) bool {
			names = append(names, string(k))
			return true
		})
		return nil
	})
	return names, err
}
