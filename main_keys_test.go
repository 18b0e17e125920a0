package main

import (
	"encoding/json"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine/profile"
)

// validatorKeySpec is the demo validator's consensus key as the profile
// declares it: CometBFT's priv_validator_key.json, checked at submission.
var validatorKeySpec = profile.InputSpec{Name: "priv_validator_key", KeyType: profile.KeyEd25519, Format: profile.FormatCometBFTPrivValidatorKey}

// validatorKey returns a fresh priv_validator_key.json, as a customer seals
// it, and its private key (seed and public key).
func validatorKey(tb testing.TB) (file, priv []byte) {
	tb.Helper()
	file, err := profile.GenerateKey(&validatorKeySpec)
	if err != nil {
		tb.Fatal(err)
	}
	var f struct {
		PrivKey struct {
			Value []byte `json:"value"`
		} `json:"priv_key"`
	}
	if err := json.Unmarshal(file, &f); err != nil || len(f.PrivKey.Value) != 64 {
		tb.Fatalf("generated priv_validator_key.json does not parse: %v", err)
	}
	return file, f.PrivKey.Value
}
