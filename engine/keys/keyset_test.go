package keys_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"github.com/hoodcloud/hoodcloud/store/secrets"
)

// keyringOnBolt is the embedded Secrets on an embedded Store, as the
// appliance runs them.
func keyringOnBolt(t *testing.T) (engine.Secrets, *bolt.Store) {
	t.Helper()
	st := bolt.New(filepath.Join(t.TempDir(), "hoodcloud.db"))
	if err := st.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := secrets.New(st, secrets.Options{DataDir: t.TempDir()})
	if err := s.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, st
}

// cheap password hashes keep sign-ins fast.
var cheap = engine.PasswordParams{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// testKey is one RSA key for the whole package: generating RSA keys
// dominates the run time.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// clock is a test clock that moves only when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// putFirstJWTKey stores the key a first boot would have made: the
// package's test key, as generating RSA keys dominates the run time.
func putFirstJWTKey(t *testing.T, s engine.Secrets) *rsa.PrivateKey {
	t.Helper()
	putKeyPEM(t, s, keys.SecretJWTKey, testKey())
	return testKey()
}

func putKeyPEM(t *testing.T, s engine.Secrets, name string, key any) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), name, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		t.Fatal(err)
	}
}

// countingSecrets counts reads, to see how often a key set goes to Secrets.
type countingSecrets struct {
	engine.Secrets
	gets atomic.Int64
}

func (c *countingSecrets) Get(ctx context.Context, name string) ([]byte, error) {
	c.gets.Add(1)
	return c.Secrets.Get(ctx, name)
}

// mustBoot is the boot material's use-cases as an instance configured
// with cfg runs them.
func mustBoot(t *testing.T, cfg keys.BootConfig) *keys.Boot {
	t.Helper()
	b, err := keys.NewBoot(cfg)
	mustDo(t, err)
	return b
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
