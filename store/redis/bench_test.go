package redis_test

import (
	"testing"

	"github.com/hoodcloud/hoodcloud/engine/enginetest"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
)

// BenchmarkCache runs the same operations on the embedded miniredis and on
// the external Redis, so the two can be compared in one run.
func BenchmarkCache(b *testing.B) {
	b.Run("miniredis", func(b *testing.B) {
		enginetest.BenchCache(b, openEmbedded(b))
	})
	b.Run("redis", func(b *testing.B) {
		enginetest.BenchCache(b, openExternal(b, testenv.RedisURL(b)))
	})
}
