package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	var stdout bytes.Buffer
	if code := run(context.Background(), []string{"version"}, noEnv, &stdout, &bytes.Buffer{}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if got := stdout.String(); got != "hoodcloud-agent dev (commit none, built unknown)\n" {
		t.Fatalf("version = %q", got)
	}
}

func TestBadCommandLinesExitTwoWithAClearMessage(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no flags", nil, "hoodcloud-agent: gateway is required"},
		{"no node id", []string{"--gateway", "127.0.0.1:1", "--data-dir", dir}, "hoodcloud-agent: node-id is required"},
		{"unknown runtime", []string{"--gateway", "127.0.0.1:1", "--node-id", "n1", "--data-dir", dir, "--runtime", "lxc"}, "hoodcloud-agent: runtime: "},
		{"unknown flag", []string{"--colour"}, "flag provided but not defined: -colour"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(context.Background(), tt.args, noEnv, &bytes.Buffer{}, &stderr); code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %s)", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("stderr = %q, want it to mention %q", stderr.String(), tt.want)
			}
		})
	}
}

func noEnv(string) string { return "" }
