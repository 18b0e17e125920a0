package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	goredis "github.com/redis/go-redis/v9"
)

// SetIfAbsent records key for ttl and reports whether it was absent.
func (c *Cache) SetIfAbsent(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := positive("idempotency key ttl", ttl); err != nil {
		return false, err
	}
	set, err := c.client.SetNX(ctx, c.key("idem", key), 1, ttl).Result()
	if err != nil {
		return false, c.fail(ctx, "set idempotency key", err)
	}
	return set, nil
}

// DeleteKey forgets an idempotency key.
func (c *Cache) DeleteKey(ctx context.Context, key string) error {
	if err := c.client.Del(ctx, c.key("idem", key)).Err(); err != nil {
		return c.fail(ctx, "delete idempotency key", err)
	}
	return nil
}

// slidingWindowScript keeps the times (server clock, ms) of the requests
// allowed in the last ARGV[2] ms in the sorted set KEYS[1]; it allows one
// more while fewer than ARGV[1] are there, recording it under the unique
// member ARGV[3]. Refused requests are not recorded, so a client that keeps
// knocking is let in as soon as its oldest request leaves the window. It
// returns {allowed, count, ms until the oldest request leaves}. The server's
// clock is used so that every control-plane instance agrees on the window.
var slidingWindowScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, count + 1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, count, tonumber(oldest[2]) + window - now}
`)

// Allow counts one request against limit per window for key.
func (c *Cache) Allow(ctx context.Context, key string, limit int, window time.Duration, kind engine.RateWindow) (engine.RateDecision, error) {
	if limit <= 0 {
		return engine.RateDecision{}, engine.Errorf(engine.EInvalid, "rate limit must be positive, got %d", limit)
	}
	if err := positive("rate window", window); err != nil {
		return engine.RateDecision{}, err
	}
	switch kind {
	case engine.FixedWindow:
		return c.allowFixed(ctx, key, limit, window)
	case engine.SlidingWindow:
		return c.allowSliding(ctx, key, limit, window)
	}
	return engine.RateDecision{}, engine.Errorf(engine.EInvalid, "unknown rate window kind %d", kind)
}

// allowFixed counts the request in a window that starts with its first
// request: INCR creates the counter and PEXPIRE NX gives it the window's
// length only then. One transaction rather than a script, because miniredis
// builds a Lua interpreter for every script it runs.
func (c *Cache) allowFixed(ctx context.Context, key string, limit int, window time.Duration) (engine.RateDecision, error) {
	k := c.key("rate-fixed", key)
	var count *goredis.IntCmd
	var left *goredis.DurationCmd
	_, err := c.client.TxPipelined(ctx, func(tx goredis.Pipeliner) error {
		count = tx.Incr(ctx, k)
		tx.Do(ctx, "PEXPIRE", k, window.Milliseconds(), "NX") // Redis 7; go-redis has no PExpireNX
		left = tx.PTTL(ctx, k)
		return nil
	})
	if err != nil {
		return engine.RateDecision{}, c.fail(ctx, "count request", err)
	}
	if n := int(count.Val()); n <= limit {
		return engine.RateDecision{Allowed: true, Remaining: limit - n}, nil
	}
	return engine.RateDecision{RetryAfter: left.Val()}, nil
}

func (c *Cache) allowSliding(ctx context.Context, key string, limit int, window time.Duration) (engine.RateDecision, error) {
	keys := []string{c.key("rate-sliding", key)}
	r, err := slidingWindowScript.Run(ctx, c.client, keys, limit, window.Milliseconds(), randomToken()).Int64Slice()
	if err != nil {
		return engine.RateDecision{}, c.fail(ctx, "count request", err)
	}
	if r[0] == 0 {
		return engine.RateDecision{RetryAfter: time.Duration(r[2]) * time.Millisecond}, nil
	}
	return engine.RateDecision{Allowed: true, Remaining: limit - int(r[1])}, nil
}

// unlockScript deletes the lock KEYS[1] only while it holds the token
// ARGV[1]: a holder whose lock expired must not free its successor's.
var unlockScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Lock takes the lock key for ttl unless somebody holds it.
func (c *Cache) Lock(ctx context.Context, key string, ttl time.Duration) (string, bool, error) {
	if err := positive("lock ttl", ttl); err != nil {
		return "", false, err
	}
	token := randomToken()
	taken, err := c.client.SetNX(ctx, c.key("lock", key), token, ttl).Result()
	if err != nil {
		return "", false, c.fail(ctx, "take lock", err)
	}
	if !taken {
		return "", false, nil
	}
	return token, true, nil
}

// Unlock releases the lock if token still holds it.
func (c *Cache) Unlock(ctx context.Context, key, token string) error {
	if err := unlockScript.Run(ctx, c.client, []string{c.key("lock", key)}, token).Err(); err != nil {
		return c.fail(ctx, "release lock", err)
	}
	return nil
}

// randomToken is 128 random bits: unguessable lock tokens, and members of a
// sliding window that never collide.
func randomToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
