package engine

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"time"
)

// NodeKey is key material of a node, stored as ciphertext only: chain keys
// under the node's DEK, the DEK itself wrapped by the master key.
type NodeKey struct {
	NodeID     string
	Name       string // unique per node; "dek" holds the wrapped data key
	KeyType    string // e.g. "ed25519"
	Source     string // generated, chain_generated, user_provided
	Ciphertext []byte
	CreatedAt  time.Time
}

// DataKeyName is the NodeKey holding a node's data key, wrapped by KeyMaster.
const DataKeyName = "dek"

// KeyStore keeps node keys. Safe for concurrent use.
type KeyStore interface {
	// PutNodeKey creates or replaces the key (NodeID, Name): activities retry.
	PutNodeKey(ctx context.Context, k *NodeKey) error
	// GetNodeKey returns ENotFound if missing.
	GetNodeKey(ctx context.Context, nodeID, name string) (*NodeKey, error)
	// ListNodeKeys returns the node's keys ordered by name.
	ListNodeKeys(ctx context.Context, nodeID string) ([]*NodeKey, error)
	// DeleteNodeKeys removes every key of the node; none is not an error.
	DeleteNodeKeys(ctx context.Context, nodeID string) error
}

// NodeDataKey unwraps the node's data key (DataKeyName, wrapped by
// KeyMaster). ENotFound if the node has none. The caller zeroes it.
func NodeDataKey(ctx context.Context, keys KeyStore, s Secrets, nodeID string) ([]byte, error) {
	k, err := keys.GetNodeKey(ctx, nodeID, DataKeyName)
	if err != nil {
		return nil, fmt.Errorf("read data key of node %s: %w", nodeID, err)
	}
	dek, err := s.Decrypt(ctx, KeyMaster, k.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("unwrap data key of node %s: %w", nodeID, err)
	}
	return dek, nil
}

// SealWithDataKey encrypts plain under a data key with AES-256-GCM: a fresh
// nonce, then the ciphertext, no associated data. Every node key is stored
// so, whether the control plane or an agent (CAPTURE_KEY) sealed it.
func SealWithDataKey(dek, plain []byte) ([]byte, error) {
	gcm, err := dataKeyAEAD(dek)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return gcm.Seal(nonce, nonce, plain, nil), nil
}

// OpenWithDataKey reverses SealWithDataKey: EInvalid if sealed is truncated
// or was not sealed under dek. The plaintext is the caller's to zero.
func OpenWithDataKey(dek, sealed []byte) ([]byte, error) {
	gcm, err := dataKeyAEAD(dek)
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcm.NonceSize()+gcm.Overhead() {
		return nil, Errorf(EInvalid, "sealed key is truncated")
	}
	plain, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], nil)
	if err != nil {
		return nil, Errorf(EInvalid, "sealed key does not open under this data key")
	}
	return plain, nil
}

func dataKeyAEAD(dek []byte) (cipher.AEAD, error) {
	if len(dek) != DataKeySize {
		return nil, Errorf(EInvalid, "a data key is %d bytes, not %d", DataKeySize, len(dek))
	}
	block, err := aes.NewCipher(dek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
