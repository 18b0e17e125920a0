package engine

import (
	"context"
	"time"
)

// UptimeBucket is one hour of one node's availability, materialised from the
// state log. Complete buckets are final unless marked for recomputation.
type UptimeBucket struct {
	NodeID      string
	Hour        time.Time // truncated to the hour, UTC
	UpSeconds   int64
	DownSeconds int64
	Complete    bool
	Recompute   bool
}

// UptimeStore keeps uptime buckets. Safe for concurrent use.
type UptimeStore interface {
	// PutUptimeBuckets creates or replaces each (NodeID, Hour) in one transaction.
	PutUptimeBuckets(ctx context.Context, bs []*UptimeBucket) error
	// ListUptimeBuckets returns the node's buckets with from <= Hour < to, oldest first.
	ListUptimeBuckets(ctx context.Context, nodeID string, from, to time.Time) ([]*UptimeBucket, error)
	// MarkUptimeRecompute flags a bucket for recomputation; ENotFound if missing.
	MarkUptimeRecompute(ctx context.Context, nodeID string, hour time.Time) error
	// ListUptimeRecomputeNodes returns the IDs of the nodes with at least one
	// bucket flagged for recomputation, in order, after the cursor (an ID,
	// "" for the start), at most limit. It reads an index of the flagged
	// buckets, not every bucket.
	ListUptimeRecomputeNodes(ctx context.Context, after string, limit int) ([]string, error)
	// DeleteUptimeBucketsBefore purges buckets older than t and returns how many.
	DeleteUptimeBucketsBefore(ctx context.Context, t time.Time) (int, error)
}
