package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/hoodcloud/hoodcloud/store/secrets"
)

// TestNoSecretInTheLogsOfAnEndToEndRun runs a customer's whole story and
// every online rotation with the appliance logging at debug level, then
// looks for every secret of the run in what was logged: the appliance's
// log, the process-wide default log and the agents' logs.
func TestNoSecretInTheLogsOfAnEndToEndRun(t *testing.T) {
	logs := &testenv.LogBuffer{}
	defaultLog := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(defaultLog) })
	cfg := testConfig(t, t.TempDir())
	cfg.LogLevel = slog.LevelDebug
	m := NewMain(cfg, logs)
	if err := m.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	base := "http://" + m.HTTP.Addr()
	waitHealthy(t, base)

	run := &secretRun{t: t, m: m, base: base, found: map[string]string{}}
	run.customerStory()
	run.rotateEverything()
	run.collectStoredSecrets()
	if err := m.Close(); err != nil { // shutdown logs count too
		t.Fatalf("Close: %v", err)
	}

	all := logs.String() + agentLogs(t, cfg.DataDir)
	for _, want := range []string{"key rotated", "master key rewrap complete", "hoodcloud ready"} {
		if !strings.Contains(all, want) {
			t.Fatalf("the captured logs lack %q: the capture is broken, so their silence proves nothing", want)
		}
	}
	for what, secret := range run.found {
		if strings.Contains(all, secret) {
			t.Errorf("the logs hold %s", what)
		}
	}
	for _, p := range secretPatterns {
		if loc := p.FindStringIndex(all); loc != nil {
			t.Errorf("the logs hold something shaped like a secret (%s) near %q", p, all[max(0, loc[0]-60):loc[0]])
		}
	}
	t.Logf("searched %d bytes of logs for %d secrets", len(all), len(run.found))
}

// secretPatterns catch secrets of the run the test cannot name one by one.
var secretPatterns = []*regexp.Regexp{
	regexp.MustCompile(`PRIVATE KEY`),
	regexp.MustCompile(`eyJ[A-Za-z0-9_-]{10,}\.eyJ`),              // any JWT
	regexp.MustCompile(`\bhc(admin|enroll)?_[A-Za-z0-9_-]{20,}`),  // admin, enrolment and API key tokens
	regexp.MustCompile(`(?i)authorization: *bearer +[A-Za-z0-9]`), // a logged request header
}

// secretRun is one end-to-end run and the secrets it met, by what they are.
type secretRun struct {
	t     *testing.T
	m     *Main
	base  string
	found map[string]string
	api   apiClient
	sub   string // the customer's subscription
	node  *engine.Node
}

func (r *secretRun) keep(what, secret string) {
	if len(secret) < 12 {
		r.t.Fatalf("%s is too short to search for reliably", what)
	}
	r.found[what] = secret
}

// keepBytes keeps a binary secret as the logs could print it.
func (r *secretRun) keepBytes(what string, b []byte) {
	r.keep(what+" (hex)", hex.EncodeToString(b))
	r.keep(what+" (base64)", base64.StdEncoding.EncodeToString(b))
	r.keep(what+" (base64url)", base64.RawURLEncoding.EncodeToString(b))
}

const (
	storyPassword = "a long and unusual password 9f27c"
)

// customerStory: sign-up, sessions, an API key, a subscription with a
// sealed secret, a signed payment webhook, provisioning to a running node.
func (r *secretRun) customerStory() {
	t, m := r.t, r.m
	r.keep("the admin bootstrap token", m.Boot.AdminToken)
	r.keep("the password", storyPassword)
	storyKey, storyPriv := validatorKey(t)
	r.keepBytes("the sealed validator key", storyPriv)
	r.keepBytes("the sealed validator key's seed", storyPriv[:32])
	r.keepBytes("the webhook secret", m.Boot.WebhookSecret)

	r.api = apiClient{t: t, base: r.base + "/api/v1", token: m.Boot.AdminToken}
	r.api.do("POST", "/users", `{"email":"dora@example.com","password":"`+storyPassword+`"}`, 201, nil)
	var tokens struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	r.api.do("POST", "/auth/login", `{"email":"dora@example.com","password":"`+storyPassword+`"}`, 200, &tokens)
	r.keep("the first access token", tokens.AccessToken)
	r.keep("the first refresh token", tokens.RefreshToken)
	r.api.do("POST", "/auth/refresh", `{"refresh_token":"`+tokens.RefreshToken+`"}`, 200, &tokens)
	r.keep("the refreshed access token", tokens.AccessToken)
	r.keep("the refreshed refresh token", tokens.RefreshToken)
	r.api.do("POST", "/auth/login", `{"email":"dora@example.com","password":"wrong password entirely"}`, 401, nil)
	r.api.token = tokens.AccessToken

	var key struct{ Key string }
	r.api.do("POST", "/api-keys", `{"name":"ci","scopes":["subscriptions:read","subscriptions:write"]}`, 201, &key)
	r.keep("the API key", key.Key)
	apiKey := r.api
	apiKey.token = key.Key
	apiKey.do("GET", "/me", "", 200, nil)

	var sub struct{ ID string }
	r.api.do("POST", "/subscriptions", `{"chain_profile_id":"cosmos-demo","node_type":"validator","duration":"1m"}`, 201, &sub)
	r.sub = sub.ID
	var pub struct {
		PublicKey string `json:"public_key"`
	}
	r.api.do("GET", "/crypto/public-key", "", 200, &pub)
	raw, _ := base64.StdEncoding.DecodeString(pub.PublicKey)
	sealed := sealTo(t, raw, storyKey)
	r.api.do("POST", "/subscriptions/"+sub.ID+"/inputs", `{"inputs":[{"name":"moniker","value":"quiet-validator"},{"name":"priv_validator_key","value":"`+sealed+`"}]}`, 200, nil)

	// The sealed-box key changes between submission and provisioning: the
	// input sealed to the old key must still open.
	r.admin(0, "rotate", "--api-url", r.base, "sealed-box")

	var pay struct{ ID string }
	r.api.do("POST", "/payments", `{"external_id":"inv-secret","amount_cents":7900,"currency":"EUR","subscription_ids":["`+sub.ID+`"]}`, 201, &pay)
	body := []byte(`{"event_id":"evt-secret","payment_id":"` + pay.ID + `"}`)
	r.api.webhook(body, []byte("a guess at the webhook secret"), 401)
	r.api.webhook(body, m.Boot.WebhookSecret, 202)
	waitFor(t, 120*time.Second, "the node to run", func() bool {
		n, err := m.Store.GetNodeBySubscription(t.Context(), sub.ID)
		if err == nil && n.State == engine.NodeFailed {
			t.Fatalf("provisioning failed: node %+v", n)
		}
		r.node = n
		return err == nil && n.State == engine.NodeRunning
	})
}

// rotateEverything rotates each key through the CLI against the running
// appliance, as an operator does, and checks the customer keeps working.
func (r *secretRun) rotateEverything() {
	t := r.t
	code, _, errOut := runAdmin(t, "", map[string]string{"HOODCLOUD_ADMIN_TOKEN": r.api.token}, "rotate", "--api-url", r.base, "jwt")
	if code != 1 || !strings.Contains(errOut, "403") {
		t.Fatalf("rotate as a customer = %d %q, want exit 1 with the 403", code, errOut)
	}
	out := r.admin(0, "rotate", "jwt", "--api-url", r.base, "--grace", "2h")
	if !strings.Contains(out, "jwt key rotated to ") {
		t.Fatalf("rotate jwt said %q", out)
	}
	r.api.do("GET", "/me", "", 200, nil) // a session of the old key lives on
	r.admin(0, "rotate", "--api-url", r.base, "ca")
	if out := r.admin(0, "rotate", "--api-url", r.base, "master"); !strings.Contains(out, "rotated to v2") {
		t.Fatalf("rotate master said %q", out)
	}
	waitFor(t, 30*time.Second, "the master key rewrap", func() bool {
		_, err := r.m.Secrets.Get(t.Context(), keys.SecretRewrapJob)
		return engine.IsCode(err, engine.ENotFound)
	})
	var jwks engine.JWKSet
	apiClient{t: t, base: r.base}.do("GET", "/.well-known/jwks.json", "", 200, &jwks)
	if len(jwks.Keys) != 2 {
		t.Fatalf("JWKS holds %d keys after a rotation with a grace period, want 2", len(jwks.Keys))
	}
}

// admin runs an admin command as the bootstrap administrator and returns
// its output; it must exit with code.
func (r *secretRun) admin(code int, args ...string) string {
	r.t.Helper()
	got, out, errOut := runAdmin(r.t, "", map[string]string{"HOODCLOUD_ADMIN_TOKEN": r.m.Boot.AdminToken}, args...)
	if got != code {
		r.t.Fatalf("admin %v = %d %q %q, want exit %d", args, got, out, errOut, code)
	}
	return out
}

// collectStoredSecrets adds what the run left in Secrets and the data
// dir: every private key, current and retired, the master key, the
// node's data key.
func (r *secretRun) collectStoredSecrets() {
	t, ctx := r.t, r.t.Context()
	for _, name := range []string{keys.SecretJWTKey, keys.SecretSealedBoxKey, keys.SecretSigningKey, keys.SecretAgentCA} {
		for i, bundle := range storedBundles(t, r.m.Secrets, name) {
			for _, der := range privateKeysIn(bundle) {
				r.keep(fmt.Sprintf("%s private key %d", name, i), base64.StdEncoding.EncodeToString(der)[:48])
			}
		}
	}
	master, err := os.ReadFile(filepath.Join(r.m.Config.DataDir, secrets.MasterKeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	r.keepBytes("the master key file", master)
	k, err := r.m.Store.GetNodeKey(ctx, r.node.ID, engine.DataKeyName)
	if err != nil {
		t.Fatal(err)
	}
	dek, err := r.m.Secrets.Decrypt(ctx, engine.KeyMaster, k.Ciphertext)
	if err != nil {
		t.Fatalf("the node's data key does not open after the rewrap: %v", err)
	}
	r.keepBytes("the node's data key", dek)
}

// storedBundles returns the PEM stored under name and the retired ones
// kept beside it.
func storedBundles(t *testing.T, s engine.Secrets, name string) [][]byte {
	cur, err := s.Get(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	bundles := [][]byte{cur}
	raw, err := s.Get(t.Context(), name+"-retired")
	if engine.IsCode(err, engine.ENotFound) {
		return bundles
	}
	var retired struct{ Keys []struct{ Key []byte } }
	if err != nil || json.Unmarshal(raw, &retired) != nil {
		t.Fatalf("retired keys of %s: %v", name, err)
	}
	for _, k := range retired.Keys {
		bundles = append(bundles, k.Key)
	}
	return bundles
}

func privateKeysIn(bundle []byte) [][]byte {
	var keys [][]byte
	for rest := bundle; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return keys
		}
		if b.Type == "PRIVATE KEY" {
			keys = append(keys, b.Bytes)
		}
	}
}

// agentLogs is what the local agents wrote, one file per host.
func agentLogs(t *testing.T, dataDir string) string {
	var all bytes.Buffer
	filepath.WalkDir(filepath.Join(dataDir, "hosts"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "agent.log" {
			b, _ := os.ReadFile(path)
			all.Write(b)
		}
		return nil
	})
	if all.Len() == 0 {
		t.Fatal("no agent log found: the search would miss the agents")
	}
	return all.String()
}
