package workflows

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
)

// DEKName is the NodeKey holding the node's data key, wrapped by
// engine.KeyMaster.
const DEKName = engine.DataKeyName

// Key sources as NodeKey.Source records them.
const (
	sourceGenerated      = string(profile.SourceGenerated)
	sourceChainGenerated = string(profile.SourceChainGenerated)
	sourceUserProvided   = string(profile.SourceUserProvided)
)

// KeysRequest names the node whose keys an activity prepares.
type KeysRequest struct {
	NodeID         string
	SubscriptionID string
	ChainProfileID string
	// CommandID names InjectKeys' DELIVER_KEYS command; empty in runs
	// recorded before it existed.
	CommandID string
}

// GenerateNodeKeys gives the node a data key (wrapped by the master key)
// and the chain keys its profile marks generated, each encrypted under the
// data key. Keys already stored are kept, so a retry changes nothing.
func (a *Activities) GenerateNodeKeys(ctx context.Context, req KeysRequest) error {
	p, err := a.Chains(req.ChainProfileID)
	if err != nil {
		return classify(fmt.Errorf("chain profile of node %s: %w", req.NodeID, err))
	}
	dek, err := a.ensureDEK(ctx, req.NodeID)
	if err != nil {
		return classify(err)
	}
	defer engine.Zero(dek)
	for _, spec := range p.Secrets(profile.SourceGenerated) {
		if err := a.ensureGeneratedKey(ctx, req.NodeID, dek, spec); err != nil {
			return classify(err)
		}
	}
	return nil
}

// PrepareUserProvidedKeys opens the customer's sealed secrets and stores
// them under the node's data key. Keys already stored are kept.
func (a *Activities) PrepareUserProvidedKeys(ctx context.Context, req KeysRequest) error {
	if a.OpenSealed == nil {
		return permanent(engine.EUnsupported, "no sealed-box key to open user-provided secrets with")
	}
	inputs, err := a.Store.ListInputs(ctx, req.SubscriptionID)
	if err != nil {
		return fmt.Errorf("list inputs of %s: %w", req.SubscriptionID, err)
	}
	p, err := a.Chains(req.ChainProfileID)
	if err != nil {
		return classify(err)
	}
	dek, err := a.loadDEK(ctx, req.NodeID)
	if err != nil {
		return classify(err)
	}
	defer engine.Zero(dek)
	for _, in := range inputs {
		spec, ok := p.Input(in.Name)
		if !ok || in.Type != engine.InputSecret || spec.Source != profile.SourceUserProvided {
			continue
		}
		if err := a.storeUserKey(ctx, req.NodeID, dek, spec, in.Ciphertext); err != nil {
			return classify(err)
		}
	}
	return nil
}

func (a *Activities) storeUserKey(ctx context.Context, nodeID string, dek []byte, spec *profile.InputSpec, sealed []byte) error {
	if has, err := a.hasKey(ctx, nodeID, spec.Name); err != nil || has {
		return err
	}
	plain, err := a.OpenSealed(sealed)
	if err != nil {
		return engine.Errorf(engine.EInvalid, "user-provided secret %q cannot be opened", spec.Name)
	}
	defer engine.Zero(plain)
	return a.putSealedKey(ctx, nodeID, dek, spec, sourceUserProvided, plain)
}

func (a *Activities) ensureGeneratedKey(ctx context.Context, nodeID string, dek []byte, spec profile.InputSpec) error {
	if has, err := a.hasKey(ctx, nodeID, spec.Name); err != nil || has {
		return err
	}
	material, err := generateKeyMaterial(spec.KeyType)
	if err != nil {
		return fmt.Errorf("generate key %q: %w", spec.Name, err)
	}
	defer engine.Zero(material)
	return a.putSealedKey(ctx, nodeID, dek, &spec, sourceGenerated, material)
}

func (a *Activities) putSealedKey(ctx context.Context, nodeID string, dek []byte, spec *profile.InputSpec, source string, plain []byte) error {
	ct, err := engine.SealWithDataKey(dek, plain)
	if err != nil {
		return fmt.Errorf("encrypt key %q: %w", spec.Name, err)
	}
	k := &engine.NodeKey{NodeID: nodeID, Name: spec.Name, KeyType: string(spec.KeyType), Source: source, Ciphertext: ct, CreatedAt: a.now()}
	if err := a.Store.PutNodeKey(ctx, k); err != nil {
		return fmt.Errorf("store key %q of node %s: %w", spec.Name, nodeID, err)
	}
	return nil
}

func (a *Activities) hasKey(ctx context.Context, nodeID, name string) (bool, error) {
	_, err := a.Store.GetNodeKey(ctx, nodeID, name)
	switch {
	case err == nil:
		return true, nil
	case engine.IsCode(err, engine.ENotFound):
		return false, nil
	}
	return false, fmt.Errorf("read key %q of node %s: %w", name, nodeID, err)
}

// ensureDEK returns the node's data key, creating and storing it (wrapped)
// on the first call. The plaintext is the caller's to zero.
func (a *Activities) ensureDEK(ctx context.Context, nodeID string) ([]byte, error) {
	dek, err := a.loadDEK(ctx, nodeID)
	if !engine.IsCode(err, engine.ENotFound) {
		return dek, err
	}
	plain, wrapped, err := a.Secrets.GenerateDataKey(ctx, engine.KeyMaster)
	if err != nil {
		return nil, fmt.Errorf("generate data key of node %s: %w", nodeID, err)
	}
	k := &engine.NodeKey{NodeID: nodeID, Name: DEKName, KeyType: "aes256-gcm", Source: sourceGenerated, Ciphertext: wrapped, CreatedAt: a.now()}
	if err := a.Store.PutNodeKey(ctx, k); err != nil {
		engine.Zero(plain)
		return nil, fmt.Errorf("store data key of node %s: %w", nodeID, err)
	}
	return plain, nil
}

// loadDEK unwraps the node's data key; ENotFound if it has none.
func (a *Activities) loadDEK(ctx context.Context, nodeID string) ([]byte, error) {
	return engine.NodeDataKey(ctx, a.Store, a.Secrets, nodeID)
}

// Group orders of the curves whose secret keys are scalars below them.
var (
	secp256k1N, _ = new(big.Int).SetString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)
	bls12381R, _  = new(big.Int).SetString("73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001", 16)
)

// generateKeyMaterial returns a fresh secret key of type t in its raw form:
// the 32-byte seed for ed25519, a 32-byte big-endian scalar for secp256k1
// and BLS12-381, the 32-byte mini secret for sr25519, 64 hex digits for hex32.
func generateKeyMaterial(t profile.KeyType) ([]byte, error) {
	switch t {
	case profile.KeyEd25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		seed := append([]byte(nil), priv.Seed()...)
		engine.Zero(priv)
		return seed, nil
	case profile.KeySecp256k1:
		return randomScalar(secp256k1N)
	case profile.KeyBLS12381:
		return randomScalar(bls12381R)
	case profile.KeySr25519:
		return randomBytes(32)
	case profile.KeyHex32:
		raw, err := randomBytes(32)
		if err != nil {
			return nil, err
		}
		defer engine.Zero(raw)
		return []byte(hex.EncodeToString(raw)), nil
	}
	return nil, engine.Errorf(engine.EInvalid, "unknown key type %q", t)
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := rand.Read(b)
	return b, err
}

// randomScalar draws uniformly from [1, order) and encodes it in 32 bytes.
func randomScalar(order *big.Int) ([]byte, error) {
	max := new(big.Int).Sub(order, big.NewInt(1))
	k, err := rand.Int(rand.Reader, max)
	if err != nil {
		return nil, err
	}
	return k.Add(k, big.NewInt(1)).FillBytes(make([]byte, 32)), nil
}
