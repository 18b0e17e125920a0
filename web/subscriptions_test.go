package web_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"golang.org/x/crypto/nacl/box"
)

func TestSubscriptionScenarios(t *testing.T) {
	f := newSubscriptionFixture(t)
	a := newAccounts(f.fixture)
	bobJWT, _ := f.login("bob@example.com")
	_, readOnly := f.apiKey(a.aliceJWT, engine.ScopeSubscriptionsRead)
	_, writeOnly := f.apiKey(a.aliceJWT, engine.ScopeSubscriptionsWrite)
	mine := f.subscribe(a.aliceJWT, "1m", 201)
	toCancel := f.subscribe(a.aliceJWT, "3m", 201)
	bobs := f.subscribe(bobJWT, "1m", 201)
	big := `{"chain_profile_id":"` + strings.Repeat("a", 70<<10) + `"}`
	subs, one := "/api/v1/subscriptions", "/api/v1/subscriptions/"+mine
	tests := []struct {
		name       string
		req        request
		wantStatus int
		wantBody   []string
		notBody    []string
	}{
		{"create resolves the placement", request{method: "POST", path: subs, credential: bobJWT, body: `{"chain_profile_id":"test-chain","node_type":"full","duration":"3m"}`}, 201,
			[]string{`"status":"pending_payment"`, `"provider":"hetzner"`, `"region":"nbg1"`, `"instance_type":"cpx51"`, `"expires_at"`}, []string{"payment_id"}},
		{"create repeated returns the pending one", request{method: "POST", path: subs, credential: a.aliceJWT, body: `{"chain_profile_id":"test-chain","node_type":"full","duration":"1m"}`}, 200, []string{`"id":"` + mine}, nil},
		{"create with a write-only key", request{method: "POST", path: subs, credential: writeOnly, body: `{"chain_profile_id":"test-chain","node_type":"full","duration":"1m"}`}, 200, []string{mine}, nil},
		{"create of an unknown chain names it", request{method: "POST", path: subs, credential: a.aliceJWT, body: `{"chain_profile_id":"dogecoin","node_type":"full","duration":"1m"}`}, 400, []string{`\"dogecoin\"`, `"code":"invalid"`}, nil},
		{"create of an unknown node type names it", request{method: "POST", path: subs, credential: a.aliceJWT, body: `{"chain_profile_id":"test-chain","node_type":"archive","duration":"1m"}`}, 400, []string{`\"archive\"`}, nil},
		{"create of an unoffered duration names it", request{method: "POST", path: subs, credential: a.aliceJWT, body: `{"chain_profile_id":"test-chain","node_type":"full","duration":"7y"}`}, 400, []string{`\"7y\"`}, nil},
		{"create without fields", request{method: "POST", path: subs, credential: a.aliceJWT, body: `{}`}, 400, []string{"required"}, nil},
		{"create without subscriptions:write", request{method: "POST", path: subs, credential: readOnly, body: `{"chain_profile_id":"test-chain","node_type":"full","duration":"1m"}`}, 403, []string{"subscriptions:write"}, nil},
		{"create with a nodes-only key", request{method: "POST", path: subs, credential: a.aliceReadKey, body: `{}`}, 403, nil, nil},
		{"create without a credential", request{method: "POST", path: subs, body: `{}`}, 401, nil, nil},
		{"create by the bootstrap administrator", request{method: "POST", path: subs, credential: bootstrapToken, body: `{"chain_profile_id":"test-chain","node_type":"full","duration":"1m"}`}, 403, []string{"bootstrap"}, nil},
		{"create with malformed JSON", request{method: "POST", path: subs, credential: a.aliceJWT, body: `{"chain_profile_id":`}, 400, []string{"malformed JSON"}, nil},
		{"create with an unknown field", request{method: "POST", path: subs, credential: a.aliceJWT, body: `{"chain_profile_id":"test-chain","node_type":"full","duration":"1m","price":1}`}, 400, []string{`unknown field \"price\"`}, nil},
		{"create with a wrong type", request{method: "POST", path: subs, credential: a.aliceJWT, body: `{"chain_profile_id":"test-chain","node_type":"full","duration":1}`}, 400, []string{`field \"duration\" must be a string`}, nil},
		{"create with an oversized body", request{method: "POST", path: subs, credential: a.aliceJWT, body: big}, 413, nil, nil},

		{"list shows own subscriptions only", request{method: "GET", path: subs, credential: a.aliceJWT}, 200, []string{mine, toCancel}, []string{bobs}},
		{"list with a read-only key", request{method: "GET", path: subs, credential: readOnly}, 200, []string{mine}, nil},
		{"list without subscriptions:read", request{method: "GET", path: subs, credential: writeOnly}, 403, []string{"subscriptions:read"}, nil},
		{"get own", request{method: "GET", path: one, credential: a.aliceJWT}, 200, []string{`"id":"` + mine, `"chain_profile_id":"test-chain"`}, nil},
		{"get without subscriptions:read", request{method: "GET", path: one, credential: a.aliceReadKey}, 403, nil, nil},
		{"get another tenant's is 404", request{method: "GET", path: subs + "/" + bobs, credential: a.aliceJWT}, 404, []string{`"code":"not_found"`}, nil},
		{"get another tenant's with their key is 404", request{method: "GET", path: one, credential: a.bobKey}, 404, nil, nil},
		{"get unknown is 404", request{method: "GET", path: subs + "/sub_nope", credential: a.aliceJWT}, 404, nil, nil},

		{"cancel another tenant's is 404", request{method: "POST", path: subs + "/" + bobs + "/cancel", credential: a.aliceJWT}, 404, nil, nil},
		{"cancel without subscriptions:write", request{method: "POST", path: subs + "/" + toCancel + "/cancel", credential: readOnly}, 403, nil, nil},
		{"cancel a pending subscription", request{method: "POST", path: subs + "/" + toCancel + "/cancel", credential: writeOnly}, 200, []string{`"status":"cancelled"`}, nil},
		{"cancel it again is a conflict", request{method: "POST", path: subs + "/" + toCancel + "/cancel", credential: a.aliceJWT}, 409, []string{"cancelled"}, nil},
		{"the other tenant's is untouched", request{method: "GET", path: subs + "/" + bobs, credential: bobJWT}, 200, []string{`"status":"pending_payment"`}, nil},

		{"the public key needs no credential", request{method: "GET", path: "/api/v1/crypto/public-key"}, 200,
			[]string{`"algorithm":"X25519"`, `"public_key":"` + base64.StdEncoding.EncodeToString(f.key.PublicKey().Bytes()), "crypto_box_seal", "nonce (24 bytes)"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.do(tt.req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			for _, w := range tt.wantBody {
				if !strings.Contains(rec.Body.String(), w) {
					t.Errorf("body %s lacks %s", rec.Body, w)
				}
			}
			for _, w := range tt.notBody {
				if strings.Contains(rec.Body.String(), w) {
					t.Errorf("body %s holds %s", rec.Body, w)
				}
			}
		})
	}
	if got := f.workflows.terminations(); len(got) != 0 {
		t.Errorf("cancelling a pending subscription terminated %v", got)
	}
}

func TestSubscribeIsIdempotent(t *testing.T) {
	f := newSubscriptionFixture(t)
	a := newAccounts(f.fixture)
	first := f.subscribe(a.aliceJWT, "1m", 201)
	if again := f.subscribe(a.aliceJWT, "1m", 200); again != first {
		t.Fatalf("second create returned %s, want %s", again, first)
	}
	f.setStatus(first, engine.SubscriptionActive)
	if next := f.subscribe(a.aliceJWT, "1m", 201); next == first {
		t.Fatalf("once the first is active a new purchase is a new subscription")
	}
}

func TestConcurrentSubscribesMakeOne(t *testing.T) {
	f := newSubscriptionFixture(t)
	a := newAccounts(f.fixture)
	const n = 10
	codes, ids := make([]int, n), make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			rec := f.do(request{method: "POST", path: "/api/v1/subscriptions", credential: a.aliceJWT,
				body: `{"chain_profile_id":"test-chain","node_type":"full","duration":"1m"}`})
			codes[i] = rec.Code
			if _, rest, ok := strings.Cut(rec.Body.String(), `"id":"`); ok {
				ids[i], _, _ = strings.Cut(rest, `"`)
			}
		})
	}
	wg.Wait()
	created := 0
	for i := range n {
		switch {
		case codes[i] == 201:
			created++
		case codes[i] != 200:
			t.Fatalf("request %d: status %d", i, codes[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("request %d returned %s, request 0 %s", i, ids[i], ids[0])
		}
	}
	list, err := f.store.ListSubscriptions(context.Background(), a.alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if created != 1 || len(list) != 1 {
		t.Fatalf("%d created answers and %d stored subscriptions, want 1 and 1", created, len(list))
	}
}

func TestCancelActiveTerminatesItsNode(t *testing.T) {
	f := newSubscriptionFixture(t)
	a := newAccounts(f.fixture)
	ctx := context.Background()
	withNode := f.subscribe(a.aliceJWT, "1m", 201)
	f.setStatus(withNode, engine.SubscriptionActive)
	node := &engine.Node{ID: engine.NewID("node"), SubscriptionID: withNode, OwnerID: a.alice.ID, ChainProfileID: "test-chain",
		NodeType: "full", State: engine.NodeRunning, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := f.store.CreateNode(ctx, node); err != nil {
		t.Fatal(err)
	}
	path := "/api/v1/subscriptions/" + withNode + "/cancel"

	f.workflows.err = engine.Errorf(engine.EUnavailable, "temporal down")
	wantStatus(t, f.do(request{method: "POST", path: path, credential: a.aliceJWT}), 503, "temporal down")
	wantStatus(t, f.do(request{method: "GET", path: "/api/v1/subscriptions/" + withNode, credential: a.aliceJWT}), 200, `"status":"active"`)

	f.workflows.err = nil
	wantStatus(t, f.do(request{method: "POST", path: path, credential: a.aliceJWT}), 200, `"status":"cancelled"`)
	if got := f.workflows.terminations(); len(got) != 1 || got[0] != node.ID {
		t.Fatalf("terminations = %v, want [%s]", got, node.ID)
	}

	// Active without a node yet: cancelled, nothing to terminate.
	bare := f.subscribe(a.aliceJWT, "3m", 201)
	f.setStatus(bare, engine.SubscriptionActive)
	wantStatus(t, f.do(request{method: "POST", path: "/api/v1/subscriptions/" + bare + "/cancel", credential: a.aliceJWT}), 200, `"status":"cancelled"`)

	// Expired: nothing left to cancel.
	expired := f.subscribe(a.aliceJWT, "1m", 201)
	f.setStatus(expired, engine.SubscriptionActive)
	f.setStatus(expired, engine.SubscriptionExpired)
	wantStatus(t, f.do(request{method: "POST", path: "/api/v1/subscriptions/" + expired + "/cancel", credential: a.aliceJWT}), 409, "expired")
	if got := f.workflows.terminations(); len(got) != 1 {
		t.Fatalf("terminations = %v, want only the first node", got)
	}
}

// TestInputsAcceptAStandardSealedBox is a new user's path: fetch the
// public key, seal the secret with libsodium's crypto_box_seal (here
// x/crypto's box.SealAnonymous, which PyNaCl's SealedBox matches byte for
// byte), submit it: it is accepted and stored as sent.
func TestInputsAcceptAStandardSealedBox(t *testing.T) {
	f := newSubscriptionFixture(t)
	a := newAccounts(f.fixture)
	var key struct {
		PublicKey string `json:"public_key"`
	}
	f.decode(f.do(request{method: "GET", path: "/api/v1/crypto/public-key"}), 200, &key)
	raw, err := base64.StdEncoding.DecodeString(key.PublicKey)
	if err != nil || len(raw) != 32 {
		t.Fatalf("public key %q: %v", key.PublicKey, err)
	}
	var peer [32]byte
	copy(peer[:], raw)
	sealed, err := box.SealAnonymous(nil, bytes.Repeat([]byte{7}, 32), &peer, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	value := base64.StdEncoding.EncodeToString(sealed)
	id := f.subscribe(a.aliceJWT, "1m", 201)
	rec := f.do(request{method: "POST", path: "/api/v1/subscriptions/" + id + "/inputs", credential: a.aliceJWT,
		body: inputsBody("validator_key", value)})
	wantStatus(t, rec, 200, `"name":"validator_key","type":"secret","status":"pending"`)
	stored := f.inputs(id)
	if len(stored) != 1 || base64.StdEncoding.EncodeToString(stored[0].Ciphertext) != value {
		t.Fatalf("stored %+v, want the sealed box as sent", stored)
	}
}

func TestInputScenarios(t *testing.T) {
	f := newSubscriptionFixture(t)
	a := newAccounts(f.fixture)
	bobJWT, _ := f.login("bob@example.com")
	_, readOnly := f.apiKey(a.aliceJWT, engine.ScopeSubscriptionsRead)
	stranger, _ := ecdh.X25519().GenerateKey(rand.Reader)
	pub := f.key.PublicKey()
	seed := "an ed25519 seed of 32 bytes....."
	valid := seal(t, pub, seed)
	raw, _ := base64.StdEncoding.DecodeString(valid)
	raw[len(raw)-1] ^= 1
	tampered := base64.StdEncoding.EncodeToString(raw)
	short := base64.StdEncoding.EncodeToString(make([]byte, 47))
	address := "0x" + strings.Repeat("ab", 20)
	bobs := f.subscribe(bobJWT, "1m", 201)
	id := f.subscribe(a.aliceJWT, "1m", 201)
	path := "/api/v1/subscriptions/" + id + "/inputs"

	tests := []struct {
		name       string
		credential string
		body       string
		wantStatus int
		wantBody   string
	}{
		{"a text value that breaks the pattern names the input, not the value", a.aliceJWT, inputsBody("fee_recipient", "0xNOT-AN-ADDRESS"), 400, `\"fee_recipient\"`},
		{"an unknown input", a.aliceJWT, inputsBody("mnemonic", "x"), 400, `\"mnemonic\"`},
		{"a generated secret cannot be supplied", a.aliceJWT, inputsBody("engine_jwt", valid), 400, "cannot be supplied"},
		{"a chain-generated secret cannot be supplied", a.aliceJWT, inputsBody("node_key", valid), 400, "cannot be supplied"},
		{"a tampered box", a.aliceJWT, inputsBody("validator_key", tampered), 400, `\"validator_key\"`},
		{"a box of the wrong length", a.aliceJWT, inputsBody("validator_key", short), 400, "bytes"},
		{"a box that is not base64", a.aliceJWT, inputsBody("validator_key", "not*base64!"), 400, "base64"},
		{"a box sealed to another key", a.aliceJWT, inputsBody("validator_key", seal(t, stranger.PublicKey(), "x")), 400, "does not open"},
		{"an empty sealed secret", a.aliceJWT, inputsBody("validator_key", seal(t, pub, "")), 400, "empty"},
		{"a placeholder for an ed25519 key", a.aliceJWT, inputsBody("validator_key", seal(t, pub, "NOT-AN-ADDRESS placeholder")), 400, "32-byte seed or a 64-byte private key"},
		{"an input a full node does not take", a.aliceJWT, inputsBody("priv_validator_key", valid), 400, `input \"priv_validator_key\" of chain profile \"test-chain\" is not taken by a \"full\" node`},
		{"a valid text with a bad secret stores neither", a.aliceJWT, inputsBody("fee_recipient", address, "validator_key", tampered), 400, "validator_key"},
		{"the same input twice", a.aliceJWT, inputsBody("fee_recipient", address, "fee_recipient", address), 400, "twice"},
		{"no inputs", a.aliceJWT, `{"inputs":[]}`, 400, "1 to"},
		{"an input without a name", a.aliceJWT, inputsBody("", "x"), 400, "name"},
		{"malformed JSON", a.aliceJWT, `{"inputs":[`, 400, "malformed JSON"},
		{"an unknown field", a.aliceJWT, `{"inputs":[{"name":"fee_recipient","value":"x","type":"text"}]}`, 400, "unknown field"},
		{"a wrong type", a.aliceJWT, `{"inputs":{"name":"fee_recipient"}}`, 400, `field \"inputs\" must be an array`},
		{"a wrong nested type", a.aliceJWT, `{"inputs":[{"name":"fee_recipient","value":5}]}`, 400, "must be a string"},
		{"an oversized body", a.aliceJWT, inputsBody("fee_recipient", strings.Repeat("a", 70<<10)), 413, "too_large"},
		{"without subscriptions:write", readOnly, inputsBody("fee_recipient", address), 403, "subscriptions:write"},
		{"without a credential", "", inputsBody("fee_recipient", address), 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.do(request{method: "POST", path: path, credential: tt.credential, body: tt.body})
			wantStatus(t, rec, tt.wantStatus, tt.wantBody)
			if strings.Contains(rec.Body.String(), "NOT-AN-ADDRESS") {
				t.Errorf("the error echoes the value: %s", rec.Body)
			}
			if got := f.inputs(id); len(got) != 0 {
				t.Fatalf("a rejected submission stored %d inputs", len(got))
			}
		})
	}

	t.Run("another tenant's subscription is 404", func(t *testing.T) {
		wantStatus(t, f.do(request{method: "POST", path: "/api/v1/subscriptions/" + bobs + "/inputs", credential: a.aliceJWT, body: inputsBody("fee_recipient", address)}), 404, "not_found")
		wantStatus(t, f.do(request{method: "GET", path: "/api/v1/subscriptions/" + bobs + "/inputs", credential: a.aliceJWT}), 404, "not_found")
		if got := f.inputs(bobs); len(got) != 0 {
			t.Fatalf("stored %d inputs on bob's subscription", len(got))
		}
	})
	t.Run("valid inputs store text in plain text and secrets as ciphertext only", func(t *testing.T) {
		rec := f.do(request{method: "POST", path: path, credential: a.aliceJWT,
			body: inputsBody("fee_recipient", address, "attestation", "proof-123", "validator_key", valid)})
		wantStatus(t, rec, 200, `"name":"validator_key","type":"secret","status":"pending"`)
		if strings.Contains(rec.Body.String(), valid) || strings.Contains(rec.Body.String(), address) {
			t.Errorf("the answer echoes values: %s", rec.Body)
		}
		got := map[string]*engine.ProvisioningInput{}
		for _, in := range f.inputs(id) {
			got[in.Name] = in
		}
		if in := got["fee_recipient"]; in == nil || in.Value != address || in.Type != engine.InputText || in.Ciphertext != nil {
			t.Errorf("fee_recipient stored as %+v", in)
		}
		if in := got["attestation"]; in == nil || in.Value != "proof-123" || in.Type != engine.InputProof {
			t.Errorf("attestation stored as %+v", in)
		}
		in := got["validator_key"]
		if in == nil || in.Type != engine.InputSecret || in.Value != "" || base64.StdEncoding.EncodeToString(in.Ciphertext) != valid {
			t.Fatalf("validator_key stored as %+v, want the sealed box as is", in)
		}
		if strings.Contains(string(in.Ciphertext), seed) {
			t.Fatalf("the plaintext was stored")
		}
		wantStatus(t, f.do(request{method: "GET", path: path, credential: readOnly}), 200, `"name":"fee_recipient"`)
		wantStatus(t, f.do(request{method: "GET", path: path, credential: a.aliceReadKey}), 403, "subscriptions:read")
	})
	t.Run("a later submission replaces a value", func(t *testing.T) {
		other := "0x" + strings.Repeat("cd", 20)
		wantStatus(t, f.do(request{method: "POST", path: path, credential: a.aliceJWT, body: inputsBody("fee_recipient", other)}), 200, "fee_recipient")
		for _, in := range f.inputs(id) {
			if in.Name == "fee_recipient" && in.Value != other {
				t.Fatalf("fee_recipient = %q, want %q", in.Value, other)
			}
		}
	})
	t.Run("applied inputs cannot change", func(t *testing.T) {
		if err := f.store.MarkInputsApplied(context.Background(), id, time.Now()); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, f.do(request{method: "POST", path: path, credential: a.aliceJWT, body: inputsBody("fee_recipient", address)}), 409, "applied")
	})
	t.Run("a cancelled subscription takes no inputs", func(t *testing.T) {
		gone := f.subscribe(a.aliceJWT, "3m", 201)
		wantStatus(t, f.do(request{method: "POST", path: "/api/v1/subscriptions/" + gone + "/cancel", credential: a.aliceJWT}), 200, "cancelled")
		wantStatus(t, f.do(request{method: "POST", path: "/api/v1/subscriptions/" + gone + "/inputs", credential: a.aliceJWT, body: inputsBody("fee_recipient", address)}), 409, "cancelled")
	})
}

// TestNoServerErrorOnBadInput throws junk bodies at every write route.
func TestNoServerErrorOnBadInput(t *testing.T) {
	f := newSubscriptionFixture(t)
	a := newAccounts(f.fixture)
	id := f.subscribe(a.aliceJWT, "1m", 201)
	bodies := []string{"", "null", "[]", "{", `{"inputs":null}`, `{"inputs":[null]}`, `{"inputs":[{}]}`, `"x"`, "\x00\xff", `{"chain_profile_id":null}`,
		inputsBody("validator_key", ""), inputsBody("validator_key", "===="), inputsBody("fee_recipient", "\x00")}
	paths := []string{"/api/v1/subscriptions", "/api/v1/subscriptions/" + id + "/inputs", "/api/v1/subscriptions/" + id + "/cancel", "/api/v1/subscriptions/%00/inputs"}
	for _, p := range paths {
		for _, b := range bodies {
			rec := f.do(request{method: "POST", path: p, credential: a.aliceJWT, body: b})
			if rec.Code >= 500 {
				t.Errorf("POST %s %q: %d %s", p, b, rec.Code, rec.Body)
			}
		}
	}
}
