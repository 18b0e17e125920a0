package profile

import (
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// metricNamePattern is a Prometheus metric name in the classic alphabet,
// bounded so a name fits the agent's heartbeat limits.
var metricNamePattern = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$`)

// buildMetrics validates a component's metrics section; nil stays nil.
func buildMetrics(ps *problems, field string, rm *rawMetrics) *MetricsSpec {
	if rm == nil {
		return nil
	}
	// A templated URL is checked once rendered (checkTemplates).
	if err := checkMetricsURL(rm.URL); err != "" && !strings.Contains(rm.URL, "{{") {
		ps.add(field+".url", "%s", err)
	}
	names := []struct {
		key, value string
		required   bool
	}{
		{"block_height", rm.BlockHeight, true},
		{"highest_block", rm.HighestBlock, false},
		{"peers", rm.Peers, true},
		{"syncing", rm.Syncing, false},
	}
	for _, n := range names {
		switch {
		case n.value == "" && n.required:
			ps.add(field+"."+n.key, "must name the metric")
		case n.value != "" && !metricNamePattern.MatchString(n.value):
			ps.add(field+"."+n.key, "%q is not a Prometheus metric name", n.value)
		}
	}
	spec := MetricsSpec(*rm)
	return &spec
}

// checkMetricsURL says what is wrong with u as the address of a chain's
// metrics, or "" when nothing is: it must be http(s) to a loopback address
// (the agent reads the metrics of its own host, never another machine's),
// without credentials or a fragment.
func checkMetricsURL(u string) string {
	parsed, err := url.Parse(u)
	switch {
	case u == "":
		return "must be the http(s) URL of the Prometheus endpoint on the host"
	case err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" || parsed.Opaque != "":
		return "must be an http(s) URL"
	case parsed.User != nil:
		return "must not carry credentials"
	case parsed.Fragment != "" || strings.Contains(u, "#"):
		return "must not have a fragment"
	case !isLoopbackHost(parsed.Hostname()):
		return "must name a loopback address (127.0.0.1, [::1] or localhost): the agent reads its own host only"
	}
	if p := parsed.Port(); p != "" && !validPort(p) {
		return "has a bad port"
	}
	return ""
}

// isLoopbackHost reports whether host (without port) is "localhost" or a
// loopback IP address.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n <= 65535
}
