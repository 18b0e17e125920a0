package engine

import (
	"crypto/rand"
	"encoding/hex"
)

// NewID returns a random identifier with a readable prefix, e.g. "node_3f…".
func NewID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}
