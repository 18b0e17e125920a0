package testenv

import (
	"testing"
	"time"
)

// Patience bounds a test's wait for an event. It is long enough for a
// loaded CI runner: it limits how long a broken test takes to fail, it
// never times a passing one.
const Patience = 30 * time.Second

// WaitFor polls cond until it holds, failing tb with what it waited for
// once Patience has passed.
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(Patience)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("still waiting after %s for %s", Patience, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
