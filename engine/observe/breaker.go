package observe

import (
	"sync"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// breaker stops reading a failing backend for a while, so a cache outage
// costs one failed read per cooldown rather than one per batch of every
// cycle, and the evaluator says "unknown" at once instead of waiting on
// timeouts. After the cooldown one read is let through; its outcome closes
// or reopens the breaker.
type breaker struct {
	threshold int           // consecutive failures that open it
	cooldown  time.Duration // how long it stays open
	now       func() time.Time

	mu        sync.Mutex
	failures  int
	openUntil time.Time
	trial     bool // a read is testing the backend after the cooldown
}

// errOpen is what a read through an open breaker gets.
var errOpen = engine.Errorf(engine.EUnavailable, "heartbeat reads are suspended after repeated failures")

// do runs read unless the breaker is open.
func (b *breaker) do(read func() error) error {
	if !b.admit() {
		return errOpen
	}
	err := read()
	b.record(err)
	return err
}

func (b *breaker) admit() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures < b.threshold {
		return true
	}
	if b.trial || b.now().Before(b.openUntil) {
		return false
	}
	b.trial = true
	return true
}

func (b *breaker) record(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trial = false
	if err == nil {
		b.failures = 0
		return
	}
	b.failures++
	if b.failures >= b.threshold {
		b.openUntil = b.now().Add(b.cooldown)
	}
}
