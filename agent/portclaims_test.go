package agent

import (
	"os"
	"path/filepath"
	"testing"
)

func TestAPortIsClaimedByOneLiveChainAtATime(t *testing.T) {
	saved := portClaimsDir
	portClaimsDir = t.TempDir()
	t.Cleanup(func() { portClaimsDir = saved })
	a, b := t.TempDir(), t.TempDir()

	if !claimPort(30001, a) {
		t.Fatal("a chain cannot claim a free port")
	}
	if again := claimPort(30001, a); !again {
		t.Fatal("a chain cannot claim its own port again")
	}
	if claimPort(30001, b) {
		t.Fatal("a second chain got a port a live chain holds")
	}
	if err := os.RemoveAll(a); err != nil {
		t.Fatal(err)
	}
	if !claimPort(30001, b) {
		t.Fatal("the port of a chain that is gone is not taken over")
	}
	if owner, _ := os.ReadFile(filepath.Join(portClaimsDir, "30001")); string(owner) != b {
		t.Fatalf("port 30001 is recorded for %q, want %q", owner, b)
	}
}
