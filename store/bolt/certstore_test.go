package bolt

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/internal/certkey"

	"github.com/caddyserver/certmagic"

	"github.com/hoodcloud/hoodcloud/internal/certstoragetest"
)

// certBackend is one bbolt file; instances are CertStorage values on it.
type certBackend struct{ store *Store }

const testLease = 600 * time.Millisecond

func (b certBackend) Instance(t *testing.T) certmagic.Storage {
	c := NewCertStorage(b.store, certkey.WithLockLease(testLease, 20*time.Millisecond))
	t.Cleanup(func() { c.Close() })
	return c
}

func (certBackend) Crash(s certmagic.Storage) { s.(*CertStorage).Abandon() }
func (certBackend) LockTTL() time.Duration    { return testLease }

func TestCertStorageConformance(t *testing.T) {
	certstoragetest.Run(t, func(t *testing.T) certstoragetest.Backend {
		s := openAt(t, filepath.Join(t.TempDir(), "hoodcloud.db"))
		t.Cleanup(func() { s.Close() })
		return certBackend{s}
	})
}

func TestCertificatesSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hoodcloud.db")
	first := openAt(t, path)
	if err := NewCertStorage(first).Store(t.Context(), "certificates/a/a.crt", []byte("pem")); err != nil {
		t.Fatal(err)
	}
	first.Close()
	second := openAt(t, path)
	defer second.Close()
	got, err := NewCertStorage(second).Load(t.Context(), "certificates/a/a.crt")
	if err != nil || string(got) != "pem" {
		t.Fatalf("after restart Load = %q, %v; want the stored value", got, err)
	}
}
