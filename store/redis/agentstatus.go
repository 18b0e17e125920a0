package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

var (
	_ engine.AgentStatusCache  = (*Cache)(nil)
	_ engine.AgentStatusLister = (*Cache)(nil)
)

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

// GetAgentStatuses reads every node's status with one MGET.
func (c *Cache) GetAgentStatuses(ctx context.Context, nodeIDs []string) (map[string]*engine.AgentStatus, error) {
	out := make(map[string]*engine.AgentStatus, len(nodeIDs))
	if len(nodeIDs) == 0 {
		return out, nil
	}
	keys := make([]string, len(nodeIDs))
	for i, id := range nodeIDs {
		keys[i] = c.key("agent-status", id)
	}
	vals, err := c.client.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, c.fail(ctx, "get agent statuses", err)
	}
	for i, v := range vals {
		data, ok := v.(string)
		if !ok {
			continue // none, or expired
		}
		var s engine.AgentStatus
		if err := json.Unmarshal([]byte(data), &s); err != nil {
			return nil, fmt.Errorf("decode agent status of %s: %w", nodeIDs[i], err)
		}
		s.ReportedAt, s.MetricsAt = s.ReportedAt.UTC(), s.MetricsAt.UTC()
		out[nodeIDs[i]] = &s
	}
	return out, nil
}
