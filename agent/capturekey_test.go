package agent

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
)

const outsideSecret = "the key of somebody else"

// chainDirWithEscapes lays out dir/secret (outside the chain data dir) and
// dir/chain with a key file, a symlink inside it and symlinks leading out.
func chainDirWithEscapes(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	chain := filepath.Join(dir, "chain")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "secret"), []byte(outsideSecret), 0o600))
	must(os.MkdirAll(filepath.Join(chain, "config"), 0o700))
	must(os.WriteFile(filepath.Join(chain, "config", "node_key.json"), []byte(`{"k":"inside"}`), 0o600))
	must(os.Symlink("config/node_key.json", filepath.Join(chain, "inner-link")))
	must(os.Symlink("../secret", filepath.Join(chain, "link")))
	must(os.Symlink(dir, filepath.Join(chain, "linkdir")))
	must(os.Symlink(filepath.Join(dir, "secret"), filepath.Join(chain, "abslink")))
	must(os.WriteFile(filepath.Join(chain, "huge"), bytes.Repeat([]byte{1}, maxKeyFileSize+1), 0o600))
	return chain
}

func TestCaptureKeyReadsOnlyInsideTheChainDataDir(t *testing.T) {
	chain := chainDirWithEscapes(t)
	tests := []struct {
		path string
		ok   bool
	}{
		{"config/node_key.json", true},
		{"./config/../config/node_key.json", true},
		{"inner-link", true},
		{"../secret", false},
		{"config/../../secret", false},
		{filepath.Join(filepath.Dir(chain), "secret"), false},
		{"link", false},
		{"linkdir/secret", false},
		{"abslink", false},
		{"missing", false},
		{"huge", false},
		{"", false},
		{`config\node_key.json`, false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			b, err := readKeyFile(chain, tt.path)
			if tt.ok != (err == nil) {
				t.Fatalf("readKeyFile(%q) = %q, %v; want ok=%v", tt.path, b, err, tt.ok)
			}
			if tt.ok && string(b) != `{"k":"inside"}` {
				t.Errorf("read %q", b)
			}
		})
	}
}

func TestCaptureKeyEncryptsTheKeyUnderTheDataKey(t *testing.T) {
	chain := chainDirWithEscapes(t)
	dek := testDEK("node_a")
	sealed, err := CaptureKey(chain, "config/node_key.json", dek)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("inside")) {
		t.Fatal("the sealed key holds the plaintext")
	}
	if plain, err := engine.OpenWithDataKey(dek, sealed); err != nil || string(plain) != `{"k":"inside"}` {
		t.Fatalf("open = %q, %v", plain, err)
	}
	if _, err := CaptureKey(chain, "config/node_key.json", dek[:16]); err == nil || !strings.Contains(err.Error(), "data key") {
		t.Errorf("with a short data key: %v", err)
	}
	if _, err := CaptureKey(chain, "link", dek); err == nil {
		t.Error("a symlink out of the chain dir was captured")
	}
}

// FuzzKeyPath: whatever the path, nothing outside the chain data dir is
// ever read, and an accepted path is lexically local.
func FuzzKeyPath(f *testing.F) {
	chain := chainDirWithEscapes(f)
	f.Add("config/node_key.json")
	f.Fuzz(func(t *testing.T, p string) {
		if ValidateKeyPath(p) == nil && (!filepath.IsLocal(p) || filepath.IsAbs(p) || leavesDir(p)) {
			t.Fatalf("accepted %q, which is not local", p)
		}
		b, err := readKeyFile(chain, p)
		if err == nil && bytes.Contains(b, []byte(outsideSecret)) {
			t.Fatalf("%q read a file outside the chain data dir", p)
		}
	})
}

func leavesDir(p string) bool {
	c := filepath.Clean(p)
	return c == ".." || strings.HasPrefix(c, "../")
}

func TestCaptureWaitsForAKeyFileTheChainWritesLater(t *testing.T) {
	chain := t.TempDir()
	go func() {
		time.Sleep(300 * time.Millisecond) // the chain starts and writes its key
		os.MkdirAll(filepath.Join(chain, "geth"), 0o700)
		os.WriteFile(filepath.Join(chain, "geth", "nodekey"), []byte("k"), 0o600)
	}()
	if err := awaitKeyFile(t.Context(), chain, "geth/nodekey", testenv.Patience); err != nil {
		t.Fatalf("a key file written after the wait began: %v", err)
	}
	err := awaitKeyFile(t.Context(), chain, "never", 300*time.Millisecond)
	var ce *commandError
	if !errors.As(err, &ce) || ce.retryable {
		t.Fatalf("a key file that never appears = %v, want a permanent failure", err)
	}
}
