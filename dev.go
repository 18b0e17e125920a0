package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
)

// devToken is the known admin token of `hoodcloud dev`, unless configured.
const devToken = "hcdev-admin-token"

// dev runs an ephemeral appliance: a temporary data dir removed on exit,
// a known admin token, and the connection details printed for scripts.
func dev(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	var output string
	cfg, _, err := loadConfig("dev", args, env, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&output, "output", "text", "connection details as text, env or json")
	})
	if err != nil {
		return err
	}
	if err := checkOneOf("output", output, "text", "env", "json"); err != nil {
		return err
	}
	if cfg.DevToken == "" {
		cfg.DevToken = devToken
	}
	if !cfg.explicit["data-dir"] {
		dir, err := os.MkdirTemp("", "hoodcloud-dev-")
		if err != nil {
			return fmt.Errorf("temp data dir: %w", err)
		}
		defer os.RemoveAll(dir)
		cfg.DataDir = dir
		// A fresh dir is never restarted, so fixed Temporal ports buy
		// nothing and would keep two dev stacks from running side by side.
		if err := cfg.pickFreeTemporalPorts(); err != nil {
			return err
		}
	}
	m := NewMain(cfg, stderr)
	if err := m.Open(ctx); err != nil {
		return &ConfigError{err}
	}
	printDevDetails(stdout, output, m.devDetails())
	return m.Run(ctx)
}

// devDetails are what a client of the dev stack needs to connect.
type devDetails struct {
	APIURL            string `json:"api_url"`
	AgentAddr         string `json:"agent_addr"`
	TemporalAddr      string `json:"temporal_addr"`
	TemporalNamespace string `json:"temporal_namespace"`
	NATSURL           string `json:"nats_url,omitempty"`
	DataDir           string `json:"data_dir"`
	AdminToken        string `json:"admin_token"`
	// PaymentWebhookSecret signs payment webhooks (see the webhook route
	// in /api/openapi.json); empty when read from the operator's file,
	// which is never printed.
	PaymentWebhookSecret string `json:"payment_webhook_secret,omitempty"`
}

func (m *Main) devDetails() devDetails {
	d := devDetails{
		APIURL:            "http://" + m.HTTP.Addr(),
		AgentAddr:         m.Gateway.Addr(),
		TemporalAddr:      m.Config.Temporal,
		TemporalNamespace: m.Config.TemporalNamespace,
		DataDir:           m.Config.DataDir,
		AdminToken:        m.Config.DevToken,
	}
	if m.Config.PaymentWebhookSecretFile == "" {
		d.PaymentWebhookSecret = printable(m.WebhookSecrets.Current())
	}
	if d.TemporalAddr == "embedded" {
		d.TemporalAddr = net.JoinHostPort(m.Config.TemporalHost, fmt.Sprint(m.Config.TemporalPorts.Frontend))
	}
	if m.NATS != nil {
		d.NATSURL = m.NATS.ClientURL()
	}
	return d
}

func printDevDetails(w io.Writer, format string, d devDetails) {
	switch format {
	case "json":
		json.NewEncoder(w).Encode(d)
	case "env":
		fmt.Fprintf(w, "HOODCLOUD_API_URL=%s\nHOODCLOUD_AGENT_ADDR=%s\nHOODCLOUD_TEMPORAL_ADDR=%s\nHOODCLOUD_TEMPORAL_NAMESPACE=%s\nHOODCLOUD_NATS_URL=%s\nHOODCLOUD_DATA_DIR=%s\nHOODCLOUD_ADMIN_TOKEN=%s\nHOODCLOUD_PAYMENT_WEBHOOK_SECRET=%s\n",
			d.APIURL, d.AgentAddr, d.TemporalAddr, d.TemporalNamespace, d.NATSURL, d.DataDir, d.AdminToken, d.PaymentWebhookSecret)
	default:
		nats := d.NATSURL
		if nats == "" {
			nats = "in process only (set --nats-listen to expose it)"
		}
		webhook := d.PaymentWebhookSecret
		if webhook == "" {
			webhook = "read from --payment-webhook-secret-file (not shown)"
		}
		fmt.Fprintf(w, "HoodCloud dev appliance is ready.\n  API:          %s\n  Agent gRPC:   %s\n  Temporal:     %s (namespace %s)\n  NATS:         %s\n  Data dir:     %s\n  Admin token:  %s\n  Payment webhook secret: %s\nPress Ctrl-C to stop; the data dir is removed on exit unless you chose it.\n",
			d.APIURL, d.AgentAddr, d.TemporalAddr, d.TemporalNamespace, nats, d.DataDir, d.AdminToken, webhook)
	}
}

// printable is a generated webhook secret as text; one made by a version
// that generated raw bytes cannot be shown, so it is replaced by a hint.
func printable(secret []byte) string {
	for _, r := range string(secret) {
		if r < 0x21 || r > 0x7e {
			return "(made by an older version and not printable: run `hoodcloud admin rotate payment-webhook` and restart)"
		}
	}
	return string(secret)
}

func (c *Config) pickFreeTemporalPorts() error {
	for _, p := range []*int{&c.TemporalPorts.Frontend, &c.TemporalPorts.FrontendHTTP, &c.TemporalPorts.History, &c.TemporalPorts.Matching, &c.TemporalPorts.Worker} {
		l, err := net.Listen("tcp", net.JoinHostPort(c.TemporalHost, "0"))
		if err != nil {
			return fmt.Errorf("pick a free port: %w", err)
		}
		*p = l.Addr().(*net.TCPAddr).Port
		defer l.Close() // held until all are picked, so none repeats
	}
	return nil
}
