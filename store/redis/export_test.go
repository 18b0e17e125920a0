package redis

import (
	"context"
	"time"
)

// Advance makes d pass at once on the embedded server: keys' TTLs shrink by
// d and TIME moves on by d. From then on TIME stands still unless advanced
// again, which keeps the suite's sliding windows deterministic. It satisfies
// enginetest.CacheClock.
func (e *Embedded) Advance(d time.Duration) {
	now, err := e.client.Time(context.Background()).Result()
	if err != nil {
		panic("read embedded redis clock: " + err.Error())
	}
	e.server.SetTime(now.Add(d))
	e.server.FastForward(d)
}
