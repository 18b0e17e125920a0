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

var _ engine.AgentStatusCache = (*Cache)(nil)

// SetAgentStatus stores s as JSON at agent-status:{NodeID} for ttl.
func (c *Cache) SetAgentStatus(ctx context.Context, s *engine.AgentStatus, ttl time.Duration) error {
	if err := positive("agent status ttl", ttl); err != nil {
		return err
	}
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode agent status: %w", err)
	}
	if err := c.client.Set(ctx, c.key("agent-status", s.NodeID), data, ttl).Err(); err != nil {
		return c.fail(ctx, "set agent status", err)
	}
	return nil
}

// GetAgentStatus returns ENotFound if none or expired.
func (c *Cache) GetAgentStatus(ctx context.Context, nodeID string) (*engine.AgentStatus, error) {
	data, err := c.client.Get(ctx, c.key("agent-status", nodeID)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, engine.Errorf(engine.ENotFound, "no recent status from the agent of node %s", nodeID)
	}
	if err != nil {
		return nil, c.fail(ctx, "get agent status", err)
	}
	var s engine.AgentStatus
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decode agent status of node %s: %w", nodeID, err)
	}
	s.ReportedAt, s.MetricsAt = s.ReportedAt.UTC(), s.MetricsAt.UTC()
	return &s, nil
}
