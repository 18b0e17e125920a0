package postgres_test

import (
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/enginetest"
)

func TestUptime(t *testing.T) {
	enginetest.RunUptime(t, func(t *testing.T) engine.Store {
		return mustOpen(t, mustMigratedDatabase(t))
	})
}

// BenchmarkUptime: go test -run '^$' -bench Uptime -benchtime 3x ./store/postgres
// (with HOODCLOUD_TEST_POSTGRES_URL set).
func BenchmarkUptime(b *testing.B) {
	s := mustOpen(b, mustMigratedDatabase(b))
	b.Cleanup(func() { s.Close() })
	enginetest.BenchUptime(b, s, enginetest.UptimeSeeder{Nodes: s.CreateNodes})
}
