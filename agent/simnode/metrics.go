package simnode

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The names of the node's metrics, for whoever scrapes them.
const (
	MetricBlockHeight  = "chain_block_height"
	MetricHighestBlock = "chain_highest_block"
	MetricSyncing      = "chain_syncing"
	MetricPeers        = "chain_peers"
	MetricVersionInfo  = "chain_version_info"
)

// MetricsPath is where the node serves Prometheus text.
const MetricsPath = "/metrics"

// metrics are the gauges a chain node typically exposes, on the node's own
// registry.
type metrics struct {
	registry *prometheus.Registry
	height   prometheus.Gauge
	highest  prometheus.Gauge
	syncing  prometheus.Gauge
	peers    prometheus.Gauge
}

func newMetrics(version string) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		height:   prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricBlockHeight, Help: "Height of the node's head block."}),
		highest:  prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricHighestBlock, Help: "Highest block the node knows of on the network."}),
		syncing:  prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricSyncing, Help: "1 while the node is behind the network head."}),
		peers:    prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricPeers, Help: "Connected peers."}),
	}
	versionInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricVersionInfo, Help: "Version of the node software."}, []string{"version"})
	versionInfo.WithLabelValues(version).Set(1)
	m.registry.MustRegister(m.height, m.highest, m.syncing, m.peers, versionInfo)
	return m
}

// status is the node's state as /health reports it.
type status struct {
	Status  string `json:"status"` // always "ok": the process is up
	NodeID  string `json:"node_id"`
	Version string `json:"version"`
	Mode    Mode   `json:"mode"`
	Height  uint64 `json:"height"`
	Highest uint64 `json:"highest"`
	Syncing bool   `json:"syncing"`
	Peers   int    `json:"peers"`
}

// board holds the latest status; the loop writes, handlers read.
type board struct {
	mu      sync.Mutex
	current status
}

func (b *board) set(s status) {
	b.mu.Lock()
	b.current = s
	b.mu.Unlock()
}

func (b *board) get() status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.current
}

// publish shows s in the gauges and on the board.
func (m *metrics) publish(b *board, s status) {
	m.height.Set(float64(s.Height))
	m.highest.Set(float64(s.Highest))
	m.syncing.Set(boolGauge(s.Syncing))
	m.peers.Set(float64(s.Peers))
	b.set(s)
}

func boolGauge(v bool) float64 {
	if v {
		return 1
	}
	return 0
}

func handler(m *metrics, b *board) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+MetricsPath, promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(b.get())
	})
	return mux
}
