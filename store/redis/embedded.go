package redis

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hoodcloud/hoodcloud/engine"
)

// expiryTick is how often the embedded server expires keys. miniredis
// expires keys only when told time has passed, and each telling walks every
// key, so it is told on a timer rather than on every command (its ClockTTL
// mode does the latter, which makes each command cost a sort of all keys).
// Keys therefore live up to expiryTick past their TTL.
const expiryTick = 250 * time.Millisecond

// Embedded is a Cache on a miniredis server running in this process: the
// default when no Redis URL is configured. The server listens on a random
// loopback port and keeps everything in memory, so its queue is empty after
// a restart until engine.RebuildCommandQueue refills it from the Store.
type Embedded struct {
	Cache
	server *miniredis.Miniredis
}

var _ engine.Cache = (*Embedded)(nil)

// NewEmbedded returns an Embedded cache; it does no I/O and starts nothing.
func NewEmbedded(opts Options) *Embedded {
	return &Embedded{Cache: *New("", opts)}
}

// Open starts the server and connects to it through the same client code
// as an external Redis.
func (e *Embedded) Open(ctx context.Context) error {
	srv := miniredis.NewMiniRedis()
	if err := srv.StartAddr("127.0.0.1:0"); err != nil {
		return fmt.Errorf("start embedded redis: %w", err)
	}
	stopExpiry := expireOnTimer(srv)
	e.server = srv
	e.Cache.url = "redis://" + srv.Addr()
	e.Cache.onClose = func() { stopExpiry(); srv.Close() }
	if err := e.Cache.Open(ctx); err != nil {
		e.Cache.Close()
		return err
	}
	return nil
}

// expireOnTimer passes the wall clock's time on to srv every expiryTick
// until the returned stop is called; stop waits for the last pass.
func expireOnTimer(srv *miniredis.Miniredis) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(expiryTick)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				now := time.Now()
				srv.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return func() { close(quit); <-done }
}
