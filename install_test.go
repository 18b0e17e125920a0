package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// installer runs install.sh under a temp root, where it skips systemd.
func installer(t *testing.T, root string, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("sh", "install.sh")
	if len(env) > 0 && !strings.Contains(env[0], "=") {
		cmd.Args = append(cmd.Args, env[0])
		env = env[1:]
	}
	cmd.Env = append(os.Environ(), append(env, "HOODCLOUD_ROOT="+root)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestInstallScript(t *testing.T) {
	root := t.TempDir()
	bin := filepath.Join(t.TempDir(), "hoodcloud")
	os.WriteFile(bin, []byte("#!/bin/sh\necho hoodcloud test-build\n"), 0o755)
	os.WriteFile(filepath.Join(filepath.Dir(bin), "hoodcloud-agent"), []byte("#!/bin/sh\necho hoodcloud-agent test-build\n"), 0o755)
	raw, _ := os.ReadFile(bin)
	sum := sha256.Sum256(raw)

	out, err := installer(t, root, "HOODCLOUD_BINARY="+bin, "HOODCLOUD_SHA256="+hex.EncodeToString(sum[:]))
	if err != nil || !strings.Contains(out, "installed hoodcloud test-build") {
		t.Fatalf("install: %v\n%s", err, out)
	}
	for _, f := range []string{"usr/local/bin/hoodcloud", "usr/local/bin/hoodcloud-agent", "etc/systemd/system/hoodcloud.service", "usr/local/bin/hoodcloud-uninstall.sh"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	if st, err := os.Stat(filepath.Join(root, "etc/hoodcloud/hoodcloud.env")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("env file must exist with mode 0600: %v", err)
	}

	out, err = installer(t, root, "HOODCLOUD_BINARY="+bin)
	if err != nil || strings.Contains(out, "wrote") {
		t.Fatalf("a re-run with nothing changed must write nothing: %v\n%s", err, out)
	}
	out, err = installer(t, root, "HOODCLOUD_BINARY="+bin, "HOODCLOUD_SHA256=00")
	if err == nil || !strings.Contains(out, "checksum mismatch") {
		t.Fatalf("a wrong checksum must be refused: %v\n%s", err, out)
	}
	out, err = installer(t, root, "HOODCLOUD_BINARY="+bin, "HOODCLOUD_AGENT_SHA256=00")
	if err == nil || !strings.Contains(out, "checksum mismatch: the ops-agent") {
		t.Fatalf("a wrong checksum of the ops-agent must be refused: %v\n%s", err, out)
	}
	out, err = installer(t, root, "uninstall", "HOODCLOUD_PURGE=1")
	if err != nil || !strings.Contains(out, "hoodcloud removed") {
		t.Fatalf("uninstall: %v\n%s", err, out)
	}
	left, _ := filepath.Glob(filepath.Join(root, "*/*/*"))
	for _, f := range left {
		if st, _ := os.Stat(f); !st.IsDir() {
			t.Errorf("left behind: %s", f)
		}
	}
}

func TestInstallScriptWithoutAnOpsAgentWarns(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hoodcloud")
	os.WriteFile(bin, []byte("#!/bin/sh\necho hoodcloud test-build\n"), 0o755)
	root := t.TempDir()
	out, err := installer(t, root, "HOODCLOUD_BINARY="+bin)
	if err != nil || !strings.Contains(out, "warning: no ops-agent at "+filepath.Dir(bin)+"/hoodcloud-agent") {
		t.Fatalf("install without hoodcloud-agent: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/local/bin/hoodcloud-agent")); !os.IsNotExist(err) {
		t.Errorf("an ops-agent was installed from nowhere: %v", err)
	}
}
