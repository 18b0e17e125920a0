package engine

import (
	"context"
	"io"
	"time"
)

// SnapshotStore keeps the archives SNAPSHOT commands make of a node's chain
// data dir, for a RESTORE_SNAPSHOT on the node's next host. An archive is
// opaque here: the agents make and check it. Adapter: a directory on the
// appliance (store/snapshots). Safe for concurrent use.
//
// Node and snapshot ids are names ValidSnapshotName accepts; every method
// returns EInvalid for any other, so an id can never lead outside the
// store. Archives are never read into memory: they stream through.
type SnapshotStore interface {
	// Create starts writing snapshotID of nodeID. Nothing is visible until
	// the writer commits, and a commit replaces a snapshot of the same id
	// whole (a SNAPSHOT command run again). Of two writers of one id, the
	// last to commit wins. The caller ends every writer with Commit or Abort.
	Create(ctx context.Context, nodeID, snapshotID string) (SnapshotWriter, error)
	// Open returns the committed snapshot and its size; the caller closes
	// it. Returns ENotFound if there is none.
	Open(ctx context.Context, nodeID, snapshotID string) (io.ReadCloser, int64, error)
	// Delete removes the snapshot; a missing one is not an error.
	Delete(ctx context.Context, nodeID, snapshotID string) error
	// List returns the node's committed snapshots, oldest first; none is
	// an empty list.
	List(ctx context.Context, nodeID string) ([]SnapshotInfo, error)
}

// SnapshotWriter receives one snapshot's bytes in order.
type SnapshotWriter interface {
	io.Writer
	// Commit makes the snapshot durable and visible and returns its size.
	// After a failed Commit the snapshot is not there.
	Commit() (size int64, err error)
	// Abort discards what was written; after Commit it does nothing, so
	// it may be deferred.
	Abort()
}

// SnapshotInfo describes a committed snapshot.
type SnapshotInfo struct {
	NodeID     string
	SnapshotID string
	Size       int64
	CreatedAt  time.Time
}

// ValidSnapshotName reports whether s can be a node or snapshot id in a
// SnapshotStore: 1 to 128 letters, digits, '_' or '-', starting with a
// letter or a digit. Node ids (NewID) are such names.
func ValidSnapshotName(s string) bool {
	if s == "" || len(s) > 128 || !isAlnum(s[0]) {
		return false
	}
	for i := range len(s) {
		if c := s[i]; !isAlnum(c) && c != '_' && c != '-' {
			return false
		}
	}
	return true
}
