package profile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
)

// metricsBlock is a valid metrics section for testdata/valid.yaml's geth.
const metricsBlock = `    metrics:
      url: http://127.0.0.1:6060/debug/metrics/prometheus
      block_height: chain_head_block
      highest_block: chain_head_header
      peers: p2p_peers
      syncing: eth_syncing
`

// withMetrics is testdata/valid.yaml with metricsBlock under geth.
func withMetrics(t testing.TB) string {
	t.Helper()
	digest := "    sha256: \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n"
	return edit(t, validYAML(t), digest, digest+metricsBlock)
}

func TestComponentMetricsAreOptional(t *testing.T) {
	if m := mustParse(t, validYAML(t)).Components[0].Metrics; m != nil {
		t.Fatalf("metrics = %+v, want none", m)
	}
}

func TestComponentMetricsAreRead(t *testing.T) {
	got := mustParse(t, withMetrics(t)).Components[0].Metrics
	want := profile.MetricsSpec{URL: "http://127.0.0.1:6060/debug/metrics/prometheus", BlockHeight: "chain_head_block",
		HighestBlock: "chain_head_header", Peers: "p2p_peers", Syncing: "eth_syncing"}
	if got == nil || *got != want {
		t.Fatalf("metrics = %+v, want %+v", got, want)
	}
}

func TestComponentMetricsAcceptLoopbackHosts(t *testing.T) {
	for _, u := range []string{"http://localhost:6060/metrics", "https://127.0.0.2:443/m", "http://[::1]:9100/metrics", "http://127.0.0.1/metrics?x=1"} {
		mustParse(t, edit(t, withMetrics(t), "http://127.0.0.1:6060/debug/metrics/prometheus", u))
	}
}

func TestComponentMetricsRejects(t *testing.T) {
	const url = "http://127.0.0.1:6060/debug/metrics/prometheus"
	tests := []struct {
		name, old, new string
		want           string // substring of the error
	}{
		{"unknown field", "      peers: p2p_peers\n", "      peers: p2p_peers\n      labels: {a: b}\n", `unknown field "labels"`},
		{"no url", "      url: " + url + "\n", "", "components[0].metrics.url: must be the http(s) URL"},
		{"another scheme", url, "file:///var/run/metrics", "components[0].metrics.url: must be an http(s) URL"},
		{"no host", url, "http:///metrics", "components[0].metrics.url: must be an http(s) URL"},
		{"a remote host", url, "http://10.0.0.5:6060/metrics", "components[0].metrics.url: must name a loopback address"},
		{"a host name", url, "http://metrics.example.com/metrics", "components[0].metrics.url: must name a loopback address"},
		{"any address", url, "http://0.0.0.0:6060/metrics", "must name a loopback address"},
		{"a name posing as loopback", url, "http://127.0.0.1.nip.io/metrics", "must name a loopback address"},
		{"credentials", url, "http://user:pw@127.0.0.1:6060/metrics", "components[0].metrics.url: must not carry credentials"},
		{"a fragment", url, "http://127.0.0.1:6060/metrics#x", "components[0].metrics.url: must not have a fragment"},
		{"port out of range", url, "http://127.0.0.1:70000/metrics", "components[0].metrics.url: has a bad port"},
		{"port zero", url, "http://127.0.0.1:0/metrics", "components[0].metrics.url: has a bad port"},
		{"no block height", "      block_height: chain_head_block\n", "", "components[0].metrics.block_height: must name the metric"},
		{"no peers", "      peers: p2p_peers\n", "", "components[0].metrics.peers: must name the metric"},
		{"a dotted name", "block_height: chain_head_block", "block_height: chain.head.block", `components[0].metrics.block_height: "chain.head.block" is not a Prometheus metric name`},
		{"a name with a selector", "peers: p2p_peers", `peers: 'p2p_peers{dir="in"}'`, "components[0].metrics.peers: "},
		{"a name starting with a digit", "highest_block: chain_head_header", "highest_block: 1chain", "components[0].metrics.highest_block: "},
		{"a name too long", "syncing: eth_syncing", "syncing: " + strings.Repeat("s", 201), "components[0].metrics.syncing: "},
		{"metrics of the wrong kind", metricsBlock, "    metrics: [http://127.0.0.1/metrics]\n", "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := profile.Parse("chains/test.yaml", []byte(edit(t, withMetrics(t), tt.old, tt.new)))
			if !engine.IsCode(err, engine.EInvalid) || !strings.Contains(engine.ErrorMessage(err), tt.want) {
				t.Fatalf("err = %v, want EInvalid containing %q", err, tt.want)
			}
		})
	}
}

func TestEmbeddedProfilesDescribeTheirMetrics(t *testing.T) {
	want := map[string]map[string]string{ // chain → component → block height metric
		"ethereum-holesky": {"geth": "chain_head_block", "lighthouse": "beacon_head_state_slot"},
		"cosmos-demo":      {"gaiad": "cometbft_consensus_height"},
	}
	for chain, components := range want {
		p := mustParseAsset(t, chain)
		for _, c := range p.Components {
			got := ""
			if c.Metrics != nil {
				got = c.Metrics.BlockHeight
			}
			if got != components[c.Name] {
				t.Errorf("%s/%s: block height metric %q, want %q", chain, c.Name, got, components[c.Name])
			}
		}
	}
}

// mustParseAsset parses the embedded profile of chain as shipped.
func mustParseAsset(t *testing.T, chain string) *profile.ChainProfile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "assets", "chains", chain+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return mustParse(t, string(data))
}
