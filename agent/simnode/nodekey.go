package simnode

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// nodeKeyFile is the identity key a chain generates on first start, the kind
// of file CAPTURE_KEY collects (at config/node_key.json in the data dir).
type nodeKeyFile struct {
	Type       string `json:"type"` // always "ed25519"
	ID         string `json:"id"`   // hex of the first 20 bytes of SHA-256(public key)
	PublicKey  []byte `json:"public_key"`
	PrivateKey []byte `json:"private_key"` // the 64-byte ed25519 private key
}

// ensureNodeKey returns the node id of the key at path, creating the key
// (mode 0600) if there is none. An existing key is never rewritten, and one
// that does not parse stops the node rather than being replaced.
func ensureNodeKey(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createNodeKey(path)
	}
	if err != nil {
		return "", fmt.Errorf("read node key: %w", err)
	}
	var k nodeKeyFile
	if err := json.Unmarshal(b, &k); err != nil {
		return "", fmt.Errorf("node key %s: %w", path, err)
	}
	if err := k.check(); err != nil {
		return "", fmt.Errorf("node key %s: %w", path, err)
	}
	return k.ID, nil
}

func createNodeKey(path string) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generate node key: %w", err)
	}
	k := nodeKeyFile{Type: "ed25519", ID: nodeID(pub), PublicKey: pub, PrivateKey: priv}
	b, err := json.MarshalIndent(k, "", "  ")
	clear(priv)
	if err != nil {
		return "", fmt.Errorf("encode node key: %w", err)
	}
	data := append(b, '\n')
	defer clear(b)
	defer clear(data) // a copy if append grew it
	if err := writeFileAtomic(path, data); err != nil {
		return "", fmt.Errorf("node key: %w", err)
	}
	return k.ID, nil
}

func (k *nodeKeyFile) check() error {
	defer clear(k.PrivateKey)
	if k.Type != "ed25519" {
		return fmt.Errorf("type %q, want ed25519", k.Type)
	}
	if len(k.PrivateKey) != ed25519.PrivateKeySize {
		return fmt.Errorf("private key is %d bytes, want %d", len(k.PrivateKey), ed25519.PrivateKeySize)
	}
	pub := ed25519.PrivateKey(k.PrivateKey).Public().(ed25519.PublicKey)
	if !bytes.Equal(pub, k.PublicKey) || nodeID(pub) != k.ID {
		return errors.New("public key or id does not match the private key")
	}
	return nil
}

func nodeID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:20])
}
