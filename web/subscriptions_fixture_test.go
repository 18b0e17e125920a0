package web_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/keys"
	"github.com/hoodcloud/hoodcloud/engine/profile"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"github.com/hoodcloud/hoodcloud/store/redis"
	"github.com/hoodcloud/hoodcloud/web"
	"golang.org/x/crypto/nacl/box"
)

// testChain offers a full node for two durations and a validator, and an
// input of every kind: text with a pattern, proof, and secrets from every
// source, one of them CometBFT's priv_validator_key.json that only
// validators take.
const testChain = `id: test-chain
name: Test Chain
version: "1"
family: ethereum
components:
  - name: geth
    version: "1.15.11"
    url: https://example.com/geth.tar.gz
    sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
node_types:
  - name: full
    durations:
      1m: {provider: hetzner, region: fsn1, instance_type: cpx41}
      3m: {provider: hetzner, region: nbg1, instance_type: cpx51}
  - name: validator
    durations:
      1m: {provider: hetzner, region: fsn1, instance_type: ccx23}
provisioning_inputs:
  - name: fee_recipient
    type: text
    required: true
    validation: "0x[0-9a-fA-F]{40}"
  - name: attestation
    type: proof
  - name: validator_key
    type: secret
    source: user_provided
    key_type: ed25519
  - name: engine_jwt
    type: secret
    source: generated
    key_type: hex32
  - name: node_key
    type: secret
    source: chain_generated
    key_type: secp256k1
    key_path: geth/nodekey
  - name: priv_validator_key
    type: secret
    source: user_provided
    key_type: ed25519
    format: cometbft_priv_validator_key
    node_types: [validator]
`

// fakeWorkflows records the provisions and terminations asked for; err
// fails terminations.
type fakeWorkflows struct {
	mu          sync.Mutex
	err         error
	terminated  []string
	provisioned []string
}

var _ engine.Workflows = (*fakeWorkflows)(nil)

func (w *fakeWorkflows) StartProvision(_ context.Context, subscriptionID string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.provisioned = append(w.provisioned, subscriptionID)
	return nil
}

func (w *fakeWorkflows) StartMigrate(context.Context, string) error                 { return nil }
func (w *fakeWorkflows) ConfirmSignerStopped(context.Context, string, string) error { return nil }

func (w *fakeWorkflows) provisions() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.provisioned...)
}
func (w *fakeWorkflows) StartTerminate(_ context.Context, nodeID, _ string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.terminated = append(w.terminated, nodeID)
	return nil
}

func (w *fakeWorkflows) terminations() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.terminated...)
}

// subscriptionFixture is the API with the subscription routes mounted: a
// catalogue holding testChain, a sealed-box key, fake workflows, payments
// and a recording bus.
type subscriptionFixture struct {
	*fixture
	key       *ecdh.PrivateKey
	workflows *fakeWorkflows
	events    *recordingEvents
	chains    *profile.Catalog
	cache     engine.Cache
}

func newSubscriptionFixture(tb testing.TB) *subscriptionFixture {
	tb.Helper()
	return newSubscriptionFixtureOf(tb, profile.Source{Name: "test", FS: fstest.MapFS{"test-chain.yaml": {Data: []byte(testChain)}}})
}

// newSubscriptionFixtureOf is the fixture with the profiles of chains.
func newSubscriptionFixtureOf(tb testing.TB, chainSource profile.Source) *subscriptionFixture {
	tb.Helper()
	st := bolt.New(filepath.Join(tb.TempDir(), "hoodcloud.db"))
	mustOpen(tb, st.Open(context.Background()), st.Close)
	cache := redis.NewEmbedded(redis.Options{})
	mustOpen(tb, cache.Open(context.Background()), cache.Close)
	chains, err := profile.LoadCatalog(chainSource)
	if err != nil {
		tb.Fatal(err)
	}
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	wf, events := &fakeWorkflows{}, &recordingEvents{}
	subs, err := engine.NewSubscriptions(engine.SubscriptionsConfig{Store: st, Workflows: wf, Catalog: chains,
		SealedBoxKeys: keys.StaticSealedBoxKeys(key), Events: events})
	if err != nil {
		tb.Fatal(err)
	}
	f := newFixtureOn(tb, st, cache, func(c *web.Config) {
		c.Store, c.Chains, c.Workflows, c.Events = st, chains, wf, events
		c.Subscriptions = subs
		c.Payments = newPayments(tb, st, events, chains)
		c.Webhook = engine.NewPaymentWebhook(engine.PaymentWebhookConfig{Secret: testWebhookSecret, Events: events})
		_, c.DeadLetters = newDeadLetters(tb, st, cache, wf, chains)
		c.SealingKey = key.PublicKey().Bytes
		c.Rollouts, _, _ = newRolloutService(tb)
	}, withUptime(tb))
	return &subscriptionFixture{fixture: f, key: key, workflows: wf, events: events, chains: chains, cache: cache}
}

type subscriptionOut struct {
	ID, Status, Provider, Region, InstanceType string
}

// subscribe creates (or finds) a full node's subscription over HTTP and
// returns its id.
func (f *subscriptionFixture) subscribe(credential, duration string, status int) string {
	f.tb.Helper()
	return f.subscribeTo(credential, "full", duration, status)
}

// subscribeTo creates (or finds) a subscription of nodeType.
func (f *subscriptionFixture) subscribeTo(credential, nodeType, duration string, status int) string {
	f.tb.Helper()
	rec := f.do(request{method: "POST", path: "/api/v1/subscriptions", credential: credential,
		body: `{"chain_profile_id":"test-chain","node_type":"` + nodeType + `","duration":"` + duration + `"}`})
	var out subscriptionOut
	f.decode(rec, status, &out)
	return out.ID
}

// seal seals msg to pub as a client does, base64 encoded.
func seal(tb testing.TB, pub *ecdh.PublicKey, msg string) string {
	tb.Helper()
	ephPub, ephPriv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	var nonce [24]byte
	rand.Read(nonce[:])
	var peer [32]byte
	copy(peer[:], pub.Bytes())
	out := append(append([]byte{}, ephPub[:]...), nonce[:]...)
	return base64.StdEncoding.EncodeToString(box.Seal(out, []byte(msg), &nonce, &peer, ephPriv))
}

// inputsBody is a POST .../inputs body of name/value pairs.
func inputsBody(pairs ...string) string {
	type kv struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	var in []kv
	for i := 0; i+1 < len(pairs); i += 2 {
		in = append(in, kv{pairs[i], pairs[i+1]})
	}
	b, _ := json.Marshal(map[string]any{"inputs": in})
	return string(b)
}

// inputs reads what the store holds for a subscription.
func (f *subscriptionFixture) inputs(id string) []*engine.ProvisioningInput {
	f.tb.Helper()
	in, err := f.store.ListInputs(context.Background(), id)
	if err != nil {
		f.tb.Fatal(err)
	}
	return in
}

// setStatus moves a subscription as the payment consumer or reaper would.
func (f *subscriptionFixture) setStatus(id string, status engine.SubscriptionStatus) {
	f.tb.Helper()
	ctx := context.Background()
	s, err := f.store.GetSubscription(ctx, id)
	if err != nil {
		f.tb.Fatal(err)
	}
	s.Status = status
	if err := f.store.UpdateSubscription(ctx, s); err != nil {
		f.tb.Fatal(err)
	}
}
