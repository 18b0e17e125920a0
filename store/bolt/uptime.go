package bolt

import (
	"bytes"
	"context"

	"go.etcd.io/bbolt"
)

// bUptimeRecompute indexes the uptime buckets flagged for recomputation by
// (node ID, hour), so the worker finds them without reading every bucket.
var bUptimeRecompute = []byte("uptime_recompute")

// ListUptimeRecomputeNodes reads the recompute index, jumping from each
// node found past the rest of its entries.
func (s *Store) ListUptimeRecomputeNodes(ctx context.Context, after string, limit int) (ids []string, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket(bUptimeRecompute).Cursor()
		k, _ := c.First()
		if after != "" {
			k, _ = c.Seek(pastNode(after))
		}
		for k != nil && (limit <= 0 || len(ids) < limit) {
			id := string(k[:bytes.IndexByte(k, 0)])
			ids = append(ids, id)
			k, _ = c.Seek(pastNode(id))
		}
		return nil
	})
	return ids, err
}

// pastNode is the first key after every key(nodeID, …): the separator is
// a zero byte, so nodeID followed by 1 sorts after all of them and before
// any longer ID.
func pastNode(nodeID string) []byte { return append([]byte(nodeID), 1) }
