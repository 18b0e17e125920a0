package web_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/hoodcloud/hoodcloud/assets"
	"github.com/hoodcloud/hoodcloud/engine/profile"
)

// privValidatorKey is a CometBFT priv_validator_key.json of a fresh key;
// with mismatched, its pub_key and address belong to another key.
func privValidatorKey(t *testing.T, mismatched bool) (file, privValue string) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	if mismatched {
		pub, _, _ = ed25519.GenerateKey(rand.Reader)
	}
	sum := sha256.Sum256(pub)
	privValue = base64.StdEncoding.EncodeToString(priv)
	file = `{"address":"` + strings.ToUpper(hex.EncodeToString(sum[:20])) + `",` +
		`"pub_key":{"type":"tendermint/PubKeyEd25519","value":"` + base64.StdEncoding.EncodeToString(pub) + `"},` +
		`"priv_key":{"type":"tendermint/PrivKeyEd25519","value":"` + privValue + `"}}`
	return file, privValue
}

// TestValidatorKeyIsCheckedAtSubmission: the appliance opens a sealed key
// when it is submitted and refuses, with 400 naming the input and never
// showing the key, one that is not the priv_validator_key.json its profile
// asks for; nothing is stored.
func TestValidatorKeyIsCheckedAtSubmission(t *testing.T) {
	f := newSubscriptionFixture(t)
	a := newAccounts(f.fixture)
	id := f.subscribeTo(a.aliceJWT, "validator", "1m", 201)
	path := "/api/v1/subscriptions/" + id + "/inputs"
	pub := f.key.PublicKey()
	mismatched, mismatchedPriv := privValidatorKey(t, true)
	tests := []struct {
		name, key, secret, want string
	}{
		{"a placeholder", `{"priv_key":"placeholder-validator-key"}`, "placeholder-validator-key", "must be the whole priv_validator_key.json"},
		{"a public key that is not the private key's", mismatched, mismatchedPriv, "pub_key is not the public key of priv_key"},
		{"a node key file", `{"priv_key":{"type":"tendermint/PrivKeyEd25519","value":"` + mismatchedPriv + `"}}`, mismatchedPriv, "pub_key is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.do(request{method: "POST", path: path, credential: a.aliceJWT, body: inputsBody("priv_validator_key", seal(t, pub, tt.key))})
			wantStatus(t, rec, 400, `input \"priv_validator_key\": `+tt.want)
			if strings.Contains(rec.Body.String(), tt.secret) {
				t.Fatalf("the error shows the key: %s", rec.Body)
			}
			if got := f.inputs(id); len(got) != 0 {
				t.Fatalf("a refused key was stored (%d inputs)", len(got))
			}
		})
	}
	t.Run("a real priv_validator_key.json is accepted", func(t *testing.T) {
		key, _ := privValidatorKey(t, false)
		wantStatus(t, f.do(request{method: "POST", path: path, credential: a.aliceJWT, body: inputsBody("priv_validator_key", seal(t, pub, key))}),
			200, `"name":"priv_validator_key","type":"secret","status":"pending"`)
	})
	t.Run("one the appliance generates in that format is accepted", func(t *testing.T) {
		key, err := profile.GenerateKey(&profile.InputSpec{KeyType: profile.KeyEd25519, Format: profile.FormatCometBFTPrivValidatorKey})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, f.do(request{method: "POST", path: path, credential: a.aliceJWT, body: inputsBody("priv_validator_key", seal(t, pub, string(key)))}), 200, "priv_validator_key")
	})
}

// TestCatalogueShowsWhichInputsEachNodeTypeTakes: a customer reads, before
// buying, that a full node needs no validator key.
func TestCatalogueShowsWhichInputsEachNodeTypeTakes(t *testing.T) {
	f := newSubscriptionFixture(t)
	rec := f.do(request{method: "GET", path: "/api/v1/chains"})
	wantStatus(t, rec, 200, `"name":"full","offers":`)
	for _, want := range []string{
		`"inputs":["fee_recipient","attestation","validator_key","engine_jwt","node_key"]`,
		`"inputs":["fee_recipient","attestation","validator_key","engine_jwt","node_key","priv_validator_key"]`,
		`"format":"cometbft_priv_validator_key","node_types":["validator"]`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("the catalogue lacks %s: %s", want, rec.Body)
		}
	}
}

// TestCosmosDemoAsksOnlyValidatorsForTheConsensusKey, on the embedded
// profile: a full node is not asked for priv_validator_key and cannot be
// given one; a validator's placeholder key is refused when submitted.
func TestCosmosDemoAsksOnlyValidatorsForTheConsensusKey(t *testing.T) {
	f := newSubscriptionFixtureOf(t, profile.Source{Name: "assets", FS: assets.Chains})
	a := newAccounts(f.fixture)
	pub := f.key.PublicKey()
	subscribe := func(nodeType string) string {
		rec := f.do(request{method: "POST", path: "/api/v1/subscriptions", credential: a.aliceJWT,
			body: `{"chain_profile_id":"cosmos-demo","node_type":"` + nodeType + `","duration":"1m"}`})
		var out subscriptionOut
		f.decode(rec, 201, &out)
		return "/api/v1/subscriptions/" + out.ID + "/inputs"
	}
	full, validator := subscribe("full"), subscribe("validator")
	key, _ := privValidatorKey(t, false)

	wantStatus(t, f.do(request{method: "POST", path: full, credential: a.aliceJWT, body: inputsBody("priv_validator_key", seal(t, pub, key))}),
		400, `input \"priv_validator_key\" of chain profile \"cosmos-demo\" is not taken by a \"full\" node`)
	wantStatus(t, f.do(request{method: "POST", path: full, credential: a.aliceJWT, body: inputsBody("operator_attestation", strings.Repeat("A", 86)+"==")}),
		400, "operator_attestation")
	wantStatus(t, f.do(request{method: "POST", path: full, credential: a.aliceJWT, body: inputsBody("moniker", "a full node")}), 200, "moniker")

	wantStatus(t, f.do(request{method: "POST", path: validator, credential: a.aliceJWT, body: inputsBody("priv_validator_key", seal(t, pub, `{"priv_key":"test"}`))}),
		400, `input \"priv_validator_key\": must be the whole priv_validator_key.json`)
	wantStatus(t, f.do(request{method: "POST", path: validator, credential: a.aliceJWT, body: inputsBody("moniker", "a validator", "priv_validator_key", seal(t, pub, key))}),
		200, "priv_validator_key")
}
