package engine_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/mock"
)

// inputsStore holds one subscription and records the inputs stored.
type inputsStore struct {
	engine.SubscriptionsStore
	sub    *engine.Subscription
	stored []*engine.ProvisioningInput
}

func (s *inputsStore) GetSubscription(context.Context, string) (*engine.Subscription, error) {
	c := *s.sub
	return &c, nil
}

func (s *inputsStore) ListInputs(context.Context, string) ([]*engine.ProvisioningInput, error) {
	return nil, nil
}

func (s *inputsStore) PutInput(_ context.Context, in *engine.ProvisioningInput) error {
	s.stored = append(s.stored, in)
	return nil
}

// openedKeys "opens" a box to a copy of its bytes and keeps every
// plaintext it handed out, to see that the caller zeroed it.
type openedKeys struct{ plaintexts [][]byte }

func (k *openedKeys) Open(sealed []byte) ([]byte, error) {
	p := bytes.Clone(sealed)
	k.plaintexts = append(k.plaintexts, p)
	return p, nil
}

// TestSubmittedKeyIsCheckedForTheNodeTypeThenZeroed: the catalogue is asked
// for the input of the subscription's node type, the opened key goes
// through the rule's CheckKey, a refused key is not stored, and every
// plaintext is zeroed whatever the outcome.
func TestSubmittedKeyIsCheckedForTheNodeTypeThenZeroed(t *testing.T) {
	st := &inputsStore{sub: &engine.Subscription{ID: "sub_1", UserID: "user_1", ChainProfileID: "c", NodeType: "validator", Status: engine.SubscriptionPendingPayment}}
	opened := &openedKeys{}
	var askedFor string
	u, err := engine.NewSubscriptions(engine.SubscriptionsConfig{Store: st, SealedBoxKeys: opened, Catalog: &mock.Catalog{
		InputFn: func(_, nodeType, name string) (engine.InputRule, error) {
			askedFor = nodeType
			return engine.InputRule{Type: engine.InputSecret, Supplied: true, CheckKey: func(plain []byte) error {
				if string(plain) != "a good key" {
					return engine.Errorf(engine.EInvalid, "input %q: not a key", name)
				}
				return nil
			}}, nil
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	submit := func(key string) error {
		_, err := u.SubmitInputs(context.Background(), &engine.Principal{UserID: "user_1"}, "sub_1",
			[]engine.InputValue{{Name: "consensus_key", Value: base64.StdEncoding.EncodeToString([]byte(key))}})
		return err
	}
	if err := submit("a placeholder"); !engine.IsCode(err, engine.EInvalid) || len(st.stored) != 0 {
		t.Fatalf("a refused key: %v with %d stored, want EInvalid and nothing stored", err, len(st.stored))
	}
	if askedFor != "validator" {
		t.Errorf("the catalogue was asked for node type %q, want the subscription's", askedFor)
	}
	if err := submit("a good key"); err != nil || len(st.stored) != 1 {
		t.Fatalf("a good key: %v with %d stored", err, len(st.stored))
	}
	for i, p := range opened.plaintexts {
		if !bytes.Equal(p, make([]byte, len(p))) {
			t.Errorf("plaintext %d was not zeroed", i)
		}
	}
}
