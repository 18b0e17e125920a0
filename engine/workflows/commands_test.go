package workflows

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hoodcloud/hoodcloud/agent/simnode"
	"github.com/hoodcloud/hoodcloud/engine/profile"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/protobuf/proto"
)

// metricsProfileYAML has one component with metrics and one without.
const metricsProfileYAML = `id: metered
name: Metered
version: "1"
family: ethereum
components:
  - name: geth
    version: "1.15.11"
    url: https://example.com/geth.tar.gz
    sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    metrics:
      url: http://127.0.0.1:6060/debug/metrics/prometheus
      block_height: chain_head_block
      highest_block: chain_head_header
      peers: p2p_peers
  - name: helper
    version: "2"
    url: https://example.com/helper
    sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
node_types:
  - name: full
    durations:
      1m: {provider: local, region: here, instance_type: small}
`

// wireConfigure is what the agent decodes from configureOf's payload.
func wireConfigure(t *testing.T, sim *Simulation) *agentv1.ConfigurePayload {
	t.Helper()
	p, err := profile.Parse("test/metered.yaml", []byte(metricsProfileYAML))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(configureOf(p, "full", nil, sim, nil))
	if err != nil {
		t.Fatal(err)
	}
	var got agentv1.ConfigurePayload
	if err := agentv1.UnmarshalPayload(b, &got); err != nil {
		t.Fatalf("the agent cannot read %s: %v", b, err)
	}
	return &got
}

func TestConfigureCarriesTheProfilesMetrics(t *testing.T) {
	got := wireConfigure(t, nil)
	want := &agentv1.MetricsSpec{Url: "http://127.0.0.1:6060/debug/metrics/prometheus",
		BlockHeight: "chain_head_block", HighestBlock: "chain_head_header", Peers: "p2p_peers"}
	if m := got.GetComponents()[0].GetMetrics(); !proto.Equal(m, want) {
		t.Errorf("geth metrics = %v, want %v", m, want)
	}
	if m := got.GetComponents()[1].GetMetrics(); m != nil {
		t.Errorf("a component without metrics got %v", m)
	}
}

func TestSimulatedComponentsPointTheAgentAtTheSimulatedNode(t *testing.T) {
	got := wireConfigure(t, &Simulation{Binary: "/bin/hoodcloud"})
	for _, c := range got.GetComponents() {
		m := c.GetMetrics()
		want := &agentv1.MetricsSpec{Url: "http://127.0.0.1" + simnode.MetricsPath, AddrFile: c.GetName() + "/" + simnode.AddrFile,
			BlockHeight: simnode.MetricBlockHeight, HighestBlock: simnode.MetricHighestBlock, Peers: simnode.MetricPeers, Syncing: simnode.MetricSyncing}
		if !proto.Equal(m, want) {
			t.Errorf("%s metrics = %v, want %v", c.GetName(), m, want)
		}
		if dataDir := argAfter(c.GetArgs(), "--data-dir"); dataDir != c.GetName() {
			t.Errorf("%s runs simnode in %q, its address file is looked for in %q", c.GetName(), dataDir, c.GetName())
		}
	}
}

func argAfter(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}
