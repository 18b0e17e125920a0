package secrets

import "io"

// SetRandom makes k draw keys and nonces from r; call it before Open.
func SetRandom(k *Keyring, r io.Reader) { k.random = r }

// SetRotationHook runs h after each record a master rotation rewraps and
// before it replaces the key file (step "rename"); an error stops it there.
func SetRotationHook(k *Keyring, h func(step string) error) { k.rotationHook = h }

// CiphertextVersion returns the key version a ciphertext names.
func CiphertextVersion(ct []byte) int {
	v, _ := ciphertextVersion(ct)
	return v
}

// CiphertextNonce returns the nonce of a ciphertext.
func CiphertextNonce(ct []byte) [nonceLen]byte {
	return [nonceLen]byte(ct[ctHeaderLen : ctHeaderLen+nonceLen])
}
