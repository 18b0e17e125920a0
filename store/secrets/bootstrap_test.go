package secrets_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
)

// TestBootMaterialIsCreatedOnce: the first start creates the material and
// says the admin token is new; later calls, in the same process or after a
// restart, return the same material and say it is not.
func TestBootMaterialIsCreatedOnce(t *testing.T) {
	dir := t.TempDir()
	a := mustStart(t, dir, inDataDir(dir))
	first, err := ensureBootMaterial(t, a.keys)
	must(t, err)
	if !first.AdminTokenNew || !strings.HasPrefix(first.AdminToken, "hcadmin_") || len(first.AdminToken) < 40 {
		t.Fatalf("first call: admin token new=%v, %d characters; want a new hcadmin_ token of 256 bits",
			first.AdminTokenNew, len(first.AdminToken))
	}
	checkBootMaterial(t, first)

	second, err := ensureBootMaterial(t, a.keys)
	must(t, err)
	sameBootMaterial(t, first, second)
	a.stop()

	again := mustStart(t, dir, inDataDir(dir))
	afterRestart, err := ensureBootMaterial(t, again.keys)
	must(t, err)
	sameBootMaterial(t, first, afterRestart)
}

// TestBootMaterialIsEncryptedAtRest reads the raw store: no PEM, no token.
func TestBootMaterialIsEncryptedAtRest(t *testing.T) {
	dir := t.TempDir()
	a := mustStart(t, dir, inDataDir(dir))
	m, err := ensureBootMaterial(t, a.keys)
	must(t, err)
	names, err := a.store.ListSecrets(t.Context(), "")
	must(t, err)
	for _, name := range names {
		blob, err := a.store.GetSecret(t.Context(), name)
		must(t, err)
		for _, plain := range [][]byte{[]byte("PRIVATE KEY"), []byte("CERTIFICATE"), []byte(m.AdminToken), m.WebhookSecret} {
			if bytes.Contains(blob, plain) {
				t.Fatalf("store record %s holds boot material in clear", name)
			}
		}
	}
}

// TestBootMaterialCompletesAPartialFirstStart: a first start that stored
// some pieces before dying keeps them and creates the rest.
func TestBootMaterialCompletesAPartialFirstStart(t *testing.T) {
	dir := t.TempDir()
	a := mustStart(t, dir, inDataDir(dir))
	first, err := ensureBootMaterial(t, a.keys)
	must(t, err)
	must(t, a.keys.Delete(t.Context(), keys.SecretAgentCA))
	must(t, a.keys.Delete(t.Context(), keys.SecretAdminToken))

	second, err := ensureBootMaterial(t, a.keys)
	must(t, err)
	if !second.JWTKey.Equal(first.JWTKey) || !bytes.Equal(second.WebhookSecret, first.WebhookSecret) {
		t.Fatal("pieces that existed were replaced")
	}
	if second.AgentCA.Equal(first.AgentCA) || !second.AdminTokenNew || second.AdminToken == first.AdminToken {
		t.Fatal("missing pieces were not created afresh")
	}
	checkBootMaterial(t, second)
}

func checkBootMaterial(t *testing.T, m *keys.BootMaterial) {
	t.Helper()
	if n := m.JWTKey.N.BitLen(); n != 2048 {
		t.Errorf("JWT key of %d bits, want 2048", n)
	}
	if m.SealedBoxKey.Curve() != ecdh.X25519() {
		t.Error("sealed-box key is not X25519")
	}
	if m.SigningKey.Curve != elliptic.P256() {
		t.Error("signing key is not P-256")
	}
	// hcwhsec_ and 256 random bits in base64url: printable, for a
	// payment provider's settings.
	if !bytes.HasPrefix(m.WebhookSecret, []byte("hcwhsec_")) || len(m.WebhookSecret) != len("hcwhsec_")+43 {
		t.Errorf("webhook secret is %d bytes, not hcwhsec_ and 256 random bits", len(m.WebhookSecret))
	}
	checkAgentCA(t, m)
}

func checkAgentCA(t *testing.T, m *keys.BootMaterial) {
	t.Helper()
	ca := m.AgentCA
	if ca.Subject.CommonName != keys.AgentCAName || !ca.IsCA || !ca.BasicConstraintsValid ||
		ca.KeyUsage&x509.KeyUsageCertSign == 0 || ca.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("agent CA %q: CA %v, key usage %v, key %v; want an ECDSA signing CA named %q",
			ca.Subject.CommonName, ca.IsCA, ca.KeyUsage, ca.PublicKeyAlgorithm, keys.AgentCAName)
	}
	if m.AgentCAKey.Curve != elliptic.P256() || !m.AgentCAKey.PublicKey.Equal(ca.PublicKey) {
		t.Fatal("the agent CA key is not the certificate's P-256 key")
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		t.Fatalf("the agent CA is not self-signed: %v", err)
	}
	if life := ca.NotAfter.Sub(ca.NotBefore); life < 10*365*24*time.Hour || life > 10*366*24*time.Hour {
		t.Fatalf("the agent CA is valid for %v, want ten years", life)
	}
	if now := time.Now(); now.Before(ca.NotBefore) || now.After(ca.NotAfter) {
		t.Fatal("the agent CA is not valid now")
	}
}

func sameBootMaterial(t *testing.T, first, later *keys.BootMaterial) {
	t.Helper()
	if later.AdminTokenNew {
		t.Fatal("a later call reports the admin token as new")
	}
	if !later.JWTKey.Equal(first.JWTKey) || !later.SealedBoxKey.Equal(first.SealedBoxKey) ||
		!later.SigningKey.Equal(first.SigningKey) || !later.AgentCAKey.Equal(first.AgentCAKey) ||
		!later.AgentCA.Equal(first.AgentCA) || !bytes.Equal(later.WebhookSecret, first.WebhookSecret) ||
		later.AdminToken != first.AdminToken {
		t.Fatal("a later call returned different boot material")
	}
}

// ensureBootMaterial makes or loads the boot material in s, as an
// appliance starting on it does.
func ensureBootMaterial(t *testing.T, s engine.Secrets) (*keys.BootMaterial, error) {
	t.Helper()
	boot, err := keys.NewBoot(keys.BootConfig{Secrets: s})
	if err != nil {
		return nil, err
	}
	return boot.Ensure(t.Context())
}
