package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/hoodcloud/hoodcloud/store/bolt"
)

// testEnv is an agent identity over a bbolt Store and a throwaway CA. The
// tests of the gateway over the wire, with a real agent, are package
// agent's.
type testEnv struct {
	store    *bolt.Store
	identity *Identity
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	store := bolt.New(filepath.Join(t.TempDir(), "hoodcloud.db"))
	if err := store.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ca, caKey := testCA(t)
	return &testEnv{store: store, identity: NewIdentity(ca, caKey, store)}
}

func (e *testEnv) token(t *testing.T, nodeID string) string {
	t.Helper()
	tok, err := e.identity.IssueEnrollmentToken(context.Background(), nodeID, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// testCA is a throwaway agent CA.
func testCA(t testing.TB) (*x509.Certificate, *ecdsa.PrivateKey) { return testenv.AgentCA(t) }
