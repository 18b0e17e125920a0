package profile_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
)

// cometKeyFile is a CometBFT key file as the test writes it; fields left
// empty are omitted.
type cometKeyFile struct {
	Address string    `json:"address,omitempty"`
	PubKey  *cometKey `json:"pub_key,omitempty"`
	PrivKey *cometKey `json:"priv_key,omitempty"`
}

type cometKey struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// validatorKeyFile returns a correct priv_validator_key.json of a fresh key
// for edit to break, and the key's base64 private value.
func validatorKeyFile(t testing.TB, edit func(*cometKeyFile)) []byte {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(pub)
	f := &cometKeyFile{
		Address: strings.ToUpper(hex.EncodeToString(sum[:20])),
		PubKey:  &cometKey{Type: "tendermint/PubKeyEd25519", Value: base64.StdEncoding.EncodeToString(pub)},
		PrivKey: &cometKey{Type: "tendermint/PrivKeyEd25519", Value: base64.StdEncoding.EncodeToString(priv)},
	}
	if edit != nil {
		edit(f)
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func nodeKeyFile(t testing.TB, edit func(*cometKeyFile)) []byte {
	t.Helper()
	return validatorKeyFile(t, func(f *cometKeyFile) {
		f.Address, f.PubKey = "", nil
		if edit != nil {
			edit(f)
		}
	})
}

// otherPriv returns the base64 private value of another fresh key.
func otherPriv(t testing.TB) string {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	return base64.StdEncoding.EncodeToString(priv)
}

func mismatchedHalves(t testing.TB) string {
	_, a, _ := ed25519.GenerateKey(rand.Reader)
	_, b, _ := ed25519.GenerateKey(rand.Reader)
	return base64.StdEncoding.EncodeToString(append(a.Seed(), b.Public().(ed25519.PublicKey)...))
}

func order(h string) []byte { b, _ := hex.DecodeString(h); return b }

const (
	secp256k1Order = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
	bls12381Order  = "73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001"
)

func TestCheckKey(t *testing.T) {
	seed := make([]byte, 32)
	rand.Read(seed)
	priv := ed25519.NewKeyFromSeed(seed)
	badPriv := append(bytes.Clone(priv[:32]), make([]byte, 32)...)
	belowSecp := order(secp256k1Order)
	belowSecp[31]--
	tests := []struct {
		name    string
		keyType profile.KeyType
		format  profile.KeyFormat
		key     []byte
		want    string // "" when accepted, else a substring of the error
	}{
		// raw
		{"ed25519 seed", profile.KeyEd25519, profile.FormatRaw, seed, ""},
		{"ed25519 private key", profile.KeyEd25519, profile.FormatRaw, priv, ""},
		{"ed25519 private key with a foreign public half", profile.KeyEd25519, profile.FormatRaw, badPriv, "second half is not the public key"},
		{"ed25519 placeholder", profile.KeyEd25519, profile.FormatRaw, []byte("placeholder-key"), "32-byte seed or a 64-byte private key, not 15 bytes"},
		{"empty", profile.KeyEd25519, profile.FormatRaw, nil, "empty"},
		{"secp256k1 scalar", profile.KeySecp256k1, profile.FormatRaw, belowSecp, ""},
		{"secp256k1 order", profile.KeySecp256k1, profile.FormatRaw, order(secp256k1Order), "below the group order"},
		{"secp256k1 zero", profile.KeySecp256k1, profile.FormatRaw, make([]byte, 32), "must not be zero"},
		{"secp256k1 short", profile.KeySecp256k1, profile.FormatRaw, make([]byte, 31), "32-byte big-endian scalar, not 31 bytes"},
		{"bls scalar", profile.KeyBLS12381, profile.FormatRaw, bytes.Repeat([]byte{0x11}, 32), ""},
		{"bls above the order", profile.KeyBLS12381, profile.FormatRaw, bytes.Repeat([]byte{0x80}, 32), "below the group order"},
		{"sr25519 mini secret", profile.KeySr25519, profile.FormatRaw, seed, ""},
		{"sr25519 odd length", profile.KeySr25519, profile.FormatRaw, make([]byte, 40), "not 40 bytes"},
		{"hex32", profile.KeyHex32, profile.FormatRaw, []byte(strings.Repeat("aB", 32)), ""},
		{"hex32 as geth writes it", profile.KeyHex32, profile.FormatRaw, []byte("0x" + strings.Repeat("0f", 32) + "\n"), ""},
		{"hex32 too short", profile.KeyHex32, profile.FormatRaw, []byte(strings.Repeat("ab", 31)), "64 hex digits"},
		{"hex32 not hex", profile.KeyHex32, profile.FormatRaw, []byte(strings.Repeat("zz", 32)), "64 hex digits"},
		// priv_validator_key.json
		{"priv_validator_key.json", profile.KeyEd25519, profile.FormatCometBFTPrivValidatorKey, validatorKeyFile(t, nil), ""},
		{"lower-case address", profile.KeyEd25519, profile.FormatCometBFTPrivValidatorKey,
			validatorKeyFile(t, func(f *cometKeyFile) { f.Address = strings.ToLower(f.Address) }), ""},
		{"a placeholder", profile.KeyEd25519, profile.FormatCometBFTPrivValidatorKey, []byte(`{"priv_key":"placeholder"}`), "must be the whole priv_validator_key.json"},
		{"not JSON", profile.KeyEd25519, profile.FormatCometBFTPrivValidatorKey, []byte("placeholder"), "must be the whole priv_validator_key.json"},
		{"a mismatched public key", profile.KeyEd25519, profile.FormatCometBFTPrivValidatorKey,
			validatorKeyFile(t, func(f *cometKeyFile) { f.PrivKey.Value = otherPriv(t) }), "pub_key is not the public key of priv_key"},
		{"a wrong address", profile.KeyEd25519, profile.FormatCometBFTPrivValidatorKey,
			validatorKeyFile(t, func(f *cometKeyFile) { f.Address = strings.Repeat("AB", 20) }), "address is not the validator address"},
		{"an address that is not hex", profile.KeyEd25519, profile.FormatCometBFTPrivValidatorKey,
			validatorKeyFile(t, func(f *cometKeyFile) { f.Address = "not-hex-at-all" }), "address is not the validator address"},
		{"no address", profile.KeyEd25519, profile.FormatCometBFTPrivValidatorKey,
			validatorKeyFile(t, func(f *cometKeyFile) { f.Address = "" }), "address is missing"},
		{"no pub_key", profile.KeyEd25519, profile.FormatCometBFTPrivValidatorKey,
			validatorKeyFile(t, func(f *cometKeyFile) { f.PubKey = nil }), "pub_key is missing"},
		{"no priv_key", profile.KeyEd25519, profile.FormatCometBFTPrivValidatorKey,
			validatorKeyFile(t, func(f *cometKeyFile) { f.PrivKey = nil }), "priv_key is missing"},
		{"bad base64", profile.KeyEd25519, profile.FormatCometBFTPrivValidatorKey,
			validatorKeyFile(t, func(f *cometKeyFile) { f.PrivKey.Value = "placeholder*" }), "priv_key.value must be base64"},
		{"bad public base64", profile.KeyEd25519, profile.FormatCometBFTPrivValidatorKey,
			validatorKeyFile(t, func(f *cometKeyFile) { f.PubKey.Value = "%%%" }), "pub_key.value must be base64"},
		{"a seed for a private key", profile.KeyEd25519, profile.FormatCometBFTPrivValidatorKey,
			validatorKeyFile(t, func(f *cometKeyFile) { f.PrivKey.Value = base64.StdEncoding.EncodeToString(seed) }), "must hold 64 bytes"},
		{"halves that disagree", profile.KeyEd25519, profile.FormatCometBFTPrivValidatorKey,
			validatorKeyFile(t, func(f *cometKeyFile) { f.PrivKey.Value = mismatchedHalves(t) }), "second half is not the public key"},
		{"a short public key", profile.KeyEd25519, profile.FormatCometBFTPrivValidatorKey,
			validatorKeyFile(t, func(f *cometKeyFile) { f.PubKey.Value = base64.StdEncoding.EncodeToString(seed[:16]) }), "pub_key.value must hold 32 bytes"},
		{"a secp256k1 key type", profile.KeyEd25519, profile.FormatCometBFTPrivValidatorKey,
			validatorKeyFile(t, func(f *cometKeyFile) { f.PrivKey.Type = "tendermint/PrivKeySecp256k1" }), `priv_key.type must be "tendermint/PrivKeyEd25519"`},
		{"a wrong public key type", profile.KeyEd25519, profile.FormatCometBFTPrivValidatorKey,
			validatorKeyFile(t, func(f *cometKeyFile) { f.PubKey.Type = "x" }), `pub_key.type must be "tendermint/PubKeyEd25519"`},
		{"a node_key.json for a validator key", profile.KeyEd25519, profile.FormatCometBFTPrivValidatorKey, nodeKeyFile(t, nil), "missing"},
		// node_key.json
		{"node_key.json", profile.KeyEd25519, profile.FormatCometBFTNodeKey, nodeKeyFile(t, nil), ""},
		{"node_key.json with halves that disagree", profile.KeyEd25519, profile.FormatCometBFTNodeKey,
			nodeKeyFile(t, func(f *cometKeyFile) { f.PrivKey.Value = mismatchedHalves(t) }), "second half is not the public key"},
		{"node_key.json without priv_key", profile.KeyEd25519, profile.FormatCometBFTNodeKey, []byte(`{}`), "priv_key is missing"},
		{"node_key.json placeholder", profile.KeyEd25519, profile.FormatCometBFTNodeKey, []byte(`node key`), "must be the whole node_key.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := &profile.InputSpec{Name: "the_key", Type: engine.InputSecret, KeyType: tt.keyType, Format: tt.format}
			err := spec.CheckKey(bytes.Clone(tt.key))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused a good key: %v", err)
				}
				return
			}
			if !engine.IsCode(err, engine.EInvalid) {
				t.Fatalf("err = %v, want EInvalid", err)
			}
			msg := engine.ErrorMessage(err)
			if !strings.Contains(msg, tt.want) || !strings.HasPrefix(msg, `input "the_key": `) {
				t.Errorf("error %q: want it to name the input and contain %q", msg, tt.want)
			}
			wantNoKeyContent(t, msg, tt.key)
		})
	}
}

// wantNoKeyContent fails if msg shows a string value of a JSON key file
// (other than CometBFT's type names), or of another key any run of 8
// bytes, raw or in hex.
func wantNoKeyContent(t *testing.T, msg string, key []byte) {
	t.Helper()
	var doc any
	if json.Unmarshal(key, &doc) == nil {
		for _, v := range stringsIn(doc) {
			if len(v) >= 8 && !strings.HasPrefix(v, "tendermint/") && strings.Contains(msg, v) {
				t.Fatalf("error %q shows the key file's value %q", msg, v)
			}
		}
		return
	}
	for i := 0; i+8 <= len(key); i++ {
		for _, s := range []string{string(key[i : i+8]), hex.EncodeToString(key[i : i+8])} {
			if strings.Contains(strings.ToLower(msg), strings.ToLower(s)) {
				t.Fatalf("error %q shows key content %q", msg, s)
			}
		}
	}
}

func stringsIn(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case map[string]any:
		var out []string
		for _, x := range v {
			out = append(out, stringsIn(x)...)
		}
		return out
	}
	return nil
}

func TestGenerateKeyMakesKeysCheckKeyAccepts(t *testing.T) {
	for _, spec := range []profile.InputSpec{
		{Name: "a", KeyType: profile.KeyEd25519, Format: profile.FormatRaw},
		{Name: "b", KeyType: profile.KeySecp256k1, Format: profile.FormatRaw},
		{Name: "c", KeyType: profile.KeyBLS12381, Format: profile.FormatRaw},
		{Name: "d", KeyType: profile.KeySr25519, Format: profile.FormatRaw},
		{Name: "e", KeyType: profile.KeyHex32, Format: profile.FormatRaw},
		{Name: "f", KeyType: profile.KeyEd25519, Format: profile.FormatCometBFTNodeKey},
		{Name: "g", KeyType: profile.KeyEd25519, Format: profile.FormatCometBFTPrivValidatorKey},
		{Name: "h", KeyType: profile.KeyEd25519}, // an omitted format is raw
	} {
		t.Run(string(spec.KeyType)+"/"+string(spec.Format), func(t *testing.T) {
			a, err := profile.GenerateKey(&spec)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := profile.GenerateKey(&spec)
			if bytes.Equal(a, b) {
				t.Fatal("two generated keys are equal")
			}
			if err := spec.CheckKey(a); err != nil {
				t.Fatalf("CheckKey refuses a generated key: %v", err)
			}
		})
	}
	if _, err := profile.GenerateKey(&profile.InputSpec{Name: "x", KeyType: "rsa"}); !engine.IsCode(err, engine.EInvalid) {
		t.Errorf("an unknown key type: %v, want EInvalid", err)
	}
	if _, err := profile.GenerateKey(&profile.InputSpec{Name: "x", KeyType: profile.KeySecp256k1, Format: profile.FormatCometBFTNodeKey}); !engine.IsCode(err, engine.EInvalid) {
		t.Errorf("a node_key.json of secp256k1: %v, want EInvalid", err)
	}
}

// TestGeneratedCometBFTKeysAreCometBFTs: the generated files have CometBFT's
// exact layout, so cometbft reads them as its own.
func TestGeneratedCometBFTKeysAreCometBFTs(t *testing.T) {
	b, err := profile.GenerateKey(&profile.InputSpec{KeyType: profile.KeyEd25519, Format: profile.FormatCometBFTPrivValidatorKey})
	if err != nil {
		t.Fatal(err)
	}
	var f cometKeyFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	priv, _ := base64.StdEncoding.DecodeString(f.PrivKey.Value)
	pub := ed25519.PrivateKey(priv).Public().(ed25519.PublicKey)
	sum := sha256.Sum256(pub)
	if f.Address != strings.ToUpper(hex.EncodeToString(sum[:20])) || f.PubKey.Value != base64.StdEncoding.EncodeToString(pub) {
		t.Fatalf("address or pub_key do not derive from priv_key")
	}
	if f.PrivKey.Type != "tendermint/PrivKeyEd25519" || f.PubKey.Type != "tendermint/PubKeyEd25519" {
		t.Fatalf("key types %q %q", f.PrivKey.Type, f.PubKey.Type)
	}
	n, err := profile.GenerateKey(&profile.InputSpec{KeyType: profile.KeyEd25519, Format: profile.FormatCometBFTNodeKey})
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(n, &keys); err != nil || len(keys) != 1 || keys["priv_key"] == nil {
		t.Fatalf("node_key.json = %d fields, %v; want priv_key only", len(keys), err)
	}
}

// FuzzCheckKey: whatever a customer seals, the check never panics and
// refuses with EInvalid naming the input.
func FuzzCheckKey(f *testing.F) {
	f.Add(validatorKeyFile(f, nil), uint8(0))
	f.Add(nodeKeyFile(f, nil), uint8(1))
	f.Add([]byte(`{"priv_key":{"type":"tendermint/PrivKeyEd25519","value":null}}`), uint8(1))
	f.Add(make([]byte, 32), uint8(2))
	specs := []profile.InputSpec{
		{Name: "k", KeyType: profile.KeyEd25519, Format: profile.FormatCometBFTPrivValidatorKey},
		{Name: "k", KeyType: profile.KeyEd25519, Format: profile.FormatCometBFTNodeKey},
		{Name: "k", KeyType: profile.KeyEd25519},
		{Name: "k", KeyType: profile.KeySecp256k1},
		{Name: "k", KeyType: profile.KeyBLS12381},
		{Name: "k", KeyType: profile.KeyHex32},
		{Name: "k", KeyType: profile.KeySr25519},
	}
	f.Fuzz(func(t *testing.T, key []byte, which uint8) {
		spec := specs[int(which)%len(specs)]
		if err := spec.CheckKey(key); err != nil && (!engine.IsCode(err, engine.EInvalid) || !strings.HasPrefix(engine.ErrorMessage(err), `input "k": `)) {
			t.Fatalf("err = %v, want EInvalid naming the input", err)
		}
	})
}
