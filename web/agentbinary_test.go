package web_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/web"
)

// writeAgent writes an executable file of content at dir/name.
func writeAgent(t *testing.T, dir, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, content, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func openAgent(t *testing.T, path string) *web.AgentBinary {
	t.Helper()
	b, err := web.OpenAgentBinary(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func serve(h http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestTheAgentBinaryIsServedWithItsDigestEvenAfterItsPathIsReplaced(t *testing.T) {
	dir := t.TempDir()
	content := bytes.Repeat([]byte("hoodcloud-agent build 1\n"), 4096)
	path := writeAgent(t, dir, "hoodcloud-agent", content)
	b := openAgent(t, path)
	sum := sha256.Sum256(content)
	if b.SHA256() != hex.EncodeToString(sum[:]) {
		t.Fatalf("SHA256 = %s, want %x", b.SHA256(), sum)
	}
	h := web.New(web.Config{AgentBinary: b}).Handler()

	// An upgrade renames a new build over the path: the appliance keeps
	// serving what it digested until it restarts.
	writeAgent(t, dir, "next", []byte("hoodcloud-agent build 2\n"))
	if err := os.Rename(filepath.Join(dir, "next"), path); err != nil {
		t.Fatal(err)
	}
	rec := serve(h, "GET", web.AgentBinaryPath)
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), content) || rec.Header().Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("GET %s = %d, %d bytes, %s; want the binary as opened", web.AgentBinaryPath, rec.Code, rec.Body.Len(), rec.Header().Get("Content-Type"))
	}
	rec = serve(h, "GET", web.AgentBinaryPath+".sha256")
	if want := hex.EncodeToString(sum[:]) + "  hoodcloud-agent-linux-amd64\n"; rec.Code != 200 || rec.Body.String() != want {
		t.Fatalf("GET .sha256 = %d %q; want %q", rec.Code, rec.Body.String(), want)
	}
	rec = serve(h, "GET", web.AgentBinaryPath, "Range", "bytes=24-47")
	if rec.Code != http.StatusPartialContent || rec.Body.String() != "hoodcloud-agent build 1\n" {
		t.Fatalf("ranged GET = %d %q; want 206 and the second line", rec.Code, rec.Body.String())
	}
}

func TestWithoutAnAgentBinaryTheDownloadAnswers503AgentBinaryMissing(t *testing.T) {
	h := web.New(web.Config{}).Handler()
	for _, path := range []string{web.AgentBinaryPath, web.AgentBinaryPath + ".sha256"} {
		rec := serve(h, "GET", path)
		var body struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusServiceUnavailable || body.Error.Code != "agent_binary_missing" {
			t.Errorf("GET %s = %d %s; want 503 agent_binary_missing", path, rec.Code, rec.Body.String())
		}
	}
}

func TestOpenAgentBinaryRefusesWhatCannotBeHandedOut(t *testing.T) {
	dir := t.TempDir()
	notExecutable := filepath.Join(dir, "plain")
	if err := os.WriteFile(notExecutable, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"missing": filepath.Join(dir, "nope"), "a directory": dir, "not executable": notExecutable} {
		_, err := web.OpenAgentBinary(path)
		if !engine.IsCode(err, web.EAgentBinaryMissing) || !bytes.Contains([]byte(err.Error()), []byte(path)) {
			t.Errorf("%s: OpenAgentBinary = %v; want agent_binary_missing naming the path", name, err)
		}
	}
}
