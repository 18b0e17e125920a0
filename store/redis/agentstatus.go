package redis

import (
	"context"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

var _ engine.AgentStatusCache = (*Cache)(nil)

// SetAgentStatus stores s as JSON at agent-status:{NodeID} for ttl.
func (c *Cache) SetAgentStatus(ctx context.Context, s *engine.AgentStatus, ttl time.Duration) error {
	return c.putJSON(ctx, "agent status", "agent-status", s.NodeID, s, ttl)
}

// GetAgentStatus returns ENotFound if none or expired.
func (c *Cache) GetAgentStatus(ctx context.Context, nodeID string) (*engine.AgentStatus, error) {
	s, err := getJSON[engine.AgentStatus](ctx, c, "agent status", "agent-status", nodeID,
		"no recent status from the agent of node "+nodeID)
	if err != nil {
		return nil, err
	}
	s.ReportedAt, s.MetricsAt = s.ReportedAt.UTC(), s.MetricsAt.UTC()
	return s, nil
}
