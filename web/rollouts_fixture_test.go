package web_test

import (
	"testing"
	"testing/fstest"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/mock"
	"github.com/hoodcloud/hoodcloud/engine/profile"
	"github.com/hoodcloud/hoodcloud/engine/rollouts"
)

// rolloutChain has two components, so that groups have an order to keep.
const rolloutChain = `id: duo-chain
name: Duo Chain
version: "1"
family: ethereum
components:
  - name: geth
    version: "1.15.11"
    url: https://example.com/geth.tar.gz
    sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
  - name: beacon
    version: "5.0.0"
    url: https://example.com/beacon.tar.gz
    sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
node_types:
  - name: full
    durations:
      1m: {provider: hetzner, region: fsn1, instance_type: cpx41}
`

// The manifests the rollout service finds, by chain and upgrade id.
var rolloutManifests = map[string]rollouts.Manifest{
	"duo-chain/geth-1.16": {Component: "geth", Hash: "5e1f2a", Spec: engine.UpgradeSpec{UpgradeID: "geth-1.16",
		Release:       engine.Release{Version: "1.16.0", URL: "https://example.com/geth-1.16.tar.gz", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
		Compatibility: engine.Breaking}},
	"duo-chain/beacon-6": {Component: "beacon", Hash: "77aa01", Spec: engine.UpgradeSpec{UpgradeID: "beacon-6",
		Release: engine.Release{Version: "6.0.0"}, Compatibility: engine.Compatible}},
}

// newRolloutService is the rollout use case over memory and fake workflows.
func newRolloutService(tb testing.TB) (*rollouts.Service, *mock.RolloutStore, *mock.RolloutWorkflows) {
	tb.Helper()
	chains, err := profile.LoadCatalog(profile.Source{Name: "test", FS: fstest.MapFS{"duo-chain.yaml": {Data: []byte(rolloutChain)}}})
	if err != nil {
		tb.Fatal(err)
	}
	st, wf := mock.NewRolloutStore(), &mock.RolloutWorkflows{}
	svc := &rollouts.Service{Store: st, Workflows: wf, Chains: chains.Get,
		Manifests: func(chainID, upgradeID string) (rollouts.Manifest, error) {
			m, ok := rolloutManifests[chainID+"/"+upgradeID]
			if !ok {
				return m, engine.Errorf(engine.ENotFound, "chain %s has no upgrade %q", chainID, upgradeID)
			}
			return m, nil
		}}
	return svc, st, wf
}
