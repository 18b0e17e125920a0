package tlsconf

import (
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine/keys"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"github.com/hoodcloud/hoodcloud/store/secrets"
)

// mustRotatingCAs are the appliance's agent CAs, kept in Secrets as the
// appliance keeps them, so they can be rotated.
func mustRotatingCAs(t *testing.T) *keys.AgentCAs {
	t.Helper()
	st := bolt.New(filepath.Join(t.TempDir(), "hoodcloud.db"))
	if err := st.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	keyring := secrets.New(st, secrets.Options{DataDir: t.TempDir()})
	if err := keyring.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keyring.Close() })
	material, err := keys.NewBoot(keys.BootConfig{Secrets: keyring})
	if err != nil {
		t.Fatal(err)
	}
	boot, err := material.Ensure(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return boot.CAs()
}

func poolOfPEM(t *testing.T, pemBytes []byte) (*x509.CertPool, int) {
	t.Helper()
	pool, n := x509.NewCertPool(), 0
	for rest := pemBytes; ; n++ {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return pool, n
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		pool.AddCert(c)
	}
}

func TestACARotationKeepsClientsOfTheOldCAAndCAPEMServesEveryCAInGrace(t *testing.T) {
	cas := mustRotatingCAs(t)
	src, err := New(Config{CAs: cas})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	port := mustServeHTTPS(t, src.TLSConfig())
	before, _ := poolOfPEM(t, src.CAPEM())

	if _, err := cas.Rotate(t.Context(), time.Hour); err != nil {
		t.Fatal(err)
	}
	if !issuedBy(mustLeaf(t, src), cas.Current().Cert) {
		t.Error("after the rotation the certificate is not issued by the new CA")
	}
	if _, err := get(t, before, "localhost", port); err != nil {
		t.Errorf("a client that downloaded /ca.pem before the rotation: %v", err)
	}
	after, n := poolOfPEM(t, src.CAPEM())
	if n != 2 {
		t.Errorf("/ca.pem holds %d certificates during the grace period, want the new CA and the old", n)
	}
	if _, err := get(t, after, "localhost", port); err != nil {
		t.Errorf("a client that downloaded /ca.pem after the rotation: %v", err)
	}
	onlyNew := x509.NewCertPool()
	onlyNew.AddCert(cas.Current().Cert)
	if _, err := get(t, onlyNew, "localhost", port); err != nil {
		t.Errorf("a client trusting only the new CA: %v", err)
	}
}

func issuedBy(c, ca *x509.Certificate) bool { return c.CheckSignatureFrom(ca) == nil }
