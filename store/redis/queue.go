package redis

import (
	"context"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	goredis "github.com/redis/go-redis/v9"
)

// A node's queue is a sorted set of command ids scored by a per-node
// sequence: ZADD keeps each id once, the scores keep arrival order, and
// reading a range leaves the ids in place until they are acknowledged.

// enqueueScript adds ARGV[1] to the queue KEYS[1] after the ids already
// there, numbering it from the sequence KEYS[2]; a queued id keeps its place.
var enqueueScript = goredis.NewScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
local seq = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], seq, ARGV[1])
return 1
`)

// ackScript removes ARGV[1] from the queue KEYS[1] and drops the sequence
// KEYS[2] with the last id, so a destroyed node leaves no keys behind.
var ackScript = goredis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
end
return 0
`)

func (c *Cache) queueKeys(nodeID string) []string {
	return []string{c.key("queue", nodeID), c.key("queue-seq", nodeID)}
}

// EnqueueCommand appends commandID to the node's queue unless it is queued.
func (c *Cache) EnqueueCommand(ctx context.Context, nodeID, commandID string) error {
	if err := enqueueScript.Run(ctx, c.client, c.queueKeys(nodeID), commandID).Err(); err != nil {
		return c.fail(ctx, "enqueue command", err)
	}
	return nil
}

// PendingCommands returns up to limit queued ids, oldest first.
func (c *Cache) PendingCommands(ctx context.Context, nodeID string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	ids, err := c.client.ZRange(ctx, c.key("queue", nodeID), 0, int64(limit-1)).Result()
	if err != nil {
		return nil, c.fail(ctx, "list pending commands", err)
	}
	return ids, nil
}

// AckCommand removes commandID from the node's queue.
func (c *Cache) AckCommand(ctx context.Context, nodeID, commandID string) error {
	if err := ackScript.Run(ctx, c.client, c.queueKeys(nodeID), commandID).Err(); err != nil {
		return c.fail(ctx, "ack command", err)
	}
	return nil
}

// SetProgress stores p as JSON at progress:{CommandID} for ttl.
func (c *Cache) SetProgress(ctx context.Context, p *engine.CommandProgress, ttl time.Duration) error {
	return c.putJSON(ctx, "progress", "progress", p.CommandID, p, ttl)
}

// GetProgress returns ENotFound if none or expired.
func (c *Cache) GetProgress(ctx context.Context, commandID string) (*engine.CommandProgress, error) {
	return getJSON[engine.CommandProgress](ctx, c, "progress", "progress", commandID, "no progress for command "+commandID)
}

// positive rejects durations Redis cannot express as an expiry (it counts
// in whole milliseconds).
func positive(what string, d time.Duration) error {
	if d < time.Millisecond {
		return engine.Errorf(engine.EInvalid, "%s must be at least 1ms, got %s", what, d)
	}
	return nil
}
