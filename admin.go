package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/store/secrets"
)

const adminUsage = `usage: hoodcloud admin COMMAND [flags]

Commands (run them while the appliance is stopped: they open its data dir):
  create-user --email E [--admin]   create a user; the password is read from
                                    HOODCLOUD_ADMIN_PASSWORD or the first line of stdin
  rotate master                     re-encrypt every keyring record under a new master key
  reap [--dry-run]                  destroy hosts that belong to no live node

Against a running appliance (admin token in HOODCLOUD_ADMIN_TOKEN):
  mark-paid [--api-url URL] PAYMENT_ID   complete a payment by hand (staging)
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

func adminRotate(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "master" {
		return configErrorf("admin rotate: want \"master\" (JWT, sealed-box and CA rotation are not available yet)")
	}
	cfg, _, err := loadConfig("admin rotate master", args[1:], env, stderr, nil)
	if err != nil {
		return err
	}
	return withState(ctx, cfg, stderr, func(m *Main) error {
		keys := m.Secrets.(*secrets.Keyring)
		before := keys.MasterKeyID()
		if err := keys.RotateMaster(ctx); err != nil {
			return fmt.Errorf("rotate master key: %w", err)
		}
		fmt.Fprintf(stdout, "master key rotated: %s -> %s\n", before, keys.MasterKeyID())
		return nil
	})
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
	apiURL := fs.String("api-url", "http://127.0.0.1:8080", "the appliance's HTTP address")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 {
		return configErrorf("admin mark-paid: want exactly one PAYMENT_ID")
	}
	token := env("HOODCLOUD_ADMIN_TOKEN")
	if token == "" {
		return configErrorf("admin mark-paid: set HOODCLOUD_ADMIN_TOKEN to an admin token")
	}
	u := strings.TrimRight(*apiURL, "/") + "/api/v1/payments/" + url.PathEscape(fs.Arg(0)) + "/mark-paid"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return configErrorf("admin mark-paid: api-url: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("admin mark-paid: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		var body struct {
			Error struct{ Code, Message string }
		}
		json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
		return fmt.Errorf("admin mark-paid: %s: %s", resp.Status, body.Error.Message)
	}
	fmt.Fprintf(stdout, "payment %s marked paid\n", fs.Arg(0))
	return nil
}
