package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	goredis "github.com/redis/go-redis/v9"
)

// putJSON stores v as JSON at kind:{id} for ttl; what names it in errors.
func (c *Cache) putJSON(ctx context.Context, what, kind, id string, v any, ttl time.Duration) error {
	if err := positive(what+" ttl", ttl); err != nil {
		return err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", what, err)
	}
	if err := c.client.Set(ctx, c.key(kind, id), data, ttl).Err(); err != nil {
		return c.fail(ctx, "set "+what, err)
	}
	return nil
}

// getJSON decodes the JSON at kind:{id}; ENotFound saying missing if there
// is none or it expired.
func getJSON[T any](ctx context.Context, c *Cache, what, kind, id, missing string) (*T, error) {
	data, err := c.client.Get(ctx, c.key(kind, id)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, engine.Errorf(engine.ENotFound, "%s", missing)
	}
	if err != nil {
		return nil, c.fail(ctx, "get "+what, err)
	}
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("decode %s of %s: %w", what, id, err)
	}
	return &v, nil
}
