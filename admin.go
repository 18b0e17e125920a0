package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
	"github.com/hoodcloud/hoodcloud/store/secrets"
)

const adminUsage = `usage: hoodcloud admin COMMAND [flags]

Commands (run them while the appliance is stopped: they open its data dir):
  create-user --email E [--admin]   create a user; the password is read from
                                    HOODCLOUD_ADMIN_PASSWORD or the first line of stdin
  rotate master-key-file            replace the local keyring's master key file and
                                    re-encrypt every keyring record under it
  reap [--dry-run]                  destroy hosts that belong to no live node

Against a running appliance (admin token in HOODCLOUD_ADMIN_TOKEN):
  mark-paid [--api-url URL] PAYMENT_ID   complete a payment by hand (staging)
  payments dead-letters [--api-url URL] [--status S] [--limit N] [--output text|json]
                                         payment events given up on, with payload and error
  payments redrive [--api-url URL] [--output text|json] ID
                                         process a dead letter again once its cause is fixed
  rotate KEY [--api-url URL] [--grace D]  replace a key while serving; KEY is one of
      jwt         session signing key; old tokens verify for the grace (default 24h)
      sealed-box  key inputs are sealed to; old inputs open for the grace (default 720h)
      ca          agent CA; the old one stays trusted for the grace (default 720h)
      master      new version of the key wrapping node data keys, rewrapped in the background
      payment-webhook  the generated payment webhook secret; the old one verifies for the grace
                  (default 24h); with --payment-webhook-secret-file, rewrite that file instead
`

// admin runs an operator command against the appliance's state.
func admin(ctx context.Context, args []string, env func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, adminUsage)
		return errUsage
	}
	switch args[0] {
	case "create-user":
		return adminCreateUser(ctx, args[1:], env, stdin, stdout, stderr)
	case "rotate":
		return adminRotate(ctx, args[1:], env, stdout, stderr)
	case "reap":
		return adminReap(ctx, args[1:], env, stdout, stderr)
	case "mark-paid":
		return adminMarkPaid(ctx, args[1:], env, stdout, stderr)
	case "payments":
		return adminPayments(ctx, args[1:], env, stdout, stderr)
	}
	return configErrorf("admin: unknown command %q\n%s", args[0], adminUsage)
}

func adminCreateUser(ctx context.Context, args []string, env func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	var email string
	var isAdmin bool
	cfg, _, err := loadConfig("admin create-user", args, env, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "the user's email (required)")
		fs.BoolVar(&isAdmin, "admin", false, "make the user an administrator")
	})
	if err != nil {
		return err
	}
	if email == "" {
		return configErrorf("admin create-user: email is required")
	}
	password, err := readPassword(env, stdin)
	if err != nil {
		return err
	}
	return withState(ctx, cfg, stderr, func(m *Main) error {
		id, err := engine.NewIdentity(engine.IdentityConfig{Users: m.Store})
		if err != nil {
			return err
		}
		u, err := id.CreateUser(ctx, email, password, isAdmin)
		if err != nil {
			return fmt.Errorf("create user: %s", engine.ErrorMessage(err))
		}
		fmt.Fprintf(stdout, "created user %s (%s, admin: %t)\n", u.ID, u.Email, u.Admin)
		return nil
	})
}

// readPassword never takes the password from a flag: flags show in ps.
func readPassword(env func(string) string, stdin io.Reader) (string, error) {
	if p := env("HOODCLOUD_ADMIN_PASSWORD"); p != "" {
		return p, nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if p := strings.TrimRight(line, "\r\n"); p != "" {
		return p, nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return "", configErrorf("admin create-user: no password: set HOODCLOUD_ADMIN_PASSWORD or write it on stdin")
}

// adminRotate replaces a key: the keyring's master key file offline, any
// other key through the running appliance.
func adminRotate(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "master-key-file" {
		return adminRotateMasterKeyFile(ctx, args[1:], env, stdout, stderr)
	}
	fs := flag.NewFlagSet("admin rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	apiURL := fs.String("api-url", defaultAPIURL, "the appliance's HTTP address")
	grace := fs.Duration("grace", 0, "how long the replaced key stays honoured (default: the key's own)")
	kind, err := parseAround(fs, args)
	if err != nil {
		return errUsage
	}
	if !slices.Contains(keys.Kinds, keys.Kind(kind)) {
		return configErrorf("admin rotate: want one of jwt, sealed-box, ca, master, payment-webhook (online) or master-key-file (offline)")
	}
	var body []byte
	if *grace != 0 {
		body, _ = json.Marshal(map[string]string{"grace": grace.String()})
	}
	var out rotationOutput
	if err := adminCall(ctx, env, "admin rotate", *apiURL, "/api/v1/admin/rotate/"+kind, body, &out); err != nil {
		return err
	}
	fmt.Fprintln(stdout, out.describe())
	return nil
}

// parseAround parses flags before and after the one argument, which it
// returns; "" when there is not exactly one.
func parseAround(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
		return "", err
	}
	arg := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil || fs.NArg() != 0 {
		return "", err
	}
	return arg, nil
}

// rotationOutput is the appliance's answer to a rotation.
type rotationOutput struct {
	Kind       string               `json:"kind"`
	KeyID      string               `json:"key_id"`
	GraceUntil time.Time            `json:"grace_until"`
	Rewrap     *keys.RewrapProgress `json:"rewrap"`
	Resumed    bool                 `json:"resumed"`
}

func (r rotationOutput) describe() string {
	switch {
	case r.Resumed:
		return fmt.Sprintf("%s key: the unfinished rewrap to %s was resumed (%d data keys rewrapped so far); progress is in the appliance log",
			r.Kind, r.KeyID, r.Rewrap.Rewrapped)
	case r.Rewrap != nil:
		return fmt.Sprintf("%s key rotated to %s; node data keys are being rewrapped in the background (progress in the appliance log)",
			r.Kind, r.KeyID)
	}
	return fmt.Sprintf("%s key rotated to %s; the old key is honoured until %s",
		r.Kind, r.KeyID, r.GraceUntil.Format(time.RFC3339))
}

// adminRotateMasterKeyFile rewraps the local keyring under a new master
// key file; the appliance must be stopped, as the keyring lives in its data dir.
func adminRotateMasterKeyFile(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	cfg, _, err := loadConfig("admin rotate master-key-file", args, env, stderr, nil)
	if err != nil {
		return err
	}
	if cfg.Secrets != "embedded" {
		return configErrorf("admin rotate master-key-file: secrets are not in the local keyring (--secrets %s): "+
			"rotate the master key online with `admin rotate master`, which rotates the Vault transit key", secretsScheme(cfg.Secrets))
	}
	return withState(ctx, cfg, stderr, func(m *Main) error {
		keys, ok := m.Secrets.(*secrets.Keyring)
		if !ok {
			return fmt.Errorf("admin rotate master-key-file: the secrets backend is not the local keyring")
		}
		before := keys.MasterKeyID()
		if err := keys.RotateMaster(ctx); err != nil {
			return fmt.Errorf("rotate master key: %w", err)
		}
		fmt.Fprintf(stdout, "master key file rotated: %s -> %s\n", before, keys.MasterKeyID())
		return nil
	})
}

// adminClient bounds every call to the appliance: an operator's command
// must fail, not hang, when the appliance does not answer.
var adminClient = &http.Client{
	Timeout: time.Minute,
	Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 50 * time.Second,
	},
}

// secretsScheme names the secrets backend of a --secrets value without
// echoing the rest of it, which may hold credentials.
func secretsScheme(v string) string {
	if scheme, _, ok := strings.Cut(v, "://"); ok {
		return scheme + "://…"
	}
	return v
}

// withState opens the appliance's durable state, runs f and closes it.
func withState(ctx context.Context, cfg Config, stderr io.Writer, f func(*Main) error) error {
	cfg.LogLevel = 8 // operator commands print their own results
	m := NewMain(cfg, stderr)
	if err := m.OpenState(ctx); err != nil {
		return &ConfigError{err}
	}
	defer m.Close()
	return f(m)
}

func adminReap(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	var dryRun bool
	cfg, _, err := loadConfig("admin reap", args, env, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&dryRun, "dry-run", false, "list what would be destroyed, destroy nothing")
	})
	if err != nil {
		return err
	}
	return withState(ctx, cfg, stderr, func(m *Main) error {
		m.inspectHosts = true // the appliance is stopped: start no agent
		if err := m.openProvisioner(ctx); err != nil {
			return err
		}
		reaped, err := engine.ReapHosts(ctx, m.Provisioner, m.Store, dryRun)
		verb := "destroyed"
		if dryRun {
			verb = "would destroy"
		}
		for _, r := range reaped {
			fmt.Fprintf(stdout, "%s %s host %s (node %q): %s\n", verb, r.Host.Host.Provider, r.Host.Host.ProviderID, r.Host.NodeID, r.Reason)
		}
		if len(reaped) == 0 {
			fmt.Fprintln(stdout, "no leftover hosts")
		}
		return err
	})
}

// adminMarkPaid asks the running appliance to complete a payment: the
// payment.completed message goes through the same consumer as a webhook.
func adminMarkPaid(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("admin mark-paid", flag.ContinueOnError)
	fs.SetOutput(stderr)
	apiURL := fs.String("api-url", defaultAPIURL, "the appliance's HTTP address")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 {
		return configErrorf("admin mark-paid: want exactly one PAYMENT_ID")
	}
	path := "/api/v1/payments/" + url.PathEscape(fs.Arg(0)) + "/mark-paid"
	if err := adminCall(ctx, env, "admin mark-paid", *apiURL, path, nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "payment %s marked paid\n", fs.Arg(0))
	return nil
}

// defaultAPIURL is where an appliance on this machine answers by default.
const defaultAPIURL = "http://127.0.0.1:8080"

// adminCall POSTs body (none when nil) to the running appliance as the
// administrator of HOODCLOUD_ADMIN_TOKEN and decodes a 2xx answer into
// out (unless nil). Other answers are errors naming the status and the
// appliance's message; the token never appears in them.
func adminCall(ctx context.Context, env func(string) string, command, apiURL, path string, body []byte, out any) error {
	return adminRequest(ctx, env, command, http.MethodPost, apiURL, path, body, out)
}

// maxAdminAnswer bounds what an admin command reads of an answer: lists
// of dead letters carry their payloads.
const maxAdminAnswer = 32 << 20

// adminRequest is adminCall with any method.
func adminRequest(ctx context.Context, env func(string) string, command, method, apiURL, path string, body []byte, out any) error {
	token := env("HOODCLOUD_ADMIN_TOKEN")
	if token == "" {
		return configErrorf("%s: set HOODCLOUD_ADMIN_TOKEN to an admin token", command)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(apiURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return configErrorf("%s: api-url: %v", command, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", command, err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxAdminAnswer))
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string }
		}
		dec.Decode(&e)
		return fmt.Errorf("%s: %s: %s", command, resp.Status, e.Error.Message)
	}
	if out != nil {
		if err := dec.Decode(out); err != nil {
			return fmt.Errorf("%s: unreadable answer: %w", command, err)
		}
	}
	return nil
}
