package enginetest

import (
	"context"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// BenchCache measures the Cache operations on the hot paths: a command's
// trip through a node's queue (enqueue, the heartbeat's read, the ack), an
// idempotency check and a rate-limit decision of each kind. c must be empty
// and is left for the caller to close.
func BenchCache(b *testing.B, c engine.Cache) {
	ctx := context.Background()
	b.Run("QueueRoundTrip", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			id := cacheName("cmd-", i)
			cacheBenchOK(b, c.EnqueueCommand(ctx, "node-1", id))
			if _, err := c.PendingCommands(ctx, "node-1", 10); err != nil {
				b.Fatal(err)
			}
			cacheBenchOK(b, c.AckCommand(ctx, "node-1", id))
		}
	})
	b.Run("SetIfAbsent", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := c.SetIfAbsent(ctx, cacheName("payment-", i), time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, kind := range []struct {
		name string
		kind engine.RateWindow
	}{{"AllowFixed", engine.FixedWindow}, {"AllowSliding", engine.SlidingWindow}} {
		b.Run(kind.name, func(b *testing.B) {
			// 1024 clients well under their limit: every request is counted.
			for i := 0; b.Loop(); i++ {
				if _, err := c.Allow(ctx, cacheName("client-", i%1024), 1<<30, time.Minute, kind.kind); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func cacheBenchOK(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}
