package vault_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/store/vault"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url  string
		want vault.Options
	}{
		{"vault://vault.internal?role-id-file=/run/role&secret-id-file=/run/secret", vault.Options{
			Address: "https://vault.internal:8200", RoleIDFile: "/run/role", SecretIDFile: "/run/secret",
		}},
		{"vault://127.0.0.1:8300?tls=false&token-file=/run/token&mount=kv&prefix=hoodcloud/prod&transit=keys", vault.Options{
			Address: "http://127.0.0.1:8300", TokenFile: "/run/token", KVMount: "kv", KVPrefix: "hoodcloud/prod", TransitMount: "keys",
		}},
		{"vault://[::1]:8200?ca-file=/etc/ca.pem&namespace=team&approle=machines&role-id-file=r&secret-id-file=s&timeout=5s", vault.Options{
			Address: "https://[::1]:8200", CAFile: "/etc/ca.pem", Namespace: "team", AppRoleMount: "machines",
			RoleIDFile: "r", SecretIDFile: "s", RequestTimeout: 5 * time.Second,
		}},
	}
	for _, tc := range tests {
		got, err := vault.ParseURL(tc.url)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.url, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tc.url, got, tc.want)
		}
	}
}

func TestParseURLRefusals(t *testing.T) {
	tests := []struct{ url, says string }{
		{"https://vault.internal", "vault://"},
		{"vault://", "no host"},
		{"vault://s.roottoken@vault.internal", "must not carry credentials"},
		{"vault://vault.internal/secret", "no path"},
		{"vault://vault.internal?token=s.roottoken", `unknown URL parameter "token"`},
		{"vault://vault.internal?tls=maybe", "tls"},
		{"vault://vault.internal?timeout=soon", "timeout"},
	}
	for _, tc := range tests {
		_, err := vault.ParseURL(tc.url)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("ParseURL(%q) = %v, want an error saying %q", tc.url, err, tc.says)
		}
		if err != nil && strings.Contains(err.Error(), "roottoken") {
			t.Errorf("ParseURL(%q) error %q repeats the credential", tc.url, err)
		}
	}
}
