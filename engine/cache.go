package engine

import (
	"context"
	"time"
)

// CommandProgress is what an agent last said about a running command.
type CommandProgress struct {
	CommandID string
	Percent   float64
	Bytes     int64
	Message   string
	Stalled   bool
	UpdatedAt time.Time
}

// RateWindow chooses how a rate limit counts.
type RateWindow int

const (
	FixedWindow   RateWindow = iota // counts reset at each window boundary
	SlidingWindow                   // counts the requests of the last window
)

// RateDecision is the outcome of one request against a limit.
type RateDecision struct {
	Allowed    bool
	Remaining  int
	RetryAfter time.Duration // when not allowed
}

// Cache is the fast, forgetful state: the per-node command queue, command
// progress, idempotency keys, rate-limit counters and short locks. The Store
// is the source of truth for anything that would lose work if forgotten.
// Adapters: miniredis in process (default) and Redis. Safe for concurrent use.
type Cache interface {
	// EnqueueCommand appends commandID to the node's queue; enqueuing an id
	// that is already queued is a no-op.
	EnqueueCommand(ctx context.Context, nodeID, commandID string) error
	// PendingCommands returns up to limit queued ids, oldest first, without
	// removing them: they stay until acknowledged.
	PendingCommands(ctx context.Context, nodeID string, limit int) ([]string, error)
	// AckCommand removes commandID from the node's queue; absent is not an error.
	AckCommand(ctx context.Context, nodeID, commandID string) error

	// SetProgress stores p at progress:{CommandID}, expiring after ttl.
	SetProgress(ctx context.Context, p *CommandProgress, ttl time.Duration) error
	// GetProgress returns ENotFound if none or expired.
	GetProgress(ctx context.Context, commandID string) (*CommandProgress, error)

	// SetIfAbsent records key for ttl and reports whether it was absent.
	SetIfAbsent(ctx context.Context, key string, ttl time.Duration) (bool, error)
	// DeleteKey forgets an idempotency key, so a failed attempt can be retried.
	DeleteKey(ctx context.Context, key string) error

	// Allow counts one request against limit per window for key.
	Allow(ctx context.Context, key string, limit int, window time.Duration, kind RateWindow) (RateDecision, error)

	// Lock takes a short lock for ttl; it returns a token and true when
	// taken, false when somebody else holds it.
	Lock(ctx context.Context, key string, ttl time.Duration) (string, bool, error)
	// Unlock releases the lock if token still holds it.
	Unlock(ctx context.Context, key, token string) error

	// Ping checks the backend answers, for /readyz and the circuit breaker.
	Ping(ctx context.Context) error
	// Close releases the backend.
	Close() error
}
