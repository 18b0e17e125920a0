package workflows

import (
	"context"
	"fmt"

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
	p, nodeType, err := a.keysProfile(ctx, req)
	if err != nil {
		return classify(err)
	}
	dek, err := a.ensureDEK(ctx, req.NodeID)
	if err != nil {
		return classify(err)
	}
	defer engine.Zero(dek)
	for _, spec := range p.Secrets(nodeType, profile.SourceGenerated) {
		if err := a.ensureGeneratedKey(ctx, req.NodeID, dek, spec); err != nil {
			return classify(err)
		}
	}
	return nil
}

// PrepareUserProvidedKeys opens the customer's sealed secrets, checks each
// against its key type and format again (a stored key that does not fit
// fails provisioning with a permanent EInvalid naming it), and stores them
// under the node's data key. Keys already stored are kept; secrets of
// inputs the node's type does not take are skipped.
func (a *Activities) PrepareUserProvidedKeys(ctx context.Context, req KeysRequest) error {
	if a.OpenSealed == nil {
		return permanent(engine.EUnsupported, "no sealed-box key to open user-provided secrets with")
	}
	inputs, err := a.Store.ListInputs(ctx, req.SubscriptionID)
	if err != nil {
		return fmt.Errorf("list inputs of %s: %w", req.SubscriptionID, err)
	}
	p, nodeType, err := a.keysProfile(ctx, req)
	if err != nil {
		return classify(err)
	}
	dek, err := a.loadDEK(ctx, req.NodeID)
	if err != nil {
		return classify(err)
	}
	defer engine.Zero(dek)
	for _, in := range inputs {
		spec, err := p.InputFor(nodeType, in.Name)
		if err != nil || in.Type != engine.InputSecret || spec.Source != profile.SourceUserProvided {
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
	if err := spec.CheckKey(plain); err != nil {
		return permanent(engine.EInvalid, "%s", engine.ErrorMessage(err))
	}
	return a.putSealedKey(ctx, nodeID, dek, spec, sourceUserProvided, plain)
}

// keysProfile returns the chain profile of the node's keys and the node's
// type, which decides the keys it takes.
func (a *Activities) keysProfile(ctx context.Context, req KeysRequest) (*profile.ChainProfile, string, error) {
	n, err := a.Store.GetNode(ctx, req.NodeID)
	if err != nil {
		return nil, "", fmt.Errorf("read node %s: %w", req.NodeID, err)
	}
	p, err := a.Chains(req.ChainProfileID)
	if err != nil {
		return nil, "", fmt.Errorf("chain profile of node %s: %w", req.NodeID, err)
	}
	return p, n.NodeType, nil
}

func (a *Activities) ensureGeneratedKey(ctx context.Context, nodeID string, dek []byte, spec profile.InputSpec) error {
	if has, err := a.hasKey(ctx, nodeID, spec.Name); err != nil || has {
		return err
	}
	material, err := profile.GenerateKey(&spec)
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
