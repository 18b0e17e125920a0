package profile

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/hoodcloud/hoodcloud/engine"
)

// KeyFormat is how a secret's key material is encoded: what the customer
// seals, what the appliance generates and what reaches the node's key file.
type KeyFormat string

const (
	// FormatRaw is the key itself: for ed25519 the 32-byte seed or the
	// 64-byte private key, for secp256k1 and BLS12-381 a 32-byte big-endian
	// scalar, for sr25519 the 32-byte mini secret or the 64-byte secret
	// key, for hex32 64 hex digits.
	FormatRaw KeyFormat = "raw"
	// FormatCometBFTPrivValidatorKey is CometBFT's whole
	// priv_validator_key.json: address, pub_key and priv_key.
	FormatCometBFTPrivValidatorKey KeyFormat = "cometbft_priv_validator_key"
	// FormatCometBFTNodeKey is CometBFT's node_key.json: priv_key only.
	FormatCometBFTNodeKey KeyFormat = "cometbft_node_key"
)

// formatKeyTypes lists the key types each format can hold.
var formatKeyTypes = map[KeyFormat][]KeyType{
	FormatRaw:                      {KeyEd25519, KeySecp256k1, KeyBLS12381, KeySr25519, KeyHex32},
	FormatCometBFTPrivValidatorKey: {KeyEd25519},
	FormatCometBFTNodeKey:          {KeyEd25519},
}

// CometBFT's amino type names of ed25519 keys.
const (
	cometPrivKeyType = "tendermint/PrivKeyEd25519"
	cometPubKeyType  = "tendermint/PubKeyEd25519"
)

// checkKeyFormats refuses a format on a non-secret, an unknown format and a
// format that cannot hold the secret's key type; an omitted format of a
// secret becomes raw. The first declared of specs are provisioning_inputs.
func checkKeyFormats(ps *problems, specs []InputSpec, declared int) {
	for i := range specs {
		s := &specs[i]
		field := fmt.Sprintf("provisioning_inputs[%d].format", i)
		if i >= declared {
			field = fmt.Sprintf("keys[%d].format", i-declared)
		}
		if s.Type != engine.InputSecret {
			if s.Format != "" {
				ps.add(field, "applies to secret inputs only")
			}
			continue
		}
		switch types, known := formatKeyTypes[s.Format]; {
		case s.Format == "":
			s.Format = FormatRaw
		case !known:
			ps.add(field, "unknown format %q (%s)", s.Format, knownFormats())
		case keyTypes[s.KeyType] && !slices.Contains(types, s.KeyType):
			ps.add(field, "format %s holds %s keys, not %s", s.Format, keyTypeList(types), s.KeyType)
		}
	}
}

func knownFormats() string {
	names := make([]string, 0, len(formatKeyTypes))
	for f := range formatKeyTypes {
		names = append(names, string(f))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func keyTypeList(types []KeyType) string {
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// CheckKey validates the plaintext of a secret against the spec's key type
// and format before it is accepted: a placeholder, a truncated key or a
// key file whose halves disagree is refused. Errors are EInvalid and name
// the input and what is wrong, never any of the key's content. plain is
// only read; the caller zeroes it.
func (s *InputSpec) CheckKey(plain []byte) error {
	var problem string
	switch {
	case len(plain) == 0:
		problem = "the key is empty"
	case s.Format == FormatCometBFTPrivValidatorKey:
		problem = checkPrivValidatorKey(plain)
	case s.Format == FormatCometBFTNodeKey:
		problem = checkNodeKey(plain)
	default:
		problem = checkRawKey(s.KeyType, plain)
	}
	if problem == "" {
		return nil
	}
	return engine.Errorf(engine.EInvalid, "input %q: %s", s.Name, problem)
}

// checkRawKey checks the forms GenerateKey produces and the clients take.
func checkRawKey(t KeyType, plain []byte) string {
	switch t {
	case KeyEd25519:
		return checkEd25519(plain)
	case KeySecp256k1, KeyBLS12381:
		return checkScalar(t, plain)
	case KeySr25519:
		if len(plain) != 32 && len(plain) != 64 {
			return fmt.Sprintf("an sr25519 key must be a 32-byte mini secret or a 64-byte secret key, not %d bytes", len(plain))
		}
	case KeyHex32:
		if !isHex32(plain) {
			return "a hex32 secret must be 64 hex digits (32 bytes), optionally prefixed with 0x"
		}
	}
	return ""
}

func checkEd25519(plain []byte) string {
	switch len(plain) {
	case ed25519.SeedSize:
		return ""
	case ed25519.PrivateKeySize:
		if !ed25519Consistent(plain) {
			return "the 64-byte ed25519 private key's second half is not the public key of its seed"
		}
		return ""
	}
	return fmt.Sprintf("an ed25519 key must be a 32-byte seed or a 64-byte private key, not %d bytes", len(plain))
}

// ed25519Consistent reports whether priv (seed ‖ public key) carries the
// public key its seed derives.
func ed25519Consistent(priv []byte) bool {
	derived := ed25519.NewKeyFromSeed(priv[:ed25519.SeedSize])
	defer engine.Zero(derived)
	return subtle.ConstantTimeCompare(derived[ed25519.SeedSize:], priv[ed25519.SeedSize:]) == 1
}

func checkScalar(t KeyType, plain []byte) string {
	switch {
	case len(plain) != 32:
		return fmt.Sprintf("a %s key must be a 32-byte big-endian scalar, not %d bytes", t, len(plain))
	case isZero(plain):
		return fmt.Sprintf("a %s key must not be zero", t)
	case bytes.Compare(plain, groupOrder[t][:]) >= 0:
		return fmt.Sprintf("a %s key must be below the group order", t)
	}
	return ""
}

func isZero(b []byte) bool {
	var acc byte
	for _, c := range b {
		acc |= c
	}
	return acc == 0
}

// isHex32 accepts what geth reads from a JWT secret file: 64 hex digits,
// optionally prefixed with 0x, with surrounding white space.
func isHex32(plain []byte) bool {
	h := bytes.TrimSpace(plain)
	if len(h) > 1 && h[0] == '0' && (h[1] == 'x' || h[1] == 'X') {
		h = h[2:]
	}
	if len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// cometKeyFile is priv_validator_key.json or node_key.json. Key values stay
// raw JSON so they can be zeroed after use.
type cometKeyFile struct {
	Address *string   `json:"address"`
	PubKey  *cometKey `json:"pub_key"`
	PrivKey *cometKey `json:"priv_key"`
}

type cometKey struct {
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

func (f *cometKeyFile) zero() {
	if f.PrivKey != nil {
		engine.Zero(f.PrivKey.Value)
	}
}

func checkPrivValidatorKey(plain []byte) string {
	var f cometKeyFile
	defer f.zero()
	if json.Unmarshal(plain, &f) != nil {
		return "must be the whole priv_validator_key.json: a JSON object with address, pub_key and priv_key"
	}
	switch {
	case f.PrivKey == nil:
		return "priv_key is missing"
	case f.PubKey == nil:
		return "pub_key is missing"
	case f.Address == nil:
		return "address is missing"
	}
	priv, problem := cometPrivKey(f.PrivKey)
	if problem != "" {
		return problem
	}
	defer engine.Zero(priv)
	pub, problem := cometPubKey(f.PubKey)
	if problem != "" {
		return problem
	}
	if !bytes.Equal(pub, priv[ed25519.SeedSize:]) {
		return "pub_key is not the public key of priv_key"
	}
	return checkAddress(*f.Address, pub)
}

func checkNodeKey(plain []byte) string {
	var f cometKeyFile
	defer f.zero()
	if json.Unmarshal(plain, &f) != nil {
		return "must be the whole node_key.json: a JSON object with priv_key"
	}
	if f.PrivKey == nil {
		return "priv_key is missing"
	}
	priv, problem := cometPrivKey(f.PrivKey)
	engine.Zero(priv)
	return problem
}

// cometPrivKey decodes priv_key: 64 bytes whose second half is the public
// key of the first. The caller zeroes the result.
func cometPrivKey(k *cometKey) ([]byte, string) {
	if k.Type != cometPrivKeyType {
		return nil, fmt.Sprintf("priv_key.type must be %q", cometPrivKeyType)
	}
	var priv []byte
	if json.Unmarshal(k.Value, &priv) != nil || priv == nil {
		engine.Zero(priv)
		return nil, "priv_key.value must be base64 (standard, padded)"
	}
	if len(priv) != ed25519.PrivateKeySize {
		n := len(priv)
		engine.Zero(priv)
		return nil, fmt.Sprintf("priv_key.value must hold 64 bytes (the seed and the public key), not %d", n)
	}
	if !ed25519Consistent(priv) {
		engine.Zero(priv)
		return nil, "priv_key.value's second half is not the public key of its seed"
	}
	return priv, ""
}

func cometPubKey(k *cometKey) ([]byte, string) {
	if k.Type != cometPubKeyType {
		return nil, fmt.Sprintf("pub_key.type must be %q", cometPubKeyType)
	}
	var pub []byte
	if json.Unmarshal(k.Value, &pub) != nil || pub == nil {
		return nil, "pub_key.value must be base64 (standard, padded)"
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Sprintf("pub_key.value must hold 32 bytes, not %d", len(pub))
	}
	return pub, ""
}

// checkAddress wants CometBFT's validator address: the first 20 bytes of
// SHA-256 of the public key, in hex (CometBFT writes upper case).
func checkAddress(address string, pub []byte) string {
	got, err := hex.DecodeString(address)
	sum := sha256.Sum256(pub)
	if err != nil || !bytes.Equal(got, sum[:20]) {
		return "address is not the validator address of pub_key (upper-case hex of the first 20 bytes of its SHA-256)"
	}
	return ""
}
