package postgres_test

import (
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/internal/certkey"

	"github.com/caddyserver/certmagic"

	"github.com/hoodcloud/hoodcloud/internal/certstoragetest"
	"github.com/hoodcloud/hoodcloud/store/postgres"
)

// certBackend is one migrated database; each instance is a Store of its
// own (its own pool), as separate appliance processes would have.
type certBackend struct{ url string }

const testLease = 600 * time.Millisecond

func (b certBackend) Instance(t *testing.T) certmagic.Storage {
	s := mustOpen(t, b.url)
	c := postgres.NewCertStorage(s, certkey.WithLockLease(testLease, 20*time.Millisecond))
	t.Cleanup(func() {
		c.Close()
		s.Close()
	})
	return c
}

func (certBackend) Crash(s certmagic.Storage) { s.(*postgres.CertStorage).Abandon() }
func (certBackend) LockTTL() time.Duration    { return testLease }

func TestCertStorageConformance(t *testing.T) {
	certstoragetest.Run(t, func(t *testing.T) certstoragetest.Backend {
		return certBackend{mustMigratedDatabase(t)}
	})
}
