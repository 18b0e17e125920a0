package web_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/web"
)

// uptimeNow is the uptime API's clock in these tests: 10:30.
var uptimeNow = time.Date(2031, 5, 4, 10, 30, 0, 0, time.UTC)

// withUptime serves uptime from the fixture's store at uptimeNow.
func withUptime(tb testing.TB) fixtureOption {
	return func(c *web.Config) {
		u, err := engine.NewUptime(engine.UptimeConfig{Nodes: c.Store, Buckets: c.Store, Now: func() time.Time { return uptimeNow }})
		if err != nil {
			tb.Fatal(err)
		}
		c.Uptime = u
	}
}

// uptimeBuckets stores, for nodeID, the buckets a worker would have
// written by uptimeNow: 08:00 (50 min up, 10 down), 09:00 (all up), the
// current 10:00 (20 min up so far), and one 3 days before of an hour down.
func (f *nodesFixture) uptimeBuckets(nodeID string) {
	f.tb.Helper()
	hour := func(h time.Duration) time.Time { return time.Date(2031, 5, 4, 0, 0, 0, 0, time.UTC).Add(h * time.Hour) }
	err := f.store.PutUptimeBuckets(context.Background(), []*engine.UptimeBucket{
		{NodeID: nodeID, Hour: hour(8 - 72), DownSeconds: 3600, Complete: true},
		{NodeID: nodeID, Hour: hour(8), UpSeconds: 3000, DownSeconds: 600, Complete: true},
		{NodeID: nodeID, Hour: hour(9), UpSeconds: 3600, Complete: true},
		{NodeID: nodeID, Hour: hour(10), UpSeconds: 1200},
	})
	if err != nil {
		f.tb.Fatal(err)
	}
}

func TestUptimeReadScenarios(t *testing.T) {
	f := newNodesFixture(t, withUptime(t))
	_, writeOnly := f.apiKey(f.aliceJWT, engine.ScopeNodesWrite)
	mine, bobs := f.node(f.alice.ID), f.node(f.bob.ID)
	f.uptimeBuckets(mine.ID)
	up, hist := "/api/v1/nodes/"+mine.ID+"/uptime", "/api/v1/nodes/"+mine.ID+"/uptime/history"
	runNodeScenarios(t, f, []nodeScenario{
		{"the last 24 hours and the current one by default", request{method: "GET", path: up, credential: f.aliceJWT}, 200,
			[]string{`"window":"24h"`, `"start":"2031-05-03T10:00:00Z"`, `"end":"2031-05-04T11:00:00Z"`, `"up_seconds":7800`, `"down_seconds":600`, `"uptime_percent":92.8571`}, nil},
		{"7 days reach the hour down 3 days ago", request{method: "GET", path: up + "?window=7d", credential: f.aliceReadKey}, 200,
			[]string{`"window":"7d"`, `"up_seconds":7800`, `"down_seconds":4200`, `"uptime_percent":65`}, nil},
		{"30 days", request{method: "GET", path: up + "?window=30d", credential: f.aliceJWT}, 200, []string{`"start":"2031-04-04T10:00:00Z"`}, nil},
		{"a node without buckets has no percentage", request{method: "GET", path: "/api/v1/nodes/" + bobs.ID + "/uptime", credential: f.bobJWT}, 200,
			[]string{`"up_seconds":0`, `"uptime_percent":null`}, nil},
		{"hourly history", request{method: "GET", path: hist, credential: f.aliceJWT}, 200,
			[]string{`"granularity":"hourly"`, `{"start":"2031-05-04T08:00:00Z","end":"2031-05-04T09:00:00Z","up_seconds":3000,"down_seconds":600,"uptime_percent":83.3333,"complete":true}`,
				`{"start":"2031-05-04T10:00:00Z","end":"2031-05-04T11:00:00Z","up_seconds":1200,"down_seconds":0,"uptime_percent":100,"complete":false}`}, []string{"2031-05-01"}},
		{"daily history over 7 days", request{method: "GET", path: hist + "?window=7d&granularity=daily", credential: f.aliceJWT}, 200,
			[]string{`{"start":"2031-05-01T00:00:00Z","end":"2031-05-02T00:00:00Z","up_seconds":0,"down_seconds":3600,"uptime_percent":0,"complete":true}`,
				`{"start":"2031-05-04T00:00:00Z","end":"2031-05-05T00:00:00Z","up_seconds":7800,"down_seconds":600,"uptime_percent":92.8571,"complete":false}`}, nil},
		{"an administrator reads any node's uptime", request{method: "GET", path: up, credential: f.rootJWT}, 200, []string{`"up_seconds":7800`}, nil},

		{"uptime without nodes:read", request{method: "GET", path: up, credential: writeOnly}, 403, []string{"nodes:read"}, nil},
		{"history without nodes:read", request{method: "GET", path: hist, credential: writeOnly}, 403, []string{"nodes:read"}, nil},
		{"uptime without a credential", request{method: "GET", path: up}, 401, nil, nil},
		{"another tenant's uptime is 404", request{method: "GET", path: up, credential: f.bobJWT}, 404, []string{`"code":"not_found"`}, []string{"up_seconds"}},
		{"another tenant's history is 404", request{method: "GET", path: hist, credential: f.bobKey}, 404, []string{`"code":"not_found"`}, nil},
		{"unknown node is 404", request{method: "GET", path: "/api/v1/nodes/node_nope/uptime", credential: f.aliceJWT}, 404, nil, nil},

		{"a window of a year is refused", request{method: "GET", path: up + "?window=1y", credential: f.aliceJWT}, 400, []string{`"code":"invalid"`, "24h, 7d or 30d"}, nil},
		{"an empty window is refused", request{method: "GET", path: hist + "?window=", credential: f.aliceJWT}, 400, []string{`"code":"invalid"`}, nil},
		{"a weekly granularity is refused", request{method: "GET", path: hist + "?granularity=weekly", credential: f.aliceJWT}, 400, []string{`"code":"invalid"`, "hourly or daily"}, nil},
	})
}

func TestUptimeRecomputeScenarios(t *testing.T) {
	f := newNodesFixture(t, withUptime(t))
	mine := f.node(f.alice.ID)
	f.uptimeBuckets(mine.ID)
	path := func(id, from, to string) string {
		return "/api/v1/admin/nodes/" + id + "/uptime/recompute?from=" + url.QueryEscape(from) + "&to=" + url.QueryEscape(to)
	}
	good := path(mine.ID, "2031-05-04T08:30:00Z", "2031-05-04T10:00:00Z")
	runNodeScenarios(t, f, []nodeScenario{
		{"the owner may not", request{method: "POST", path: good, credential: f.aliceJWT}, 403, []string{"admin"}, nil},
		{"without a credential", request{method: "POST", path: good}, 401, nil, nil},
		{"a from that is not a time", request{method: "POST", path: path(mine.ID, "yesterday", "2031-05-04T10:00:00Z"), credential: f.rootJWT}, 400, []string{`"code":"invalid"`, "from"}, nil},
		{"no to", request{method: "POST", path: "/api/v1/admin/nodes/" + mine.ID + "/uptime/recompute?from=2031-05-04T08:00:00Z", credential: f.rootJWT}, 400, []string{`"code":"invalid"`, "to"}, nil},
		{"to before from", request{method: "POST", path: path(mine.ID, "2031-05-04T10:00:00Z", "2031-05-04T08:00:00Z"), credential: f.rootJWT}, 400, []string{"before"}, nil},
		{"an unknown node", request{method: "POST", path: path("node_nope", "2031-05-04T08:00:00Z", "2031-05-04T10:00:00Z"), credential: f.rootJWT}, 404, nil, nil},
		{"an administrator marks 08:00 and 09:00", request{method: "POST", path: good, credential: f.rootJWT}, 202, []string{`"marked":2`}, nil},
	})
	bs, err := f.store.ListUptimeBuckets(context.Background(), mine.ID, uptimeNow.Add(-4*time.Hour), uptimeNow.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var flagged []int
	for _, b := range bs {
		if b.Recompute {
			flagged = append(flagged, b.Hour.Hour())
		}
	}
	if len(flagged) != 2 || flagged[0] != 8 || flagged[1] != 9 {
		t.Fatalf("flagged hours %v, want [8 9]", flagged)
	}
}

// TestUptimeOfAnotherTenantLooksMissing: word for word the 404 of a node
// that does not exist.
func TestUptimeOfAnotherTenantLooksMissing(t *testing.T) {
	f := newNodesFixture(t, withUptime(t))
	bobs := f.node(f.bob.ID)
	for _, suffix := range []string{"/uptime", "/uptime/history?granularity=daily"} {
		theirs := f.do(request{method: "GET", path: "/api/v1/nodes/" + bobs.ID + suffix, credential: f.aliceJWT})
		missing := f.do(request{method: "GET", path: "/api/v1/nodes/node_nope" + suffix, credential: f.aliceJWT})
		if theirs.Code != 404 || theirs.Body.String() != missing.Body.String() {
			t.Errorf("%s: another tenant's node answers %d %s, a missing one %d %s", suffix, theirs.Code, theirs.Body, missing.Code, missing.Body)
		}
	}
}

func TestUptimeRoutesNever5xxOnBadInput(t *testing.T) {
	f := newNodesFixture(t, withUptime(t))
	mine := f.node(f.alice.ID)
	ids := []string{mine.ID, "%ff", "%00", "node_%E2%80%AE", "..%2F..", "'%20OR%201=1--"}
	queries := []string{"window=%ff", "window=24h%00", "granularity=" + url.QueryEscape("'; DROP"), "window=-24h", "from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z", "from=%00&to=%ff"}
	for _, id := range ids {
		for _, q := range queries {
			for _, route := range []struct{ method, path, credential string }{
				{"GET", "/api/v1/nodes/" + id + "/uptime?" + q, f.aliceJWT},
				{"GET", "/api/v1/nodes/" + id + "/uptime/history?" + q, f.aliceJWT},
				{"POST", "/api/v1/admin/nodes/" + id + "/uptime/recompute?" + q, f.rootJWT},
			} {
				rec := f.do(request{method: route.method, path: route.path, credential: route.credential})
				if rec.Code >= 500 || rec.Code == 429 {
					t.Errorf("%s %s: %d %s", route.method, route.path, rec.Code, rec.Body)
				}
			}
		}
	}
}
