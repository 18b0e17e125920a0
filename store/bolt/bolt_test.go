package bolt

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/enginetest"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
)

// openAt opens the store file at path and fails the test if it cannot.
func openAt(tb testing.TB, path string) *Store {
	tb.Helper()
	s := New(path)
	if err := s.Open(tb.Context()); err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	return s
}

func TestStoreConformance(t *testing.T) {
	enginetest.RunStore(t, func(t *testing.T) engine.Store {
		return openAt(t, filepath.Join(t.TempDir(), "hoodcloud.db"))
	})
}

func TestStoreKeepsDataAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hoodcloud.db")
	reopen := func(t *testing.T) engine.Store { return openAt(t, path) }
	enginetest.RunStoreRestart(t, reopen, reopen)
}

func TestSecondOpenOfTheSameFileFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hoodcloud.db")
	first := openAt(t, path)
	defer first.Close()

	// The first holds the lock throughout: the second Open returns only by
	// giving up after its lock timeout.
	second := New(path, WithLockTimeout(100*time.Millisecond))
	opened := make(chan error, 1)
	go func() { opened <- second.Open(context.Background()) }()
	var err error
	select {
	case err = <-opened:
	case <-time.After(testenv.Patience):
		t.Fatalf("second Open still waits for the lock after %s, want it to give up after the lock timeout", testenv.Patience)
	}
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open = %v, want ErrInUse", err)
	}
	t.Logf("second Open: %v", err)

	stopped := first.Close()
	if stopped != nil {
		t.Fatal(stopped)
	}
	third := openAt(t, path)
	third.Close()
}

func TestUnopenedStoreIsUnavailable(t *testing.T) {
	s := New(filepath.Join(t.TempDir(), "hoodcloud.db"))
	if err := s.Ping(context.Background()); !engine.IsCode(err, engine.EUnavailable) {
		t.Fatalf("Ping before Open = %v, want code %q", err, engine.EUnavailable)
	}
}

func BenchmarkStore(b *testing.B) {
	s := openAt(b, filepath.Join(b.TempDir(), "hoodcloud.db"))
	defer s.Close()
	enginetest.BenchStore(b, s, enginetest.WithNodeSeeder(s.CreateNodes))
}
