package agent

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/internal/testenv"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/protobuf/proto"
)

// gethMetrics is what geth's Prometheus endpoint looks like, trimmed.
const gethMetrics = `# TYPE chain_head_block gauge
chain_head_block 1200
# TYPE chain_head_header gauge
chain_head_header 1210
# TYPE p2p_peers gauge
p2p_peers 25
# TYPE chain_info gauge
chain_info{chain_id="17000",version="1.15.11"} 1
# TYPE p2p_dials counter
p2p_dials 4711
# TYPE rpc_duration_all histogram
rpc_duration_all_bucket{le="0.1"} 3
rpc_duration_all_bucket{le="+Inf"} 4
rpc_duration_all_sum 0.2
rpc_duration_all_count 4
`

var gethSpec = &agentv1.MetricsSpec{BlockHeight: "chain_head_block", HighestBlock: "chain_head_header", Peers: "p2p_peers"}

func TestParseExpositionKeepsGaugesCountersAndUntypedSamples(t *testing.T) {
	e, err := parseExposition([]byte(gethMetrics + "loose_value 7\n# TYPE odd gauge\nodd NaN\nodd{x=\"inf\"} +Inf\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"chain_head_block": 1200, "chain_head_header": 1210, "p2p_peers": 25, "p2p_dials": 4711, "loose_value": 7,
		`chain_info{chain_id="17000",version="1.15.11"}`: 1,
	}
	got := map[string]float64{}
	for _, samples := range e {
		for _, s := range samples {
			got[s.key] = s.value
		}
	}
	if len(got) != len(want) {
		t.Errorf("kept %v, want %v (no histogram, no NaN or Inf)", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestParseExpositionRejectsMalformedText(t *testing.T) {
	for name, text := range map[string]string{
		"a value that is not a number": "chain_head_block twelve\n",
		"a name with a dot":            "chain.head.block 1\n",
		"an unterminated label set":    "up{job=\"a\" 1\n",
		"a type given twice":           "# TYPE a gauge\n# TYPE a counter\na 1\n",
		"a type after the samples":     "a 1\n# TYPE a gauge\n",
		"binary garbage":               "\x00\x01\x02",
	} {
		t.Run(name, func(t *testing.T) {
			if e, err := parseExposition([]byte(text)); err == nil {
				t.Fatalf("parsed %q as %v", text, e)
			}
		})
	}
}

var seriesKeyPattern = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?$`)

// FuzzParseExposition: whatever an endpoint serves, the parser returns an
// error or finite values under well-formed keys, and never panics.
func FuzzParseExposition(f *testing.F) {
	f.Add([]byte(gethMetrics))
	f.Add([]byte("# HELP x y\n# TYPE x summary\nx{quantile=\"0.5\"} 1\nx_sum 2\nx_count 3\n"))
	f.Add([]byte("a{b=\"\\\"\\n\\\\\"} 1 1700000000000\n"))
	f.Add([]byte("# TYPE a gauge\na -Inf\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := parseExposition(data)
		if err != nil {
			return
		}
		for name, samples := range e {
			for _, s := range samples {
				if !strings.HasPrefix(s.key, name) || !seriesKeyPattern.MatchString(s.key) {
					t.Fatalf("series %q of metric %q", s.key, name)
				}
				if math.IsNaN(s.value) || math.IsInf(s.value, 0) {
					t.Fatalf("%s = %v kept", s.key, s.value)
				}
			}
		}
	})
}

// metricsServer serves text, which the test may change.
type metricsServer struct {
	*httptest.Server
	mu   sync.Mutex
	text string
}

func serveMetrics(t *testing.T, text string) *metricsServer {
	t.Helper()
	m := &metricsServer{text: text}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		m.mu.Lock()
		defer m.mu.Unlock()
		fmt.Fprint(w, m.text)
	}))
	t.Cleanup(m.Close)
	return m
}

func (m *metricsServer) set(text string) {
	m.mu.Lock()
	m.text = text
	m.mu.Unlock()
}

// spec is base pointed at url.
func spec(base *agentv1.MetricsSpec, url string) *agentv1.MetricsSpec {
	s := proto.CloneOf(base)
	s.Url = url
	return s
}

// watchOf watches a running chain whose components, named c0, c1…, have
// the given specs.
func watchOf(t *testing.T, specs ...*agentv1.MetricsSpec) *chainWatch {
	t.Helper()
	p := &agentv1.ConfigurePayload{}
	for i, s := range specs {
		p.Components = append(p.Components, &agentv1.Component{Name: fmt.Sprintf("c%d", i), Metrics: s})
	}
	w := newChainWatch(t.TempDir(), time.Hour, 3, func() (*agentv1.ConfigurePayload, bool, error) { return p, true, nil })
	t.Cleanup(w.client.CloseIdleConnections)
	return w
}

func scrapeNow(w *chainWatch) chainReport {
	w.scrapeOnce(context.Background())
	return w.latest()
}

var running = RuntimeStatus{Configured: true, Running: true}

func TestScrapeReportsSyncStatusAndASnapshot(t *testing.T) {
	srv := serveMetrics(t, gethMetrics)
	w := watchOf(t, spec(gethSpec, srv.URL+"/debug/metrics/prometheus"))
	before := time.Now()
	r := scrapeNow(w)

	want := &agentv1.SyncStatus{CurrentHeight: 1200, HighestHeight: 1210, Peers: 25, Syncing: true}
	if !proto.Equal(r.sync, want) {
		t.Errorf("sync = %v, want %v (syncing: the highest block is ahead)", r.sync, want)
	}
	if got := r.metrics.GetValues(); got["chain_head_block"] != 1200 || got["p2p_dials"] != 4711 || got[`chain_info{chain_id="17000",version="1.15.11"}`] != 1 {
		t.Errorf("snapshot = %v", got)
	}
	if at := r.metrics.GetCollectedAt().AsTime(); at.Before(before.Truncate(time.Second)) || at.After(time.Now()) {
		t.Errorf("collected at %s", at)
	}
	if h, msg := r.verdict(running); h != agentv1.AppHealth_APP_HEALTH_HEALTHY || msg != "" {
		t.Errorf("verdict %s %q, want healthy", h, msg)
	}
}

func TestNamedMetricsWithSeveralSeries(t *testing.T) {
	srv := serveMetrics(t, `cometbft_consensus_height{chain_id="a"} 90
cometbft_consensus_height{chain_id="b"} 100
cometbft_p2p_peers{direction="in"} 3
cometbft_p2p_peers{direction="out"} 4
cometbft_blocksync_syncing{chain_id="a"} 0
`)
	w := watchOf(t, &agentv1.MetricsSpec{Url: srv.URL, BlockHeight: "cometbft_consensus_height", Peers: "cometbft_p2p_peers", Syncing: "cometbft_blocksync_syncing"})
	want := &agentv1.SyncStatus{CurrentHeight: 100, Peers: 7}
	if got := scrapeNow(w).sync; !proto.Equal(got, want) {
		t.Fatalf("sync = %v, want %v: the highest height, the peers summed", got, want)
	}
}

func TestSyncingComesFromItsMetricElseFromTheHighestBlock(t *testing.T) {
	tests := []struct {
		name, text    string
		syncingMetric string
		want          bool
	}{
		{"syncing metric 1", "h 5\nhi 5\ns 1\n", "s", true},
		{"syncing metric 0 though behind", "h 5\nhi 9\ns 0\n", "s", false},
		{"no syncing metric, behind", "h 5\nhi 9\n", "", true},
		{"no syncing metric, at the head", "h 9\nhi 9\n", "", false},
		{"no highest block either", "h 9\n", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serveMetrics(t, tt.text)
			w := watchOf(t, &agentv1.MetricsSpec{Url: srv.URL, BlockHeight: "h", HighestBlock: "hi", Syncing: tt.syncingMetric})
			if got := scrapeNow(w).sync.GetSyncing(); got != tt.want {
				t.Fatalf("syncing = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSnapshotIsBoundedAndKeepsTheNamedMetricsFirst(t *testing.T) {
	var b strings.Builder
	for i := range 500 {
		fmt.Fprintf(&b, "aaa_filler_%03d %d\n", i, i)
	}
	b.WriteString("zzz_height 42\nzzz_peers 3\n")
	b.WriteString("aaa_long{l=\"" + strings.Repeat("x", maxSeriesKey) + "\"} 1\n")
	srv := serveMetrics(t, b.String())
	r := scrapeNow(watchOf(t, &agentv1.MetricsSpec{Url: srv.URL, BlockHeight: "zzz_height", Peers: "zzz_peers"}))
	got := r.metrics.GetValues()
	if len(got) != maxSnapshotMetrics || got["zzz_height"] != 42 || got["zzz_peers"] != 3 {
		t.Fatalf("snapshot of %d: height %v, peers %v; want %d with the named ones", len(got), got["zzz_height"], got["zzz_peers"], maxSnapshotMetrics)
	}
	if _, ok := got["aaa_filler_000"]; !ok {
		t.Error("the others are not kept in name order")
	}
	for k := range got {
		if len(k) > maxSeriesKey {
			t.Errorf("kept a %d-byte series name", len(k))
		}
	}
}

func TestTheFirstComponentGivesTheSyncStatusAndLaterOnesAreQualified(t *testing.T) {
	geth := serveMetrics(t, gethMetrics)
	beacon := serveMetrics(t, "beacon_head_state_slot 5000\nlibp2p_peers 60\np2p_peers 61\n")
	r := scrapeNow(watchOf(t, spec(gethSpec, geth.URL),
		&agentv1.MetricsSpec{Url: beacon.URL, BlockHeight: "beacon_head_state_slot", Peers: "libp2p_peers"}))
	if r.sync.GetCurrentHeight() != 1200 || r.sync.GetPeers() != 25 {
		t.Errorf("sync = %v, want geth's", r.sync)
	}
	got := r.metrics.GetValues()
	if got["p2p_peers"] != 25 || got["c1/p2p_peers"] != 61 || got["c1/beacon_head_state_slot"] != 5000 {
		t.Errorf("snapshot = %v", got)
	}
}

func TestUnreachableMetricsDegradeARunningChain(t *testing.T) {
	srv := serveMetrics(t, gethMetrics)
	srv.Close()
	r := scrapeNow(watchOf(t, spec(gethSpec, srv.URL)))
	if r.sync != nil || r.metrics != nil {
		t.Errorf("report %v %v without a scrape", r.sync, r.metrics)
	}
	h, msg := r.verdict(running)
	if h != agentv1.AppHealth_APP_HEALTH_DEGRADED || !strings.Contains(msg, "metrics of c0 unreachable") || strings.Contains(msg, srv.URL) {
		t.Fatalf("verdict %s %q, want degraded naming the component (and not repeating the URL)", h, msg)
	}
	// The runtime's own verdict comes first.
	crashed := RuntimeStatus{Configured: true, Message: "exited with status 1"}
	if h, msg := r.verdict(crashed); h != agentv1.AppHealth_APP_HEALTH_CRITICAL || msg != crashed.Message {
		t.Errorf("crashed chain: verdict %s %q", h, msg)
	}
	if h, _ := r.verdict(RuntimeStatus{}); h != agentv1.AppHealth_APP_HEALTH_UNKNOWN {
		t.Errorf("unconfigured chain: verdict %s", h)
	}
}

func TestScrapeProblems(t *testing.T) {
	redirect := httptest.NewServer(http.RedirectHandler("http://example.com/metrics", http.StatusFound))
	t.Cleanup(redirect.Close)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusInternalServerError) }))
	t.Cleanup(failing.Close)
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("a_metric 1\n", maxScrapeBytes/10+1)))
	}))
	t.Cleanup(huge.Close)
	ok := serveMetrics(t, gethMetrics)
	tests := []struct {
		name string
		spec *agentv1.MetricsSpec
		want string
	}{
		{"a remote host", spec(gethSpec, "http://10.1.2.3:6060/metrics"), "not http(s) on a loopback address"},
		{"a host name", spec(gethSpec, "http://example.com/metrics"), "not http(s) on a loopback address"},
		{"another scheme", spec(gethSpec, "file:///etc/passwd"), "not http(s) on a loopback address"},
		{"credentials", spec(gethSpec, strings.Replace(ok.URL, "http://", "http://u:p@", 1)), "not http(s) on a loopback address"},
		{"a redirect", spec(gethSpec, redirect.URL), "HTTP 302"},
		{"a server error", spec(gethSpec, failing.URL), "HTTP 500"},
		{"too much", spec(gethSpec, huge.URL), "more than"},
		{"no block height", &agentv1.MetricsSpec{Url: ok.URL, BlockHeight: "eth_block_number"}, "c0: metric eth_block_number not reported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := scrapeNow(watchOf(t, tt.spec))
			if h, msg := r.verdict(running); h != agentv1.AppHealth_APP_HEALTH_DEGRADED || !strings.Contains(msg, tt.want) {
				t.Fatalf("verdict %s %q, want degraded with %q", h, msg, tt.want)
			}
		})
	}
}

func TestASlowEndpointIsAbandonedAfterTheTimeout(t *testing.T) {
	hung := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(hung.Close)
	w := watchOf(t, spec(gethSpec, hung.URL))
	w.timeout = 100 * time.Millisecond
	// The server never answers: the scrape ends only by giving up.
	done := make(chan chainReport, 1)
	go func() { done <- scrapeNow(w) }()
	var r chainReport
	select {
	case r = <-done:
	case <-time.After(testenv.Patience):
		t.Fatalf("the scrape still waits for the hung endpoint after %s, with a timeout of %s", testenv.Patience, w.timeout)
	}
	if !strings.Contains(r.problem, "unreachable") {
		t.Errorf("problem %q", r.problem)
	}
}

func TestAHeightThatStopsMovingIsAStall(t *testing.T) {
	srv := serveMetrics(t, "h 10\ns 0\n")
	w := watchOf(t, &agentv1.MetricsSpec{Url: srv.URL, BlockHeight: "h", Syncing: "s"}) // stalls after 3 samples
	for i := range 3 {
		if r := scrapeNow(w); r.problem != "" {
			t.Fatalf("sample %d: %q before the height stood still for 3 samples", i+1, r.problem)
		}
	}
	r := scrapeNow(w)
	if h, msg := r.verdict(running); h != agentv1.AppHealth_APP_HEALTH_DEGRADED || msg != "c0 stalled: height 10 unchanged over the last 3 samples" {
		t.Fatalf("verdict %s %q, want a stall", h, msg)
	}
	srv.set("h 11\ns 0\n")
	if r := scrapeNow(w); r.problem != "" {
		t.Fatalf("a moving height still reported: %q", r.problem)
	}
	srv.set("h 11\ns 1\n")
	for range 5 {
		if r := scrapeNow(w); r.problem != "" {
			t.Fatalf("a syncing node is not stalled: %q", r.problem)
		}
	}
}

func TestNothingIsScrapedUnlessTheChainShouldRun(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1); fmt.Fprint(w, gethMetrics) }))
	t.Cleanup(srv.Close)
	p := &agentv1.ConfigurePayload{Components: []*agentv1.Component{{Name: "geth", Metrics: spec(gethSpec, srv.URL)}, {Name: "plain"}}}
	shouldRun := true
	w := newChainWatch(t.TempDir(), time.Hour, 3, func() (*agentv1.ConfigurePayload, bool, error) { return p, shouldRun, nil })
	if r := scrapeNow(w); r.sync.GetCurrentHeight() != 1200 {
		t.Fatalf("running chain: sync %v", r.sync)
	}
	shouldRun = false
	if r := scrapeNow(w); r.sync != nil || r.metrics != nil || r.problem != "" || hits.Load() != 1 {
		t.Fatalf("stopped chain: report %+v after %d scrapes", r, hits.Load())
	}
}

func TestTheAddressFileGivesHostAndPort(t *testing.T) {
	srv := serveMetrics(t, gethMetrics)
	w := watchOf(t, &agentv1.MetricsSpec{Url: "http://127.0.0.1/debug/metrics/prometheus", AddrFile: "geth/addr", BlockHeight: "chain_head_block"})
	if r := scrapeNow(w); !strings.Contains(r.problem, `address file "geth/addr"`) {
		t.Fatalf("before the file exists: problem %q", r.problem)
	}
	writeFile(t, filepath.Join(w.dir, "geth/addr"), strings.TrimPrefix(srv.URL, "http://")+"\n")
	if r := scrapeNow(w); r.sync.GetCurrentHeight() != 1200 || r.problem != "" {
		t.Fatalf("sync %v, problem %q", r.sync, r.problem)
	}
}

func TestTheAddressFileStaysOnTheHostAndInTheChainDir(t *testing.T) {
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "addr"), "127.0.0.1:6060")
	tests := []struct {
		name, file, content string
	}{
		{"a remote address", "addr", "10.0.0.1:6060"},
		{"no port", "addr", "127.0.0.1"},
		{"a port out of range", "addr", "127.0.0.1:65536"},
		{"garbage", "addr", "\x00\xff"},
		{"a path leaving the dir", "../addr", ""},
		{"an absolute path", filepath.Join(outside, "addr"), ""},
		{"a symlink leaving the dir", "link", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := watchOf(t, &agentv1.MetricsSpec{Url: "http://127.0.0.1/metrics", AddrFile: tt.file, BlockHeight: "h"})
			if tt.content != "" {
				writeFile(t, filepath.Join(w.dir, tt.file), tt.content)
			}
			if err := os.Symlink(filepath.Join(outside, "addr"), filepath.Join(w.dir, "link")); err != nil {
				t.Fatal(err)
			}
			if r := scrapeNow(w); !strings.Contains(r.problem, "address file") {
				t.Fatalf("problem %q, want the address file refused", r.problem)
			}
		})
	}
}

func TestTheSavedConfigurationKeepsTheMetricsSpec(t *testing.T) {
	path := filepath.Join(t.TempDir(), runtimeStateFile)
	s, err := loadRuntimeState(path)
	if err != nil {
		t.Fatal(err)
	}
	want := &agentv1.MetricsSpec{Url: "http://127.0.0.1/metrics", AddrFile: "sim/addr", BlockHeight: "h", HighestBlock: "hi", Peers: "p", Syncing: "s"}
	if err := s.configured(&agentv1.ConfigurePayload{Components: []*agentv1.Component{{Name: "sim", Args: []string{"sim"}, Metrics: want}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.started(nil); err != nil {
		t.Fatal(err)
	}
	again, err := loadRuntimeState(path)
	if err != nil {
		t.Fatal(err)
	}
	p, running, err := again.configuration()
	if err != nil || !running || !proto.Equal(p.GetComponents()[0].GetMetrics(), want) {
		t.Fatalf("after a restart: metrics %v, running %v, %v; want %v", p.GetComponents()[0].GetMetrics(), running, err, want)
	}
	if err := again.upgraded(&agentv1.UpgradePayload{Component: "sim", Version: "v2", Args: []string{"sim", "v2"}}); err != nil {
		t.Fatal(err)
	}
	if p, _, _ := again.configuration(); !proto.Equal(p.GetComponents()[0].GetMetrics(), want) {
		t.Fatalf("after an upgrade: metrics %v", p.GetComponents()[0].GetMetrics())
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTheChainHeightForAnUpgradeIsReadOnDemand(t *testing.T) {
	srv := serveMetrics(t, gethMetrics)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	metered := &agentv1.Component{Name: "geth", Metrics: spec(gethSpec, srv.URL)}
	for _, tt := range []struct {
		name      string
		comps     []*agentv1.Component
		running   bool
		want      uint64
		permanent string // the error when there is no height to read
		transient string // the error of a reading that may pass
	}{
		{"the first component with metrics", []*agentv1.Component{{Name: "plain"}, metered}, true, 1200, "", ""},
		{"no component has metrics", []*agentv1.Component{{Name: "plain"}}, true, 0, "no component has metrics", ""},
		{"the chain is not running", []*agentv1.Component{metered}, false, 0, "not running", ""},
		{"the endpoint is down", []*agentv1.Component{{Name: "geth", Metrics: spec(gethSpec, down.URL)}}, true, 0, "", "metrics of geth unreachable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &agentv1.ConfigurePayload{Components: tt.comps}
			w := newChainWatch(t.TempDir(), time.Hour, 3, func() (*agentv1.ConfigurePayload, bool, error) { return p, tt.running, nil })
			t.Cleanup(w.client.CloseIdleConnections)
			h, err := w.height(t.Context())
			switch {
			case tt.permanent != "":
				wantPermanent(t, "height", err, tt.permanent)
			case tt.transient != "":
				if err == nil || isPermanent(err) || !strings.Contains(err.Error(), tt.transient) {
					t.Errorf("height = %d, %v; want a passing error about %q", h, err, tt.transient)
				}
			case err != nil || h != tt.want:
				t.Errorf("height = %d, %v; want %d", h, err, tt.want)
			}
		})
	}
}
