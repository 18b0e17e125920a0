package agent

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// maxSeriesKey bounds a flattened series name ("name{label=…}") kept in a
// snapshot; longer ones (long label values) are left out.
const maxSeriesKey = 256

// exposition is one scrape of a Prometheus text endpoint: the gauges,
// counters and untyped samples by metric name. Histograms and summaries
// are left out: the heartbeat reports single values.
type exposition map[string][]sample

// sample is one series of a metric.
type sample struct {
	key   string // the metric name with its labels, e.g. `up{job="a"}`
	value float64
}

// parseExposition reads the Prometheus text format strictly (classic
// metric names only). Non-finite values are dropped: the gateway stores
// statuses as JSON, which has no NaN.
func parseExposition(b []byte) (e exposition, err error) {
	defer func() {
		// A parser bug must not take down the agent, which supervises the chain.
		if r := recover(); r != nil {
			e, err = nil, fmt.Errorf("metrics parser failed: %v", r)
		}
	}()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	e = exposition{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			if v, ok := valueOf(f.GetType(), m); ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
				e[name] = append(e[name], sample{key: seriesKey(name, m.GetLabel()), value: v})
			}
		}
	}
	return e, nil
}

func valueOf(typ dto.MetricType, m *dto.Metric) (float64, bool) {
	switch typ {
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue(), m.GetGauge() != nil
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue(), m.GetCounter() != nil
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue(), m.GetUntyped() != nil
	}
	return 0, false
}

// seriesKey flattens a series the way Prometheus prints it, labels sorted.
func seriesKey(name string, labels []*dto.LabelPair) string {
	if len(labels) == 0 {
		return name
	}
	pairs := make([]string, len(labels))
	for i, l := range labels {
		pairs[i] = l.GetName() + "=" + strconv.Quote(l.GetValue())
	}
	sort.Strings(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}

var errNoMetric = errors.New("not reported")

// max is the largest value of name's series: a height with several label
// sets is the highest one.
func (e exposition) max(name string) (float64, error) {
	s := e[name]
	if len(s) == 0 {
		return 0, errNoMetric
	}
	m := s[0].value
	for _, x := range s[1:] {
		m = math.Max(m, x.value)
	}
	return m, nil
}

// sum adds up name's series: peers split by direction or client count
// together.
func (e exposition) sum(name string) (float64, error) {
	s := e[name]
	if len(s) == 0 {
		return 0, errNoMetric
	}
	var total float64
	for _, x := range s {
		total += x.value
	}
	return total, nil
}

// counted converts a metric value to a count, clamping what is negative
// or beyond the type to its range.
func counted[T uint32 | uint64](v float64) T {
	limit := float64(^T(0))
	switch {
	case v <= 0:
		return 0
	case v >= limit:
		return ^T(0)
	}
	return T(v)
}
