package postgres

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the store's instruments: how long each operation takes and
// how the connection pool is used.
type metrics struct {
	queryDuration *prometheus.HistogramVec
	pool          *poolCollector
}

func newMetrics() *metrics {
	return &metrics{
		queryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hoodcloud_store_query_duration_seconds",
			Help:    "Duration of PostgreSQL store operations, by operation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"operation"}),
		pool: &poolCollector{
			acquired: prometheus.NewDesc("hoodcloud_store_pool_acquired_connections",
				"PostgreSQL connections in use.", nil, nil),
			idle: prometheus.NewDesc("hoodcloud_store_pool_idle_connections",
				"PostgreSQL connections idle in the pool.", nil, nil),
			total: prometheus.NewDesc("hoodcloud_store_pool_total_connections",
				"PostgreSQL connections open, including those being established.", nil, nil),
			max: prometheus.NewDesc("hoodcloud_store_pool_max_connections",
				"Most PostgreSQL connections the pool may open.", nil, nil),
		},
	}
}

// register adds the instruments to reg (none when reg is nil) for pool.
func (m *metrics) register(reg prometheus.Registerer, pool *pgxpool.Pool) error {
	m.pool.pool = pool
	if reg == nil {
		return nil
	}
	if err := reg.Register(m.queryDuration); err != nil {
		return fmt.Errorf("register store metrics: %w", err)
	}
	if err := reg.Register(m.pool); err != nil {
		reg.Unregister(m.queryDuration)
		return fmt.Errorf("register store metrics: %w", err)
	}
	return nil
}

// unregister removes the instruments, so a Store reopened on the same
// registry can register its own.
func (m *metrics) unregister(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	reg.Unregister(m.pool)
	reg.Unregister(m.queryDuration)
}

// observe starts timing operation op; call the result when it ends.
func (s *Store) observe(op string) func() {
	start := time.Now()
	return func() {
		s.metrics.queryDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	}
}

// poolCollector reads pgxpool's statistics at scrape time.
type poolCollector struct {
	pool                       *pgxpool.Pool
	acquired, idle, total, max *prometheus.Desc
}

var _ prometheus.Collector = (*poolCollector)(nil)

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.acquired
	ch <- c.idle
	ch <- c.total
	ch <- c.max
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	if c.pool == nil {
		return
	}
	st := c.pool.Stat()
	ch <- prometheus.MustNewConstMetric(c.acquired, prometheus.GaugeValue, float64(st.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(st.IdleConns()))
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(st.TotalConns()))
	ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(st.MaxConns()))
}
