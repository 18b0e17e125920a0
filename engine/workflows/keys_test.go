package workflows

import (
	"context"
	"strings"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
)

// signerKey returns a sealed (for the fake opener) priv_validator_key.json.
func signerKey(t *testing.T) *engine.ProvisioningInput {
	t.Helper()
	key, err := profile.GenerateKey(&profile.InputSpec{Name: "signer_key", KeyType: profile.KeyEd25519, Format: profile.FormatCometBFTPrivValidatorKey})
	if err != nil {
		t.Fatal(err)
	}
	return &engine.ProvisioningInput{Name: "signer_key", Type: engine.InputSecret, Ciphertext: append([]byte("sealed:"), key...)}
}

func TestAFullNodeIsNotAskedForTheValidatorsKey(t *testing.T) {
	f := newFixture(t)
	if _, err := f.acts.ValidateProvisionInputs(context.Background(), f.subscription(t, moniker)); err != nil {
		t.Fatalf("a full node without signer_key: %v", err)
	}
	_, err := f.acts.ValidateProvisionInputs(context.Background(), f.subscriptionOf(t, "validator", moniker))
	if !isPermanent(err) || !strings.Contains(err.Error(), "signer_key") {
		t.Fatalf("a validator without signer_key: %v, want a permanent error naming it", err)
	}
}

func TestAValidatorGetsItsKeysAndAFullNodeDoesNot(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	subID := f.subscriptionOf(t, "validator", moniker, signerKey(t))
	plan, err := f.acts.ValidateProvisionInputs(ctx, subID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(plan.UserProvidedKeys, ",") != "signer_key" {
		t.Fatalf("user-provided keys of the validator = %v, want signer_key", plan.UserProvidedKeys)
	}
	nodeID, err := f.acts.CreateNodeRecord(ctx, *plan)
	if err != nil {
		t.Fatal(err)
	}
	req := KeysRequest{NodeID: nodeID, SubscriptionID: subID, ChainProfileID: f.chain.ID}
	if err := f.acts.GenerateNodeKeys(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := f.acts.PrepareUserProvidedKeys(ctx, req); err != nil {
		t.Fatal(err)
	}
	keys := keysOf(t, f.store, nodeID)
	for _, name := range []string{"consensus_key", "signer_key"} {
		if keys[name] == nil {
			t.Errorf("the validator has no %s", name)
		}
	}
	dek, _ := f.acts.loadDEK(ctx, nodeID)
	plain, err := engine.OpenWithDataKey(dek, keys["consensus_key"].Ciphertext)
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := f.chain.Input("consensus_key")
	if err := spec.CheckKey(plain); err != nil || !strings.HasPrefix(string(plain), `{"priv_key":`) {
		t.Fatalf("the generated consensus_key is not a CometBFT node_key.json: %v", err)
	}
	full := f.node(t, f.subscription(t, moniker))
	if err := f.acts.GenerateNodeKeys(ctx, KeysRequest{NodeID: full, ChainProfileID: f.chain.ID}); err != nil {
		t.Fatal(err)
	}
	if keysOf(t, f.store, full)["consensus_key"] != nil {
		t.Error("a full node got the validator's consensus_key")
	}
}

// A key that passed the check at submission is checked again when it is
// opened: one stored by an older appliance, or whose profile changed, fails
// provisioning for good, without storing it or showing it.
func TestPrepareUserProvidedKeysRefusesAKeyThatDoesNotFit(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	placeholder := &engine.ProvisioningInput{Name: "signer_key", Type: engine.InputSecret, Ciphertext: []byte(`sealed:{"priv_key":"placeholder"}`)}
	subID := f.subscriptionOf(t, "validator", moniker, placeholder)
	plan, err := f.acts.ValidateProvisionInputs(ctx, subID)
	if err != nil {
		t.Fatal(err)
	}
	nodeID, err := f.acts.CreateNodeRecord(ctx, *plan)
	if err != nil {
		t.Fatal(err)
	}
	req := KeysRequest{NodeID: nodeID, SubscriptionID: subID, ChainProfileID: f.chain.ID}
	if err := f.acts.GenerateNodeKeys(ctx, req); err != nil {
		t.Fatal(err)
	}
	err = f.acts.PrepareUserProvidedKeys(ctx, req)
	if !isPermanent(err) || !strings.Contains(err.Error(), `"signer_key"`) || strings.Contains(err.Error(), "placeholder") {
		t.Fatalf("err = %v, want a permanent error naming signer_key and not its content", err)
	}
	if keysOf(t, f.store, nodeID)["signer_key"] != nil {
		t.Fatal("a key that does not fit was stored")
	}
}
