package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
)

// TestLeaderAccountsUptime: the open appliance's leader materialises a
// node's buckets every uptime interval, and the API serves them.
func TestLeaderAccountsUptime(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.UptimeInterval = 20 * time.Millisecond
	m := MustOpenMain(t, cfg)
	created := time.Now().UTC().Add(-90 * time.Minute).Truncate(time.Microsecond)
	n := &engine.Node{ID: engine.NewID("node"), SubscriptionID: engine.NewID("sub"), OwnerID: engine.NewID("user"),
		ChainProfileID: "cosmos-demo", NodeType: "full", State: engine.NodeRunning, CreatedAt: created, UpdatedAt: created}
	if err := m.Store.CreateNode(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	api := apiClient{t: t, base: "http://" + m.HTTP.Addr() + "/api/v1", token: m.Boot.AdminToken}
	var sum struct {
		UpSeconds   int64    `json:"up_seconds"`
		DownSeconds int64    `json:"down_seconds"`
		Percent     *float64 `json:"uptime_percent"`
	}
	testenv.WaitFor(t, "the uptime of a node running for 90 minutes", func() bool {
		api.do("GET", "/nodes/"+n.ID+"/uptime?window=24h", "", 200, &sum)
		return sum.UpSeconds >= 90*60
	})
	if sum.DownSeconds != 0 || sum.Percent == nil || *sum.Percent != 100 {
		t.Fatalf("uptime = %+v, want all of it up", sum)
	}
}

func TestUptimeSettingsAreChecked(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--uptime-interval", "0s"},
		{"serve", "--uptime-grace", "-1m"},
		{"serve", "--uptime-retention", "30m"},
	} {
		var stdout, stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), testenv.Patience)
		code := run(ctx, args, func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr)
		cancel()
		if code != 2 || !strings.Contains(stderr.String(), "uptime-retention at least 1h") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and the uptime rule", args, code, stderr.String())
		}
	}
	cfg := defaultConfig()
	if cfg.UptimeInterval != 5*time.Minute || cfg.UptimeGrace != 10*time.Minute || cfg.UptimeRetention != 90*24*time.Hour {
		t.Fatalf("uptime defaults = %s, %s, %s; want 5m, 10m, 90 days", cfg.UptimeInterval, cfg.UptimeGrace, cfg.UptimeRetention)
	}
}
