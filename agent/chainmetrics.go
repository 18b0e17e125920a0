package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Chain metrics: how the agent reads the chain's own Prometheus metrics.
const (
	// DefaultChainMetricsInterval is how often the chain's metrics are
	// scraped.
	DefaultChainMetricsInterval = 15 * time.Second
	// DefaultChainStallSamples is how many samples in a row may show the
	// same height, while the node is not syncing, before it counts as
	// stalled: 2 minutes at the default interval, several block times of
	// any chain the appliance runs.
	DefaultChainStallSamples = 8

	scrapeTimeout      = 2 * time.Second
	quickScrapeRetry   = time.Second
	maxScrapeBytes     = 8 << 20
	maxAddrFileBytes   = 256
	maxSnapshotMetrics = 64
)

// chainWatch scrapes the metrics of the configured components on its own
// ticker and keeps the latest report, so a slow or hung endpoint never
// delays a heartbeat. What to scrape comes from the saved configuration,
// so an agent that restarts keeps watching without a new CONFIGURE.
type chainWatch struct {
	dir        string // the chain data dir, where address files are read
	interval   time.Duration
	stallAfter int
	// configured returns the applied configuration and whether the chain
	// should run; nil when there is none.
	configured func() (*agentv1.ConfigurePayload, bool, error)
	client     *http.Client
	timeout    time.Duration // of one scrape
	now        func() time.Time

	mu      sync.Mutex
	report  chainReport
	heights map[string]heightTrack // by component
}

// chainReport is what a heartbeat says about the chain beyond whether its
// processes run.
type chainReport struct {
	sync    *agentv1.SyncStatus      // from the first component with metrics; nil without
	metrics *agentv1.MetricsSnapshot // nil without a successful scrape
	problem string                   // why the chain looks unwell; "" when it looks fine
}

// heightTrack follows one component's height across samples.
type heightTrack struct {
	height uint64
	same   int // samples in a row, while not syncing, that did not move it
}

func newChainWatch(dir string, interval time.Duration, stallAfter int, configured func() (*agentv1.ConfigurePayload, bool, error)) *chainWatch {
	return &chainWatch{
		dir: dir, interval: interval, stallAfter: stallAfter, configured: configured, timeout: scrapeTimeout, now: time.Now,
		heights: map[string]heightTrack{},
		client: &http.Client{
			// Loopback only: no proxy, and a redirect elsewhere is not followed.
			Transport:     &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// watch scrapes every interval until ctx ends. Until a scrape gives the
// chain's height (the chain is not started yet, or its endpoint not up)
// it looks again every second, so a chain that just started is reported
// within seconds rather than an interval later.
func (w *chainWatch) watch(ctx context.Context) {
	defer w.client.CloseIdleConnections()
	for {
		w.scrapeOnce(ctx)
		wait := w.interval
		if w.latest().sync == nil {
			wait = min(wait, quickScrapeRetry)
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

// latest is the report of the last scrape.
func (w *chainWatch) latest() chainReport {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.report
}

// scrapeOnce scrapes each component that has metrics, while the chain is
// meant to run, and replaces the report.
func (w *chainWatch) scrapeOnce(ctx context.Context) {
	metered := w.meteredComponents()
	if len(metered) == 0 {
		w.mu.Lock()
		w.report, w.heights = chainReport{}, map[string]heightTrack{}
		w.mu.Unlock()
		return
	}
	results := make([]scrapeResult, len(metered))
	for i, c := range metered {
		e, err := w.scrape(ctx, c.GetMetrics())
		results[i] = scrapeResult{component: c, exposition: e, err: err}
	}
	if ctx.Err() != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.report = w.judge(results, w.now())
}

// meteredComponents are the components with metrics, in order, while the
// chain is meant to run.
func (w *chainWatch) meteredComponents() []*agentv1.Component {
	p, running, err := w.configured()
	if err != nil || !running {
		return nil
	}
	return metered(p)
}

func metered(p *agentv1.ConfigurePayload) []*agentv1.Component {
	var out []*agentv1.Component
	for _, c := range p.GetComponents() {
		if c.GetMetrics().GetUrl() != "" {
			out = append(out, c)
		}
	}
	return out
}

// height scrapes the chain's block height now, from the component whose
// height heartbeats report (the first with metrics): an upgrade waiting
// for a height cannot wait for the next scheduled scrape. It is a
// ChainHeight; its error is permanent when the chain has no height to read.
func (w *chainWatch) height(ctx context.Context) (uint64, error) {
	p, running, err := w.configured()
	if err != nil {
		return 0, err
	}
	comps := metered(p)
	switch {
	case len(comps) == 0:
		return 0, permanent("the chain reports no block height: no component has metrics")
	case !running:
		return 0, permanent("the chain is not running")
	}
	c := comps[0]
	e, err := w.scrape(ctx, c.GetMetrics())
	if err != nil {
		return 0, fmt.Errorf("metrics of %s unreachable: %w", c.GetName(), err)
	}
	st, err := syncStatusOf(e, c.GetMetrics())
	if err != nil {
		return 0, fmt.Errorf("%s: %w", c.GetName(), err)
	}
	return st.GetCurrentHeight(), nil
}

type scrapeResult struct {
	component  *agentv1.Component
	exposition exposition
	err        error
}

// judge turns one round of scrapes into a report and moves the height
// tracks on. Callers hold mu.
func (w *chainWatch) judge(results []scrapeResult, at time.Time) chainReport {
	var r chainReport
	var problems []string
	for i, res := range results {
		name, spec := res.component.GetName(), res.component.GetMetrics()
		if res.err != nil {
			problems = append(problems, fmt.Sprintf("metrics of %s unreachable: %v", name, res.err))
			continue
		}
		st, err := syncStatusOf(res.exposition, spec)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		if i == 0 {
			r.sync = st
		}
		if p := w.track(name, st); p != "" {
			problems = append(problems, p)
		}
	}
	r.metrics = snapshotOf(results, at)
	r.problem = agentv1.StatusText(strings.Join(problems, "; "))
	return r
}

// track moves a component's height track on by st and says whether the
// height has stalled.
func (w *chainWatch) track(component string, st *agentv1.SyncStatus) string {
	prev, seen := w.heights[component]
	next := heightTrack{height: st.GetCurrentHeight()}
	if seen && !st.GetSyncing() && next.height == prev.height {
		next.same = prev.same + 1
	}
	w.heights[component] = next
	if next.same >= w.stallAfter {
		return fmt.Sprintf("%s stalled: height %d unchanged over the last %d samples", component, next.height, next.same)
	}
	return ""
}

// syncStatusOf reads the named metrics of one scrape. The block height is
// required; a node without a syncing metric counts as syncing while the
// highest block it knows is above its height.
func syncStatusOf(e exposition, spec *agentv1.MetricsSpec) (*agentv1.SyncStatus, error) {
	height, err := e.max(spec.GetBlockHeight())
	if err != nil {
		return nil, fmt.Errorf("metric %s %w", spec.GetBlockHeight(), err)
	}
	st := &agentv1.SyncStatus{CurrentHeight: counted[uint64](height)}
	if v, err := e.max(spec.GetHighestBlock()); spec.GetHighestBlock() != "" && err == nil {
		st.HighestHeight = counted[uint64](v)
	}
	if v, err := e.sum(spec.GetPeers()); spec.GetPeers() != "" && err == nil {
		st.Peers = counted[uint32](v)
	}
	if v, err := e.max(spec.GetSyncing()); spec.GetSyncing() != "" && err == nil {
		st.Syncing = v > 0
	} else if spec.GetSyncing() == "" {
		st.Syncing = st.GetHighestHeight() > st.GetCurrentHeight()
	}
	return st, nil
}

// snapshotOf keeps the named metrics of every component, then others in
// name order, up to maxSnapshotMetrics. The first component's series keep
// their names; later components' are prefixed "component/" so that two
// clients exporting the same name do not collide.
func snapshotOf(results []scrapeResult, at time.Time) *agentv1.MetricsSnapshot {
	values := map[string]float64{}
	add := func(key string, v float64) {
		if len(values) < maxSnapshotMetrics && len(key) <= maxSeriesKey {
			values[key] = v
		}
	}
	for _, named := range []bool{true, false} {
		for i, res := range results {
			if res.err != nil {
				continue
			}
			prefix := ""
			if i > 0 {
				prefix = res.component.GetName() + "/"
			}
			for _, s := range res.exposition.series(res.component.GetMetrics(), named) {
				add(prefix+s.key, s.value)
			}
		}
	}
	if len(values) == 0 {
		return nil
	}
	return &agentv1.MetricsSnapshot{Values: values, CollectedAt: timestamppb.New(at)}
}

// series are the samples of the metrics spec names (named) or of the
// others, each in key order.
func (e exposition) series(spec *agentv1.MetricsSpec, named bool) []sample {
	names := []string{spec.GetBlockHeight(), spec.GetHighestBlock(), spec.GetPeers(), spec.GetSyncing()}
	var out []sample
	for name, s := range e {
		if slices.Contains(names, name) == named {
			out = append(out, s...)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// scrape reads one component's metrics within the timeout.
func (w *chainWatch) scrape(ctx context.Context, spec *agentv1.MetricsSpec) (exposition, error) {
	target, err := w.target(spec)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, cause(err) // without the URL the url.Error repeats
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxScrapeBytes+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("read metrics: %w", err)
	case len(body) > maxScrapeBytes:
		return nil, fmt.Errorf("more than %d bytes of metrics", maxScrapeBytes)
	}
	return parseExposition(body)
}

// target is the URL to scrape: the spec's, with the host from its address
// file when it names one. Both must stay on the host's loopback.
func (w *chainWatch) target(spec *agentv1.MetricsSpec) (string, error) {
	u, err := url.Parse(spec.GetUrl())
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || !loopbackHost(u.Hostname()) {
		return "", errors.New("the metrics url is not http(s) on a loopback address")
	}
	if spec.GetAddrFile() != "" {
		if u.Host, err = w.readAddr(spec.GetAddrFile()); err != nil {
			return "", err
		}
	}
	return u.String(), nil
}

// readAddr reads "host:port" from a file inside the chain data dir.
func (w *chainWatch) readAddr(name string) (string, error) {
	if !filepath.IsLocal(name) || strings.ContainsAny(name, "\\\x00") {
		return "", fmt.Errorf("address file %q is not a path inside the chain data dir", name)
	}
	root, err := os.OpenRoot(w.dir)
	if err != nil {
		return "", fmt.Errorf("address file: %w", err)
	}
	defer root.Close()
	f, err := root.Open(name)
	if err != nil {
		return "", fmt.Errorf("address file %q: %w", name, cause(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxAddrFileBytes))
	if err != nil {
		return "", fmt.Errorf("address file %q: %w", name, err)
	}
	addr := strings.TrimSpace(string(b))
	host, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n <= 0 || n > 65535 || !loopbackHost(host) {
		return "", fmt.Errorf("address file %q does not hold a loopback host:port", name)
	}
	return addr, nil
}

// cause is err without the wrapping that names the URL or path again.
func cause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// loopbackHost reports whether host (without port) is "localhost" or a
// loopback IP address.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// verdict refines the runtime's verdict with the chain's report: a chain
// whose processes run but whose metrics are unreachable or whose height
// stalled is degraded.
func (r chainReport) verdict(st RuntimeStatus) (agentv1.AppHealth, string) {
	health := st.appHealth()
	if health == agentv1.AppHealth_APP_HEALTH_HEALTHY && r.problem != "" {
		return agentv1.AppHealth_APP_HEALTH_DEGRADED, r.problem
	}
	return health, st.Message
}
