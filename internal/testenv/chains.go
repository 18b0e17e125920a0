package testenv

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hoodcloud/hoodcloud/internal/chains"
)

// ChainClient returns the directory holding c's program, installing it on
// first use (minutes on a cold cache). Without it the test is skipped,
// loudly, unless HOODCLOUD_TEST_REQUIRE_CHAINS=1.
func ChainClient(t testing.TB, c chains.Client) string {
	t.Helper()
	bin, err := c.Install(t.Context())
	if err != nil {
		if os.Getenv(chains.RequireEnv) == "1" {
			t.Fatalf("chain client %s: %v", c.Name, err)
		}
		t.Skipf("SKIPPED: chain client %s@%s is not installed and cannot be (%v); set %s=1 to make this a failure",
			c.Name, c.Version, err, chains.RequireEnv)
	}
	return filepath.Dir(bin)
}
