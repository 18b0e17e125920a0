package profile

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"

	"github.com/hoodcloud/hoodcloud/engine"
)

// groupOrder is, big-endian, the order of the curves whose secret keys are
// scalars below it.
var groupOrder = map[KeyType]*[32]byte{
	KeySecp256k1: mustOrder("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"),
	KeyBLS12381:  mustOrder("73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001"),
}

func mustOrder(h string) *[32]byte {
	var out [32]byte
	if n, err := hex.Decode(out[:], []byte(h)); err != nil || n != 32 {
		panic("profile: bad group order " + h)
	}
	return &out
}

// GenerateKey returns fresh key material of the spec's key type in the
// spec's format, as CheckKey accepts it: raw (see FormatRaw), or CometBFT's
// priv_validator_key.json or node_key.json for an ed25519 key. The caller
// zeroes the result with engine.Zero.
func GenerateKey(spec *InputSpec) ([]byte, error) {
	if spec.Format == FormatCometBFTPrivValidatorKey || spec.Format == FormatCometBFTNodeKey {
		if spec.KeyType != KeyEd25519 {
			return nil, engine.Errorf(engine.EInvalid, "key %q: format %s holds ed25519 keys, not %s", spec.Name, spec.Format, spec.KeyType)
		}
		return generateCometKey(spec.Format == FormatCometBFTPrivValidatorKey)
	}
	switch spec.KeyType {
	case KeyEd25519:
		return randomBytes(ed25519.SeedSize)
	case KeySecp256k1, KeyBLS12381:
		return randomScalar(groupOrder[spec.KeyType])
	case KeySr25519:
		return randomBytes(32)
	case KeyHex32:
		raw, err := randomBytes(32)
		if err != nil {
			return nil, err
		}
		defer engine.Zero(raw)
		return hex.AppendEncode(nil, raw), nil
	}
	return nil, engine.Errorf(engine.EInvalid, "key %q: unknown key type %q", spec.Name, spec.KeyType)
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

// randomScalar draws uniformly from [1, order) by rejection, in place, so
// no copy of the key is left in memory: each draw keeps only as many top
// bits as the order has, so fewer than half the draws are rejected.
func randomScalar(order *[32]byte) ([]byte, error) {
	mask := byte(0xff)
	for mask>>1 >= order[0] {
		mask >>= 1
	}
	k := make([]byte, 32)
	for {
		if _, err := rand.Read(k); err != nil {
			engine.Zero(k)
			return nil, err
		}
		k[0] &= mask
		if !isZero(k) && bytes.Compare(k, order[:]) < 0 {
			return k, nil
		}
	}
}

// generateCometKey returns a new CometBFT key file: priv_validator_key.json
// when validator, else node_key.json, in CometBFT's own layout. It is built
// by appending so that every copy of the private key can be zeroed.
func generateCometKey(validator bool) ([]byte, error) {
	seed, err := randomBytes(ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	priv := ed25519.NewKeyFromSeed(seed)
	engine.Zero(seed)
	defer engine.Zero(priv)
	pub := priv[ed25519.SeedSize:]
	out := make([]byte, 0, 384)
	if validator {
		sum := sha256.Sum256(pub)
		out = append(out, `{"address":"`...)
		out = appendUpperHex(out, sum[:20])
		out = append(out, `","pub_key":{"type":"`+cometPubKeyType+`","value":"`...)
		out = base64.StdEncoding.AppendEncode(out, pub)
		out = append(out, `"},`...)
	} else {
		out = append(out, '{')
	}
	out = append(out, `"priv_key":{"type":"`+cometPrivKeyType+`","value":"`...)
	out = base64.StdEncoding.AppendEncode(out, priv)
	return append(out, `"}}`...), nil
}

// appendUpperHex appends b in upper-case hex, as CometBFT writes addresses.
func appendUpperHex(out, b []byte) []byte {
	const digits = "0123456789ABCDEF"
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&0x0f])
	}
	return out
}
