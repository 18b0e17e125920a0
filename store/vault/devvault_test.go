package vault_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/hoodcloud/hoodcloud/store/vault"
)

// devVault is a Vault or OpenBao server in dev mode: in memory, unsealed,
// with a root token of the test's choosing.
type devVault struct {
	addr     string // http://127.0.0.1:PORT
	root     string
	cmd      *exec.Cmd
	exited   chan struct{}
	output   *testenv.LogBuffer
	stopOnce sync.Once
}

// vaultBinary finds the server: HOODCLOUD_TEST_VAULT_BIN, else bao or vault
// on PATH. Without one the test is skipped, or fails when
// HOODCLOUD_TEST_REQUIRE_VAULT=1.
func vaultBinary(tb testing.TB) string {
	tb.Helper()
	if bin := os.Getenv("HOODCLOUD_TEST_VAULT_BIN"); bin != "" {
		return bin
	}
	for _, name := range []string{"bao", "vault"} {
		if bin, err := exec.LookPath(name); err == nil {
			return bin
		}
	}
	const missing = "no Vault server binary: set HOODCLOUD_TEST_VAULT_BIN or put OpenBao's bao or HashiCorp's vault on PATH"
	if os.Getenv("HOODCLOUD_TEST_REQUIRE_VAULT") == "1" {
		tb.Fatal(missing + ", since HOODCLOUD_TEST_REQUIRE_VAULT=1")
	}
	tb.Skip("SKIPPING Vault tests: " + missing)
	return ""
}

// startVault runs a dev server on a free loopback port until the test ends,
// with AppRole enabled.
func startVault(tb testing.TB) *devVault {
	tb.Helper()
	v, err := launch(vaultBinary(tb), tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.stop)
	v.admin(tb, http.MethodPost, "sys/auth/approle", map[string]any{"type": "approle"})
	return v
}

var shared struct {
	once  sync.Once
	vault *devVault
	home  string
	err   error
}

// sharedVault is one dev server for the tests that do not disturb it,
// stopped by TestMain.
func sharedVault(tb testing.TB) *devVault {
	tb.Helper()
	bin := vaultBinary(tb)
	shared.once.Do(func() {
		home, err := os.MkdirTemp("", "devvault")
		if err != nil {
			shared.err = err
			return
		}
		shared.home = home
		shared.vault, shared.err = launch(bin, home)
		if shared.err == nil {
			shared.err = shared.vault.try(http.MethodPost, "sys/auth/approle", map[string]any{"type": "approle"}, nil)
		}
	})
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.vault
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.vault != nil {
		shared.vault.stop()
	}
	if shared.home != "" {
		os.RemoveAll(shared.home)
	}
	os.Exit(code)
}

func launch(bin, home string) (*devVault, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	v := &devVault{addr: "http://127.0.0.1:" + port, root: randomID(16), output: &testenv.LogBuffer{}, exited: make(chan struct{})}
	v.cmd = exec.Command(bin, "server", "-dev", "-dev-no-store-token",
		"-dev-listen-address=127.0.0.1:"+port, "-dev-root-token-id="+v.root)
	v.cmd.Env = serverEnv(home)
	v.cmd.Stdout, v.cmd.Stderr = v.output, v.output
	if err := v.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { v.cmd.Wait(); close(v.exited) }()
	if err := v.waitHealthy(30 * time.Second); err != nil {
		v.stop()
		return nil, err
	}
	return v, nil
}

// serverEnv drops VAULT_* and BAO_* settings so that nothing of the
// machine's configuration reaches the dev server.
func serverEnv(home string) []string {
	env := []string{"HOME=" + home}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") && !strings.HasPrefix(kv, "BAO_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return env
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

func (v *devVault) waitHealthy(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-v.exited:
			return fmt.Errorf("vault dev server exited:\n%s", v.output.String())
		default:
		}
		resp, err := http.Get(v.addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("vault dev server not healthy within %v:\n%s", limit, v.output.String())
}

// stop ends the server: an interrupt, then a kill if it lingers.
func (v *devVault) stop() {
	v.stopOnce.Do(func() {
		v.cmd.Process.Signal(os.Interrupt)
		select {
		case <-v.exited:
		case <-time.After(10 * time.Second):
			v.cmd.Process.Kill()
			<-v.exited
		}
	})
}

func (v *devVault) seal(tb testing.TB) {
	tb.Helper()
	v.admin(tb, http.MethodPut, "sys/seal", nil)
}

func (v *devVault) unseal(tb testing.TB) {
	tb.Helper()
	v.admin(tb, http.MethodPut, "sys/unseal", map[string]any{"key": v.unsealKey(tb)})
	if err := v.waitHealthy(30 * time.Second); err != nil {
		tb.Fatal(err)
	}
}

var unsealKeyLine = regexp.MustCompile(`Unseal Key: (\S+)`)

// unsealKey reads the key from the banner, which the server prints
// shortly after it starts to answer.
func (v *devVault) unsealKey(tb testing.TB) string {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m := unsealKeyLine.FindStringSubmatch(v.output.String()); m != nil {
			return m[1]
		}
	}
	tb.Fatalf("the dev server printed no unseal key:\n%s", v.output.String())
	return ""
}

// admin calls the API with the root token and returns the answer's data.
func (v *devVault) admin(tb testing.TB, method, path string, body any) map[string]any {
	tb.Helper()
	var out struct {
		Data map[string]any `json:"data"`
	}
	if err := v.try(method, path, body, &out); err != nil {
		tb.Fatal(err)
	}
	return out.Data
}

func (v *devVault) try(method, path string, body any, out any) error {
	payload, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(context.Background(), method, v.addr+"/v1/"+path, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("X-Vault-Token", v.root)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("vault %s %s: status %d: %s", method, path, resp.StatusCode, raw)
	}
	if out != nil && len(raw) > 0 {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// tenant is what one appliance gets from an operator: its own KV and
// Transit mounts, a policy limited to them and an AppRole.
type tenant struct{ opts vault.Options }

type tokenLife struct{ ttl, maxTTL time.Duration }

// renewedOften gives tokens that live 10s, so that the background renewal
// runs during the tests.
var renewedOften = tokenLife{ttl: 10 * time.Second}

// newTenant sets up mounts, policy and role, writes the role ID and a
// secret ID to files in a temporary directory and returns the Options.
func (v *devVault) newTenant(tb testing.TB, life tokenLife) *tenant {
	tb.Helper()
	id := randomID(4)
	kv, transit, name := "kv-"+id, "transit-"+id, "hoodcloud-"+id
	v.admin(tb, http.MethodPost, "sys/mounts/"+kv, map[string]any{"type": "kv", "options": map[string]string{"version": "2"}})
	v.admin(tb, http.MethodPost, "sys/mounts/"+transit, map[string]any{"type": "transit"})
	v.admin(tb, http.MethodPut, "sys/policies/acl/"+name, map[string]any{"policy": fmt.Sprintf(tenantPolicy, kv, transit)})
	role := map[string]any{"token_policies": []string{name}, "token_ttl": life.ttl.String(), "secret_id_num_uses": 0}
	if life.maxTTL > 0 {
		role["token_max_ttl"] = life.maxTTL.String()
	}
	v.admin(tb, http.MethodPost, "auth/approle/role/"+name, role)
	roleID := v.admin(tb, http.MethodGet, "auth/approle/role/"+name+"/role-id", nil)["role_id"].(string)
	secretID := v.admin(tb, http.MethodPost, "auth/approle/role/"+name+"/secret-id", nil)["secret_id"].(string)
	dir := tb.TempDir()
	return &tenant{opts: vault.Options{
		Address:      v.addr,
		KVMount:      kv,
		KVPrefix:     "hoodcloud",
		TransitMount: transit,
		RoleIDFile:   writeFile(tb, filepath.Join(dir, "role-id"), roleID),
		SecretIDFile: writeFile(tb, filepath.Join(dir, "secret-id"), secretID),
	}}
}

// tenantPolicy is the least an appliance needs: its KV prefix and the
// Transit operations, without deleting or exporting keys.
const tenantPolicy = `
path "%[1]s/data/hoodcloud/*"     { capabilities = ["create", "read", "update"] }
path "%[1]s/metadata/hoodcloud/*" { capabilities = ["delete"] }
path "%[2]s/encrypt/*"            { capabilities = ["create", "update"] }
path "%[2]s/decrypt/*"            { capabilities = ["update"] }
path "%[2]s/rewrap/*"             { capabilities = ["update"] }
path "%[2]s/datakey/plaintext/*"  { capabilities = ["update"] }
path "%[2]s/keys/*"               { capabilities = ["create", "read", "update"] }
`

func writeFile(tb testing.TB, path, content string) string {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// mustOpen opens the adapter and closes it when the test ends.
func mustOpen(tb testing.TB, opts vault.Options) *vault.Secrets {
	tb.Helper()
	s, err := vault.Open(context.Background(), opts)
	if err != nil {
		tb.Fatalf("open vault: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}
