package engine

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// PasswordParams are the argon2id costs of new password hashes. Each hash
// records its own parameters in PHC form
// ($argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>), so raising
// the costs later still verifies the hashes made before.
type PasswordParams struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over memory
	Threads uint8  // lanes
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultPasswordParams follow RFC 9106's second recommended option
// (64 MiB, 3 passes) with 2 lanes, the cores of the smallest appliance:
// about 100 ms per hash there, which is what a login may cost.
var DefaultPasswordParams = PasswordParams{Memory: 64 * 1024, Time: 3, Threads: 2, SaltLen: 16, KeyLen: 32}

// Limits on what a stored hash may ask for, so a corrupted or planted hash
// cannot make one login allocate gigabytes.
const (
	maxPasswordMemory  = 1 << 20 // KiB: 1 GiB
	maxPasswordTime    = 16
	maxPasswordKeyLen  = 128
	minPasswordLen     = 10
	maxPasswordBytes   = 256 // argon2 hashes all of it; bound the work an attacker can send
	passwordHashPrefix = "$argon2id$v=19$"
)

// HashPassword returns the PHC-encoded argon2id hash of password with a
// fresh random salt.
func (p PasswordParams) HashPassword(password string) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return fmt.Sprintf("%sm=%d,t=%d,p=%d$%s$%s", passwordHashPrefix, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// b64 is the PHC string format's base64: standard alphabet, no padding.
var b64 = base64.RawStdEncoding

// VerifyPassword reports whether password matches the PHC-encoded argon2id
// hash, comparing in constant time. An unreadable hash is an error.
func VerifyPassword(hash, password string) (bool, error) {
	p, salt, want, err := parsePasswordHash(hash)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func parsePasswordHash(hash string) (p PasswordParams, salt, key []byte, err error) {
	bad := Errorf(EInternal, "stored password hash is not argon2id in PHC form")
	rest, ok := strings.CutPrefix(hash, passwordHashPrefix)
	parts := strings.Split(rest, "$")
	if !ok || len(parts) != 3 {
		return p, nil, nil, bad
	}
	if _, err := fmt.Sscanf(parts[0], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, bad
	}
	if salt, err = b64.DecodeString(parts[1]); err != nil {
		return p, nil, nil, bad
	}
	if key, err = b64.DecodeString(parts[2]); err != nil {
		return p, nil, nil, bad
	}
	if p.Memory == 0 || p.Memory > maxPasswordMemory || p.Time == 0 || p.Time > maxPasswordTime ||
		p.Threads == 0 || len(salt) < 8 || len(key) < 16 || len(key) > maxPasswordKeyLen {
		return p, nil, nil, bad
	}
	p.KeyLen = uint32(len(key))
	return p, salt, key, nil
}

// checkPassword enforces the rules for a new password.
func checkPassword(password string) error {
	switch n := utf8.RuneCountInString(password); {
	case n < minPasswordLen:
		return Errorf(EInvalid, "password must have at least %d characters", minPasswordLen)
	case len(password) > maxPasswordBytes:
		return Errorf(EInvalid, "password must be at most %d bytes", maxPasswordBytes)
	}
	return nil
}
