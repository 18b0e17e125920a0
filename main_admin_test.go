package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"os"

	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

func runAdmin(t *testing.T, stdin string, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, append([]string{"admin"}, args...), func(k string) string { return env[k] }, strings.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestAdminCreateUserThenSignIn(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runAdmin(t, "correct horse battery\n", nil, "create-user", "--data-dir", dir, "--email", "ops@example.com", "--admin")
	if code != 0 || !strings.Contains(out, "admin: true") {
		t.Fatalf("create-user = %d %q %q", code, out, errOut)
	}
	code, _, errOut = runAdmin(t, "another password\n", nil, "create-user", "--data-dir", dir, "--email", "ops@example.com")
	if code != 1 || !strings.Contains(errOut, "create user:") {
		t.Fatalf("a second user with the same email = %d %q, want exit 1 naming the problem", code, errOut)
	}

	cfg := testConfig(t, dir)
	m := MustOpenMain(t, cfg)
	resp, err := http.Post("http://"+m.HTTP.Addr()+"/api/v1/auth/login", "application/json",
		strings.NewReader(`{"email":"ops@example.com","password":"correct horse battery"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("login as the created user = %d, want 200", resp.StatusCode)
	}
	code, _, errOut = runAdmin(t, "pw\n", nil, "create-user", "--data-dir", dir, "--email", "x@example.com")
	if code != 2 || !strings.Contains(errOut, "in use by another hoodcloud process") {
		t.Fatalf("admin while serving = %d %q, want 2: the data dir is in use", code, errOut)
	}
}

func TestAdminRotateMasterKeyFileKeepsTheApplianceWorking(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	m := MustOpenMain(t, cfg)
	ca := m.Boot.AgentCA.Raw
	m.Close()

	code, out, errOut := runAdmin(t, "", nil, "rotate", "master-key-file", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "master key file rotated") {
		t.Fatalf("rotate master-key-file = %d %q %q", code, out, errOut)
	}
	m = MustOpenMain(t, cfg)
	if !bytes.Equal(m.Boot.AgentCA.Raw, ca) {
		t.Fatal("the first-boot material must survive the rotation")
	}
}

func TestAdminBadInput(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"no command", "", nil, "usage: hoodcloud admin"},
		{"unknown command", "", []string{"promote"}, `admin: unknown command "promote"`},
		{"create-user without email", "pw\n", []string{"create-user", "--data-dir", t.TempDir()}, "email is required"},
		{"create-user without password", "", []string{"create-user", "--data-dir", t.TempDir(), "--email", "a@b.c"}, "no password"},
		{"rotate nothing", "", []string{"rotate"}, "admin rotate: want one of jwt, sealed-box, ca, master"},
		{"rotate what", "", []string{"rotate", "passwords"}, "admin rotate: want one of jwt, sealed-box, ca, master"},
		{"rotate two keys", "", []string{"rotate", "jwt", "ca"}, "admin rotate: want one of jwt, sealed-box, ca, master"},
		{"rotate without token", "", []string{"rotate", "jwt"}, "admin rotate: set HOODCLOUD_ADMIN_TOKEN"},
		{"rotate online with a data dir", "", []string{"rotate", "--data-dir", "/srv/hc", "master"}, "flag provided but not defined: -data-dir"},
		{"rotate with a bad grace", "", []string{"rotate", "--grace", "soon", "jwt"}, "invalid value \"soon\" for flag -grace"},
		{"rotate master-key-file on Vault", "", []string{"rotate", "master-key-file", "--data-dir", t.TempDir(),
			"--secrets", "vault://127.0.0.1:1?role-id-file=/nonexistent&secret-id-file=/nonexistent"}, "secrets are not in the local keyring (--secrets vault://…)"},
		{"mark-paid without id", "", []string{"mark-paid"}, "want exactly one PAYMENT_ID"},
		{"mark-paid without token", "", []string{"mark-paid", "pay_1"}, "set HOODCLOUD_ADMIN_TOKEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runAdmin(t, tt.stdin, nil, tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 mentioning %q", code, errOut, tt.want)
			}
		})
	}
}

func TestAdminReapDestroysHostsOfNoNode(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	m := MustOpenMain(t, cfg)
	host, err := m.Provisioner.CreateHost(t.Context(), engine.HostSpec{
		NodeID:   "node_gone",
		Provider: "local",
		Bootstrap: engine.HostBootstrap{
			GatewayAddr:     m.Gateway.Addr(),
			CACertPEM:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: m.Boot.AgentCA.Raw}),
			EnrollmentToken: "unused",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()

	code, out, errOut := runAdmin(t, "", nil, "reap", "--dry-run", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "would destroy local host node_gone") {
		t.Fatalf("reap --dry-run = %d %q %q", code, out, errOut)
	}
	if _, err := os.Stat(host.Address); err != nil {
		t.Fatalf("a dry run must destroy nothing: %v", err)
	}
	code, out, _ = runAdmin(t, "", nil, "reap", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "destroyed local host node_gone") {
		t.Fatalf("reap = %d %q", code, out)
	}
	if _, err := os.Stat(host.Address); !os.IsNotExist(err) {
		t.Fatalf("the leftover host directory is still there: %v", err)
	}
}
