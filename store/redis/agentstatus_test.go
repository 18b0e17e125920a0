package redis_test

import (
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/enginetest"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
)

func TestEmbeddedAgentStatusCache(t *testing.T) {
	enginetest.RunAgentStatusCache(t, func(t *testing.T) engine.AgentStatusCache { return openEmbedded(t) })
}

func TestRedisAgentStatusCache(t *testing.T) {
	url := testenv.RedisURL(t)
	enginetest.RunAgentStatusCache(t, func(t *testing.T) engine.AgentStatusCache { return openExternal(t, url) })
}
